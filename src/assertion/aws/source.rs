//! [`AwsWebIdentitySource`]: the STS client (built on first use, every call time-bounded) and the
//! cached JWT (shared by concurrent callers, refreshed at a fifth of its lifetime).

use super::errors::{invalid, map_sdk_error};
use super::log_filter::redacting_dispatch;
use super::*;
use crate::WorkloadIdentityCredential;
use crate::assertion::{Assertion, AssertionSource};
use crate::clock::{Clock, SystemClock};
use crate::config::AUDIENCE_PUBLIC;
use crate::credential::WorkloadIdentityCredentialOptions;
use crate::error::{CredentialError, ErrorCategory};
use crate::jwt;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_sts::Client;
use aws_sdk_sts::config::Credentials;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use std::sync::{Mutex, OnceLock};
use tracing::instrument::WithSubscriber as _;

/// The STS client, built on first use.
struct Sts {
    client: Client,
    region: String,
    endpoint_url: Option<String>,
}

/// A JWT from STS and when to fetch the next one.
struct Cached {
    assertion: Assertion,
    expires_at: OffsetDateTime,
    refresh_at: OffsetDateTime,
}

/// An [`AssertionSource`] that asks AWS STS `GetWebIdentityToken` for the client assertion.
///
/// Construction validates the options and does no I/O; aws-config is loaded on first use.
pub struct AwsWebIdentitySource {
    audience: OnceLock<String>,
    duration_secs: i32,
    signing_algorithm: String,
    region: Option<String>,
    endpoint_url: Option<String>,
    sdk_config: Option<SdkConfig>,
    configure_loader: Option<ConfigLoaderHook>,
    env: Env,
    client: tokio::sync::OnceCell<Sts>,
    cached: Mutex<Option<Arc<Cached>>>,
    gate: tokio::sync::Mutex<()>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for AwsWebIdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsWebIdentitySource")
            .field("audience", &self.audience.get())
            .field("duration_secs", &self.duration_secs)
            .field("signing_algorithm", &self.signing_algorithm)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .finish_non_exhaustive()
    }
}

impl AwsWebIdentitySource {
    /// Validate `options` (duration 60–3600 s, signing algorithm, audience, HTTPS endpoint).
    pub fn new(options: AwsWebIdentitySourceOptions) -> Result<Self, CredentialError> {
        Self::with_clock(options, Arc::new(SystemClock))
    }

    pub(crate) fn with_clock(
        options: AwsWebIdentitySourceOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CredentialError> {
        if options.duration < MIN_DURATION || options.duration > MAX_DURATION {
            return Err(invalid(format!(
                "duration {} s is outside what STS GetWebIdentityToken issues (60 to 3600 s)",
                options.duration.as_secs()
            )));
        }
        let duration_secs = i32::try_from(options.duration.as_secs()).unwrap_or(i32::MAX);
        match options.signing_algorithm.as_str() {
            "RS256" => {}
            "ES384" => tracing::warn!(
                "AwsWebIdentitySource: signing algorithm ES384 requested; Entra ID accepts only RS256 client assertions"
            ),
            other => {
                return Err(invalid(format!(
                    "signing algorithm {other:?} is not one STS offers (RS256, ES384); Entra ID needs RS256"
                )));
            }
        }
        let audience = OnceLock::new();
        if let Some(a) = options.audience {
            if a.is_empty() || a.len() > 1000 || a.chars().any(char::is_whitespace) {
                return Err(invalid(format!(
                    "audience {a:?} is not usable: STS takes 1 to 1000 characters, and it must equal the federated credential's audience exactly"
                )));
            }
            let _ = audience.set(a);
        }
        if let Some(url) = &options.endpoint_url {
            check_endpoint(url, "endpoint_url")?;
        }
        Ok(Self {
            audience,
            duration_secs,
            signing_algorithm: options.signing_algorithm,
            region: options.region.filter(|r| !r.is_empty()),
            endpoint_url: options.endpoint_url,
            sdk_config: options.sdk_config,
            configure_loader: options.configure_loader,
            env: options.env,
            client: tokio::sync::OnceCell::new(),
            cached: Mutex::new(None),
            gate: tokio::sync::Mutex::new(()),
            clock,
        })
    }

    /// The audience requested from STS.
    pub fn audience(&self) -> &str {
        self.audience.get().map_or(AUDIENCE_PUBLIC, String::as_str)
    }

    /// Set the audience when the options left it open (first call wins).
    pub(crate) fn default_audience(&self, audience: &str) {
        let _ = self.audience.set(audience.to_string());
    }

    /// Ask STS for a fresh JWT (bypassing the cache) and report what Entra will see: for the
    /// `doctor` command and for setup scripts. Does the same network I/O as one refresh.
    pub async fn probe(&self) -> Result<AwsProbe, CredentialError> {
        let sts = self.client().await?;
        let fresh = self.fetch(sts).await?;
        Ok(Self::probe_of(sts, &fresh))
    }

    /// [`probe`](Self::probe), keeping the JWT: it is cached for the next
    /// [`assertion`](AssertionSource::assertion) (so the `doctor` exchanges the token it
    /// examined) and returned for the signature checks.
    #[cfg(feature = "doctor")]
    pub(crate) async fn probe_and_keep(&self) -> Result<(AwsProbe, Assertion), CredentialError> {
        let _gate = self.gate.lock().await;
        let sts = self.client().await?;
        let fresh = self.fetch(sts).await?;
        let probe = Self::probe_of(sts, &fresh);
        let assertion = fresh.assertion.clone();
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(fresh));
        Ok((probe, assertion))
    }

