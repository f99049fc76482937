//! Entra's answer: a token, or an error explained with the catalogue.

use super::ErrorContext;
use super::catalogue::{POSSIBLY_TRANSIENT, entra_problem};
use crate::cache::Fetched;
use crate::error::{CredentialError, EntraAnswer};
use crate::escape::escape;
use crate::problem::ProblemId;
use azure_core::credentials::AccessToken;
use azure_core::error::ErrorKind;
use azure_core::http::Url;
use azure_core::http::headers::{self, Headers};
use azure_core::http::{RawResponse, StatusCode};
use azure_core::time::Duration;
use serde::Deserialize;
use serde_json::Value;

/// Entra's error body (all fields optional: gateways send other things).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorBody {
    error: Option<String>,
    error_description: Option<String>,
    error_codes: Vec<u32>,
    trace_id: Option<String>,
    correlation_id: Option<String>,
}

/// An answer with `status` that is neither a token nor Entra's error: `what` it held, ending its
/// sentence; the token `endpoint` is named when given.
pub(super) fn invalid_response(
    status: StatusCode,
    endpoint: Option<&Url>,
    what: impl std::fmt::Display,
) -> CredentialError {
    let (code, endpoint) = (u16::from(status), endpoint.map(|e| format!(" {e}")));
    CredentialError::new(
        ProblemId::InvalidResponse,
        format!(
            "the token endpoint{} answered HTTP {code} with {what}",
            endpoint.unwrap_or_default()
        ),
    )
    .with_status(status)
}

/// Parse a 2xx body sent at `now`. Numbers may be strings; a field of another type is named.
pub(crate) fn parse_success(
    status: StatusCode,
    body: &[u8],
    now: time::OffsetDateTime,
) -> Result<Fetched<AccessToken>, CredentialError> {
    let invalid = |what: String| invalid_response(status, None, what + ".");
    let parsed: serde_json::Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        let len = body.len();
        invalid(match () {
            _ if body.is_empty() => "an empty body".to_string(),
            _ if e.is_eof() => format!("a truncated JSON body ({len} bytes)"),
            _ if e.is_syntax() => {
                format!("a body that is not a token response ({len} bytes: not JSON)")
            }
            _ => {
                format!("a body that is not a token response ({len} bytes: unexpected JSON fields)")
            }
        })
        .with_transient(true)
    })?;
    // A field of the wrong type: its name and JSON type (never its value: it may be the token).
    let wrong = |name: &str, v: &Value, expected: &str| {
        let kind = match v {
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            _ => "an object",
        };
        invalid(format!(
            "a token response whose {name} is {kind}, not {expected}"
        ))
    };
    let text = |name: &str| match parsed.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(v) => Err(wrong(name, v, "a string")),
    };
    let number = |name: &str| match parsed.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
            let shown = escape(&s.chars().take(32).collect::<String>()).into_owned();
            invalid(format!(
                "a token response whose {name} is {shown:?}, not a number"
            ))
        }),
        Some(v) => Err(wrong(name, v, "a number")),
    };
    let token = (text("access_token")?.filter(|t| !t.is_empty()))
        .ok_or_else(|| invalid("a JSON body without an access_token".into()))?;
    if let Some(tt) = text("token_type")?.filter(|t| !t.eq_ignore_ascii_case("bearer")) {
        return Err(invalid(format!("token_type {tt:?}, expected \"Bearer\"")));
    }
    let expires_in = (number("expires_in")?.filter(|s| *s > 0))
        .ok_or_else(|| invalid("a token response without a positive expires_in".into()))?;
    let refresh_in = number("refresh_in")?.filter(|r| *r > 0 && *r < expires_in);
    // `now + expires_in` overflows (and `+` would panic) for absurd values such as 1e300.
    let expires_on = now
        .checked_add(Duration::seconds(expires_in))
        .ok_or_else(|| {
            invalid(format!(
                "expires_in {expires_in}, which is beyond any representable date"
            ))
        })?;
    Ok(Fetched {
        token: AccessToken::new(token.to_owned(), expires_on),
        expires_on,
        lifetime: Duration::seconds(expires_in),
        refresh_in: refresh_in.map(Duration::seconds),
    })
}

/// Whether a body is Entra's error answer (`error` or `error_codes`), whatever the status.
pub(super) fn is_entra_error(body: &[u8]) -> bool {
    serde_json::from_slice::<ErrorBody>(body)
        .is_ok_and(|b| b.error.is_some() || !b.error_codes.is_empty())
}

pub(super) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default().trim()
}

/// `Retry-After` as a delay from `now`: delta-seconds or an HTTP date (RFC 7231).
pub(crate) fn retry_after_delay(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u32>() {
        return Some(Duration::seconds(i64::from(secs)));
    }
    let at = azure_core::time::parse_rfc7231(value).ok()?;
    Some((at - now).max(Duration::ZERO))
}

