//! The errors the cache itself raises: an attempt that vanished, timed out or panicked.

use super::slot::Slot;
use super::{MAX_RESTARTS, TokenSource};
use crate::error::CredentialError;
use crate::http::{Phase, Progress};
use crate::problem::ProblemId;
use azure_core::time::Duration;

pub(super) fn vanished_error(source: &dyn TokenSource, slot: &Slot) -> CredentialError {
    CredentialError::new(
        ProblemId::Transport,
        format!(
            "the {} request for {} {} was abandoned {MAX_RESTARTS} \
             times in a row before it finished: the async runtime that ran it was shut down or \
             dropped (e.g. a runtime per call dropped while a request was running). The next call \
             starts a new request.",
            source.kind(),
            source.key_name(),
            slot.scope
        ),
    )
    .with_fix("call from a runtime that outlives the call (one long-lived runtime, or the `blocking` feature's BlockingTokenCredential).")
}

/// The error of an attempt (or a wait) that outlived `bound`: while the HTTP retry policy waits
/// after a transport failure, that failure (its cause is the problem, not the bound); else the
/// source's time-out error for the phase that hung.
pub(super) fn timed_out(
    source: &dyn TokenSource,
    bound: Duration,
    progress: Option<&Progress>,
) -> CredentialError {
    let phase = progress.map_or(Phase::Starting, Progress::get);
    match (phase, progress.and_then(Progress::last_failure)) {
        (Phase::RetryWait, Some(failure)) => crate::entra::transport_error(&failure, Some(bound)),
        _ => source.timed_out(bound, phase),
    }
}

/// The error of an attempt (or a wait) that outlived `attempt_timeout`, naming the phase that hung.
pub(crate) fn timeout_error(bound: Duration, phase: Phase) -> CredentialError {
    let secs = bound.as_seconds_f64();
    let raise = "or raise RefreshPolicy::attempt_timeout (WorkloadIdentityCredentialOptions::refresh_policy) if it is just slow";
    let (what, fix) = match phase {
        Phase::Starting => (
            format!(
                "the token request did not start within {secs} s: the task that runs it was not \
                 polled (is the async runtime blocked or busy?)"
            ),
            "keep the async runtime responsive: move blocking work to spawn_blocking, or give the runtime more worker threads.".to_string(),
        ),
        Phase::Assertion => (
            format!(
                "reading the client assertion (the service-account token file, or the assertion \
                 source) did not finish within {secs} s"
            ),
            format!("check the volume holding the token file (a hung network mount, a FIFO) or the assertion source, {raise}."),
        ),
        Phase::Request => (
            format!("the token endpoint did not answer within {secs} s"),
            format!("check network access to the authority host (egress rules, proxy, DNS), {raise}."),
        ),
        Phase::RetryWait => (
            format!(
                "the token request was still being retried after {secs} s (the last try failed \
                 with a retryable answer and the HTTP retry policy was waiting before the next \
                 one; the previous log lines show the answers)"
            ),
            format!("use a shorter retry policy (ClientOptions::retry = token_retry_options()) so that the cache does the retrying, {raise}."),
        ),
        Phase::Response => (
            format!(
                "the token endpoint's answer was still being read after {secs} s (a slow or \
                 stalled body)"
            ),
            format!("check any proxy between this pod and the authority host, {raise}."),
        ),
    };
    CredentialError::new(
        ProblemId::Timeout,
        format!("{what}; the bound is RefreshPolicy::attempt_timeout."),
    )
    .with_fix(fix)
}

pub(super) fn panic_error(
    source: &dyn TokenSource,
    slot: &Slot,
    panic: Box<dyn std::any::Any + Send>,
) -> CredentialError {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    CredentialError::new(
        ProblemId::Transport,
        format!(
            "the {} request for {} {} panicked: {what}. This is a \
             bug in the assertion source or the HTTP transport; the next attempt starts afresh.",
            source.kind(),
            source.key_name(),
            slot.scope
        ),
    )
    .with_fix("report the panic message above to the author of the assertion source or HTTP transport (or to azure_identity_k8s).")
}
