//! The token request to Entra ID, its response, and Entra's errors.
//!
//! The request is the OAuth 2.0 client-credentials grant with a JWT client assertion (RFC 7523),
//! sent through an azure_core [`Pipeline`]. Success and error bodies are parsed defensively: numbers
//! may be strings, error bodies may be HTML, plain text, truncated or empty, and the size read is
//! capped.

pub(crate) mod catalogue;
mod request;
mod response;
#[cfg(test)]
mod tests;

use catalogue::fill;
use response::{invalid_response, retry_after_delay};
pub(crate) use response::{parse_error, parse_success};

use crate::assertion::{Assertion, AssertionSource};
use crate::cache::{self, Event, Fetched, SourceError, TokenSource};
use crate::clock::Clock;
use crate::error::{CredentialError, log_cache_event};
use crate::escape::escape;
use crate::http::{Failure, SendError, send_capped};
use crate::jwt::{Claims, Header};
use crate::problem::{Page, ProblemId};
use azure_core::credentials::AccessToken;
use azure_core::error::ErrorKind;
use azure_core::http::headers::{self, content_type};
use azure_core::http::{ClientOptions, Context, Method, Pipeline, Request, Url};
use azure_core::time::Duration;
use request::AttemptPolicy;
use request::{Phase, Progress};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The `client_assertion_type` of a JWT bearer assertion.
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Largest response body read from the token endpoint. A real answer is a few KB.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// The exchange: assertion in, access token out.
pub(crate) struct Exchange {
    pub(crate) pipeline: Pipeline,
    pub(crate) endpoint: Url,
    pub(crate) client_id: String,
    pub(crate) tenant_id: String,
    pub(crate) assertion: Arc<dyn AssertionSource>,
    pub(crate) clock: Arc<dyn Clock>,
    /// `RefreshPolicy::attempt_timeout`: a second request is sent only within its first half.
    pub(crate) attempt_timeout: Duration,
}

/// The token request's pipeline over the caller's `options`, with [`AttemptPolicy`] per try.
///
/// A custom `options.transport` is logged as a WARN once per process (not per credential: a pod
/// builds its credentials with the same options), since the exchange cannot see whether it follows
/// redirects, which would re-send the client assertion to the redirect's target.
pub(crate) fn pipeline(options: ClientOptions) -> Pipeline {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if options.transport.is_some() && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            docs = %Page::Security.url("redirects-and-custom-transports"),
            "a custom HTTP transport (ClientOptions::transport) sends the token request: it must \
             not follow redirects, because the request carries the client assertion and a followed \
             307/308 re-sends it to the redirect's target (a reqwest::Client follows up to 10 unless \
             built with .redirect(reqwest::redirect::Policy::none()); azure_core's default \
             transport follows none). Logged once per process"
        );
    }
    crate::http::pipeline(options, vec![Arc::new(AttemptPolicy)])
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

/// The error of a token request that got no answer, from its classified `failure`: a first line
/// naming the endpoint (`scheme://host:port`) and the cause, stable across retries of the fault;
/// the whole error chain; the cause's problem (`transport-connection-refused`, ...) and fix.
/// `cut_at`: the attempt bound that ended the HTTP retry policy's wait after it, if it did. A
/// certificate failure is not transient: no retry fixes it (`RefreshPolicy::permanent_error_ttl`).
fn transport_error(failure: &Failure, cut_at: Option<Duration>) -> CredentialError {
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
    let (origin, words, chain) = (&failure.origin, failure.words(), &failure.chain);
    CredentialError::new(
        failure.cause,
        format!("the token request to {origin} failed before Entra answered: {words}.\n  Cause: {chain}{note}"),
    )
    .with_fix(cause_fix(failure))
}

/// The fix of a transport `failure`'s cause for the authority host.
fn cause_fix(failure: &Failure) -> String {
    let authority = failure.url.origin().ascii_serialization();
    let setting = format!(
        "the authority host (AZURE_AUTHORITY_HOST, or the cloud in ClientOptions; now {authority}; \
         the tenant's cloud's is {})",
        crate::cloud::authority_hosts()
    );
    failure.fix(&setting, &probe(&failure.url))
}

