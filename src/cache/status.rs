//! Per-scope status for operators: what static stability hides from callers.

use super::slot::{SlotState, between};
use crate::error::ErrorCategory;
use std::time::Instant;
use time::OffsetDateTime;

/// The health of one cached scope, as [`TokenStatus::health`] reports it.
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

/// A snapshot of one cached scope, from
/// [`WorkloadIdentityCredential::token_status`](crate::WorkloadIdentityCredential::token_status).
/// Never contains a token. Times are UTC wall-clock estimates (the cache itself runs on a
/// monotonic clock).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenStatus {
    /// The scope, as requested (`<resource>/.default`).
    pub scope: String,
    /// Summary, for a readiness or health endpoint.
    pub health: RefreshHealth,
    /// When the cached token expires (`None`: no token cached).
    pub expires_on: Option<OffsetDateTime>,
    /// When the next refresh is due: the start of the advisory window, or after a failure the
    /// end of the backoff / `Retry-After` (`None`: no token and nothing scheduled).
    pub next_refresh: Option<OffsetDateTime>,
    /// When a refresh last succeeded (`None`: never, since the credential was built).
    pub last_success: Option<OffsetDateTime>,
    /// Refreshes failed in a row since the last success.
    pub consecutive_failures: u32,
    /// When the current run of failures began (`None`: the last attempt succeeded).
    pub failing_since: Option<OffsetDateTime>,
    /// Category of the last failure, while failing.
    pub last_error_category: Option<ErrorCategory>,
    /// HTTP status of the last failure, when Entra answered.
    pub last_error_status: Option<u16>,
    /// First AADSTS code of the last failure, when Entra sent one (e.g. `70021`).
    pub last_error_aadsts: Option<u32>,
}

pub(super) fn snapshot(
    scope: &str,
    state: &SlotState,
    now: Instant,
    wall: OffsetDateTime,
) -> TokenStatus {
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
    TokenStatus {
        scope: scope.to_owned(),
        health,
        expires_on: state.cached.as_ref().map(|c| c.token.expires_on),
        next_refresh,
        last_success: state.last_success,
        consecutive_failures: state.failures,
        failing_since: state.failing_since.map(|(_, w)| w),
        last_error_category: error.map(|e| e.category()),
        last_error_status: error.and_then(|e| e.http_status()).map(u16::from),
        last_error_aadsts: error.and_then(|e| e.aadsts_codes().first().copied()),
    }
}
