//! One request through an azure_core [`Pipeline`], with the answer's body read up to a cap.
//! Used by the token exchange and by `doctor`'s issuer checks.
//!
//! The token request's pipeline also carries [`AttemptPolicy`] (a per-try policy): it records
//! which phase an attempt is in, so a time-out can name it, and it hands a throttling answer
//! (429 or 503 with `Retry-After`) straight back to the cache instead of letting azure_core's
//! retry policy sleep through the `Retry-After` inside the attempt. Throttling is the cache's
//! business: it serves a still-valid token meanwhile and sends nothing before `Retry-After`.
//! It also ends the retry loop on a certificate failure (untrusted, another host's, expired:
//! a problem that is not transient), which no retry can fix.

mod cause;
pub(crate) use cause::Failure;

use crate::error::CredentialError;
use crate::problem::ProblemId;
use azure_core::error::ErrorKind;
use azure_core::http::headers::{self, Headers};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{
    AsyncResponseBody, Context, Pipeline, PipelineStreamOptions, Request, StatusCode,
};
use futures::StreamExt as _;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// This crate's [`Pipeline`] over `options`, with `per_try` policies (the token request's
/// [`AttemptPolicy`]; none for one-shot probes).
pub(crate) fn pipeline(
    options: azure_core::http::ClientOptions,
    per_try: Vec<Arc<dyn Policy>>,
) -> Pipeline {
    Pipeline::new(
        Some(env!("CARGO_PKG_NAME")),
        Some(env!("CARGO_PKG_VERSION")),
        options,
        Vec::new(),
        per_try,
        None,
    )
}

/// A [`pipeline`] that sends each request once (no retries): for probes and checks that report
/// what they see rather than retrying for minutes.
pub(crate) fn one_shot_pipeline(mut options: azure_core::http::ClientOptions) -> Pipeline {
    options.retry = azure_core::http::RetryOptions::none();
    pipeline(options, Vec::new())
}

/// Why [`send_capped`] returned no complete body.
pub(crate) enum SendError {
    /// No answer at all (DNS, connection, TLS, time-out, redirect refused by the transport).
    Transport(azure_core::Error),
    /// An answer that broke off after `received` bytes of its body.
    BrokeOff {
        status: StatusCode,
        received: usize,
        error: azure_core::Error,
    },
    /// A body larger than the cap; reading stopped there.
    TooLarge { status: StatusCode },
}

/// Send `req` (no status check: the caller interprets every status) and read at most `max`
/// bytes of the body.
pub(crate) async fn send_capped(
    pipeline: &Pipeline,
    req: &mut Request,
    max: usize,
) -> Result<(StatusCode, Headers, Vec<u8>), SendError> {
    send_capped_in(pipeline, &Context::new(), req, max).await
}

/// [`send_capped`] within `ctx` (the caller's context: parent span, client request id, and the
/// attempt's [`Progress`]).
pub(crate) async fn send_capped_in(
    pipeline: &Pipeline,
    ctx: &Context<'_>,
    req: &mut Request,
    max: usize,
) -> Result<(StatusCode, Headers, Vec<u8>), SendError> {
    let options = PipelineStreamOptions {
        skip_checks: true,
        ..Default::default()
    };
    let resp = match pipeline.stream(ctx, req, Some(options)).await {
        Ok(resp) => resp,
        Err(e) => {
            return match throttled(&e) {
                // A throttling answer stopped the retry loop (see `AttemptPolicy`).
                Some(t) => Ok((t.status, t.headers.clone(), t.body.clone())),
                None => Err(SendError::Transport(e)),
            };
        }
    };
    if let Some(p) = ctx.value::<Arc<Progress>>() {
        p.set(Phase::Response);
    }
    let (status, headers, stream) = resp.deconstruct();
    let body = read_capped(status, stream, max).await?;
    Ok((status, headers, body))
}

async fn read_capped(
    status: StatusCode,
    mut stream: AsyncResponseBody,
    max: usize,
) -> Result<Vec<u8>, SendError> {
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| SendError::BrokeOff {
            status,
            received: body.len(),
            error,
        })?;
        if body.len() + chunk.len() > max {
            return Err(SendError::TooLarge { status });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
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

/// The error of a request (`what`: "access token request for scope …") whose task ended before
/// it finished `times` times in a row: its async runtime was shut down or dropped.
pub(crate) fn abandoned_error(what: &str, times: usize) -> CredentialError {
    CredentialError::new(
        ProblemId::Transport,
        format!(
            "the {what} was abandoned {times} times in a row before it \
             finished: the async runtime that ran it was shut down or dropped (e.g. a runtime per \
             call dropped while a request was running). The next call starts a new request."
        ),
    )
    .with_fix("call from a runtime that outlives the call (one long-lived runtime, or the `blocking` feature's BlockingTokenCredential).")
}

/// The error of a request (`what` as for [`abandoned_error`]) that panicked with `message`.
pub(crate) fn panicked_error(what: &str, message: &str) -> CredentialError {
    CredentialError::new(
        ProblemId::Transport,
        format!(
            "the {what} panicked: {message}. This is a bug in the \
             assertion source or the HTTP transport; the next attempt starts afresh."
        ),
    )
    .with_fix("report the panic message above to the author of the assertion source or HTTP transport (or to azure_identity_k8s).")
}
