//! The STS side of [`AwsWebIdentitySource`](super::AwsWebIdentitySource): the validated
//! settings, the client (built on first use, every call time-bounded) and one
//! `GetWebIdentityToken` call.

use super::errors::{NAME, PROVIDER_FIX, STS_ANSWER_FIX, invalid, map_sdk_error};
use super::*;
use crate::assertion::Assertion;
use crate::clock::Clock;
use crate::config::AUDIENCE_PUBLIC;
use crate::error::{CredentialError, ErrorCategory};
use crate::jwt;
use crate::problem::ProblemId;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_sts::Client;
use aws_sdk_sts::config::Credentials;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use std::sync::OnceLock;

/// The STS client, built on first use.
struct Sts {
    client: Client,
    region: String,
    endpoint_url: Option<String>,
}

/// A JWT from STS.
#[derive(Clone)]
pub(super) struct WebIdentityToken {
    pub(super) assertion: Assertion,
    /// When it expires: the earlier of STS's `Expiration` and the JWT's `exp`.
    pub(super) expires_at: OffsetDateTime,
    /// From the JWT's `iat` (else from when it was requested) to `expires_at`: STS's clock on
    /// both ends, so this machine's clock skew does not shorten or stretch it.
    pub(super) lifetime: time::Duration,
}

/// The settings of the STS calls (validated) and the client.
pub(super) struct StsClient {
    pub(super) audience: OnceLock<String>,
    /// `DurationSeconds`, 60 to 3600.
    pub(super) duration_secs: i32,
    /// The options (an empty `region` is unset).
    pub(super) options: AwsWebIdentitySourceOptions,
    clock: Arc<dyn Clock>,
    client: tokio::sync::OnceCell<Sts>,
}

