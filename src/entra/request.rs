//! The token request's per-try policy ([`AttemptPolicy`]) and what it records for the time-out
//! wording ([`Progress`]).
//!
//! The policy records which phase an attempt is in, so a time-out can name it, and it hands a
//! throttling answer (429 or 503 with `Retry-After`) straight back to the cache instead of letting
//! azure_core's retry policy sleep through the `Retry-After` inside the attempt: throttling is the
//! cache's business (it serves a still-valid token meanwhile and sends nothing before
//! `Retry-After`). It also ends the retry loop on a certificate failure (untrusted, another
//! host's, expired: a problem that is not transient), which no retry can fix. The caller's
//! `RetryOptions` cannot be read (azure_core keeps them opaque), so the retry loop stays
//! azure_core's and the throttling answer leaves it as an error that [`send`] turns back.

use crate::http::{Failure, SendError, read_capped, send_capped_in};
use azure_core::error::ErrorKind;
use azure_core::http::headers::{self, Headers};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Pipeline, Request, StatusCode};
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// Send the token request `req` through `pipeline` (whose per-try policy is [`AttemptPolicy`])
/// and read at most `max` bytes of the answer; a throttling answer is an answer.
pub(super) async fn send(
    pipeline: &Pipeline,
    ctx: &Context<'_>,
    req: &mut Request,
    max: usize,
) -> Result<(StatusCode, Headers, Vec<u8>), SendError> {
    match send_capped_in(pipeline, ctx, req, max).await {
        Err(SendError::Transport(e)) => match throttled(&e) {
            Some(t) => Ok((t.status, t.headers.clone(), t.body.clone())),
            None => Err(SendError::Transport(e)),
        },
        other => other,
    }
}

/// The phase an attempt is in, for a time-out message that names what hung.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The attempt has not started yet (its task was never polled).
    Starting = 0,
    /// Reading the client assertion (the token file, or a custom assertion source).
    Assertion = 1,
    /// A token request is on the wire, no answer yet.
    Request = 2,
    /// The last try failed with a retryable answer; the HTTP retry policy is waiting.
    RetryWait = 3,
    /// The answer's body is being read.
    Response = 4,
}

/// Where one attempt is, and how its last failed try failed; shared by the cache (which reads
/// it on time-out), the exchange and [`AttemptPolicy`] (through the request [`Context`]).
#[derive(Debug)]
pub(crate) struct Progress {
    phase: AtomicU8,
    /// The transport failure of the last try that the retry policy retries, if any.
    last_failure: Mutex<Option<Failure>>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            phase: AtomicU8::new(Phase::Starting as u8),
            last_failure: Mutex::new(None),
        }
    }
}

impl Progress {
    pub(crate) fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }
    /// The transport failure the last retried try ended with (what a time-out during the retry
    /// policy's wait reports as the cause).
    pub(crate) fn last_failure(&self) -> Option<Failure> {
        self.last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    fn set_last_failure(&self, failure: Option<Failure>) {
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = failure;
    }
    pub(crate) fn get(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            1 => Phase::Assertion,
            2 => Phase::Request,
            3 => Phase::RetryWait,
            4 => Phase::Response,
            _ => Phase::Starting,
        }
    }
}

/// A throttling answer (429 or 503 with a `Retry-After`), carried out of the retry loop as an
/// error the retry policy does not retry, and turned back into an answer by [`send_capped_in`].
struct Throttled {
    status: StatusCode,
    headers: Headers,
    body: Vec<u8>,
}

impl fmt::Debug for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttled")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the token endpoint throttled the request (HTTP {})",
            u16::from(self.status)
        )
    }
}

impl std::error::Error for Throttled {}

/// The `Throttled` answer inside `e` (possibly wrapped by the retry policy's context).
fn throttled(e: &azure_core::Error) -> Option<&Throttled> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<Throttled>() {
            return Some(t);
        }
        cur = err.source();
    }
    None
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
        let progress = ctx.value::<Arc<Progress>>();
        if let Some(p) = progress {
            p.set(Phase::Request);
        }
        let result = next[0].send(ctx, request, &next[1..]).await;
        let retryable = match &result {
            Ok(resp) => {
                if let Some(p) = progress {
                    p.set(Phase::Response);
                }
                let code = u16::from(resp.status());
                if (code == 429 || code == 503)
                    && resp
                        .headers()
                        .get_optional_str(&headers::RETRY_AFTER)
                        .is_some()
                {
                    let (status, headers, stream) = result?.deconstruct();
                    let body: Vec<u8> = read_capped(status, stream, MAX_THROTTLED_BODY)
                        .await
                        .unwrap_or_default();
                    let message = format!("HTTP {code} with Retry-After");
                    return Err(azure_core::Error::with_error(
                        ErrorKind::HttpResponse {
                            status,
                            error_code: None,
                            raw_response: None,
                        },
                        Throttled {
                            status,
                            headers,
                            body,
                        },
                        message,
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
        if failure.as_ref().is_some_and(|f| !f.cause.is_transient()) {
            if let Some(p) = progress {
                p.set_last_failure(None);
            }
            // azure_core's retry policy retries only `Io` and `Connection` errors. No message of
            // its own: the error's text (and so the cause chain) stays the transport's.
            if let Err(e) = result {
                return Err(azure_core::Error::new(ErrorKind::Other, e));
            }
        }
        if let Some(p) = progress {
            p.set_last_failure(failure);
        }
        if let (true, Some(p)) = (retryable, progress) {
            p.set(Phase::RetryWait);
        }
        result
    }
}
