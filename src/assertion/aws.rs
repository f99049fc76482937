//! AWS IAM outbound identity federation as an assertion source (cargo feature `aws`).
//!
//! Any AWS workload with IAM credentials (EKS Pod Identity, IRSA, ECS, Lambda, an EC2 instance
//! profile) asks AWS STS for a JWT with `sts:GetWebIdentityToken` and presents it to Entra ID as
//! the federated client assertion. The JWT's issuer is the account's outbound-federation issuer
//! (`https://<uuid>.tokens.sts.global.api.aws`), its subject the caller's IAM role ARN. No
//! Kubernetes OIDC issuer is involved. Setup: `docs/aws-outbound.md`.
//!
//! ```no_run
//! use azure_core::credentials::TokenCredential;
//! use azure_identity_k8s::WorkloadIdentityCredential;
//! use azure_identity_k8s::assertion::AwsWebIdentitySourceOptions;
//!
//! # async fn demo() -> azure_core::Result<()> {
//! // AZURE_CLIENT_ID, AZURE_TENANT_ID from the environment; AWS credentials and region from
//! // aws-config's default chain.
//! let credential = WorkloadIdentityCredential::from_aws(None, AwsWebIdentitySourceOptions::default())?;
//! let token = credential.get_token(&["https://storage.azure.com/.default"], None).await?;
//! # Ok(()) }
//! ```
//!
//! ## Configuration, in the order it is consulted
//!
//! | value | 1. option | 2. environment ([`Env`]) | 3. otherwise |
//! |---|---|---|---|
//! | AWS credentials | [`sdk_config`](AwsWebIdentitySourceOptions::sdk_config) | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | aws-config's default chain (web identity, ECS/EKS Pod Identity, profile, IMDS) |
//! | region | [`region`](AwsWebIdentitySourceOptions::region) | `AWS_REGION`, `AWS_DEFAULT_REGION` | `sdk_config`'s, else aws-config's region chain; none is an error (STS serves `GetWebIdentityToken` on regional endpoints only) |
//! | STS endpoint | [`endpoint_url`](AwsWebIdentitySourceOptions::endpoint_url) | `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL` | the regional endpoint `https://sts.<region>.amazonaws.com` |
//! | audience | [`audience`](AwsWebIdentitySourceOptions::audience) | `AZURE_FEDERATED_TOKEN_AUDIENCE` (through the credential) | the cloud's recommended audience, `api://AzureADTokenExchange` |
//!
//! The JWT is cached and reused until less than a fifth of its lifetime (at least 60 s, at most
//! half) remains; concurrent callers share one STS call. A failed refresh falls back to the
//! cached JWT while it is still valid.

use crate::WorkloadIdentityCredential;
use crate::assertion::{Assertion, AssertionSource};
use crate::clock::{Clock, SystemClock};
use crate::config::{AUDIENCE_PUBLIC, Env};
use crate::credential::WorkloadIdentityCredentialOptions;
use crate::error::{CredentialError, ErrorCategory};
use crate::jwt;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_sts::Client;
use aws_sdk_sts::config::Credentials;
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::RequestId;
use aws_sdk_sts::operation::get_web_identity_token::GetWebIdentityTokenError;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;
use tracing::instrument::WithSubscriber as _;

/// The bound on one `GetWebIdentityToken` call (credential resolution, every attempt, the answer)
/// when the SDK configuration sets no operation time-out of its own.
pub const STS_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// `AWS_REGION`: the region whose STS endpoint is called.
pub const AWS_REGION: &str = "AWS_REGION";
/// `AWS_DEFAULT_REGION`: read when `AWS_REGION` is unset.
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// `AWS_ENDPOINT_URL_STS`: an STS endpoint override (e.g. a VPC endpoint).
pub const AWS_ENDPOINT_URL_STS: &str = "AWS_ENDPOINT_URL_STS";
/// `AWS_ENDPOINT_URL`: the endpoint override for every AWS service.
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";