/// The tenant's discovery document for the token endpoint `url`: a GET that takes the same DNS,
/// connection, TLS and proxy path.
fn probe(url: &Url) -> String {
    match url.as_str().strip_suffix("oauth2/v2.0/token") {
        Some(base) => format!("{base}v2.0/.well-known/openid-configuration"),
        None => url.to_string(),
    }
}

impl Exchange {
    /// One token request and its answer, read.
    async fn request(
        &self,
        ctx: &Context<'_>,
        assertion: &Assertion,
        scope: &str,
    ) -> Result<Fetched<AccessToken>, CredentialError> {
        // `expires_in` counts from when the request is sent, not from when the answer arrives.
        let sent = self.clock.now();
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
        let answer = send_capped(&self.pipeline, ctx, &mut req, MAX_RESPONSE_BYTES).await;
        let (status, hdrs, body) = match answer {
            Ok(answer) => answer,
            // Only [`AttemptPolicy`] puts an answer into an error: a throttling one.
            Err(SendError::Transport(e)) => match e.kind() {
                ErrorKind::HttpResponse {
                    raw_response: Some(a),
                    ..
                } => (a.status(), a.headers().clone(), a.body().to_vec()),
                _ => {
                    let failure = Failure::of(&self.endpoint, &e);
                    return Err(transport_error(&failure, None).with_source(e));
                }
            },
            Err(SendError::BrokeOff {
                status,
                received,
                error,
            }) => {
                let failure = Failure::of(&self.endpoint, &error);
                let (origin, words, chain) = (&failure.origin, failure.words(), &failure.chain);
                let facts = format!(
                    "the token endpoint's answer (HTTP {}) from {origin} broke off: {words}. \
                     This is usually transient; the credential retries.\n  Cause: after \
                     {received} bytes: {chain}",
                    u16::from(status),
                );
                return Err(CredentialError::new(failure.cause, facts)
                    .with_fix(cause_fix(&failure))
                    .with_transient(true)
                    .with_source(error));
            }
            Err(SendError::TooLarge { status }) => {
                let what = format!(
                    "a body larger than {MAX_RESPONSE_BYTES} bytes (reading stopped there)."
                );
                return Err(invalid_response(status, None, what));
            }
        };
        if status.is_success() && !response::is_entra_error(&body) {
            return parse_success(status, &body, sent);
        }
        if status.is_redirection() {
            let location = hdrs.get_optional_str(&headers::HeaderName::from_static("location"));
            let to = escape(location.unwrap_or("(no Location header)"));
            let what = format!(
                "a redirect to {to}, which the credential does not follow: the request carries \
                 the client assertion, which goes only to the authority host."
            );
            return Err(invalid_response(status, Some(&self.endpoint), what));
        }
        let header = crate::jwt::decode_header(assertion.secret());
        let ctx = ErrorContext {
            header: header.as_ref(),
            client_id: &self.client_id,
            tenant_id: &self.tenant_id,
            endpoint: &self.endpoint,
            scope,
            claims: assertion.claims(),
            origin: assertion.origin(),
        };
        let retry_after = hdrs.get_optional_str(&headers::RETRY_AFTER);
        // An HTTP-date `Retry-After` is read against the server's clock that wrote it (its `Date`
        // header): a skewed local clock would shorten or stretch it.
        let date = hdrs.get_optional_str(&headers::HeaderName::from_static("date"));
        let now = date.and_then(|d| azure_core::time::parse_rfc7231(d.trim()).ok());
        let after = retry_after.and_then(|v| retry_after_delay(v, now.unwrap_or(self.clock.now())));
        let error = parse_error(status, retry_after, &body, &ctx);
        let code = u16::from(status);
        Err(match after {
            // Throttled: said first (the cache then sends nothing before `after` passes); the
            // answer's problem, fix and Entra's words stay, and its error is the source.
            Some(after) if matches!(code, 429 | 503) => {
                let secs = after.whole_seconds();
                (error.clone())
                    .map_facts(|detail| {
                        format!(
                            "Entra throttled the token request (HTTP {code}, retry after {secs} s, transient). \
                             The credential sends no new request before then and keeps serving a cached token that is still valid. \
                             Details: {detail}"
                        )
                    })
                    .with_transient(true)
                    .with_retry_after(Some(after))
                    .with_source(error)
            }
            _ => error.with_retry_after(after),
        })
    }

