//! The token request to Entra ID, its response, and Entra's errors.
//!
//! The request is the OAuth 2.0 client-credentials grant with a JWT client assertion (RFC 7523),
//! sent through an azure_core [`Pipeline`]. Success and error bodies are parsed defensively: numbers
//! may be strings, error bodies may be HTML, plain text, truncated or empty, and the size read is
//! capped.

use crate::assertion::{Assertion, AssertionSource, ForeignAudience};
use crate::cache::{FetchedToken, TokenSource};
use crate::clock::Clock;
use crate::config::{
    AUDIENCE_CHINA, AUDIENCE_PUBLIC, AUDIENCE_US_GOV, AZURE_FEDERATED_TOKEN_AUDIENCE,
};
use crate::error::{CredentialError, ErrorCategory};
use crate::http::{Phase, Progress, SendError, send_capped_in};
use crate::jwt::Claims;
use azure_core::credentials::AccessToken;
use azure_core::http::headers::{self, content_type};
use azure_core::http::{Context, Method, Pipeline, Request, StatusCode, Url};
use azure_core::time::Duration;
use serde::{Deserialize, Deserializer};
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

fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Int(i64),
        Float(f64),
        Str(String),
        Null(()),
    }
    Ok(match N::deserialize(d)? {
        N::Int(i) => Some(i),
        N::Float(f) => Some(f as i64),
        N::Str(s) => Some(s.trim().parse::<i64>().map_err(serde::de::Error::custom)?),
        N::Null(()) => None,
    })
}

#[derive(Deserialize)]
struct SuccessBody {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    expires_in: Option<i64>,
    #[serde(default, deserialize_with = "number_or_string")]
    refresh_in: Option<i64>,
}

/// Entra's error body (all fields optional: gateways send other things).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub(crate) error: Option<String>,
    #[serde(default)]
    pub(crate) error_description: Option<String>,
    #[serde(default)]
    pub(crate) error_codes: Vec<u32>,
    #[serde(default)]
    pub(crate) trace_id: Option<String>,
    #[serde(default)]
    pub(crate) correlation_id: Option<String>,
}

/// What we know locally, to explain Entra's answer.
pub(crate) struct ErrorContext<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) tenant_id: &'a str,
    pub(crate) endpoint: &'a Url,
    pub(crate) scope: &'a str,
    pub(crate) claims: Option<&'a Claims>,
    pub(crate) origin: &'a str,
}

fn invalid_response(status: StatusCode, what: String) -> CredentialError {
    CredentialError::new(
        ErrorCategory::InvalidResponse,
        format!(
            "WorkloadIdentityCredential: the token endpoint answered HTTP {} with {what}.",
            u16::from(status)
        ),
    )
    .with_docs("invalid-response")
    .with_status(status)
}

/// Parse a 2xx body.
pub(crate) fn parse_success(
    status: StatusCode,
    body: &[u8],
    now: time::OffsetDateTime,
) -> Result<FetchedToken, CredentialError> {
    let parsed: SuccessBody = serde_json::from_slice(body).map_err(|e| {
        let what = if body.is_empty() {
            "an empty body".to_string()
        } else if e.is_eof() {
            format!("a truncated JSON body ({} bytes)", body.len())
        } else {
            format!(
                "a body that is not a token response ({} bytes: {})",
                body.len(),
                e.classify_kind()
            )
        };
        invalid_response(status, what).with_transient(true)
    })?;
    let token = parsed
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid_response(status, "a JSON body without an access_token".into()))?;
    if let Some(tt) = &parsed.token_type
        && !tt.eq_ignore_ascii_case("bearer")
    {
        return Err(invalid_response(
            status,
            format!("token_type {tt:?}, expected \"Bearer\""),
        ));
    }
    let expires_in = parsed.expires_in.filter(|s| *s > 0).ok_or_else(|| {
        invalid_response(
            status,
            "a token response without a positive expires_in".into(),
        )
    })?;
    let refresh_in = parsed
        .refresh_in
        .filter(|r| *r > 0 && *r < expires_in)
        .map(Duration::seconds);
    // `now + expires_in` overflows (and `+` would panic) for absurd values such as 1e300.
    let expires_on = now
        .checked_add(Duration::seconds(expires_in))
        .ok_or_else(|| {
            invalid_response(
                status,
                format!("expires_in {expires_in}, which is beyond any representable date"),
            )
        })?;
    Ok(FetchedToken {
        token: AccessToken::new(token, expires_on),
        lifetime: Duration::seconds(expires_in),
        refresh_in,
    })
}

