//! [`AwsWebIdentitySource`]: the JWT from STS, cached on a [`TokenCache`] of its own (the same
//! machinery as the credential's access-token cache, a separate instance with the fixed
//! [`jwt_policy`]; the credential's `refresh_policy` does not apply to it): concurrent callers
//! share one STS call, the call runs as a task of its own (a dropped caller or a dropped runtime
//! does not wedge it), is bounded, and failures back off.

use super::client::{StsClient, WebIdentityToken, check_endpoint};
use super::errors::{attempt_timed_out, invalid};
use super::*;
use crate::WorkloadIdentityCredential;
use crate::assertion::{Assertion, AssertionSource};
use crate::cache::{FetchedToken, RefreshPolicy, TokenCache, TokenSource};
use crate::clock::{Clock, SystemClock};
use crate::credential::WorkloadIdentityCredentialOptions;
use crate::error::CredentialError;
use crate::http::Phase;
use crate::jwt;
use azure_core::credentials::AccessToken;
use azure_core::http::Context;
use std::sync::OnceLock;

/// How long a cached JWT must still be valid to be handed out: the cache treats it as expired
/// this long before its `exp`, so every JWT handed to an exchange has at least this long left
/// when its first request is sent (normally far more: it is refreshed at least 60 s before
/// `exp`). azure_core's retries of that request may re-send it for up to the credential's
/// `RefreshPolicy::attempt_timeout` (30 s by default); one re-sent after `exp` is rejected
/// (AADSTS700024), and the next attempt gets a fresh JWT, since the expired one is no longer
/// handed out.
const MIN_REMAINING: time::Duration = time::Duration::seconds(15);

/// Bound on one attempt (building the client, resolving AWS credentials, the STS call with the
/// SDK's retries). Longer than [`STS_OPERATION_TIMEOUT`] (20 s), so the SDK's own, more specific
/// time-out error comes first when only the call hangs, and shorter than the credential's default
/// `RefreshPolicy::attempt_timeout` (30 s), so that error reaches the caller; with a shorter
/// `attempt_timeout` the credential reports STS's time-out through
/// [`AssertionSource::timed_out`].
const ATTEMPT_TIMEOUT: time::Duration = time::Duration::seconds(25);

/// The JWT cache's policy: refreshed in the background from [`refresh_at`] on (no jitter, so
/// the documented rule holds), callers wait for a refresh in the last 30 s of its usable life,
/// a failure backs off (10 s doubling to 5 min) while a valid JWT is served, and is remembered
/// for 5 s (1 s when transient) without one.
pub(super) fn jwt_policy() -> RefreshPolicy {
    RefreshPolicy {
        mandatory_margin: time::Duration::seconds(30),
        attempt_timeout: ATTEMPT_TIMEOUT,
        max_jitter: time::Duration::ZERO,
        ..RefreshPolicy::default()
    }
}

/// An [`AssertionSource`] that asks AWS STS `GetWebIdentityToken` for the client assertion.
///
/// Construction validates the options and does no I/O; aws-config is loaded on first use.
pub struct AwsWebIdentitySource {
    sts: Arc<StsClient>,
    /// One slot, keyed by the audience.
    cache: TokenCache,
}

