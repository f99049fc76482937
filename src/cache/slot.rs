//! One slot per scope: the cached token, its schedule on the monotonic clock, the attempt in
//! flight and the failure state. Every transition happens under the slot's lock, and nothing
//! awaits while holding it.

use super::policy::{RefreshPolicy, backoff, schedule};
use super::{FetchedToken, Outcome, SharedOutcome, TokenSource};
use crate::error::CredentialError;
use crate::http::Progress;
use azure_core::credentials::AccessToken;
use azure_core::time::Duration;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use time::OffsetDateTime;

/// A cached token and its schedule. All three instants are monotonic, anchored at the start of
/// the request that fetched the token; `refresh_at <= mandatory_at <= expires_at`.
pub(super) struct Cached {
    pub(super) token: AccessToken,
    /// From here on, one background refresh is started.
    pub(super) refresh_at: Instant,
    /// From here on, callers wait (bounded) for a refresh attempt.
    pub(super) mandatory_at: Instant,
    /// From here on, the token is never handed out.
    pub(super) expires_at: Instant,
}

impl Cached {
    /// Schedule a token whose request started at `started`; `unit` in `[0, 1)` draws the jitter.
    pub(super) fn new(
        fetched: FetchedToken,
        started: Instant,
        policy: &RefreshPolicy,
        unit: f64,
    ) -> Self {
        let (refresh_after, mandatory_after) =
            schedule(fetched.lifetime, fetched.refresh_in, policy, unit);
        Self {
            token: fetched.token,
            refresh_at: add(started, refresh_after),
            mandatory_at: add(started, mandatory_after),
            expires_at: add(started, fetched.lifetime),
        }
    }
}

/// `at + d` for a non-negative `d`, saturating far in the future instead of overflowing.
pub(super) fn add(at: Instant, d: Duration) -> Instant {
    let d = d.max(Duration::ZERO).unsigned_abs();
    at.checked_add(d)
        .unwrap_or_else(|| at + std::time::Duration::from_secs(100 * 365 * 86_400))
}

/// `to - from` as a signed duration.
pub(super) fn between(from: Instant, to: Instant) -> Duration {
    if to >= from {
        Duration::try_from(to - from).unwrap_or(Duration::MAX)
    } else {
        -Duration::try_from(from - to).unwrap_or(Duration::MAX)
    }
}

/// The attempt in flight.
pub(super) struct InFlight {
    pub(super) id: u64,
    pub(super) outcome: SharedOutcome,
    /// Past this instant the attempt is considered dead (its task is never polled again, e.g.
    /// its runtime is idle) and the next caller starts a new one.
    pub(super) deadline: Instant,
    pub(super) progress: Arc<Progress>,
}

/// The cache entry for one scope.
pub(super) struct Slot {
    pub(super) scope: Arc<str>,
    /// The same scope as the one-element list a token source takes.
    pub(super) scope_owned: String,
    pub(super) state: RwLock<SlotState>,
}

impl Slot {
    pub(super) fn new(scope: &str) -> Self {
        Self {
            scope: Arc::from(scope),
            scope_owned: scope.to_owned(),
            state: RwLock::new(SlotState::default()),
        }
    }
}

#[derive(Default)]
pub(super) struct SlotState {
    pub(super) cached: Option<Cached>,
    /// The attempt in flight, if any (at most one live attempt per slot).
    pub(super) attempt: Option<InFlight>,
    /// Consecutive failed attempts.
    pub(super) failures: u32,
    /// No new attempt before this instant (set after a failure).
    pub(super) retry_at: Option<Instant>,
    /// The latest failure, returned while there is no valid token and `now < retry_at`.
    pub(super) last_error: Option<CredentialError>,
    /// Wall-clock time of the last successful refresh.
    pub(super) last_success: Option<OffsetDateTime>,
    /// When the current run of failures began (monotonic, wall).
    pub(super) failing_since: Option<(Instant, OffsetDateTime)>,
    /// When a token acquired outside the cache was last inserted (see `TokenCache::insert`).
    pub(super) inserted_at: Option<Instant>,
}

impl SlotState {
    /// The live attempt (not past its deadline) at `now`.
    pub(super) fn live_attempt(&self, now: Instant) -> Option<&InFlight> {
        self.attempt.as_ref().filter(|a| now < a.deadline)
    }

    /// The outcome for a caller at `now` when it needs no change to the state: fresh token,
    /// advisory window with a refresh in flight or backing off, mandatory window while backing
    /// off, or a remembered error. `None` when an attempt must be started or joined.
    pub(super) fn serve(&self, now: Instant) -> Option<Outcome> {
        let in_flight = self.live_attempt(now).is_some();
        let backing_off = !in_flight && self.retry_at.is_some_and(|t| now < t);
        match &self.cached {
            Some(c) if now < c.refresh_at => Some(Ok(c.token.clone())),
            Some(c) if now < c.mandatory_at && (in_flight || backing_off) => {
                Some(Ok(c.token.clone()))
            }
            Some(c) if now < c.expires_at && backing_off => Some(Ok(c.token.clone())),
            Some(c) if now < c.expires_at => None,
            _ if backing_off => self.last_error.clone().map(Err),
            _ => None,
        }
    }