/// Turn a non-2xx answer into an error that says what failed and how to fix it. Its
/// [`source`](std::error::Error::source) is the `azure_core::Error` of kind
/// `ErrorKind::HttpResponse { status, error_code, raw_response }` that azure_identity returns for
/// the same answer (`error_code`: the AADSTS codes joined by commas, as azure_identity does), so
/// code that walks the chain for it finds it.
pub(crate) fn parse_error(
    status: StatusCode,
    retry_after: Option<&str>,
    body: &[u8],
    ctx: &ErrorContext<'_>,
) -> CredentialError {
    let b: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let description = (b.error_description.as_deref().map(first_line))
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    let joined: Vec<_> = b.error_codes.iter().map(u32::to_string).collect();
    let mut headers = Headers::new();
    if let Some(r) = retry_after {
        headers.insert(headers::RETRY_AFTER, r.to_string());
    }
    let answer = RawResponse::from_bytes(status, headers, body.to_vec());
    let kind = ErrorKind::HttpResponse {
        status,
        error_code: Some(joined.join(",")).filter(|c| !c.is_empty()),
        raw_response: Some(Box::new(answer)),
    };
    let message = (description.clone()).unwrap_or_else(|| format!("HTTP {}", u16::from(status)));
    let http = azure_core::Error::with_message(kind, message);
    let error = match b.error.is_some() || !b.error_codes.is_empty() {
        true => {
            let answer = EntraAnswer {
                description,
                error: b.error,
                trace_id: b.trace_id,
                correlation_id: b.correlation_id,
            };
            entra_error(status, retry_after, b.error_codes, answer, ctx)
        }
        false => foreign_error(status, retry_after, body, ctx.endpoint),
    };
    error.with_source(http)
}

/// Entra's error answer with `codes`, explained by the catalogue entry of the first.
fn entra_error(
    status: StatusCode,
    retry_after: Option<&str>,
    codes: Vec<u32>,
    answer: EntraAnswer,
    ctx: &ErrorContext<'_>,
) -> CredentialError {
    let (code, scope) = (u16::from(status), ctx.scope);
    let code_text = match codes.is_empty() {
        true => "no AADSTS code".to_string(),
        false => codes
            .iter()
            .map(|c| format!("AADSTS{c}"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let error = answer.error.as_deref().unwrap_or("");
    let retry = retry_after.map(|r| format!(", Retry-After: {r}"));
    let primary = codes.first().copied();
    // The first line: the entry's key fact with its values, the same for every retry of the
    // fault (Retry-After, trace and correlation ids only further down); the generic line for a
    // code without an entry.
    let (first, rest, fix) = match primary.map(|c| (c, entra_problem(c, ctx))) {
        Some((_, Some(p))) => {
            let retry = retry.unwrap_or_default();
            let facts = Some(&p.facts).filter(|f| !f.is_empty());
            let facts = facts.map(|f| format!("\n  {f}")).unwrap_or_default();
            let rest = format!("\n  Scope {scope}; HTTP {code}, error {error:?}{retry}.{facts}");
            (format!(": {} ({code_text})", p.headline), rest, p.fix)
        }
        other => {
            let (facts, fix) = match other {
                Some((c, _)) => (
                    "Entra answered with an error code this crate has no entry for.",
                    ProblemId::Aadsts(c).fix().unwrap_or_default(),
                ),
                None => (
                    "Entra answered without an AADSTS code.",
                    "see Entra's words below.",
                ),
            };
            let http = retry
                .map(|r| format!("\n  HTTP {code}{r}."))
                .unwrap_or_default();
            let first = format!(" for scope {scope} (HTTP {code}, {code_text}, error {error:?})");
            (first, format!("{http}\n  {facts}"), fix.to_owned())
        }
    };
    CredentialError::new(
        primary.map_or(ProblemId::EntraError, ProblemId::Aadsts),
        format!("Entra ID rejected the token request{first}.{rest}"),
    )
    .with_fix(fix)
    .with_status(status)
    .with_transient(
        primary.is_some_and(|c| POSSIBLY_TRANSIENT.contains(&c))
            || matches!(code, 408 | 429 | 500..),
    )
    .with_aadsts(codes)
    .with_entra_answer(answer)
}

/// An error answer that is not Entra's (a gateway's HTML page, text, nothing).
fn foreign_error(
    status: StatusCode,
    retry_after: Option<&str>,
    body: &[u8],
    endpoint: &Url,
) -> CredentialError {
    let (code, len) = (u16::from(status), body.len());
    // An HTML page (or any markup): its first 256 bytes start with `<` after white space.
    let html = String::from_utf8_lossy(&body[..len.min(256)])
        .trim_start()
        .starts_with('<');
    let what = match () {
        _ if body.is_empty() => "an empty body".to_string(),
        _ if html => format!(
            "an HTML page ({len} bytes), typically from a proxy or gateway in front of Entra"
        ),
        _ if std::str::from_utf8(body).is_ok() => format!("a non-JSON text body ({len} bytes)"),
        _ => format!("a binary body ({len} bytes)"),
    };
    let retry = retry_after
        .map(|r| format!("; Retry-After: {r}"))
        .unwrap_or_default();
    let advice = match code {
        429 => " Entra is throttling this client; the credential backs off and retries.",
        500.. => " This is usually transient; the credential retries.",
        _ => "",
    };
    invalid_response(status, Some(endpoint), format!("{what}{retry}.{advice}"))
}
