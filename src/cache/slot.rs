//! One slot per key: the cached token and its schedule on the monotonic clock, the attempt in
//! flight, the failure state, and its status for operators. Every transition happens under the
//! slot's lock, and nothing awaits while holding it.

use super::policy::{backoff, schedule};
use super::{CacheInner, Event, Fetched, Outcome, SharedOutcome, SourceError, TokenSource};
use std::sync::{Arc, Weak};
use std::time::Instant;
use time::ext::InstantExt as _;
use time::{Duration, OffsetDateTime};

/// A cached token and its schedule: `refresh_at <= mandatory_at <= expires_at`, anchored at the
/// start of the attempt that fetched it (the windows are [`RefreshPolicy`](super::RefreshPolicy)'s).
pub(super) struct Cached<T> {
    pub(super) token: T,
    /// The token's own wall-clock expiry.
    pub(super) expires_on: OffsetDateTime,
    pub(super) refresh_at: Instant,
    pub(super) mandatory_at: Instant,
    pub(super) expires_at: Instant,
}

/// `at + d` for a non-negative `d`, saturating far in the future instead of overflowing.
pub(super) fn add(at: Instant, d: Duration) -> Instant {
    let d = d.max(Duration::ZERO).unsigned_abs();
    at.checked_add(d)
        .unwrap_or_else(|| at + std::time::Duration::from_secs(100 * 365 * 86_400))
}

/// The attempt in flight.
pub(super) struct InFlight<S: TokenSource> {
    pub(super) outcome: SharedOutcome<S>,
    /// Alive while the attempt's task exists.
    pub(super) alive: Weak<()>,
    /// Past this instant the attempt is considered dead (its task is never polled again, e.g.
    /// its runtime is idle) and the next caller starts a new one.
    pub(super) deadline: Instant,
    pub(super) progress: Arc<S::Progress>,
}

/// The run of failed attempts since the last success.
struct Failing<E> {
    /// Consecutive failed attempts (at least 1).
    count: u32,
    /// No new attempt before this instant.
    retry_at: Instant,
    /// The latest error, returned while there is no valid token and `now < retry_at`.
    error: E,
    /// When the run began (monotonic, wall).
    since: (Instant, OffsetDateTime),
}

/// The cache entry for one key.
pub(super) struct Slot<S: TokenSource> {
    pub(super) cached: Option<Cached<S::Token>>,
    /// At most one live attempt per slot.
    pub(super) attempt: Option<InFlight<S>>,
    failing: Option<Failing<S::Error>>,
    /// Wall-clock time of the last successful refresh.
    last_success: Option<OffsetDateTime>,
}

impl<S: TokenSource> Default for Slot<S> {
    fn default() -> Self {
        Self {
            cached: None,
            attempt: None,
            failing: None,
            last_success: None,
        }
    }
}

impl<S: TokenSource> Slot<S> {
    /// The attempt in flight at `now`: its task exists and it is not past its deadline.
    pub(super) fn live_attempt(&self, now: Instant) -> Option<&InFlight<S>> {
        (self.attempt.as_ref()).filter(|a| now < a.deadline && a.alive.strong_count() > 0)
    }

    /// The outcome for a caller at `now` when it needs no change to the state: fresh token,
    /// advisory window with a refresh in flight or backing off, mandatory window while backing
    /// off, or a remembered error. `None` when an attempt must be started or joined.
    pub(super) fn serve(&self, now: Instant) -> Option<Outcome<S>> {
        let in_flight = || self.live_attempt(now).is_some();
        let backing_off = || {
            (self.failing.as_ref())
                .filter(|f| !in_flight() && now < f.retry_at)
                .map(|f| &f.error)
        };
        match &self.cached {
            Some(c) if now < c.refresh_at => Some(Ok(c.token.clone())),
            Some(c) if now < c.mandatory_at && in_flight() => Some(Ok(c.token.clone())),
            Some(c) if now < c.expires_at => backing_off().map(|_| Ok(c.token.clone())),
            _ => backing_off().cloned().map(Err),
        }
    }

    /// The cached token, if it has not expired at `now`.
    pub(super) fn valid(&self, now: Instant) -> Option<&Cached<S::Token>> {
        self.cached.as_ref().filter(|c| now < c.expires_at)
    }