    fn probe_of(sts: &Sts, fresh: &Cached) -> AwsProbe {
        let claims = fresh.assertion.claims().cloned().unwrap_or_default();
        AwsProbe {
            region: sts.region.clone(),
            endpoint_url: sts.endpoint_url.clone(),
            issuer: claims.iss.clone().unwrap_or_default(),
            subject: claims.sub.clone().unwrap_or_default(),
            audiences: claims.aud.clone(),
            expires_at: fresh.expires_at,
        }
    }

    async fn client(&self) -> Result<&Sts, CredentialError> {
        self.client.get_or_try_init(|| self.build_client()).await
    }

    async fn build_client(&self) -> Result<Sts, CredentialError> {
        let env_region = || {
            self.env
                .var(AWS_REGION)
                .or_else(|| self.env.var(AWS_DEFAULT_REGION))
        };
        let base = match &self.sdk_config {
            Some(c) => c.clone(),
            None => {
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(r) = self.region.clone().or_else(env_region) {
                    loader = loader.region(Region::new(r));
                }
                if let (Some(key), Some(secret)) = (
                    self.env.var("AWS_ACCESS_KEY_ID"),
                    self.env.var("AWS_SECRET_ACCESS_KEY"),
                ) {
                    loader = loader.credentials_provider(Credentials::new(
                        key,
                        secret,
                        self.env.var("AWS_SESSION_TOKEN"),
                        None,
                        "AwsWebIdentitySource environment",
                    ));
                }
                let env_endpoint = self
                    .env
                    .var(AWS_ENDPOINT_URL_STS)
                    .or_else(|| self.env.var(AWS_ENDPOINT_URL));
                if let Some(url) = env_endpoint {
                    check_endpoint(&url, AWS_ENDPOINT_URL_STS)?;
                    loader = loader.endpoint_url(url);
                }
                if let Some(hook) = &self.configure_loader {
                    loader = hook(loader);
                }
                loader.load().await
            }
        };
        let mut builder = aws_sdk_sts::config::Builder::from(&base);
        // Every STS call is bounded, also when a credential provider (e.g. the EKS Pod Identity
        // agent) does not answer.
        if base
            .timeout_config()
            .and_then(|t| t.operation_timeout())
            .is_none()
        {
            builder = builder.timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(STS_OPERATION_TIMEOUT)
                    .build(),
            );
        }
        if base.behavior_version().is_none() {
            builder = builder.behavior_version(BehaviorVersion::latest());
        }
        if let Some(r) = &self.region {
            builder = builder.region(Region::new(r.clone()));
        }
        if let Some(url) = &self.endpoint_url {
            builder = builder.endpoint_url(url.clone());
        }
        let config = builder.build();
        let region = match config.region().map(|r| r.as_ref().to_string()) {
            Some(r) if r != "aws-global" => r,
            Some(_) => {
                return Err(invalid(
                    "region aws-global selects the STS global endpoint, which does not serve GetWebIdentityToken; set a regional one (e.g. AWS_REGION=us-east-1)".to_string(),
                ));
            }
            None => {
                return Err(CredentialError::new(
                    ErrorCategory::NotConfigured,
                    "AwsWebIdentitySource: no AWS region found; STS serves GetWebIdentityToken only on regional endpoints. Set AWS_REGION (e.g. us-east-1), the region option, or the region of your AWS profile.",
                )
                .with_aws_docs("limits"));
            }
        };
        let endpoint_url = self
            .endpoint_url
            .clone()
            .or_else(|| base.endpoint_url().map(str::to_string));
        Ok(Sts {
            client: Client::from_conf(config),
            region,
            endpoint_url,
        })
    }

    fn cached_if(&self, usable: impl Fn(&Cached) -> bool) -> Option<Assertion> {
        let guard = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|c| usable(c))
            .map(|c| c.assertion.clone())
    }

    async fn fetch(&self, sts: &Sts) -> Result<Cached, CredentialError> {
        let region = sts.region.as_str();
        let audience = self.audience().to_string();
        let requested_at = self.clock.now();
        let call = sts
            .client
            .get_web_identity_token()
            .audience(&audience)
            .duration_seconds(self.duration_secs)
            .signing_algorithm(&self.signing_algorithm)
            .send();
        let output = tracing::Instrument::in_current_span(call)
            .with_subscriber(redacting_dispatch())
            .await
            .map_err(|e| map_sdk_error(e, &audience, region, self.duration_secs))?;
        let bad_response = |what: String| {
            CredentialError::new(
                ErrorCategory::InvalidResponse,
                format!("AWS STS GetWebIdentityToken (region {region}) answered 200 but {what}."),
            )
            .with_aws_docs("troubleshooting")
        };
        let jwt = output
            .web_identity_token()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad_response("without a WebIdentityToken".to_string()))?
            .to_string();
        let decoded = jwt::decode(&jwt).map_err(|e| bad_response(format!("the token: {e}")))?;
        if self.signing_algorithm == "RS256" && decoded.header.alg.as_deref() != Some("RS256") {
            return Err(bad_response(format!(
                "the token is signed with {:?}, not the RS256 Entra ID requires",
                decoded.header.alg
            )));
        }
        if !decoded.claims.aud.contains(&audience) {
            return Err(bad_response(format!(
                "the token's audience ({}) is not the requested {audience}",
                decoded.claims.audiences_display()
            )));
        }
        let from_sts = output
            .expiration()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok());
        let expires_at = [from_sts, decoded.claims.expires_at()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(requested_at + time::Duration::seconds(i64::from(self.duration_secs)));
        let origin = format!(
            "AWS STS GetWebIdentityToken, region {region}, role {}",
            decoded.claims.sub.as_deref().unwrap_or("(unknown)")
        );
        tracing::debug!(
            region,
            subject = decoded.claims.sub.as_deref(),
            issuer = decoded.claims.iss.as_deref(),
            expires_at = %expires_at,
            "AwsWebIdentitySource: fetched a web identity token"
        );
        Ok(Cached {
            refresh_at: refresh_at(requested_at, expires_at),
            expires_at,
            assertion: Assertion::new(jwt, Some(decoded.claims), origin),
        })
    }
}

