//! The token request to Entra ID, its response, and Entra's errors.
//!
//! The request is the OAuth 2.0 client-credentials grant with a JWT client assertion (RFC 7523),
//! sent through an azure_core [`Pipeline`]. Success and error bodies are parsed defensively: numbers
//! may be strings, error bodies may be HTML, plain text, truncated or empty, and the size read is
//! capped.

pub(crate) mod catalogue;
mod response;
#[cfg(test)]
mod tests;

use response::{invalid_response, retry_after_delay, server_now, throttled};
pub(crate) use response::{parse_error, parse_success};

use crate::assertion::{Assertion, AssertionSource};
use crate::cache::{FetchedToken, TokenSource};
use crate::clock::Clock;
use crate::error::CredentialError;
use crate::http::{Failure, Phase, Progress, SendError, send_capped_in};
use crate::jwt::{Claims, Header};
use azure_core::http::headers::{self, content_type};
use azure_core::http::{Context, Method, Pipeline, Request, StatusCode, Url};
use azure_core::time::Duration;
use std::fmt;
use std::sync::Arc;

/// The `client_assertion_type` of a JWT bearer assertion.
pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Largest response body read from the token endpoint. A real answer is a few KB.
pub(crate) const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// The exchange: assertion in, access token out.
pub(crate) struct Exchange {
    pub(crate) pipeline: Pipeline,
    pub(crate) endpoint: Url,
    pub(crate) client_id: String,
    pub(crate) tenant_id: String,
    pub(crate) assertion: Arc<dyn AssertionSource>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("endpoint", &self.endpoint.as_str())
            .field("client_id", &self.client_id)
            .field("assertion", &self.assertion)
            .finish_non_exhaustive()
    }
}

/// What we know locally, to explain Entra's answer.
pub(crate) struct ErrorContext<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) tenant_id: &'a str,
    pub(crate) endpoint: &'a Url,
    pub(crate) scope: &'a str,
    pub(crate) claims: Option<&'a Claims>,
    /// The assertion's JOSE header (`alg`, `kid`), when it decodes.
    pub(crate) header: Option<&'a Header>,
    pub(crate) origin: &'a str,
}

/// The error of a token request that got no answer, from its classified `failure`: the first
/// line names the endpoint (`scheme://host:port`) and the cause, and stays the same across
/// retries of the same fault; then the fix for that cause and the whole error chain. `cut_at`:
/// the attempt bound that ended the HTTP retry policy's wait after this failure, if it did.
/// Problem id and documentation: the cause's section (`transport-connection-refused`, ...).
/// Transient, but for a certificate failure (not transient in the catalogue): no retry fixes
/// that, so the cache remembers it for `RefreshPolicy::permanent_error_ttl`.
pub(crate) fn transport_error(failure: &Failure, cut_at: Option<Duration>) -> CredentialError {
    let note = match cut_at {
        _ if !failure.cause.is_transient() => {
            "\n  Not retried: a certificate failure lasts until the certificate, the trust \
             store or AZURE_AUTHORITY_HOST is changed; the error is remembered for \
             RefreshPolicy::permanent_error_ttl, then the next call tries again."
                .to_owned()
        }
        Some(bound) => format!(
            "\n  The HTTP retry policy was still retrying after {} s (RefreshPolicy::attempt_timeout); \
             the credential tries again with backoff.",
            bound.as_seconds_f64()
        ),
        None => String::new(),
    };
    CredentialError::new(
        failure.cause,
        format!(
            "the token request to {} failed before Entra answered: {}.\n  Cause: {}{note}",
            failure.origin,
            failure.words(),
            failure.chain,
        ),
    )
    .with_fix(transport_fix(failure))
}

/// The fix of a token request's transport `failure`: the cause's, for the authority host.
fn transport_fix(failure: &Failure) -> String {
    let authority = failure.url.origin().ascii_serialization();
    let setting = format!(
        "the authority host (AZURE_AUTHORITY_HOST, or the cloud in ClientOptions; now {authority}; \
         the tenant's cloud's is {})",
        crate::cloud::authority_hosts()
    );
    // The tenant's discovery document: a GET that shows the same connection, TLS and proxy path.
    let probe = match failure.url.as_str().strip_suffix("oauth2/v2.0/token") {
        Some(base) => format!("{base}v2.0/.well-known/openid-configuration"),
        None => failure.url.to_string(),
    };
    failure.fix(&setting, &probe)
}