trait ClassifyKind {
    fn classify_kind(&self) -> &'static str;
}
impl ClassifyKind for serde_json::Error {
    fn classify_kind(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "unexpected JSON fields",
            serde_json::error::Category::Eof => "truncated JSON",
            serde_json::error::Category::Io => "unreadable",
        }
    }
}

fn looks_like_html(body: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&body[..body.len().min(256)]).to_ascii_lowercase();
    let head = head.trim_start();
    head.starts_with("<!doctype") || head.starts_with("<html") || head.starts_with('<')
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default().trim()
}

/// AADSTS codes with their own entry in docs/troubleshooting.md.
pub(crate) const DOCUMENTED_CODES: &[u32] = &[
    70021, 700211, 700212, 700213, 7002137, 7002138, 700024, 90061, 700027, 50027, 900384, 700016,
    90002, 90023, 1002012, 70011, 50196,
];

/// The troubleshooting anchor for an AADSTS code.
pub(crate) fn anchor_for(code: u32) -> String {
    if DOCUMENTED_CODES.contains(&code) {
        format!("aadsts{code}")
    } else {
        "entra-errors".to_string()
    }
}

fn hint_for(code: u32, ctx: &ErrorContext<'_>) -> String {
    let iss = ctx
        .claims
        .and_then(|c| c.iss.as_deref())
        .unwrap_or("(unknown)");
    let sub = ctx
        .claims
        .and_then(|c| c.sub.as_deref())
        .unwrap_or("(unknown)");
    let aud = ctx
        .claims
        .map(Claims::audiences_display)
        .unwrap_or_else(|| "(unknown)".into());
    let app = format!(
        "application (client id) {} in tenant {}",
        ctx.client_id, ctx.tenant_id
    );
    match code {
        70021 | 700211 | 700212 | 700213 | 7002137 | 7002138 => {
            let which = match code {
                700211 => "Its issuer does not match.",
                700212 => "Its audience does not match.",
                700213 | 7002137 | 7002138 => "Its subject does not match.",
                _ => "No federated credential has exactly this issuer, subject and audience.",
            };
            let (what, shape) = if sub.starts_with("arn:aws:") {
                (
                    "the AWS web-identity token",
                    "the issuer is the AWS account's https://<id>.tokens.sts.global.api.aws URL; the subject is the IAM role ARN",
                )
            } else {
                (
                    "the service-account token",
                    "an EKS issuer has no trailing slash; the subject is system:serviceaccount:<namespace>:<service account>",
                )
            };
            let auds = ctx.claims.map(|c| c.aud.as_slice()).unwrap_or_default();
            let recommended = [AUDIENCE_PUBLIC, AUDIENCE_US_GOV, AUDIENCE_CHINA];
            let fix = match ctx.claims.and_then(ForeignAudience::first_in_claims) {
                Some(foreign) => format!(
                    "Fix: the federated credential's issuer and subject must equal these values exactly (case-sensitive; {shape}); \
                     its audience must not be this token's, which makes the token a credential for {}. Mount a dedicated projected token \
                     with audience {AUDIENCE_PUBLIC} and use it for Entra.",
                    foreign.describe()
                ),
                None if !auds.is_empty() && !auds.iter().any(|a| recommended.contains(&a.as_str())) => format!(
                    "Fix: the token's audience is {aud}, not the recommended {AUDIENCE_PUBLIC}: either add {aud} to the federated \
                     credential's audiences (with the issuer and subject above, exactly; {shape}), or set the projected volume's \
                     serviceAccountToken.audience to {AUDIENCE_PUBLIC}, the federated credential's default; setting \
                     {AZURE_FEDERATED_TOKEN_AUDIENCE} makes the credential check the audience before sending."
                ),
                None => format!(
                    "Fix: create or correct the federated credential so that its issuer, subject and audience equal these values exactly \
                     (case-sensitive; {shape})."
                ),
            };
            format!(
                "Entra found no federated identity credential on {app} that matches {what}. {which}\n  \
                 The token ({origin}) has:\n    issuer:   {iss}\n    subject:  {sub}\n    audience: {aud}\n  \
                 {fix} `azure-identity-k8s setup` prints the command. A credential created in the last few minutes may still be propagating.",
                origin = ctx.origin
            )
        }
        700024 => {
            let (iat, exp) = ctx
                .claims
                .map(|c| (fmt_opt(c.issued_at()), fmt_opt(c.expires_at())))
                .unwrap_or_else(|| ("(unknown)".into(), "(unknown)".into()));
            format!(
                "The service-account token is outside its validity period as Entra sees it (issued at {iat}, expires at {exp}). \
                 Either the kubelet stopped rotating the file ({origin}), the application read the token once and kept it, or this node's clock is off (check NTP).",
                origin = ctx.origin
            )
        }
        90061 => {
            let disco = format!("{}/.well-known/openid-configuration", iss.trim_end_matches('/'));
            format!(
                "Entra could not fetch the issuer's OpenID discovery document or its JWKS from the public internet: {disco}. \
                 The cluster's issuer must be publicly reachable over HTTPS (EKS issuers are; a self-managed cluster must publish \
                 the discovery document and JWKS, e.g. to a public S3 bucket). A private issuer such as https://kubernetes.default.svc can never work."
            )
        }
        700027 | 50027 | 900384 => format!(
            "Entra could not validate the token's signature with the keys published by its issuer {iss}. The issuer's JWKS must contain \
             the key that signs service-account tokens (RS256, matching kid); after a signing-key rotation, publish the new key too."
        ),
        700016 => format!(
            "No application with client id {} exists in tenant {}. Check AZURE_CLIENT_ID (the application's or user-assigned managed identity's \
             client id, not its object id) and AZURE_TENANT_ID, and that the authority ({}) is the right cloud.",
            ctx.client_id, ctx.tenant_id, ctx.endpoint.origin().ascii_serialization()
        ),
        90002 | 90023 => format!(
            "Tenant {} was not found at {}. Check AZURE_TENANT_ID and that AZURE_AUTHORITY_HOST is the tenant's cloud \
             (public: https://login.microsoftonline.com, US Gov: https://login.microsoftonline.us, China: https://login.chinacloudapi.cn).",
            ctx.tenant_id, ctx.endpoint.origin().ascii_serialization()
        ),
        1002012 | 70011 => format!(
            "The scope {:?} was rejected. The client-credentials flow takes exactly one resource with the /.default suffix: {}.",
            ctx.scope,
            crate::scope::suggested_scope(ctx.scope)
                .map(|s| format!("request {s}"))
                .unwrap_or_else(|| "e.g. https://storage.azure.com/.default".into())
        ),
        50196 => "Entra detected a loop: this client sent too many identical requests. Reuse the credential (it caches tokens) instead of creating one per request.".into(),
        7000215 | 7000222 => "A client secret was sent instead of (or along with) the assertion; a workload identity uses no secret.".into(),
        _ => "See the Entra ID error code reference for this code.".into(),
    }
}