/// Refresh once less than a fifth of the lifetime remains, but at least 60 s before expiry and
/// no earlier than half-way.
pub(super) fn refresh_at(issued: OffsetDateTime, expires: OffsetDateTime) -> OffsetDateTime {
    let lifetime: time::Duration = expires - issued;
    let margin = (lifetime / 5_i32)
        .max(time::Duration::seconds(60))
        .min(lifetime / 2_i32);
    expires - margin
}

/// How long a cached JWT must still be valid to be handed out after a failed refresh.
const MIN_REMAINING_ON_FAILURE: time::Duration = time::Duration::seconds(15);

fn check_endpoint(url: &str, what: &str) -> Result<(), CredentialError> {
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => Ok(()),
        _ => Err(invalid(format!(
            "{what} {url:?} is not an https:// URL; AWS credentials are only sent over HTTPS"
        ))),
    }
}

#[async_trait::async_trait]
impl AssertionSource for AwsWebIdentitySource {
    async fn assertion(&self) -> Result<Assertion, CredentialError> {
        if let Some(a) = self.cached_if(|c| self.clock.now() < c.refresh_at) {
            return Ok(a);
        }
        // One STS call at a time; whoever waited re-checks what the previous holder stored.
        let _gate = self.gate.lock().await;
        if let Some(a) = self.cached_if(|c| self.clock.now() < c.refresh_at) {
            return Ok(a);
        }
        let result = match self.client().await {
            Ok(sts) => self.fetch(sts).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(fresh) => {
                let assertion = fresh.assertion.clone();
                *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(fresh));
                Ok(assertion)
            }
            Err(e) => {
                let now = self.clock.now();
                match self.cached_if(|c| c.expires_at - now > MIN_REMAINING_ON_FAILURE) {
                    Some(a) => {
                        tracing::warn!(error = %e, "AwsWebIdentitySource: refresh failed; using the cached web identity token while it is valid");
                        Ok(a)
                    }
                    None => Err(e),
                }
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "AWS STS GetWebIdentityToken (audience {}, {} s, {}{})",
            self.audience(),
            self.duration_secs,
            self.signing_algorithm,
            self.region
                .as_deref()
                .map(|r| format!(", region {r}"))
                .unwrap_or_default()
        )
    }
}

impl WorkloadIdentityCredential {
    /// A credential whose client assertion is a JWT from AWS STS `GetWebIdentityToken` (IAM
    /// outbound identity federation) instead of a Kubernetes token file. Client id, tenant id,
    /// authority and refresh policy come from `options` and the environment as for
    /// [`new`](Self::new); when `aws.audience` is unset the credential's expected audience is
    /// requested. Validates and does no network I/O.
    pub fn from_aws(
        options: Option<WorkloadIdentityCredentialOptions>,
        aws: AwsWebIdentitySourceOptions,
    ) -> azure_core::Result<Arc<Self>> {
        let source = Arc::new(AwsWebIdentitySource::new(aws)?);
        Self::from_aws_source(options.unwrap_or_default(), source, Arc::new(SystemClock))
            .map_err(Into::into)
    }

    /// [`from_aws`](Self::from_aws) over an existing source (the `doctor` reuses the one it
    /// probed).
    pub(crate) fn from_aws_source(
        options: WorkloadIdentityCredentialOptions,
        source: Arc<AwsWebIdentitySource>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, CredentialError> {
        let credential = Self::build(options, Some(source.clone()), clock)?;
        source.default_audience(&credential.config().expected_audience.value);
        Ok(credential)
    }
}