impl Exchange {
    async fn send(
        &self,
        ctx: &Context<'_>,
        assertion: &Assertion,
        scope: &str,
    ) -> Result<(StatusCode, Option<String>, Option<String>, Vec<u8>), CredentialError> {
        let mut req = Request::new(self.endpoint.clone(), Method::Post);
        req.insert_header(
            headers::CONTENT_TYPE,
            content_type::APPLICATION_X_WWW_FORM_URLENCODED,
        );
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", scope)
            .append_pair("client_assertion_type", ASSERTION_TYPE)
            .append_pair("client_assertion", assertion.secret())
            .finish();
        req.set_body(body);
        let (status, hdrs, body) = send_capped_in(&self.pipeline, ctx, &mut req, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                SendError::Transport(e) => {
                    transport_error(&Failure::of(&self.endpoint, &e), None).with_source(e)
                }
                SendError::BrokeOff { status, received, error } => {
                    let failure = Failure::of(&self.endpoint, &error);
                    CredentialError::new(
                        failure.cause,
                        format!(
                            "the token endpoint's answer (HTTP {}) from {} broke off: {}. \
                             This is usually transient; the credential retries.\n  Cause: after {received} bytes: {}",
                            u16::from(status),
                            failure.origin,
                            failure.words(),
                            failure.chain,
                        ),
                    )
                    .with_fix(transport_fix(&failure))
                    .with_transient(true)
                    .with_source(error)
                }
                SendError::TooLarge { status } => invalid_response(
                    status,
                    format!("a body larger than {MAX_RESPONSE_BYTES} bytes (reading stopped there)"),
                ),
            })?;
        let retry_after = hdrs.get_optional_string(&headers::RETRY_AFTER);
        let date = hdrs.get_optional_string(&headers::HeaderName::from_static("date"));
        Ok((status, retry_after, date, body))
    }
}

#[async_trait::async_trait]
impl TokenSource for Exchange {
    async fn fetch(
        &self,
        scopes: &[String],
        ctx: &Context<'static>,
    ) -> Result<FetchedToken, CredentialError> {
        let scope = scopes.join(" ");
        let started = std::time::Instant::now();
        if let Some(p) = ctx.value::<Arc<Progress>>() {
            p.set(Phase::Assertion);
        }
        let assertion = self.assertion.assertion().await?;
        // `expires_in` counts from when the request is sent, not from when the answer arrives.
        let sent = self.clock.now();
        let (status, retry_after, date, body) = self.send(ctx, &assertion, &scope).await?;
        let result = if status.is_success() {
            parse_success(status, &body, sent)
        } else {
            let header = crate::jwt::decode_header(assertion.secret());
            let ctx = ErrorContext {
                header: header.as_ref(),
                client_id: &self.client_id,
                tenant_id: &self.tenant_id,
                endpoint: &self.endpoint,
                scope: &scope,
                claims: assertion.claims(),
                origin: assertion.origin(),
            };
            let after = retry_after
                .as_deref()
                .and_then(|v| retry_after_delay(v, server_now(date.as_deref(), self.clock.now())));
            let error = parse_error(status, retry_after.as_deref(), &body, &ctx);
            Err(match after {
                Some(after) if matches!(u16::from(status), 429 | 503) => throttled(error, after),
                _ => error.with_retry_after(after),
            })
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(t) => tracing::debug!(
                scope = %scope,
                expires_on = %t.token.expires_on,
                refresh_in_s = t.refresh_in.map(|d| d.whole_seconds()),
                elapsed_ms,
                "acquired an access token from Entra ID"
            ),
            // The cache's "token refresh failed" WARN is the one record of a failure; this one
            // adds the request's timing for debugging.
            Err(e) => tracing::debug!(
                scope = %scope,
                status = e.http_status().map(u16::from),
                aadsts = ?e.aadsts_codes(),
                category = ?e.category(),
                transient = e.is_transient(),
                elapsed_ms,
                // The message's first line: the problem with its values, on one log line.
                error = %e.headline(),
                "token request failed"
            ),
        }
        result
    }

    /// A hang while the assertion is produced is the assertion source's to explain (an AWS STS
    /// call, a token file); the rest is the cache's generic error for the phase.
    fn timed_out(&self, bound: Duration, phase: Phase) -> CredentialError {
        let own = match phase {
            Phase::Assertion => self.assertion.timed_out(bound),
            _ => None,
        };
        own.unwrap_or_else(|| crate::cache::timeout_error(bound, phase))
    }
}
