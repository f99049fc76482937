//! [`AwsWebIdentitySource`]: the JWT from STS, cached on a [`TokenCache`] of its own (the same
//! machinery as the credential's access-token cache, a separate instance with the fixed
//! [`jwt_policy`]; the credential's `refresh_policy` does not apply to it): concurrent callers
//! share one STS call, the call runs as a task of its own (a dropped caller or a dropped runtime
//! does not wedge it), is bounded, and failures back off.

use super::client::{StsClient, WebIdentityToken};
use super::*;
use crate::assertion::{Assertion, AssertionSource};
use crate::cache::{Event, Failure, Fetched, RefreshPolicy, TokenCache, TokenSource};
use crate::clock::{Clock, SystemClock};
use crate::error::{CredentialError, log_cache_event};

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

/// The JWT cache's policy: refreshed in the background [`refresh_in`] after its issue (no jitter, so
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
    cache: TokenCache<StsClient>,
}

impl fmt::Debug for AwsWebIdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sts = &self.sts;
        f.debug_struct("AwsWebIdentitySource")
            .field("audience", &sts.audience.get())
            .field("duration_secs", &sts.duration_secs)
            .field("signing_algorithm", &sts.options.signing_algorithm)
            .field("region", &sts.options.region)
            .field("endpoint_url", &sts.options.endpoint_url)
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
        let sts = Arc::new(StsClient::new(options, clock.clone())?);
        let cache = TokenCache::new(sts.clone(), jwt_policy(), clock);
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

    /// [`probe`](Self::probe) through the cache: the JWT the next
    /// [`assertion`](AssertionSource::assertion) presents (so the `doctor`, which builds a new
    /// source, exchanges the token it examined), and what Entra will see of it.
    #[cfg(feature = "doctor")]
    pub(crate) async fn probe_and_keep(&self) -> Result<(AwsProbe, Assertion), CredentialError> {
        let jwt = self.cache.get_token(self.audience(), ()).await?;
        Ok((self.sts.probe_of(&jwt), jwt.assertion))
    }

    /// [`new`](Self::new) on `clock`, with the JWT cache's attempt bound `attempt_timeout` (25 s
    /// otherwise) (cargo feature `test-util`).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    #[cfg(feature = "test-util")]
    pub fn with_test_clock(
        options: AwsWebIdentitySourceOptions,
        clock: Arc<crate::clock::ManualClock>,
        attempt_timeout: time::Duration,
    ) -> Result<Self, CredentialError> {
        let sts = Arc::new(StsClient::new(options, clock.clone())?);
        let policy = RefreshPolicy {
            attempt_timeout,
            ..jwt_policy()
        };
        let cache = TokenCache::new(sts.clone(), policy, clock);
        Ok(Self { sts, cache })
    }

    /// How many JWT refreshes in a row have failed (cargo feature `test-util`).
    #[cfg(feature = "test-util")]
    pub fn jwt_failures(&self) -> u32 {
        let status = self.cache.status();
        status.first().map_or(0, |s| s.consecutive_failures)
    }
}

/// How long after its issue a JWT of `lifetime` is refreshed: once less than a fifth of the
/// lifetime remains, but at least 60 s before expiry and no earlier than half-way.
pub(super) fn refresh_in(lifetime: time::Duration) -> time::Duration {
    let margin = (lifetime / 5_i32).max(time::Duration::seconds(60));
    lifetime - margin.min(lifetime / 2_i32)
}

impl TokenSource for StsClient {
    type Token = WebIdentityToken;
    type Error = CredentialError;
    type Context = ();
    type Progress = ();

    /// `audience` is the key the cache is keyed by. The JWT is usable until [`MIN_REMAINING`]
    /// before it expires, refreshed [`refresh_in`] after its issue.
    async fn fetch(
        &self,
        audience: &str,
        (): (),
        _: Arc<()>,
        _: bool,
    ) -> Result<Fetched<WebIdentityToken>, CredentialError> {
        let jwt = StsClient::fetch(self, audience).await?;
        Ok(Fetched {
            expires_on: jwt.expires_at - MIN_REMAINING,
            lifetime: jwt.lifetime - MIN_REMAINING,
            refresh_in: Some(refresh_in(jwt.lifetime)),
            token: jwt,
        })
    }

    /// The JWT cache's own `failure` for `audience` as the caller's error.
    fn failed(&self, audience: &str, failure: Failure<()>) -> CredentialError {
        let what = || format!("AWS web identity token request for audience {audience}");
        match failure {
            Failure::TimedOut { bound, .. } => self.timed_out(bound, audience),
            Failure::Vanished { times } => crate::http::abandoned_error(&what(), times),
            Failure::Panicked(message) => crate::http::panicked_error(&what(), &message),
        }
    }

    /// The credential's cache logs the failure its caller gets; the JWT cache logs one at WARN
    /// only when it serves a cached JWT over it (the credential then sees a success), else at
    /// DEBUG. A JWT is usable for 285 s at most, less than the default `outage_warning_after`.
    fn observe(&self, audience: &str, event: Event<'_, Self>) {
        log_cache_event!(
            event,
            audience = audience,
            "AWS web identity token",
            "AWS web identity token",
            true
        );
    }
}

#[async_trait::async_trait]
impl AssertionSource for AwsWebIdentitySource {
    async fn assertion(&self) -> Result<Assertion, CredentialError> {
        // The cached JWT (fetched first when there is none to serve).
        Ok(self.cache.get_token(self.audience(), ()).await?.assertion)
    }

    /// The credential's attempt bound ran out while STS was being asked: STS's time-out error.
    fn timed_out(&self, bound: time::Duration) -> Option<CredentialError> {
        Some(self.sts.timed_out(bound, self.audience()))
    }

    fn describe(&self) -> String {
        let o = &self.sts.options;
        let region = o.region.as_ref().map(|r| format!(", region {r}"));
        format!(
            "AWS STS GetWebIdentityToken (audience {}, {} s, {}{})",
            self.audience(),
            self.sts.duration_secs,
            o.signing_algorithm,
            region.unwrap_or_default()
        )
    }
}