impl fmt::Debug for AwsWebIdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.sts, f)
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
        Self::with_policy(options, clock, jwt_policy())
    }

    /// [`with_clock`](Self::with_clock) with another JWT cache policy (tests).
    pub(super) fn with_policy(
        options: AwsWebIdentitySourceOptions,
        clock: Arc<dyn Clock>,
        policy: RefreshPolicy,
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
        if let Some(a) = &options.audience {
            if a.is_empty() || a.len() > 1000 || a.chars().any(char::is_whitespace) {
                return Err(invalid(format!(
                    "audience {a:?} is not usable: STS takes 1 to 1000 characters, and it must equal the federated credential's audience exactly"
                )));
            }
            let _ = audience.set(a.clone());
        }
        if let Some(url) = &options.endpoint_url {
            check_endpoint(url, "endpoint_url")?;
        }
        let sts = Arc::new(StsClient::new(
            options,
            audience,
            duration_secs,
            clock.clone(),
        ));
        let cache = TokenCache::new(sts.clone(), policy, clock);
        Ok(Self { sts, cache })
    }

    /// The audience requested from STS.
    pub fn audience(&self) -> &str {
        self.sts.audience()
    }

    /// Set the audience when the options left it open (first call wins).
    pub(crate) fn default_audience(&self, audience: &str) {
        let _ = self.sts.audience.set(audience.to_string());
    }

    /// Ask STS for a fresh JWT (bypassing the cache) and report what Entra will see: for the
    /// `doctor` command and for setup scripts. Does the same network I/O as one refresh.
    pub async fn probe(&self) -> Result<AwsProbe, CredentialError> {
        let fresh = self.sts.fetch(self.audience()).await?;
        Ok(self.sts.probe_of(&fresh))
    }

    /// [`probe`](Self::probe), keeping the JWT: it is cached for the next
    /// [`assertion`](AssertionSource::assertion) (so the `doctor` exchanges the token it
    /// examined) and returned for the signature checks.
    #[cfg(feature = "doctor")]
    pub(crate) async fn probe_and_keep(&self) -> Result<(AwsProbe, Assertion), CredentialError> {
        let started = self.sts.clock.instant();
        let audience = self.audience();
        let fresh = self.sts.fetch(audience).await?;
        let probe = self.sts.probe_of(&fresh);
        let assertion = fresh.assertion.clone();
        self.cache.insert(audience, cacheable(fresh), started);
        Ok((probe, assertion))
    }

    #[cfg(test)]
    pub(super) fn sts_client(&self) -> &StsClient {
        &self.sts
    }

    #[cfg(test)]
    pub(super) fn jwt_status(&self) -> Vec<crate::cache::TokenStatus> {
        self.cache.status()
    }

    /// The assertion of a cached JWT; its claims decoded again (the cache keeps the JWT only).
    fn assertion_of(&self, token: &AccessToken) -> Assertion {
        let jwt = token.token.secret().to_owned();
        let claims = jwt::decode(&jwt).ok().map(|d| d.claims);
        let origin = self.sts.origin(claims.as_ref());
        Assertion::new(jwt, claims, origin)
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

/// A JWT as the cache keeps it: usable until [`MIN_REMAINING`] before it expires, refreshed from
/// [`refresh_at`] on.
fn cacheable(jwt: WebIdentityToken) -> FetchedToken {
    let issued = jwt.expires_at - jwt.lifetime;
    let refresh_in = refresh_at(issued, jwt.expires_at) - issued;
    FetchedToken {
        token: AccessToken::new(
            jwt.assertion.secret().to_owned(),
            jwt.expires_at - MIN_REMAINING,
        ),
        lifetime: jwt.lifetime - MIN_REMAINING,
        refresh_in: Some(refresh_in),
    }
}

#[async_trait::async_trait]
impl TokenSource for StsClient {
    /// `scopes` is the one audience the cache is keyed by.
    async fn fetch(
        &self,
        scopes: &[String],
        _ctx: &Context<'static>,
    ) -> Result<FetchedToken, CredentialError> {
        let audience = scopes
            .first()
            .map_or_else(|| self.audience(), String::as_str);
        Ok(cacheable(StsClient::fetch(self, audience).await?))
    }

    fn kind(&self) -> &'static str {
        "AWS web identity token"
    }

    fn key_name(&self) -> &'static str {
        "audience"
    }

    /// The credential's cache logs the failure the caller gets.
    fn nested(&self) -> bool {
        true
    }

    fn timed_out(&self, bound: time::Duration, _phase: Phase) -> CredentialError {
        attempt_timed_out(bound, self.audience(), self.built_region())
    }
}

#[async_trait::async_trait]
impl AssertionSource for AwsWebIdentitySource {
    async fn assertion(&self) -> Result<Assertion, CredentialError> {
        let token = self.cache.get_token(self.audience(), None).await?;
        Ok(self.assertion_of(&token))
    }

    /// The credential's attempt bound ran out while STS was being asked: STS's time-out error.
    fn timed_out(&self, bound: time::Duration) -> Option<CredentialError> {
        Some(TokenSource::timed_out(&*self.sts, bound, Phase::Assertion))
    }

    fn describe(&self) -> String {
        format!(
            "AWS STS GetWebIdentityToken (audience {}, {} s, {}{})",
            self.audience(),
            self.sts.duration_secs,
            self.sts.signing_algorithm,
            self.sts
                .region
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
