//! The token request's per-try policy ([`AttemptPolicy`]) and what it records for the time-out
//! wording ([`Progress`]).
//!
//! The policy records which phase an attempt is in and the URL it requests, so a time-out can
//! name them, and it hands a throttling answer (429 or 503 with `Retry-After`) straight back to
//! the exchange instead of letting azure_core's retry policy sleep through the `Retry-After`
//! inside the attempt: the exchange waits out a short one and sends the request once more, and
//! leaves a long one to the cache (which serves a still-valid token meanwhile and sends nothing
//! before `Retry-After`). It also ends the retry loop on a certificate failure (untrusted, another
//! host's, expired: a problem that is not transient), which no retry can fix. The caller's
//! `RetryOptions` cannot be read (azure_core keeps them opaque), so the retry loop stays
//! azure_core's and the throttling answer leaves it as an error that the exchange turns back.

use crate::http::{Failure, read_capped};
use azure_core::error::ErrorKind;
use azure_core::http::headers;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, RawResponse, Request, Url};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The phase an attempt is in, for a time-out message that names what hung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Phase {
    /// The attempt has not started yet (its task was never polled).
    #[default]
    Starting,
    /// Reading the client assertion (the token file, or a custom assertion source).
    Assertion,
    /// A token request is on the wire, no answer yet.
    Request,
    /// The last try failed with a retryable answer; the HTTP retry policy is waiting.
    RetryWait,
    /// The answer's body is being read.
    Response,
}

/// Where one attempt is: its phase, the URL of its request (once sent) and the transport failure
/// of its last try that the retry policy retries, if any (a time-out reports that cause beside
/// the phase that hung); shared by the cache (which reads it on time-out), the exchange and
/// [`AttemptPolicy`] (through the request [`Context`]).
#[derive(Debug, Default)]
pub(crate) struct Progress(Mutex<(Phase, Option<Url>, Option<Failure>)>);

impl Progress {
    fn lock(&self) -> MutexGuard<'_, (Phase, Option<Url>, Option<Failure>)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
    pub(crate) fn set(&self, phase: Phase) {
        self.lock().0 = phase;
    }
    pub(crate) fn get(&self) -> (Phase, Option<Url>, Option<Failure>) {
        self.lock().clone()
    }
}

/// Per-try policy of the token request: see the module documentation.
#[derive(Debug)]
pub(crate) struct AttemptPolicy;

/// Largest body of a throttling answer kept (the rest is dropped; Entra's is a few hundred bytes).
const MAX_THROTTLED_BODY: usize = 64 * 1024;

#[async_trait::async_trait]
impl Policy for AttemptPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let progress = ctx.value::<Arc<Progress>>().cloned().unwrap_or_default();
        {
            let mut state = progress.lock();
            (state.0, state.1) = (Phase::Request, Some(request.url().clone()));
        }
        let (phase, failure, result) = match next[0].send(ctx, request, &next[1..]).await {
            Ok(r)
                if matches!(u16::from(r.status()), 429 | 503)
                    && (r.headers().get_optional_str(&headers::RETRY_AFTER)).is_some() =>
            {
                progress.set(Phase::Response);
                let (status, headers, stream) = r.deconstruct();
                let body = read_capped(status, stream, MAX_THROTTLED_BODY).await;
                let answer = RawResponse::from_bytes(status, headers, body.unwrap_or_default());
                let kind = ErrorKind::HttpResponse {
                    status,
                    error_code: None,
                    raw_response: Some(Box::new(answer)),
                };
                let message = format!("HTTP {} with Retry-After", u16::from(status));
                return Err(azure_core::Error::with_message(kind, message));
            }
            Ok(r) => match u16::from(r.status()) {
                408 | 429 | 500 | 502 | 503 | 504 => (Phase::RetryWait, None, Ok(r)),
                _ => (Phase::Response, None, Ok(r)),
            },
            Err(e) if matches!(e.kind(), ErrorKind::Io | ErrorKind::Connection) => {
                match Failure::of(request.url(), &e) {
                    f if f.cause.is_transient() => (Phase::RetryWait, Some(f), Err(e)),
                    // azure_core's retry policy retries only `Io` and `Connection` errors. No
                    // message of its own: the error's text (and so the cause chain) stays the
                    // transport's.
                    _ => (
                        Phase::Request,
                        None,
                        Err(azure_core::Error::new(ErrorKind::Other, e)),
                    ),
                }
            }
            Err(e) => (Phase::Request, None, Err(e)),
        };
        *progress.lock() = (phase, Some(request.url().clone()), failure);
        result
    }
}