/// The shortest token STS issues (`DurationSeconds` 60).
pub const MIN_DURATION: Duration = Duration::from_secs(60);
/// The longest token STS issues (`DurationSeconds` 3600).
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// STS's default lifetime, used here too (`DurationSeconds` 300).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(300);

/// A function that adjusts aws-config's loader before it loads (HTTP client, retry, profile...).
pub type ConfigLoaderHook = Arc<dyn Fn(ConfigLoader) -> ConfigLoader + Send + Sync>;

/// Options for [`AwsWebIdentitySource`].
pub struct AwsWebIdentitySourceOptions {
    /// The `aud` of the JWT; it must equal the audience of the federated identity credential.
    /// Default: through [`WorkloadIdentityCredential::from_aws`], the credential's expected
    /// audience (`AZURE_FEDERATED_TOKEN_AUDIENCE`, else the cloud's recommended one); otherwise
    /// `api://AzureADTokenExchange`.
    pub audience: Option<String>,
    /// Lifetime requested from STS (`DurationSeconds`), 60 s to 3600 s; default 300 s.
    pub duration: Duration,
    /// `SigningAlgorithm`: `RS256` (default, the only one Entra ID accepts) or `ES384`.
    pub signing_algorithm: String,
    /// The AWS region (`sts.<region>.amazonaws.com`). Overrides the environment and `sdk_config`.
    pub region: Option<String>,
    /// An STS endpoint URL (VPC endpoint, FIPS endpoint, a local emulator). HTTPS only.
    pub endpoint_url: Option<String>,
    /// A complete AWS configuration (credentials, region, HTTP client). When set, aws-config's
    /// loader is not used and the environment is not read for AWS settings.
    pub sdk_config: Option<SdkConfig>,
    /// Adjusts aws-config's loader (when `sdk_config` is unset) before it loads.
    pub configure_loader: Option<ConfigLoaderHook>,
    /// The environment read for AWS settings (default: the process environment).
    pub env: Env,
}

impl Default for AwsWebIdentitySourceOptions {
    fn default() -> Self {
        Self {
            audience: None,
            duration: DEFAULT_DURATION,
            signing_algorithm: "RS256".to_string(),
            region: None,
            endpoint_url: None,
            sdk_config: None,
            configure_loader: None,
            env: Env::process(),
        }
    }
}

impl fmt::Debug for AwsWebIdentitySourceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsWebIdentitySourceOptions")
            .field("audience", &self.audience)
            .field("duration", &self.duration)
            .field("signing_algorithm", &self.signing_algorithm)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("sdk_config", &self.sdk_config.as_ref().map(|_| "set"))
            .field(
                "configure_loader",
                &self.configure_loader.as_ref().map(|_| "set"),
            )
            .field("env", &self.env)
            .finish()
    }
}

/// What AWS STS answered when `GetWebIdentityToken` failed; the [`std::error::Error::source`]
/// of the [`CredentialError`].
///
/// ```
/// # fn inspect(err: &azure_identity_k8s::CredentialError) {
/// use azure_identity_k8s::assertion::AwsStsError;
/// if let Some(sts) = std::error::Error::source(err).and_then(|s| s.downcast_ref::<AwsStsError>()) {
///     println!("STS said {:?} (request id {:?})", sts.code(), sts.request_id());
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsStsError {
    code: Option<String>,
    message: Option<String>,
    request_id: Option<String>,
    status: Option<u16>,
}

impl AwsStsError {
    /// The AWS error code, e.g. `AccessDenied`, `OutboundWebIdentityFederationDisabledException`.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
    /// AWS's message.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
    /// The request id (`x-amzn-RequestId`), for AWS support.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
    /// The HTTP status of STS's answer.
    pub fn http_status(&self) -> Option<u16> {
        self.status
    }
}

impl fmt::Display for AwsStsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AWS STS error {}: {}",
            self.code.as_deref().unwrap_or("(no code)"),
            self.message.as_deref().unwrap_or("(no message)")
        )
    }
}

