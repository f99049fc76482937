//! One slot per key: the cached token, its schedule on the monotonic clock, the attempt in
//! flight and the failure state. Every transition happens under the slot's lock, and nothing
//! awaits while holding it.

use super::policy::{backoff, schedule};
use super::{
    CacheInner, Event, Failure, Fetched, Outcome, RefreshPolicy, SharedOutcome, TokenSource,
};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use time::{Duration, OffsetDateTime};

/// A cached token and its schedule. All three instants are monotonic, anchored at the start of
/// the attempt that fetched the token; `refresh_at <= mandatory_at <= expires_at`.
pub(super) struct Cached<T> {
    pub(super) token: T,
    /// The token's own wall-clock expiry.
    pub(super) expires_on: OffsetDateTime,
    /// From here on, one background refresh is started.
    pub(super) refresh_at: Instant,
    /// From here on, callers wait (bounded) for a refresh attempt.
    pub(super) mandatory_at: Instant,
    /// From here on, the token is never handed out.
    pub(super) expires_at: Instant,
}

impl<T> Cached<T> {
    /// Schedule a token whose attempt started at `started`; `unit` in `[0, 1)` draws the jitter.
    pub(super) fn new(
        fetched: Fetched<T>,
        started: Instant,
        policy: &RefreshPolicy,
        unit: f64,
    ) -> Self {
        let (refresh_after, mandatory_after) =
            schedule(fetched.lifetime, fetched.refresh_in, policy, unit);
        Self {
            token: fetched.token,
            expires_on: fetched.expires_on,
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
pub(super) struct InFlight<S: TokenSource> {
    pub(super) id: u64,
    pub(super) outcome: SharedOutcome<S>,
    /// Past this instant the attempt is considered dead (its task is never polled again, e.g.
    /// its runtime is idle) and the next caller starts a new one.
    pub(super) deadline: Instant,
    pub(super) progress: Arc<S::Progress>,
}

/// The cache entry for one key.
pub(super) struct Slot<S: TokenSource> {
    pub(super) key: Arc<str>,
    pub(super) state: RwLock<SlotState<S>>,
}

impl<S: TokenSource> Slot<S> {
    pub(super) fn new(key: &str) -> Self {
        Self {
            key: Arc::from(key),
            state: RwLock::new(SlotState {
                cached: None,
                attempt: None,
                failures: 0,
                retry_at: None,
                last_error: None,
                last_success: None,
                failing_since: None,
            }),
        }
    }
}

pub(super) struct SlotState<S: TokenSource> {
    pub(super) cached: Option<Cached<S::Token>>,
    /// The attempt in flight, if any (at most one live attempt per slot).
    pub(super) attempt: Option<InFlight<S>>,
    /// Consecutive failed attempts.
    pub(super) failures: u32,
    /// No new attempt before this instant (set after a failure).
    pub(super) retry_at: Option<Instant>,
    /// The latest failure, returned while there is no valid token and `now < retry_at`.
    pub(super) last_error: Option<Failure<S>>,
    /// Wall-clock time of the last successful refresh.
    pub(super) last_success: Option<OffsetDateTime>,
    /// When the current run of failures began (monotonic, wall).
    pub(super) failing_since: Option<(Instant, OffsetDateTime)>,
}

impl<S: TokenSource> SlotState<S> {
    /// The live attempt (not past its deadline) at `now`.
    pub(super) fn live_attempt(&self, now: Instant) -> Option<&InFlight<S>> {
        self.attempt.as_ref().filter(|a| now < a.deadline)
    }

    /// Clear the in-flight marker if it is still attempt `id`'s.
    pub(super) fn end_attempt(&mut self, id: u64) {
        if self.attempt.as_ref().is_some_and(|a| a.id == id) {
            self.attempt = None;
        }
    }

    /// The outcome for a caller at `now` when it needs no change to the state: fresh token,
    /// advisory window with a refresh in flight or backing off, mandatory window while backing
    /// off, or a remembered error. `None` when an attempt must be started or joined.
    pub(super) fn serve(&self, now: Instant) -> Option<Outcome<S>> {
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
    pub(super) fn valid(&self, now: Instant) -> Option<(&S::Token, Instant)> {
        self.cached
            .as_ref()
            .filter(|c| now < c.expires_at)
            .map(|c| (&c.token, c.expires_at))
    }

    /// Record a fetched token; the outcome for the attempt's waiters.
    pub(super) fn record_success(
        &mut self,
        cached: Cached<S::Token>,
        wall: OffsetDateTime,
    ) -> Outcome<S> {
        self.failures = 0;
        self.retry_at = None;
        self.last_error = None;
        self.failing_since = None;
        self.last_success = Some(wall);
        Ok(self.cached.insert(cached).token.clone())
    }

    /// Record a failed attempt; the outcome for its waiters (a still-valid token wins).
    pub(super) fn record_failure(
        &mut self,
        failure: Failure<S>,
        (now, wall): (Instant, OffsetDateTime),
        cache: &CacheInner<S>,
        key: &str,
    ) -> Outcome<S> {
        let policy = &cache.policy;
        self.failures = self.failures.saturating_add(1);
        let since = *self.failing_since.get_or_insert((now, wall));
        let valid = self.cached.as_ref().filter(|c| now < c.expires_at);
        let delay = match valid {
            Some(c) if now < c.mandatory_at => backoff(
                policy.failure_backoff,
                policy.max_backoff,
                self.failures,
                (cache.random)(),
            )
            .min(between(now, c.mandatory_at)),
            Some(c) => {
                let cap = policy.failure_backoff.min(policy.max_backoff);
                backoff(policy.failure_backoff, cap, self.failures, (cache.random)())
                    .min(between(now, c.expires_at))
            }
            None if failure.is_transient() => policy.transient_error_ttl,
            None => policy.permanent_error_ttl,
        };
        // The error's retry_after always wins (capped at max_backoff): no attempt before it has
        // passed, in every window. A valid token keeps being served meanwhile.
        let delay = match failure.retry_after() {
            Some(after) => delay.max(after.min(policy.max_backoff)),
            None => delay,
        }
        .max(Duration::ZERO);
        self.retry_at = Some(add(now, delay));
        cache.source.observe(
            key,
            Event::Failed {
                failure: &failure,
                consecutive_failures: self.failures,
                retry_in: delay,
                valid_until: valid.map(|c| c.expires_on),
            },
        );
        let failing_for = between(since.0, now);
        if let Some(c) = valid
            && failing_for >= policy.outage_warning_after
        {
            cache.source.observe(
                key,
                Event::Outage {
                    failure: &failure,
                    failing_for,
                    consecutive_failures: self.failures,
                    expires_in: between(now, c.expires_at),
                },
            );
        }
        let outcome = match valid {
            Some(c) => Ok(c.token.clone()),
            None => Err(failure.clone()),
        };
        self.last_error = Some(failure);
        outcome
    }
}