impl StsClient {
    /// Validate `options` (duration 60–3600 s, signing algorithm, audience, HTTPS endpoint);
    /// no I/O.
    pub(super) fn new(
        mut options: AwsWebIdentitySourceOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CredentialError> {
        let secs = options.duration.as_secs();
        if !(Duration::from_secs(60)..=Duration::from_secs(3600)).contains(&options.duration) {
            return Err(invalid(format!(
                "duration {secs} s is outside what STS GetWebIdentityToken issues (60 to 3600 s)"
            )));
        }
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
        if let Some(a) = &options.audience
            && (a.is_empty() || a.len() > 1000 || a.chars().any(char::is_whitespace))
        {
            return Err(invalid(format!(
                "audience {a:?} is not usable: STS takes 1 to 1000 characters, and it must equal the federated credential's audience exactly"
            )));
        }
        if let Some(url) = &options.endpoint_url {
            check_endpoint(url, "endpoint_url")?;
        }
        options.region = options.region.filter(|r| !r.is_empty());
        Ok(Self {
            audience: options
                .audience
                .clone()
                .map_or_else(OnceLock::new, OnceLock::from),
            duration_secs: secs as i32,
            options,
            clock,
            client: tokio::sync::OnceCell::new(),
        })
    }

    /// The audience requested from STS.
    pub(super) fn audience(&self) -> &str {
        self.audience.get().map_or(AUDIENCE_PUBLIC, String::as_str)
    }

    /// The region of the client, once built.
    pub(super) fn built_region(&self) -> Option<&str> {
        self.client.get().map(|s| s.region.as_str())
    }

    /// An attempt for `audience` (client, AWS credentials, the STS call with its retries) that
    /// outlived `bound`.
    pub(super) fn timed_out(&self, bound: time::Duration, audience: &str) -> CredentialError {
        let region = self.built_region();
        let endpoint = region.map_or("the regional STS endpoint".into(), |r| {
            format!("sts.{r}.amazonaws.com")
        });
        CredentialError::new(
            ProblemId::AwsSts,
            format!(
                "getting a web identity token (audience {audience}, region {}) from AWS STS did not finish within {} s: \
                 loading the AWS configuration, resolving the AWS credentials or the GetWebIdentityToken call hung; this is retried.",
                region.unwrap_or("not known yet"),
                bound.as_seconds_f64()
            ),
        )
        .named(NAME)
        .with_category(ErrorCategory::Timeout)
        .with_fix(format!(
            "check network access to {endpoint} (or your STS endpoint override), and {PROVIDER_FIX}"
        ))
    }

    /// What a probe reports about `jwt`.
    pub(super) fn probe_of(&self, jwt: &WebIdentityToken) -> AwsProbe {
        let claims = jwt.assertion.claims().cloned().unwrap_or_default();
        AwsProbe {
            region: self.built_region().unwrap_or_default().to_string(),
            endpoint_url: self.client.get().and_then(|s| s.endpoint_url.clone()),
            issuer: claims.iss.unwrap_or_default(),
            subject: claims.sub.unwrap_or_default(),
            audiences: claims.aud,
            expires_at: jwt.expires_at,
        }
    }

    /// The AWS configuration: `sdk_config`, else aws-config's loader with the options and the
    /// `env` settings (`AWS_REGION`, else `AWS_DEFAULT_REGION`; static keys; `AWS_ENDPOINT_URL_STS`,
    /// else `AWS_ENDPOINT_URL`) and the `configure_loader` hook applied.
    async fn load(&self) -> Result<aws_config::SdkConfig, CredentialError> {
        let o = &self.options;
        if let Some(c) = &o.sdk_config {
            return Ok(c.clone());
        }
        let env = |a, b| o.env.var(a).or_else(|| o.env.var(b));
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = o
            .region
            .clone()
            .or_else(|| env("AWS_REGION", "AWS_DEFAULT_REGION"))
        {
            loader = loader.region(Region::new(r));
        }
        if let (Some(key), Some(secret)) = (
            o.env.var("AWS_ACCESS_KEY_ID"),
            o.env.var("AWS_SECRET_ACCESS_KEY"),
        ) {
            let token = o.env.var("AWS_SESSION_TOKEN");
            let source = "AwsWebIdentitySource environment";
            loader =
                loader.credentials_provider(Credentials::new(key, secret, token, None, source));
        }
        if let Some(url) = env("AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL") {
            check_endpoint(&url, "AWS_ENDPOINT_URL_STS")?;
            loader = loader.endpoint_url(url);
        }
        if let Some(hook) = &o.configure_loader {
            loader = hook(loader);
        }
        Ok(loader.load().await)
    }

    async fn build_client(&self) -> Result<Sts, CredentialError> {
        let base = self.load().await?;
        let mut builder = aws_sdk_sts::config::Builder::from(&base);
        // Every STS call is bounded, also when a credential provider (e.g. the EKS Pod Identity
        // agent) does not answer.
        if base
            .timeout_config()
            .and_then(|t| t.operation_timeout())
            .is_none()
        {
            let bound = TimeoutConfig::builder().operation_timeout(STS_OPERATION_TIMEOUT);
            builder = builder.timeout_config(bound.build());
        }
        if base.behavior_version().is_none() {
            builder = builder.behavior_version(BehaviorVersion::latest());
        }
        if let Some(r) = &self.options.region {
            builder = builder.region(Region::new(r.clone()));
        }
        if let Some(url) = &self.options.endpoint_url {
            builder = builder.endpoint_url(url.clone());
        }
        let config = builder.build();
        let region = match config.region().map(|r| r.as_ref().to_string()) {
            Some(r) if r != "aws-global" => r,
            Some(_) => {
                return Err(invalid(
                    "region aws-global selects the STS global endpoint, which does not serve GetWebIdentityToken; set a regional one (e.g. AWS_REGION=us-east-1)",
                ));
            }
            None => {
                return Err(invalid(
                    "no AWS region found; STS serves GetWebIdentityToken only on regional endpoints",
                )
                .with_category(ErrorCategory::NotConfigured)
                .with_fix("set AWS_REGION (e.g. us-east-1), the region option, or the region of your AWS profile."));
            }
        };
        let endpoint_url = self.options.endpoint_url.clone();
        Ok(Sts {
            client: Client::from_conf(config),
            region,
            endpoint_url: endpoint_url.or_else(|| base.endpoint_url().map(str::to_string)),
        })
    }

    /// One `GetWebIdentityToken` call for `audience` (building the client first if needed).
    pub(super) async fn fetch(&self, audience: &str) -> Result<WebIdentityToken, CredentialError> {
        let sts = self.client.get_or_try_init(|| self.build_client()).await?;
        let region = sts.region.as_str();
        let requested_at = self.clock.now();
        let output = sts
            .client
            .get_web_identity_token()
            .audience(audience)
            .duration_seconds(self.duration_secs)
            .signing_algorithm(&self.options.signing_algorithm)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, audience, region, self.duration_secs))?;
        let bad_response = |what: String| {
            CredentialError::new(
                ProblemId::AwsSts,
                format!("AWS STS GetWebIdentityToken (region {region}) answered 200 but {what}."),
            )
            .named(None)
            .with_category(ErrorCategory::InvalidResponse)
            .with_fix(STS_ANSWER_FIX)
        };
        let jwt = output
            .web_identity_token()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad_response("without a WebIdentityToken".to_string()))?
            .to_string();
        let decoded = jwt::decode(&jwt).map_err(|e| bad_response(format!("the token: {e}")))?;
        let alg = decoded.header.alg.as_deref();
        if self.options.signing_algorithm == "RS256" && alg != Some("RS256") {
            return Err(bad_response(format!(
                "the token is signed with {alg:?}, not the RS256 Entra ID requires"
            )));
        }
        let claims = decoded.claims;
        if !claims.aud.iter().any(|a| a == audience) {
            return Err(bad_response(format!(
                "the token's audience ({}) is not the requested {audience}",
                claims.audiences_display()
            )));
        }
        let from_sts = output
            .expiration()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok());
        let expires_at = [from_sts, claims.expires_at()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(requested_at + time::Duration::seconds(i64::from(self.duration_secs)));
        let issued_at = (claims.issued_at())
            .filter(|iat| *iat <= expires_at)
            .unwrap_or(requested_at);
        let subject = claims.sub.as_deref();
        tracing::debug!(
            region,
            subject,
            issuer = claims.iss.as_deref(),
            expires_at = %expires_at,
            "AwsWebIdentitySource: fetched a web identity token"
        );
        let origin = format!(
            "AWS STS GetWebIdentityToken, region {region}, role {}",
            subject.unwrap_or("(unknown)")
        );
        Ok(WebIdentityToken {
            assertion: Assertion::new(jwt, Some(claims), origin),
            expires_at,
            lifetime: expires_at - issued_at,
        })
    }
}

/// Accept only an `https://` URL with a host: AWS credentials are sent to it.
pub(super) fn check_endpoint(url: &str, what: &str) -> Result<(), CredentialError> {
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => Ok(()),
        _ => Err(invalid(format!(
            "{what} {url:?} is not an https:// URL; AWS credentials are only sent over HTTPS"
        ))),
    }
}