    /// The cached token and its monotonic expiry, if it has not expired at `now`.
    pub(super) fn valid(&self, now: Instant) -> Option<(&AccessToken, Instant)> {
        self.cached
            .as_ref()
            .filter(|c| now < c.expires_at)
            .map(|c| (&c.token, c.expires_at))
    }

    /// Record a fetched token; the outcome for the attempt's waiters.
    /// Record a token; with `keep_later`, the cached one stays when it expires later (an inserted
    /// token and an attempt that raced it: whichever arrives last, the longer-lived one is kept).
    pub(super) fn record_success(
        &mut self,
        cached: Cached,
        wall: OffsetDateTime,
        keep_later: bool,
    ) -> Outcome {
        self.failures = 0;
        self.retry_at = None;
        self.last_error = None;
        self.failing_since = None;
        self.last_success = Some(wall);
        let keep = keep_later
            && self
                .cached
                .as_ref()
                .is_some_and(|c| c.expires_at > cached.expires_at);
        let kept = if keep {
            self.cached.as_ref().expect("checked above")
        } else {
            self.cached.insert(cached)
        };
        Ok(kept.token.clone())
    }

    /// Record a failed attempt; the outcome for its waiters (a still-valid token wins).
    pub(super) fn record_failure(
        &mut self,
        error: CredentialError,
        (now, wall): (Instant, OffsetDateTime),
        policy: &RefreshPolicy,
        random: fn() -> f64,
        (source, scopes): (&dyn TokenSource, &str),
    ) -> Outcome {
        self.failures = self.failures.saturating_add(1);
        let since = *self.failing_since.get_or_insert((now, wall));
        let valid = self.cached.as_ref().filter(|c| now < c.expires_at);
        let delay = match valid {
            Some(c) if now < c.mandatory_at => backoff(
                policy.failure_backoff,
                policy.max_backoff,
                self.failures,
                random(),
            )
            .min(between(now, c.mandatory_at)),
            Some(c) => {
                let cap = policy.failure_backoff.min(policy.max_backoff);
                backoff(policy.failure_backoff, cap, self.failures, random())
                    .min(between(now, c.expires_at))
            }
            None if error.is_transient() => policy.transient_error_ttl,
            None => policy.permanent_error_ttl,
        };
        // The token endpoint's Retry-After always wins (capped at max_backoff): no request is sent
        // before it has passed, in every window. A valid token keeps being served meanwhile.
        let delay = match error.retry_after() {
            Some(after) => delay.max(after.min(policy.max_backoff)),
            None => delay,
        }
        .max(Duration::ZERO);
        self.retry_at = Some(add(now, delay));
        let valid_until = valid.map(|c| c.token.expires_on);
        // One record per failure: the first line (the problem with its values) and the rest as
        // fields of their own; the full multi-line message reaches the caller.
        macro_rules! failed {
            ($level:expr, $key:ident, $($message:tt)+) => {
                tracing::event!(
                    $level,
                    $key = %scopes,
                    category = ?error.category(),
                    status = ?error.http_status().map(u16::from),
                    aadsts = ?error.aadsts_codes(),
                    transient = error.is_transient(),
                    consecutive_failures = self.failures,
                    retry_in_secs = delay.as_seconds_f64(),
                    cached_token_valid_until = ?valid_until,
                    error = %error.headline(),
                    problem_id = error.problem_id().map(tracing::field::display),
                    fix = error.fix().map(|f| tracing::field::display(crate::escape::escape(f))),
                    docs = error.documentation_url(),
                    trace_id = error.trace_id(),
                    correlation_id = error.correlation_id(),
                    $($message)+
                )
            };
        }
        let serving = if valid_until.is_some() {
            "; serving the cached token, which is still valid"
        } else {
            ""
        };
        match (source.nested(), valid_until.is_some()) {
            (false, _) => failed!(
                tracing::Level::WARN,
                scopes,
                "token refresh failed{serving}"
            ),
            // Otherwise invisible: the caller gets the cached token.
            (true, true) => failed!(
                tracing::Level::WARN,
                audience,
                "{} refresh failed{serving}",
                source.kind()
            ),
            // The caller gets this error and logs it.
            (true, false) => failed!(
                tracing::Level::DEBUG,
                audience,
                "{} refresh failed",
                source.kind()
            ),
        }
        let failing_for = between(since.0, now);
        if let Some(c) = valid
            && failing_for >= policy.outage_warning_after
        {
            tracing::warn!(
                scopes = %scopes,
                failing_for_secs = failing_for.whole_seconds(),
                consecutive_failures = self.failures,
                token_expires_in_secs = between(now, c.expires_at).whole_seconds(),
                category = ?error.category(),
                aadsts = ?error.aadsts_codes(),
                "token refreshes have been failing for {} s while a cached token is still served; \
                 callers will get errors when it expires in {} s unless a refresh succeeds",
                failing_for.whole_seconds(),
                between(now, c.expires_at).whole_seconds(),
            );
        }
        let outcome = match valid {
            Some(c) => Ok(c.token.clone()),
            None => Err(error.clone()),
        };
        self.last_error = Some(error);
        outcome
    }
}
