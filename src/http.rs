//! One request through an azure_core [`Pipeline`], with the answer's body read up to a cap.
//! Used by the token exchange and by `doctor`'s issuer checks.

use azure_core::http::headers::Headers;
use azure_core::http::{Context, Pipeline, PipelineStreamOptions, Request, StatusCode};
use futures::StreamExt as _;

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
    let ctx = Context::new();
    let options = PipelineStreamOptions {
        skip_checks: true,
        ..Default::default()
    };
    let resp = pipeline
        .stream(&ctx, req, Some(options))
        .await
        .map_err(SendError::Transport)?;
    let (status, headers, mut stream) = resp.deconstruct();
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
    Ok((status, headers, body))
}