impl std::error::Error for AwsStsError {}

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

fn invalid(message: String) -> CredentialError {
    CredentialError::new(
        ErrorCategory::InvalidConfiguration,
        format!("AwsWebIdentitySource: {message}. See docs/aws-outbound.md#limits"),
    )
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
                    "AwsWebIdentitySource: no AWS region found; STS serves GetWebIdentityToken only on regional endpoints. Set AWS_REGION (e.g. us-east-1), the region option, or the region of your AWS profile. See docs/aws-outbound.md#limits",
                ));
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
                format!(
                    "AWS STS GetWebIdentityToken (region {region}) answered 200 but {what}. See docs/aws-outbound.md#troubleshooting"
                ),
            )
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

/// The AWS SDK logs every request with its headers at TRACE (`aws_smithy_runtime`'s orchestrator,
/// and `aws_sigv4`'s canonical request), which puts the session token (`x-amz-security-token`)
/// of temporary credentials into the logs. STS calls made here run under this wrapper of the
/// caller's subscriber, which drops exactly those TRACE events and forwards everything else.
struct RedactSdkTrace {
    inner: tracing::Dispatch,
}

fn leaks_credentials(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() == tracing::Level::TRACE
        && (meta.target().starts_with("aws_sigv4")
            || meta
                .target()
                .starts_with("aws_smithy_runtime::client::orchestrator"))
}

fn redacting_dispatch() -> tracing::Dispatch {
    let inner = tracing::dispatcher::get_default(Clone::clone);
    tracing::Dispatch::new(RedactSdkTrace { inner })
}

impl tracing::Subscriber for RedactSdkTrace {
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        let interest = self.inner.register_callsite(meta);
        if leaks_credentials(meta) && !interest.is_never() {
            // Decided per call in `enabled`: other dispatchers may still want these events.
            tracing::subscriber::Interest::sometimes()
        } else {
            interest
        }
    }
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        !leaks_credentials(meta) && self.inner.enabled(meta)
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.inner.new_span(span)
    }
    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        self.inner.record(span, values);
    }
    fn record_follows_from(&self, span: &tracing::span::Id, follows: &tracing::span::Id) {
        self.inner.record_follows_from(span, follows);
    }
    fn event(&self, event: &tracing::Event<'_>) {
        if !leaks_credentials(event.metadata()) {
            self.inner.event(event);
        }
    }
    fn enter(&self, span: &tracing::span::Id) {
        self.inner.enter(span);
    }
    fn exit(&self, span: &tracing::span::Id) {
        self.inner.exit(span);
    }
    fn clone_span(&self, id: &tracing::span::Id) -> tracing::span::Id {
        self.inner.clone_span(id)
    }
    fn try_close(&self, id: tracing::span::Id) -> bool {
        self.inner.try_close(id)
    }
    fn current_span(&self) -> tracing_core::span::Current {
        self.inner.current_span()
    }
}

