//! One request through an azure_core [`Pipeline`], with the answer's body read up to a cap, and
//! its transport failure classified ([`Failure`]). Used by the token exchange (whose per-try
//! policy is the exchange's own), the managed-identity probe and `doctor`'s issuer checks.

mod cause;
pub(crate) use cause::Failure;

use crate::error::CredentialError;
use crate::problem::ProblemId;
use azure_core::http::headers::Headers;
use azure_core::http::policies::Policy;
use azure_core::http::{
    AsyncResponseBody, Context, Pipeline, PipelineStreamOptions, Request, StatusCode,
};
use futures::StreamExt as _;
use std::sync::Arc;

/// This crate's [`Pipeline`] over `options`, with `per_try` policies (the token request's;
/// none for one-shot probes).
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

/// Send `req` within `ctx` (the caller's context: parent span, client request id, and whatever
/// the pipeline's per-try policies read; `Context::new()` for none) with no status check (the
/// caller interprets every status), and read at most `max` bytes of the body.
pub(crate) async fn send_capped(
    pipeline: &Pipeline,
    ctx: &Context<'_>,
    req: &mut Request,
    max: usize,
) -> Result<(StatusCode, Headers, Vec<u8>), SendError> {
    let options = PipelineStreamOptions {
        skip_checks: true,
        ..Default::default()
    };
    let resp = pipeline
        .stream(ctx, req, Some(options))
        .await
        .map_err(SendError::Transport)?;
    let (status, headers, stream) = resp.deconstruct();
    let body = read_capped(status, stream, max).await?;
    Ok((status, headers, body))
}

/// Read at most `max` bytes of `stream`, the body of an answer with `status`.
pub(crate) async fn read_capped(
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
