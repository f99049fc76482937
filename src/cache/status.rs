//! Per-key status for operators: what static stability hides from callers.

use super::slot::{Slot, between};
use super::{Failure, TokenSource, read};
use std::time::Instant;
use time::OffsetDateTime;

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
    pub(crate) key: std::sync::Arc<str>,
    pub(crate) health: RefreshHealth,
    /// When the cached token expires (`None`: no token cached).
    pub(crate) expires_on: Option<OffsetDateTime>,
    /// The start of the advisory window, or after a failure the end of the backoff.
    pub(crate) next_refresh: Option<OffsetDateTime>,
    pub(crate) last_success: Option<OffsetDateTime>,
    pub(crate) consecutive_failures: u32,
    pub(crate) failing_since: Option<OffsetDateTime>,
    /// The last failure, while failing.
    pub(crate) last_error: Option<Failure<S>>,
}

pub(super) fn snapshot<S: TokenSource>(
    slot: &Slot<S>,
    now: Instant,
    wall: OffsetDateTime,
) -> SlotStatus<S> {
    let state = read(&slot.state);
    let at = |i: Instant| wall + between(now, i);
    let valid = state.valid(now).is_some();
    let error = state.last_error.as_ref().filter(|_| state.failures > 0);
    let health = match (valid, error.is_some()) {
        (true, false) => RefreshHealth::Healthy,
        (true, true) => RefreshHealth::FailingButServing,
        (false, true) => RefreshHealth::Failing,
        (false, false) if state.cached.is_some() => RefreshHealth::Failing,
        (false, false) => RefreshHealth::Starting,
    };
    let next_refresh = match (state.retry_at, &state.cached) {
        (Some(r), _) if state.failures > 0 => Some(at(r)),
        (_, Some(c)) => Some(at(c.refresh_at)),
        _ => None,
    };
    SlotStatus {
        key: slot.key.clone(),
        health,
        expires_on: state.cached.as_ref().map(|c| c.expires_on),
        next_refresh,
        last_success: state.last_success,
        consecutive_failures: state.failures,
        failing_since: state.failing_since.map(|(_, w)| w),
        last_error: error.cloned(),
    }
}