/// Refresh once less than a fifth of the lifetime remains, but at least 60 s before expiry and
/// no earlier than half-way.
fn refresh_at(issued: OffsetDateTime, expires: OffsetDateTime) -> OffsetDateTime {
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

/// What [`AwsWebIdentitySource::probe`] found: the claims Entra will match against the
/// federated identity credential.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwsProbe {
    /// The region whose STS answered.
    pub region: String,
    /// The endpoint override in use, if any.
    pub endpoint_url: Option<String>,
    /// `iss`: the account's outbound-federation issuer (the federated credential's issuer).
    pub issuer: String,
    /// `sub`: the caller's role ARN (the federated credential's subject).
    pub subject: String,
    /// `aud` (the federated credential's audience).
    pub audiences: Vec<String>,
    /// When the JWT expires.
    pub expires_at: OffsetDateTime,
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

/// STS error codes and what to do about them.
fn fix_for(code: &str, audience: &str, region: &str, duration: i32) -> (&'static str, String) {
    match code {
        "AccessDenied" | "AccessDeniedException" => (
            "access-denied",
            format!(
                "The calling IAM role is not allowed to call sts:GetWebIdentityToken. Attach an identity-based policy that allows \"sts:GetWebIdentityToken\" \
                 (if it has conditions: sts:IdentityTokenAudience must allow {audience:?} and sts:DurationSeconds at least {duration}); check SCPs and permission boundaries too."
            ),
        ),
        "OutboundWebIdentityFederationDisabledException" | "OutboundWebIdentityFederationDisabled" => (
            "federation-disabled",
            "Outbound identity federation is not enabled for this AWS account. Enable it once per account with \
             `aws iam enable-outbound-web-identity-federation`, then use the issuer URL it prints (also: `aws iam get-outbound-web-identity-federation-info`) \
             as the issuer of the federated identity credential."
                .to_string(),
        ),
        "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => (
            "aws-credentials",
            "The AWS credentials have expired. Temporary credentials must be refreshed by their provider (the EKS Pod Identity agent, IRSA, the instance profile); \
             static keys in the environment must be replaced; a `RequestExpired` also points at this machine's clock."
                .to_string(),
        ),
        "InvalidClientTokenId" | "UnrecognizedClientException" | "SignatureDoesNotMatch" | "IncompleteSignature"
        | "MissingAuthenticationToken" | "InvalidAccessKeyId" | "AuthFailure" => (
            "aws-credentials",
            "AWS did not accept the credentials: the access key is unknown or deleted, the secret or session token does not belong to it, \
             or no credentials were sent. Check which credentials aws-config found (AWS_ACCESS_KEY_ID / AWS_PROFILE / the workload's role)."
                .to_string(),
        ),
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException" => (
            "throttling",
            "STS is throttling this account's requests; this is transient and is retried. The JWT is cached, so steady-state load is one call per token lifetime."
                .to_string(),
        ),
        "RegionDisabledException" => (
            "region",
            format!("STS is not activated in region {region}: activate it in the IAM account settings, or use another region."),
        ),
        "SessionDurationEscalationException" => (
            "limits",
            format!("The requested token lifetime ({duration} s) exceeds what the calling session allows; lower the duration option."),
        ),
        "JWTPayloadSizeExceededException" => (
            "limits",
            "The token's claims (principal and request tags) are too large; remove tags from the role or session.".to_string(),
        ),
        "ValidationError" | "InvalidParameterValue" => (
            "limits",
            "STS rejected the request parameters: audience 1 to 10 values of 1 to 1000 characters, duration 60 to 3600 s, signing algorithm RS256 or ES384."
                .to_string(),
        ),
        _ => ("troubleshooting", "See the AWS error code above.".to_string()),
    }
}

fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "InternalFailure"
            | "InternalError"
            | "ServiceUnavailable"
            | "IDPCommunicationError"
    )
}