fn fmt_opt(t: Option<time::OffsetDateTime>) -> String {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .unwrap_or_else(|| "(unknown)".into())
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

/// The server's time, from its `Date` header, so an HTTP-date `Retry-After` is read against the
/// clock that wrote it (a skewed local clock would shorten or stretch it); `local` without one.
fn server_now(date: Option<&str>, local: time::OffsetDateTime) -> time::OffsetDateTime {
    date.and_then(|d| azure_core::time::parse_rfc7231(d.trim()).ok())
        .unwrap_or(local)
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
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (codes, description) = parsed
        .as_ref()
        .map(|b| {
            let codes = b.error_codes.iter().map(u32::to_string).collect::<Vec<_>>();
            let desc = b.error_description.as_deref().map(first_line).unwrap_or("");
            (codes.join(","), desc.to_string())
        })
        .unwrap_or_default();
    let mut headers = azure_core::http::headers::Headers::new();
    if let Some(r) = retry_after {
        headers.insert(headers::RETRY_AFTER, r.to_string());
    }
    let http = azure_core::Error::with_message(
        azure_core::error::ErrorKind::HttpResponse {
            status,
            error_code: (!codes.is_empty()).then_some(codes),
            raw_response: Some(Box::new(azure_core::http::RawResponse::from_bytes(
                status,
                headers,
                body.to_vec(),
            ))),
        },
        if description.is_empty() {
            format!("HTTP {}", u16::from(status))
        } else {
            description
        },
    );
    describe_error(status, retry_after, body, parsed, ctx).with_source(http)
}

fn describe_error(
    status: StatusCode,
    retry_after: Option<&str>,
    body: &[u8],
    parsed: Option<ErrorBody>,
    ctx: &ErrorContext<'_>,
) -> CredentialError {
    let code = u16::from(status);
    match parsed {
        Some(b) if b.error.is_some() || !b.error_codes.is_empty() => {
            let codes = b.error_codes.clone();
            let primary = codes.first().copied();
            let desc = b.error_description.as_deref().map(first_line).unwrap_or("");
            let code_text = if codes.is_empty() {
                "no AADSTS code".to_string()
            } else {
                codes
                    .iter()
                    .map(|c| format!("AADSTS{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let hint = primary.map(|c| hint_for(c, ctx)).unwrap_or_default();
            let ids = match (&b.trace_id, &b.correlation_id) {
                (Some(t), Some(c)) => format!("\n  Trace ID: {t}, Correlation ID: {c}"),
                _ => String::new(),
            };
            let anchor = primary
                .map(anchor_for)
                .unwrap_or_else(|| "entra-errors".into());
            let retry = retry_after
                .map(|r| format!(" (Retry-After: {r})"))
                .unwrap_or_default();
            CredentialError::new(
                ErrorCategory::Entra,
                format!(
                    "WorkloadIdentityCredential: Entra ID rejected the token request for scope {} (HTTP {code}{retry}, {code_text}, error {:?}).\n  {hint}\n  Entra said: {desc}{ids}",
                    ctx.scope,
                    b.error.as_deref().unwrap_or(""),
                ),
            )
            .with_problem_id(
                primary
                    .map(|c| format!("aadsts{c}"))
                    .unwrap_or_else(|| "entra-errors".into()),
            )
            .with_docs(&anchor)
            .with_fix_text(hint)
            .with_status(status)
            .with_aadsts(codes)
            .with_entra_answer(
                b.error.clone(),
                (!desc.is_empty()).then(|| desc.to_string()),
                b.trace_id.clone(),
                b.correlation_id.clone(),
            )
        }
        _ => {
            let what = if body.is_empty() {
                "an empty body".to_string()
            } else if looks_like_html(body) {
                format!(
                    "an HTML page ({} bytes), typically from a proxy or gateway in front of Entra",
                    body.len()
                )
            } else if std::str::from_utf8(body).is_ok() {
                format!("a non-JSON text body ({} bytes)", body.len())
            } else {
                format!("a binary body ({} bytes)", body.len())
            };
            let retry = retry_after
                .map(|r| format!("; Retry-After: {r}"))
                .unwrap_or_default();
            let advice = if code == 429 {
                " Entra is throttling this client; the credential backs off and retries."
            } else if code >= 500 {
                " This is usually transient; the credential retries."
            } else {
                " Check that the authority host is Entra ID and that no proxy rewrites the request."
            };
            CredentialError::new(
                ErrorCategory::InvalidResponse,
                format!(
                    "WorkloadIdentityCredential: the token endpoint {} answered HTTP {code} with {what}{retry}.{advice}",
                    ctx.endpoint
                ),
            )
            .with_docs("invalid-response")
            .with_status(status)
        }
    }
}

fn transport_error(endpoint: &Url, e: azure_core::Error) -> CredentialError {
    CredentialError::new(
        ErrorCategory::Transport,
        format!(
            "WorkloadIdentityCredential: the token request to {endpoint} failed before Entra answered: {e}. Check network access to the authority host (egress rules, proxy, DNS) and, for a private CA, SSL_CERT_FILE."
        ),
    )
    .with_docs("transport")
    .with_source(e)
}

/// A 429/503 with `Retry-After`: say so first (the cache then sends nothing before it passes).
fn throttled(error: CredentialError, after: Duration) -> CredentialError {
    let status = error.http_status().unwrap_or(StatusCode::TooManyRequests);
    let detail = error
        .message()
        .trim_start_matches("WorkloadIdentityCredential: ")
        .to_owned();
    CredentialError::new(
        error.category(),
        format!(
            "WorkloadIdentityCredential: Entra throttled the token request (HTTP {}, retry after {} s, transient). \
             The credential sends no new request before then and keeps serving a cached token that is still valid. \
             Details: {detail}",
            u16::from(status),
            after.whole_seconds(),
        ),
    )
    .with_status(status)
    .with_aadsts(error.aadsts_codes().to_vec())
    .with_transient(true)
    .with_retry_after(Some(after))
    .with_documentation_url_of(&error)
    .with_source(error)
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
                SendError::Transport(e) => transport_error(&self.endpoint, e),
                SendError::BrokeOff { status, received, error } => CredentialError::new(
                    ErrorCategory::Transport,
                    format!(
                        "WorkloadIdentityCredential: the token endpoint's answer (HTTP {}) broke off after {received} bytes: {error}. This is usually transient; the credential retries.",
                        u16::from(status),
                    ),
                )
                .with_docs("transport")
                .with_source(error),
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
            let ctx = ErrorContext {
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
            Err(e) => tracing::warn!(
                scope = %scope,
                status = e.http_status().map(u16::from),
                aadsts = ?e.aadsts_codes(),
                category = ?e.category(),
                transient = e.is_transient(),
                elapsed_ms,
                "token request failed"
            ),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn ctx_with<'a>(claims: &'a Claims, endpoint: &'a Url) -> ErrorContext<'a> {
        ErrorContext {
            client_id: "11111111-0000-0000-0000-000000000001",
            tenant_id: "tenant-a",
            endpoint,
            scope: "https://storage.azure.com/.default",
            claims: Some(claims),
            origin: "/var/run/secrets/azure/tokens/azure-identity-token",
        }
    }

    #[test]
    fn success_accepts_numbers_and_strings() {
        let s = StatusCode::from(200);
        let t = parse_success(s, br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"abc"}"#, now()).unwrap();
        assert_eq!(t.token.expires_on, now() + Duration::seconds(3599));
        assert_eq!(t.refresh_in, None);
        let t = parse_success(s, br#"{"token_type":"Bearer","expires_in":"7200","refresh_in":"3600","access_token":"abc"}"#, now()).unwrap();
        assert_eq!(t.token.expires_on, now() + Duration::seconds(7200));
        assert_eq!(t.refresh_in, Some(Duration::seconds(3600)));
    }

    #[test]
    fn success_without_token_or_truncated_is_an_error() {
        let s = StatusCode::from(200);
        let e = parse_success(
            s,
            br#"{"token_type":"Bearer","expires_in":3599,"access_token":""}"#,
            now(),
        )
        .unwrap_err();
        assert!(e.message().contains("without an access_token"), "{e}");
        let e = parse_success(s, br#"{"token_type":"Bearer","expires_in":35"#, now()).unwrap_err();
        assert!(e.message().contains("truncated"), "{e}");
        assert!(e.is_transient());
        let e = parse_success(s, b"", now()).unwrap_err();
        assert!(e.message().contains("empty body"), "{e}");
        let e = parse_success(s, br#"{"access_token":"x"}"#, now()).unwrap_err();
        assert!(e.message().contains("expires_in"), "{e}");
    }

    #[test]
    fn absurd_expires_in_is_an_error_not_a_panic() {
        let s = StatusCode::from(200);
        for body in [
            r#"{"token_type":"Bearer","expires_in":9223372036854775807,"access_token":"abc"}"#,
            r#"{"token_type":"Bearer","expires_in":1e300,"access_token":"abc"}"#,
            r#"{"token_type":"Bearer","expires_in":"999999999999999","access_token":"abc"}"#,
        ] {
            let e = parse_success(s, body.as_bytes(), now()).unwrap_err();
            assert!(e.message().contains("beyond any representable date"), "{e}");
            assert_eq!(e.http_status(), Some(s));
        }
    }

    #[test]
    fn retry_after_seconds_and_http_dates() {
        let n = now();
        assert_eq!(retry_after_delay("60", n), Some(Duration::seconds(60)));
        let date = (n + Duration::seconds(90))
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        // RFC 7231's IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
        let imf = azure_core::time::to_rfc7231(&(n + Duration::seconds(90)));
        assert_eq!(
            retry_after_delay(&imf, n),
            Some(Duration::seconds(90)),
            "{date} / {imf}"
        );
        assert_eq!(retry_after_delay("garbage", n), None);
        let past = azure_core::time::to_rfc7231(&(n - Duration::seconds(90)));
        assert_eq!(retry_after_delay(&past, n), Some(Duration::ZERO));
    }

    #[test]
    fn fic_mismatch_echoes_local_claims() {
        let claims = Claims {
            iss: Some("https://oidc.eks.us-east-1.amazonaws.com/id/ABC".into()),
            sub: Some("system:serviceaccount:prod:api".into()),
            aud: vec!["api://AzureADTokenExchange".into()],
            ..Default::default()
        };
        let ep =
            Url::parse("https://login.microsoftonline.com/tenant-a/oauth2/v2.0/token").unwrap();
        let body = br#"{"error":"invalid_client","error_description":"AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: 'x'.\r\nTrace ID: t1\r\nCorrelation ID: c1\r\nTimestamp: 2026-01-01 00:00:00Z","error_codes":[70021],"trace_id":"t1","correlation_id":"c1"}"#;
        let e = parse_error(StatusCode::from(400), None, body, &ctx_with(&claims, &ep));
        let m = e.message();
        assert_eq!(e.aadsts_codes(), &[70021]);
        assert!(!e.is_transient());
        for needle in [
            "AADSTS70021",
            "https://oidc.eks.us-east-1.amazonaws.com/id/ABC",
            "system:serviceaccount:prod:api",
            "api://AzureADTokenExchange",
            "#aadsts70021",
            "Correlation ID: c1",
        ] {
            assert!(m.contains(needle), "missing {needle}: {m}");
        }
    }

    /// The chain azure_identity users walk: `ErrorKind::HttpResponse { status, error_code, .. }`.
    fn http_kind(e: &CredentialError) -> Option<(u16, Option<String>, usize)> {
        let az: azure_core::Error = e.clone().into();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&az);
        while let Some(err) = cur {
            if let Some(a) = err.downcast_ref::<azure_core::Error>()
                && let azure_core::error::ErrorKind::HttpResponse {
                    status,
                    error_code,
                    raw_response,
                } = a.kind()
            {
                let len = raw_response.as_ref().map_or(0, |r| r.body().len());
                return Some((u16::from(*status), error_code.clone(), len));
            }
            cur = err.source();
        }
        None
    }

    #[test]
    fn entra_errors_keep_azure_cores_http_response_kind_in_the_chain() {
        let claims = Claims::default();
        let ep = Url::parse("https://login.microsoftonline.com/t/oauth2/v2.0/token").unwrap();
        let body = br#"{"error":"invalid_client","error_description":"AADSTS700016: Application not found.\r\nTrace ID: t","error_codes":[700016,50000]}"#;
        let e = parse_error(StatusCode::from(400), None, body, &ctx_with(&claims, &ep));
        assert_eq!(
            http_kind(&e),
            Some((400, Some("700016,50000".into()), body.len()))
        );
        // Our own data stays next to it.
        assert_eq!(e.aadsts_codes(), &[700016, 50000]);
        let src = std::error::Error::source(&e).unwrap().to_string();
        assert!(
            src.contains("AADSTS700016: Application not found."),
            "{src}"
        );
        // A gateway's HTML page: the status, no code.
        let e = parse_error(
            StatusCode::from(503),
            Some("7"),
            b"<html>",
            &ctx_with(&claims, &ep),
        );
        assert_eq!(http_kind(&e), Some((503, None, 6)));
    }

    #[test]
    fn fic_mismatch_with_a_custom_audience_names_it_and_the_fix() {
        let ep = Url::parse("https://login.microsoftonline.com/t/oauth2/v2.0/token").unwrap();
        let body = br#"{"error":"invalid_client","error_codes":[700212]}"#;
        let with_aud = |aud: &str| Claims {
            iss: Some("https://oidc.eks.us-east-1.amazonaws.com/id/ABC".into()),
            sub: Some("system:serviceaccount:prod:api".into()),
            aud: vec![aud.into()],
            ..Default::default()
        };
        let claims = with_aud("api://my-custom-audience");
        let m = parse_error(StatusCode::from(400), None, body, &ctx_with(&claims, &ep))
            .message()
            .to_string();
        assert!(
            m.contains("the token's audience is api://my-custom-audience, not the recommended api://AzureADTokenExchange")
                && m.contains("add api://my-custom-audience to the federated credential's audiences")
                && m.contains("serviceAccountToken.audience to api://AzureADTokenExchange"),
            "{m}"
        );
        // A foreign audience (sent only with allow_foreign_audience) is never suggested.
        for aud in [
            "sts.amazonaws.com",
            "https://oidc.eks.us-east-1.amazonaws.com/id/ABC",
        ] {
            let claims = with_aud(aud);
            let m = parse_error(StatusCode::from(400), None, body, &ctx_with(&claims, &ep))
                .message()
                .to_string();
            assert!(
                m.contains("must not be this token's") && !m.contains(&format!("add {aud}")),
                "{m}"
            );
        }
    }

    #[test]
    fn non_json_error_bodies_keep_the_status() {
        let claims = Claims::default();
        let ep = Url::parse("https://login.microsoftonline.com/t/oauth2/v2.0/token").unwrap();
        let ctx = ctx_with(&claims, &ep);
        let e = parse_error(
            StatusCode::from(502),
            None,
            b"<html><body>Bad Gateway</body></html>",
            &ctx,
        );
        assert!(
            e.is_transient() && e.message().contains("HTML") && e.message().contains("502"),
            "{e}"
        );
        let e = parse_error(StatusCode::from(429), Some("60"), b"", &ctx);
        assert!(
            e.is_transient()
                && e.message().contains("Retry-After: 60")
                && e.message().contains("empty body"),
            "{e}"
        );
        let e = parse_error(StatusCode::from(400), None, b"{\"error\":", &ctx);
        assert_eq!(e.http_status(), Some(StatusCode::from(400)));
        assert!(!e.is_transient());
    }

    #[test]
    fn every_anchor_in_messages_exists_in_the_troubleshooting_page() {
        let doc = include_str!("../docs/troubleshooting.md");
        let has = |a: &str| doc.contains(&format!("<a id=\"{a}\"></a>"));
        for code in DOCUMENTED_CODES {
            assert!(has(&anchor_for(*code)), "missing anchor for {code}");
        }
        assert_eq!(anchor_for(123), "entra-errors");
        // Every anchor named literally in the sources: `with_docs("...")` and the token file's
        // problems (the token-file-* literals, passed on through `file_error`).
        let sources = [
            include_str!("entra.rs"),
            include_str!("config.rs"),
            include_str!("credential.rs"),
            include_str!("cache/mod.rs"),
            include_str!("assertion/token_file.rs"),
            include_str!("assertion/file_read.rs"),
            include_str!("assertion/client_assertion.rs"),
        ];
        let mut seen = 0;
        for src in sources {
            for marker in ["with_docs(\"", "\"token-file-"] {
                for (i, _) in src.match_indices(marker) {
                    let start = i + marker.find('"').unwrap() + 1;
                    let anchor: String = src[start..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect();
                    // An argument ends with `")` or `",`; skip this test's own markers and
                    // other constants (the reader thread's name).
                    let after = &src[start + anchor.len()..];
                    if anchor.is_empty() || !(after.starts_with("\")") || after.starts_with("\","))
                    {
                        continue;
                    }
                    seen += 1;
                    assert!(
                        has(&anchor),
                        "docs/troubleshooting.md has no anchor {anchor:?}"
                    );
                    assert!(
                        crate::error::troubleshooting_url(&anchor)
                            .starts_with("https://docs.rs/azure_identity_k8s/")
                    );
                }
            }
        }
        assert!(seen >= 12, "found only {seen} links");
    }

    #[test]
    fn the_first_line_is_the_same_across_retries_and_the_ids_are_fields() {
        let claims = Claims::default();
        let ep = Url::parse("https://login.microsoftonline.com/t/oauth2/v2.0/token").unwrap();
        let answer = |trace: &str, corr: &str, ts: &str| {
            format!(
                r#"{{"error":"invalid_client","error_description":"AADSTS700016: Application not found.\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}","error_codes":[700016],"trace_id":"{trace}","correlation_id":"{corr}","timestamp":"{ts}"}}"#
            )
        };
        let a = parse_error(
            StatusCode::from(400),
            None,
            answer("t-1", "c-1", "2026-01-01 00:00:00Z").as_bytes(),
            &ctx_with(&claims, &ep),
        );
        let b = parse_error(
            StatusCode::from(400),
            None,
            answer("t-2", "c-2", "2026-01-01 00:00:07Z").as_bytes(),
            &ctx_with(&claims, &ep),
        );
        assert_eq!(first_line(a.message()), first_line(b.message()));
        assert_ne!(a.message(), b.message(), "the ids are further down");
        for line in [first_line(a.message()), first_line(&a.to_string())] {
            assert!(!line.contains("t-1") && !line.contains("c-1") && !line.contains("2026"));
        }
        assert_eq!(a.problem_id(), Some("aadsts700016"));
        assert_eq!(a.problem_id(), b.problem_id());
        assert_eq!(a.fix(), b.fix());
        assert_eq!(a.documentation_url(), b.documentation_url());
        assert!(
            a.documentation_url()
                .unwrap()
                .ends_with("/troubleshooting/index.html#aadsts700016")
        );
        assert_eq!(
            (a.trace_id(), a.correlation_id()),
            (Some("t-1"), Some("c-1"))
        );
        assert_eq!(
            (b.trace_id(), b.correlation_id()),
            (Some("t-2"), Some("c-2"))
        );
        assert_eq!(a.entra_error(), Some("invalid_client"));
        assert_eq!(
            a.entra_description(),
            Some("AADSTS700016: Application not found.")
        );
        assert_eq!(a.http_status(), Some(StatusCode::from(400)));
        // A code without a section of its own keeps its own id and links the general section.
        let c = parse_error(
            StatusCode::from(400),
            None,
            br#"{"error":"invalid_request","error_codes":[123456]}"#,
            &ctx_with(&claims, &ep),
        );
        assert_eq!(c.problem_id(), Some("aadsts123456"));
        assert!(c.documentation_url().unwrap().ends_with("#entra-errors"));
    }

    #[test]
    fn every_documented_code_has_a_specific_hint() {
        let claims = Claims {
            iss: Some("https://issuer.example".into()),
            ..Default::default()
        };
        let ep = Url::parse("https://login.microsoftonline.com/t/oauth2/v2.0/token").unwrap();
        let ctx = ctx_with(&claims, &ep);
        let generic = hint_for(1, &ctx);
        for code in [
            70021, 700211, 700212, 700213, 700024, 90061, 700027, 50027, 900384, 700016, 90002,
            1002012, 70011, 50196,
        ] {
            assert_ne!(hint_for(code, &ctx), generic, "code {code}");
        }
        assert!(
            hint_for(90061, &ctx)
                .contains("https://issuer.example/.well-known/openid-configuration")
        );
    }
}
