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
/// of its last try that the retry policy retries, if any; shared by the cache (which reads it on
/// time-out), the exchange and [`AttemptPolicy`] (through the request [`Context`]).
#[derive(Debug, Default)]
pub(crate) struct Progress(Mutex<(Phase, Option<Url>, Option<Failure>)>);

impl Progress {
    fn lock(&self) -> MutexGuard<'_, (Phase, Option<Url>, Option<Failure>)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
    pub(crate) fn set(&self, phase: Phase) {
        self.lock().0 = phase;
    }
    /// The phase, the URL requested (once a request was sent) and the transport failure the last
    /// retried try ended with (the cause a time-out reports beside the phase that hung).
    pub(crate) fn get(&self) -> (Phase, Option<Url>, Option<Failure>) {
        self.lock().clone()
    }
}

/// Per-try policy of the token request: see the module documentation.
#[derive(Debug, Default)]
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
        let result = next[0].send(ctx, request, &next[1..]).await;
        let retryable = match &result {
            Ok(resp) => {
                progress.set(Phase::Response);
                let code = u16::from(resp.status());
                if matches!(code, 429 | 503)
                    && resp
                        .headers()
                        .get_optional_str(&headers::RETRY_AFTER)
                        .is_some()
                {
                    let (status, headers, stream) = result?.deconstruct();
                    let body: Vec<u8> = read_capped(status, stream, MAX_THROTTLED_BODY)
                        .await
                        .unwrap_or_default();
                    let answer = RawResponse::from_bytes(status, headers, body);
                    return Err(azure_core::Error::with_message(
                        ErrorKind::HttpResponse {
                            status,
                            error_code: None,
                            raw_response: Some(Box::new(answer)),
                        },
                        format!("HTTP {code} with Retry-After"),
                    ));
                }
                matches!(code, 408 | 429 | 500 | 502 | 503 | 504)
            }
            Err(e) => matches!(e.kind(), ErrorKind::Io | ErrorKind::Connection),
        };
        let failure = match &result {
            Err(e) if retryable => Some(Failure::of(request.url(), e)),
            _ => None,
        };
        let fatal = failure.as_ref().is_some_and(|f| !f.cause.is_transient());
        {
            let mut state = progress.lock();
            if retryable && !fatal {
                state.0 = Phase::RetryWait;
            }
            state.2 = failure.filter(|_| !fatal);
        }
        match result {
            // azure_core's retry policy retries only `Io` and `Connection` errors. No message of
            // its own: the error's text (and so the cause chain) stays the transport's.
            Err(e) if fatal => Err(azure_core::Error::new(ErrorKind::Other, e)),
            other => other,
        }
    }
}