fn map_sdk_error(
    err: SdkError<GetWebIdentityTokenError, HttpResponse>,
    audience: &str,
    region: &str,
    duration: i32,
) -> CredentialError {
    let detail = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let status = Some(service.raw().status().as_u16());
            let sts = AwsStsError {
                code: e.code().map(str::to_string),
                message: e.message().map(str::to_string),
                request_id: err.request_id().map(str::to_string),
                status,
            };
            let code = sts.code.clone().unwrap_or_default();
            let (anchor, fix) = fix_for(&code, audience, region, duration);
            let transient = is_transient_code(&code) || status.is_some_and(|s| s >= 500 || s == 429);
            CredentialError::new(
                ErrorCategory::Assertion,
                format!(
                    "AWS STS GetWebIdentityToken (region {region}) failed with {} (HTTP {}, request id {}): {}\n  Fix: {fix} See docs/aws-outbound.md#{anchor}",
                    if code.is_empty() { "an error without a code" } else { &code },
                    status.map_or_else(|| "?".to_string(), |s| s.to_string()),
                    sts.request_id.as_deref().unwrap_or("none"),
                    sts.message.as_deref().unwrap_or("(no message)"),
                ),
            )
            .with_transient(transient)
            .with_fix(fix, anchor)
            .with_source(sts)
        }
        _ if credentials_error(&err).is_some() => {
            credentials_failure(credentials_error(&err).expect("checked"), &detail)
        }
        SdkError::TimeoutError(_) => CredentialError::new(
            ErrorCategory::Timeout,
            format!(
                "AWS STS GetWebIdentityToken (region {region}) did not complete in time: {detail}. Check network access to sts.{region}.amazonaws.com (or your STS endpoint override). See docs/aws-outbound.md#troubleshooting"
            ),
        ),
        SdkError::DispatchFailure(_) => CredentialError::new(
            ErrorCategory::Transport,
            format!(
                "AWS STS GetWebIdentityToken (region {region}) could not be reached: {detail}. Check network access to sts.{region}.amazonaws.com (or your STS endpoint override). See docs/aws-outbound.md#troubleshooting"
            ),
        ),
        SdkError::ResponseError(_) => CredentialError::new(
            ErrorCategory::InvalidResponse,
            format!(
                "AWS STS GetWebIdentityToken (region {region}) answered something that is not an STS response: {detail}. See docs/aws-outbound.md#troubleshooting"
            ),
        )
        .with_transient(true),
        _ => CredentialError::new(
            ErrorCategory::InvalidConfiguration,
            format!(
                "AWS STS GetWebIdentityToken (region {region}) could not be sent: {detail}. See docs/aws-outbound.md#troubleshooting"
            ),
        ),
    }
}

/// The AWS credential provider's error in `err`'s chain of causes, if that is what failed.
fn credentials_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a CredentialsError> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return Some(c);
        }
        cause = e.source();
    }
    None
}

/// A failure to get AWS credentials, by its kind: none found (not configured), the provider did
/// not answer in time or failed (transient: e.g. the EKS Pod Identity agent is restarting), or
/// its configuration is invalid.
fn credentials_failure(e: &CredentialsError, detail: &str) -> CredentialError {
    match e {
        CredentialsError::CredentialsNotLoaded(_) => no_credentials(detail),
        CredentialsError::ProviderTimedOut(t) => CredentialError::new(
            ErrorCategory::Timeout,
            format!(
                "AwsWebIdentitySource: the AWS credential provider did not answer within {} ms: {detail}. On EKS check the Pod Identity agent (kube-system/eks-pod-identity-agent) or the IRSA token; this is retried. See docs/aws-outbound.md#aws-credentials",
                t.timeout_duration().as_millis()
            ),
        ),
        CredentialsError::ProviderError(_) => CredentialError::new(
            ErrorCategory::Transport,
            format!(
                "AwsWebIdentitySource: the AWS credential provider failed: {detail}. On EKS check the Pod Identity agent (kube-system/eks-pod-identity-agent) or the IRSA token; this is retried. See docs/aws-outbound.md#aws-credentials"
            ),
        ),
        _ => CredentialError::new(
            ErrorCategory::InvalidConfiguration,
            format!(
                "AwsWebIdentitySource: the AWS credential configuration is invalid: {detail}. See docs/aws-outbound.md#aws-credentials"
            ),
        ),
    }
}

