//! The refresh policy and the schedule arithmetic (pure functions of durations).

use time::Duration;

/// How and when cached tokens are refreshed. All fields have defaults; build one with struct
/// update syntax, e.g. `RefreshPolicy { attempt_timeout: Duration::seconds(10), ..Default::default() }`.
/// It is checked when the credential is built (see [`validate`](Self::validate)).
///
/// The credential caches one token per scope and refreshes it ahead of expiry. Every instant
/// below is measured on a monotonic clock from the moment the token request was started, so a
/// step of the wall clock (NTP, a resumed VM) neither serves an expired token nor drops a valid one.
///
/// * **Fresh**: until the token endpoint's `refresh_in` when sent, else half the lifetime for tokens of 2 h or
///   more (and for tokens under 20 min), else 10 minutes before expiry, minus a random jitter of up
///   to `max_jitter` (at most 5 % of the lifetime): the cached token is returned, nothing waits.
/// * **Advisory window** (from then until `mandatory_margin` before expiry): the cached token is
///   returned at once and one background refresh runs. Nobody waits.
/// * **Mandatory window** (the last `mandatory_margin`): callers share one refresh attempt and
///   wait for it, but **never longer than the cached token's remaining lifetime minus a margin**
///   (5 s, or half the remaining lifetime when less than 10 s remain) and never longer than
///   `attempt_timeout`; when the bound is reached, or the attempt fails, they get the cached token.
///   A caller holding a valid token never gets an error.
/// * **No valid token** (first call, expired token): callers share one attempt and wait at most
///   `attempt_timeout`; only these callers can get an error.
///
/// A failed refresh never replaces a still-valid token. The next attempt waits for a jittered
/// exponential backoff (`failure_backoff` up to `max_backoff`), or for the token endpoint's
/// `Retry-After` (429/503, seconds or a date; capped at `max_backoff`) when that is longer;
/// refreshing is never given up. With no valid token, the error is returned to new callers without
/// a new request for `permanent_error_ttl` (4xx, a certificate failure) or `transient_error_ttl`
/// (5xx, 408, other transport failures, time-out), or until `Retry-After` has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Below this much remaining lifetime a cached token is no longer handed out without first
    /// trying to refresh it (see the mandatory window above). For tokens shorter than four margins,
    /// a quarter of the lifetime is used instead. Zero or positive. Default 60 s.
    pub mandatory_margin: Duration,
    /// Upper bound on one refresh attempt (reading the assertion, the token request and its
    /// retries) and on how long a caller without a valid token waits for one. An attempt that takes
    /// longer is abandoned and fails with a transient `ErrorCategory::Timeout` error naming the
    /// phase that hung. Positive. Default 30 s.
    pub attempt_timeout: Duration,
    /// Base delay before the next attempt after a failed refresh while a valid token is cached
    /// (doubled per consecutive failure up to `max_backoff`, each delay drawn at random from
    /// `[d/2, d]`). Positive. Default 10 s.
    pub failure_backoff: Duration,
    /// Ceiling of the backoff, and of the `Retry-After` the cache honours. At least
    /// `failure_backoff`. Default 5 minutes.
    pub max_backoff: Duration,
    /// With no valid token cached, how long a permanent (4xx, certificate) failure is remembered and returned
    /// to new callers without a new request, so a crowd cannot hammer the token endpoint.
    /// Positive (zero would send every call during an outage to the token endpoint). Default 5 s.
    pub permanent_error_ttl: Duration,
    /// With no valid token cached, how long a transient failure (5xx, 408, 429, transport,
    /// time-out) is remembered and returned to new callers before the next caller may start a new
    /// attempt. Positive, like `permanent_error_ttl`. Default 1 s.
    pub transient_error_ttl: Duration,
    /// Maximum random jitter subtracted from the refresh time (never more than 5 % of the token's
    /// lifetime). Zero or positive. Default 30 s.
    pub max_jitter: Duration,
    /// After refreshes have failed for this long while a still-valid token is being served, every
    /// further failure logs a WARN event "token refreshes have been failing ..." (with the time
    /// left before the served token expires), so an identity-provider or configuration outage is visible before
    /// callers see errors. Zero or positive. Default 5 minutes.
    pub outage_warning_after: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            mandatory_margin: Duration::seconds(60),
            attempt_timeout: Duration::seconds(30),
            failure_backoff: Duration::seconds(10),
            max_backoff: Duration::minutes(5),
            permanent_error_ttl: Duration::seconds(5),
            transient_error_ttl: Duration::seconds(1),
            max_jitter: Duration::seconds(30),
            outage_warning_after: Duration::minutes(5),
        }
    }
}

/// `(refresh_after, mandatory_after)`: when a token of `lifetime` (counted from the start of its
/// request) enters the advisory and the mandatory window; `unit` in `[0, 1]` scales the jitter
/// (0 = none, 1 = the maximum). `refresh_after <= mandatory_after <= lifetime`.
pub(super) fn schedule(
    lifetime: Duration,
    refresh_in: Option<Duration>,
    policy: &RefreshPolicy,
    unit: f64,
) -> (Duration, Duration) {
    let lifetime = lifetime.max(Duration::ZERO);
    let margin = policy
        .mandatory_margin
        .min(lifetime / 4)
        .max(Duration::ZERO);
    let mandatory_after = lifetime - margin;
    let planned = match refresh_in {
        Some(r) if r > Duration::ZERO && r < lifetime => r,
        _ if lifetime >= Duration::hours(2) || lifetime < Duration::minutes(20) => lifetime / 2,
        _ => lifetime - Duration::minutes(10),
    };
    let jitter_cap = policy.max_jitter.min(lifetime / 20).max(Duration::ZERO);
    let refresh_after = (planned - jitter_cap * unit.clamp(0.0, 1.0))
        .min(mandatory_after)
        .max(Duration::ZERO);
    (refresh_after, mandatory_after)
}

/// Delay before the next attempt after `failures` consecutive failures: `base` doubled per
/// failure up to `max`, then drawn from `[d/2, d]` by `unit`.
pub(super) fn backoff(base: Duration, max: Duration, failures: u32, unit: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    let delay = base
        .saturating_mul(1 << doublings)
        .min(max)
        .max(Duration::ZERO);
    delay / 2 + (delay / 2) * unit.clamp(0.0, 1.0)
}

/// How long a caller whose cached token expires in `remaining` may wait for a refresh (the
/// mandatory window's bound, as [`RefreshPolicy`] documents it).
pub(super) fn wait_bound(remaining: Duration, attempt_timeout: Duration) -> Duration {
    let remaining = remaining.max(Duration::ZERO);
    let margin = Duration::seconds(5).min(remaining / 2);
    (remaining - margin)
        .min(attempt_timeout)
        .max(Duration::ZERO)
}