    /// Record the result of the attempt that started at `started`: a fetched token is scheduled
    /// and cached; an error starts or extends the failure run (a still-valid token is served
    /// meanwhile). The outcome for the attempt's waiters.
    pub(super) fn record(
        &mut self,
        result: Result<Fetched<S::Token>, S::Error>,
        started: Instant,
        cache: &CacheInner<S>,
        key: &str,
    ) -> Outcome<S> {
        let (now, wall) = (cache.clock.instant(), cache.clock.now());
        let (policy, unit) = (&cache.policy, (cache.random)());
        let error = match result {
            Ok(fetched) => {
                let (refresh, mandatory) =
                    schedule(fetched.lifetime, fetched.refresh_in, policy, unit);
                let cached = Cached {
                    token: fetched.token,
                    expires_on: fetched.expires_on,
                    refresh_at: add(started, refresh),
                    mandatory_at: add(started, mandatory),
                    expires_at: add(started, fetched.lifetime),
                };
                let event = Event::Acquired {
                    expires_on: cached.expires_on,
                    refresh_in: cached.refresh_at.signed_duration_since(now),
                    took: now.signed_duration_since(started),
                };
                cache.source.observe(key, event);
                self.failing = None;
                self.last_success = Some(wall);
                return Ok(self.cached.insert(cached).token.clone());
            }
            Err(error) => error,
        };
        let (count, since) = match &self.failing {
            Some(f) => (f.count.saturating_add(1), f.since),
            None => (1, (now, wall)),
        };
        let (base, max) = (policy.failure_backoff, policy.max_backoff);
        let valid = self.valid(now);
        // With a valid token: back off, never past `mandatory_at` before the mandatory window and
        // at most `failure_backoff` within it. Without one: remember the error for its TTL.
        let delay = match valid {
            Some(c) if now < c.mandatory_at => {
                backoff(base, max, count, unit).min(c.mandatory_at.signed_duration_since(now))
            }
            Some(c) => backoff(base, base.min(max), count, unit)
                .min(c.expires_at.signed_duration_since(now)),
            None if error.is_transient() => policy.transient_error_ttl,
            None => policy.permanent_error_ttl,
        };
        // The error's retry_after always wins (capped at max_backoff): no attempt before it has
        // passed, in every window. A valid token keeps being served meanwhile.
        let after = error.retry_after().map(|after| after.min(max));
        let delay = delay.max(after.unwrap_or(delay)).max(Duration::ZERO);
        let failing_for = now.signed_duration_since(since.0);
        let outage = (valid.filter(|_| failing_for >= policy.outage_warning_after))
            .map(|c| (failing_for, c.expires_at.signed_duration_since(now)));
        let event = Event::Failed {
            error: &error,
            consecutive_failures: count,
            retry_in: delay,
            valid_until: valid.map(|c| c.expires_on),
            outage,
        };
        cache.source.observe(key, event);
        let outcome = valid.map(|c| c.token.clone()).ok_or_else(|| error.clone());
        let retry_at = add(now, delay);
        self.failing = Some(Failing {
            count,
            retry_at,
            error,
            since,
        });
        outcome
    }

    /// A snapshot of this slot at `now` (`wall` on the wall clock).
    pub(super) fn status(
        &self,
        key: &Arc<str>,
        now: Instant,
        wall: OffsetDateTime,
    ) -> SlotStatus<S> {
        let at = |i: Instant| wall + i.signed_duration_since(now);
        let failing = self.failing.as_ref();
        let health = match (self.valid(now).is_some(), failing.is_some()) {
            (true, false) => RefreshHealth::Healthy,
            (true, true) => RefreshHealth::FailingButServing,
            (false, _) if failing.is_some() || self.cached.is_some() => RefreshHealth::Failing,
            (false, _) => RefreshHealth::Starting,
        };
        let next_refresh = match (failing, &self.cached) {
            (Some(f), _) => Some(at(f.retry_at)),
            (None, Some(c)) => Some(at(c.refresh_at)),
            _ => None,
        };
        SlotStatus {
            key: key.clone(),
            health,
            expires_on: self.cached.as_ref().map(|c| c.expires_on),
            next_refresh,
            last_success: self.last_success,
            consecutive_failures: failing.map_or(0, |f| f.count),
            failing_since: failing.map(|f| f.since.1),
            last_error: failing.map(|f| f.error.clone()),
        }
    }
}

/// The health of one cached scope, as
/// [`TokenStatus::health`](crate::TokenStatus::health) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefreshHealth {
    /// A valid token is cached and the last refresh (if any) succeeded.
    Healthy,
    /// A valid token is cached and served, but the refreshes since the last success have failed:
    /// callers see nothing yet; they will get errors when the token expires unless a refresh
    /// succeeds. Alert on this.
    FailingButServing,
    /// No valid token: callers get errors (or wait for the attempt in flight).
    Failing,
    /// No token yet and no failure yet (first attempt in flight).
    Starting,
}

/// A snapshot of one slot. Times are wall-clock estimates (the cache runs on a monotonic clock).
pub(crate) struct SlotStatus<S: TokenSource> {
    pub(crate) key: Arc<str>,
    pub(crate) health: RefreshHealth,
    /// When the cached token expires (`None`: no token cached).
    pub(crate) expires_on: Option<OffsetDateTime>,
    /// The start of the advisory window, or after a failure the end of the backoff.
    pub(crate) next_refresh: Option<OffsetDateTime>,
    pub(crate) last_success: Option<OffsetDateTime>,
    pub(crate) consecutive_failures: u32,
    pub(crate) failing_since: Option<OffsetDateTime>,
    /// The last failure, while failing.
    pub(crate) last_error: Option<S::Error>,
}