fn no_credentials(detail: &str) -> CredentialError {
    CredentialError::new(
        ErrorCategory::NotConfigured,
        format!(
            "AwsWebIdentitySource: no usable AWS credentials: {detail}. Run where aws-config finds credentials (EKS Pod Identity, IRSA, ECS task role, \
             EC2 instance profile, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY). See docs/aws-outbound.md#aws-credentials"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_provider_failures_are_classified_by_type() {
        #[derive(Debug)]
        struct Wrapper(CredentialsError);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("failed to resolve identity")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        for (e, category, transient) in [
            (
                CredentialsError::not_loaded("no providers in chain provided credentials"),
                ErrorCategory::NotConfigured,
                false,
            ),
            // A timed-out Pod Identity agent is transient, not "not configured".
            (
                CredentialsError::provider_timed_out(Duration::from_secs(5)),
                ErrorCategory::Timeout,
                true,
            ),
            (
                CredentialsError::provider_error("connection refused"),
                ErrorCategory::Transport,
                true,
            ),
            (
                CredentialsError::invalid_configuration("bad profile"),
                ErrorCategory::InvalidConfiguration,
                false,
            ),
        ] {
            let wrapped = Wrapper(e);
            let found = credentials_error(&wrapped).expect("found in the chain");
            let mapped = credentials_failure(found, "detail");
            assert_eq!(mapped.category(), category, "{mapped}");
            assert_eq!(mapped.is_transient(), transient, "{mapped}");
        }
        let plain = std::io::Error::other("no credentials here");
        assert!(credentials_error(&plain).is_none());
    }

    #[test]
    fn refresh_point_is_a_fifth_of_the_lifetime_with_bounds() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let s = time::Duration::seconds;
        assert_eq!(refresh_at(t0, t0 + s(300)), t0 + s(240));
        assert_eq!(refresh_at(t0, t0 + s(3600)), t0 + s(2880));
        assert_eq!(refresh_at(t0, t0 + s(60)), t0 + s(30));
        assert_eq!(refresh_at(t0, t0 + s(200)), t0 + s(140));
    }

    #[test]
    fn options_are_validated_without_io() {
        let bad = |o: AwsWebIdentitySourceOptions| AwsWebIdentitySource::new(o).unwrap_err();
        let e = bad(AwsWebIdentitySourceOptions {
            duration: Duration::from_secs(30),
            ..Default::default()
        });
        assert!(e.message().contains("60 to 3600"), "{e}");
        let e = bad(AwsWebIdentitySourceOptions {
            duration: Duration::from_secs(7200),
            ..Default::default()
        });
        assert_eq!(e.category(), ErrorCategory::InvalidConfiguration);
        let e = bad(AwsWebIdentitySourceOptions {
            signing_algorithm: "HS256".into(),
            ..Default::default()
        });
        assert!(e.message().contains("RS256"), "{e}");
        let e = bad(AwsWebIdentitySourceOptions {
            endpoint_url: Some("http://sts.us-east-1.amazonaws.com".into()),
            ..Default::default()
        });
        assert!(e.message().contains("https://"), "{e}");
        let e = bad(AwsWebIdentitySourceOptions {
            audience: Some(String::new()),
            ..Default::default()
        });
        assert!(e.message().contains("audience"), "{e}");
        let ok = AwsWebIdentitySource::new(AwsWebIdentitySourceOptions::default()).unwrap();
        assert_eq!(ok.audience(), AUDIENCE_PUBLIC);
        ok.default_audience("api://AzureADTokenExchangeUSGov");
        assert_eq!(ok.audience(), "api://AzureADTokenExchangeUSGov");
        assert!(ok.describe().contains("RS256"));
    }

    #[test]
    fn every_documented_code_has_a_fix() {
        for code in [
            "AccessDenied",
            "OutboundWebIdentityFederationDisabledException",
            "ExpiredToken",
            "InvalidClientTokenId",
            "Throttling",
        ] {
            let (anchor, fix) = fix_for(code, "api://AzureADTokenExchange", "us-east-1", 300);
            assert_ne!(anchor, "troubleshooting", "{code}");
            assert!(!fix.is_empty());
        }
        assert!(
            fix_for("AccessDenied", "a", "r", 300)
                .1
                .contains("sts:GetWebIdentityToken")
        );
        assert!(
            fix_for(
                "OutboundWebIdentityFederationDisabledException",
                "a",
                "r",
                300
            )
            .1
            .contains("aws iam enable-outbound-web-identity-federation")
        );
        assert!(is_transient_code("Throttling"));
        assert!(!is_transient_code("AccessDenied"));
    }

    /// STS on the emulator, a manual clock: the JWT is reused until its refresh point, then
    /// fetched again; a failed refresh falls back to the cached JWT while it is valid.
    #[tokio::test]
    async fn the_jwt_is_refreshed_at_its_refresh_point_and_kept_on_failure() {
        use crate::clock::ManualClock;
        use entra_emulator::{Emulator, Endpoint, StsError};
        let emu = Emulator::start().await.unwrap();
        let account = emu.add_aws_account("123456789012");
        let role = account.add_role("R");
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(
                aws_smithy_http_client::tls::TlsContext::builder()
                    .with_trust_store(
                        aws_smithy_http_client::tls::TrustStore::empty()
                            .with_pem_certificate(emu.ca_pem().into_bytes()),
                    )
                    .build()
                    .unwrap(),
            )
            .build_https();
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .endpoint_url(emu.sts_endpoint_url())
            .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                Credentials::new(
                    role.access_key_id.clone(),
                    role.secret_access_key.clone(),
                    None,
                    None,
                    "test",
                ),
            ))
            .http_client(http)
            .build();
        let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
        let source = AwsWebIdentitySource::with_clock(
            AwsWebIdentitySourceOptions {
                sdk_config: Some(config),
                ..Default::default()
            },
            clock.clone(),
        )
        .unwrap();
        let first = source.assertion().await.unwrap();
        clock.advance(time::Duration::seconds(230));
        let same = source.assertion().await.unwrap();
        assert_eq!(first.secret(), same.secret());
        assert_eq!(emu.request_count(Endpoint::Sts), 1);
        // 300 s token: refreshed once 60 s or less remain. This refresh fails: the cached JWT,
        // still valid, is served.
        clock.advance(time::Duration::seconds(15));
        emu.push_sts_error(StsError::new(403, "AccessDenied", "no"));
        let kept = source.assertion().await.unwrap();
        assert_eq!(kept.secret(), first.secret());
        assert_eq!(emu.request_count(Endpoint::Sts), 2);
        // Too close to expiry: the error surfaces.
        clock.advance(time::Duration::seconds(45));
        emu.push_sts_error(StsError::new(403, "AccessDenied", "no"));
        let e = source.assertion().await.unwrap_err();
        assert!(e.message().contains("AccessDenied"), "{e}");
        assert!(
            e.message().contains("region eu-west-1"),
            "names the region: {e}"
        );
        // And the next call fetches a new one.
        let fresh = source.assertion().await.unwrap();
        assert_ne!(fresh.secret(), first.secret());
        assert_eq!(emu.request_count(Endpoint::Sts), 4);
    }

    #[test]
    fn every_anchor_in_messages_exists_in_the_page() {
        let doc = include_str!("../../docs/aws-outbound.md");
        let src = include_str!("aws.rs");
        let mut seen = 0;
        for (i, _) in src.match_indices("aws-outbound.md#") {
            let anchor: String = src[i + "aws-outbound.md#".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if anchor.is_empty() {
                continue;
            }
            seen += 1;
            assert!(
                doc.contains(&format!("<a id=\"{anchor}\"></a>")),
                "docs/aws-outbound.md has no anchor {anchor:?}"
            );
        }
        for code in [
            "AccessDenied",
            "ExpiredToken",
            "Throttling",
            "RegionDisabledException",
        ] {
            let (anchor, _) = fix_for(code, "a", "r", 300);
            assert!(
                doc.contains(&format!("<a id=\"{anchor}\"></a>")),
                "{anchor}"
            );
        }
        assert!(seen >= 5, "found only {seen} links");
    }

    #[test]
    fn debug_shows_no_secrets() {
        let o = AwsWebIdentitySourceOptions {
            env: Env::from_pairs([("AWS_SECRET_ACCESS_KEY", "very-secret-value")]),
            ..Default::default()
        };
        let text = format!("{o:?}");
        assert!(!text.contains("very-secret-value"), "{text}");
        let s = AwsWebIdentitySource::new(o).unwrap();
        assert!(!format!("{s:?}").contains("very-secret-value"));
    }
}