    /// Whether (after how long, and why) the request that failed with `error`, `elapsed` into
    /// the attempt, is sent once more: a throttling answer whose `Retry-After` passes within the
    /// first half of `attempt_timeout` (never earlier), and, on a `cold` attempt (no valid token
    /// cached: the caller waits for this error), Entra's [possibly
    /// transient](catalogue::POSSIBLY_TRANSIENT) codes after 1 to 2 s (jittered), when that too
    /// fits (with a valid token cached, the cache serves it and retries with its backoff).
    fn second_try(
        &self,
        error: &CredentialError,
        elapsed: std::time::Duration,
        cold: bool,
    ) -> Option<(Duration, &'static str)> {
        let budget = self.attempt_timeout / 2 - Duration::try_from(elapsed).ok()?;
        let (wait, why) = match (error.retry_after(), error.aadsts_codes().first()) {
            (Some(after), _) if matches!(error.http_status().map(u16::from), Some(429 | 503)) => {
                (after, "after the answer's Retry-After")
            }
            (None, Some(code)) if cold && catalogue::POSSIBLY_TRANSIENT.contains(code) => (
                Duration::seconds_f64(1.0 + rand::random::<f64>()),
                "Entra reports this code intermittently",
            ),
            _ => return None,
        };
        (wait <= budget).then_some((wait, why))
    }
}

impl SourceError for CredentialError {
    fn is_transient(&self) -> bool {
        CredentialError::is_transient(self)
    }
    fn retry_after(&self) -> Option<Duration> {
        CredentialError::retry_after(self)
    }
}

/// A token cache's own `failure` for `scope` as the caller's error. A time-out names the phase that
/// hung: while the HTTP retry policy waits after a transport failure, that failure (its cause is
/// the problem, not the bound); while the assertion is produced, the `assertion` source's error
/// when it has one.
fn failure_error(
    scope: &str,
    failure: cache::Failure<Progress>,
    assertion: Option<&dyn AssertionSource>,
) -> CredentialError {
    let what = || format!("access token request for scope {scope}");
    match failure {
        cache::Failure::TimedOut { bound, progress } => {
            let (phase, url, last) = progress.as_deref().map(Progress::get).unwrap_or_default();
            match (phase, last) {
                (Phase::RetryWait, Some(failure)) => transport_error(&failure, Some(bound)),
                (Phase::Assertion, _) => assertion
                    .and_then(|a| a.timed_out(bound))
                    .unwrap_or_else(|| timeout_error(bound, phase, None, None)),
                (phase, last) => timeout_error(bound, phase, url, last),
            }
        }
        cache::Failure::Vanished { times } => crate::http::abandoned_error(&what(), times),
        cache::Failure::Panicked(message) => crate::http::panicked_error(&what(), &message),
    }
}

/// The error of an attempt (or a wait) that outlived `attempt_timeout`, naming the phase that hung,
/// the host of the request that hung (`url`), and the transport failure of the try before it
/// (`last`: then the fix is that cause's). A request that hung inside the HTTP transport (DNS,
/// connect, TLS, waiting for the answer) is one phase: azure_core's `HttpClient` does not say
/// which step it was in, so the error lists them and the fix gives a probe for each.
fn timeout_error(
    bound: Duration,
    phase: Phase,
    url: Option<Url>,
    last: Option<Failure>,
) -> CredentialError {
    let (what, fix) = match phase {
        Phase::Starting => (
            "the token request did not start within {secs} s: the task that runs it was not \
             polled (is the async runtime blocked or busy?)",
            "keep the async runtime responsive: move blocking work to spawn_blocking, or give the runtime more worker threads.",
        ),
        Phase::Assertion => (
            "reading the client assertion (the service-account token file, or the assertion \
             source) did not finish within {secs} s",
            "check the volume holding the token file (a hung network mount, a FIFO) or the assertion source, {raise}.",
        ),
        Phase::Request => (
            "the token endpoint{host} did not answer within {secs} s: {name} did not \
             resolve, the connection or the TLS handshake did not complete, or Entra did \
             not answer (the HTTP transport does not say which)",
            "check network access to the authority host (egress rules, proxy, DNS){probes}, {raise}.",
        ),
        Phase::RetryWait => (
            "the token request was still being retried after {secs} s (the last try failed \
             with a retryable answer and the HTTP retry policy was waiting before the next \
             one; the previous log lines show the answers)",
            "use a shorter retry policy (ClientOptions::retry = token_retry_options()) so that the cache does the retrying, {raise}.",
        ),
        Phase::Response => (
            "the token endpoint's answer was still being read after {secs} s (a slow or \
             stalled body from{host})",
            "check any proxy between this pod and the authority host, {raise}.",
        ),
    };
    let host = url.as_ref().and_then(Url::host_str);
    let value = |name: &str| -> Option<String> {
        Some(match (name, &url, host) {
            ("secs", ..) => bound.as_seconds_f64().to_string(),
            ("host", Some(u), _) => format!(" {}", u.origin().ascii_serialization()),
            ("name", _, Some(h)) => format!("the name {h}"),
            ("name", ..) => "its name".to_owned(),
            ("probes", Some(u), Some(h)) => format!(
                " (`nslookup {h}` shows whether the name resolves, `curl -sv {}` whether a \
                 connection, TLS and an answer follow)",
                probe(u)
            ),
            ("host" | "probes", ..) => String::new(),
            ("raise", ..) => "or raise RefreshPolicy::attempt_timeout (WorkloadIdentityCredentialOptions::refresh_policy) if it is just slow".to_owned(),
            _ => return None,
        })
    };
    let (before, fix) = match &last {
        Some(f) => {
            let (words, chain) = (f.words(), &f.chain);
            let before = format!("\n  The try before failed: {words}.\n  Cause: {chain}");
            (before, cause_fix(f))
        }
        None => (String::new(), fill(fix, &value)),
    };
    let what = fill(what, &value);
    CredentialError::new(
        ProblemId::Timeout,
        format!("{what}; the bound is RefreshPolicy::attempt_timeout.{before}"),
    )
    .with_fix(fix)
}

impl TokenSource for Exchange {
    type Token = AccessToken;
    type Error = CredentialError;
    type Context = Context<'static>;
    type Progress = Progress;

    /// One attempt: the assertion, then the token request, sent once more when
    /// [`second_try`](Exchange::second_try) says so.
    async fn fetch(
        &self,
        scope: &str,
        ctx: Context<'static>,
        progress: Arc<Progress>,
        cold: bool,
    ) -> Result<Fetched<AccessToken>, CredentialError> {
        let started = std::time::Instant::now();
        progress.set(Phase::Assertion);
        let ctx = ctx.with_value(progress);
        let assertion = self.assertion.assertion().await?;
        let mut result = self.request(&ctx, &assertion, scope).await;
        if let Err(e) = &result
            && let Some((wait, why)) = self.second_try(e, started.elapsed(), cold)
        {
            tracing::debug!(scopes = %scope, wait_ms = wait.whole_milliseconds() as u64, error = %e.headline(), "sending the token request again ({why})");
            azure_core::async_runtime::get_async_runtime()
                .sleep(wait)
                .await;
            let again = self.request(&ctx, &assertion, scope).await;
            let secs = wait.as_seconds_f64();
            result = again.map_err(|e| {
                e.map_facts(|f| {
                    format!("{f}\n  Sent twice, {secs:.1} s apart ({why}); both failed.")
                })
            });
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(t) => tracing::debug!(
                scope = %scope,
                expires_on = %t.token.expires_on,
                refresh_in_s = t.refresh_in.map(|d| d.whole_seconds()),
                elapsed_ms,
                "acquired an access token from Entra ID"
            ),
            // The "token refresh failed" WARN is the one record of a failure; this one adds the
            // request's timing for debugging.
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

    fn failed(&self, scope: &str, failure: cache::Failure<Progress>) -> CredentialError {
        failure_error(scope, failure, Some(&*self.assertion))
    }

    /// The credential's log records: one per attempt's start and end, the outage WARN, and a
    /// cached token served after a wait that ended without a token.
    fn observe(&self, scope: &str, event: Event<'_, Self>) {
        log_cache_event!(event, scopes = scope, "access token", "token", false);
    }
}
