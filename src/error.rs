//! The crate's error type.
//!
//! Every failure of [`crate::WorkloadIdentityCredential`] reaches the caller as an
//! [`azure_core::Error`] of kind [`ErrorKind::Credential`] whose source is a [`CredentialError`]:
//!
//! ```
//! # fn inspect(err: &azure_core::Error) {
//! use azure_identity_k8s::{CredentialError, ProblemId};
//! if let Some(e) = err.downcast_ref::<CredentialError>() {
//!     println!("transient: {}, status: {:?}, AADSTS: {:?}", e.is_transient(), e.http_status(), e.aadsts_codes());
//!     // The catalogue entry to branch on, its fix (a command or value) and its documentation.
//!     match e.problem_id() {
//!         Some(ProblemId::TokenExpired) => eprintln!("the kubelet is not rotating the token file"),
//!         Some(ProblemId::Aadsts(70021)) => eprintln!("no matching federated identity credential"),
//!         Some(other) => eprintln!("{other}"), // "token-file-missing", "aadsts700016", ...
//!         None => {}
//!     }
//!     println!("fix {:?}, see {:?}", e.fix(), e.documentation_url());
//!     // Entra's own answer, and the ids to quote to Microsoft support.
//!     println!("{:?} {:?} trace {:?} correlation {:?}", e.entra_error(), e.entra_description(), e.trace_id(), e.correlation_id());
//! }
//! # }
//! ```
//!
//! `CredentialError` is `Clone`: the cache hands one failed attempt to every caller that waited on it.

use crate::problem::ProblemId;
use azure_core::error::ErrorKind;
use azure_core::http::StatusCode;
use std::fmt;
use std::sync::Arc;

/// What part of the flow failed. Lets callers (and the chain) branch without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCategory {
    /// Required configuration (client id, tenant id, token file) was not found at all: the
    /// credential is simply not configured here. A chain moves on to its next source.
    NotConfigured,
    /// Configuration was found but is invalid (malformed tenant id, non-HTTPS authority, ...).
    InvalidConfiguration,
    /// The requested scopes cannot be sent to Entra as they are.
    InvalidScope,
    /// The projected service-account token file is missing, unreadable, empty or not a JWT.
    TokenFile,
    /// The service-account token was read but fails a local check (expired, wrong audience).
    Assertion,
    /// Entra answered with an error (AADSTS code).
    Entra,
    /// Entra's answer could not be understood (not JSON, truncated, missing fields).
    InvalidResponse,
    /// The request did not complete: connection refused or reset, TLS failure, time-out.
    Transport,
    /// The attempt did not finish within the configured bound.
    Timeout,
}

/// A credential failure: what failed, why, and how to fix it. Never contains a token.
#[derive(Clone)]
pub struct CredentialError {
    inner: Arc<Inner>,
}

struct Inner {
    category: ErrorCategory,
    /// What failed and why: the message without the fix and the link.
    facts: String,
    /// `facts`, then "Fix: <fix>" (when the fix is part of the message), then "See <url>".
    message: String,
    status: Option<StatusCode>,
    aadsts: Vec<u32>,
    transient: bool,
    retry_after: Option<azure_core::time::Duration>,
    /// The catalogue entry (see [`CredentialError::problem_id`]).
    problem: Option<ProblemId>,
    /// [`ProblemId::documentation_url`] of `problem`.
    url: Option<String>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    /// Structured parts of the message, for programs and `doctor` (never parsed from it).
    parts: Parts,
}

impl Inner {
    /// Compose the message: the facts, "Fix: <fix>" (when [`CredentialError::with_fix`] put it
    /// there) and "See <url>", each on a line of its own when the facts take several.
    fn render(&mut self) {
        let sep = if self.facts.contains('\n') {
            "\n  "
        } else {
            " "
        };
        let mut m = self.facts.clone();
        if let (Some(fix), true) = (&self.parts.fix, self.parts.fix_in_message) {
            m = format!("{m}{sep}Fix: {fix}");
        }
        if let Some(url) = &self.url {
            m = format!("{m}{sep}See {url}");
        }
        self.message = m;
    }
}

/// What Entra's error answer said, and the fix, apart from the message.
#[derive(Default)]
struct Parts {
    entra_error: Option<String>,
    entra_description: Option<String>,
    trace_id: Option<String>,
    correlation_id: Option<String>,
    fix: Option<String>,
    /// Whether `render` writes the fix into the message (else the facts already say it).
    fix_in_message: bool,
}

/// The root of this release's documentation on docs.rs (`documentation` in Cargo.toml), e.g.
/// `https://docs.rs/azure_identity_k8s/0.1.0/azure_identity_k8s/`. Versioned, so a link in a log
/// line keeps pointing at the text that matches the code that wrote it.
pub(crate) const DOCS_ROOT: &str = concat!(
    "https://docs.rs/",
    env!("CARGO_PKG_NAME"),
    "/",
    env!("CARGO_PKG_VERSION"),
    "/",
    env!("CARGO_CRATE_NAME"),
    "/"
);

impl CredentialError {
    /// A new error. `facts` says what failed and why; [`Self::with_fix`] adds how to fix it and
    /// [`Self::with_problem`] the catalogue entry and its link.
    pub(crate) fn new(category: ErrorCategory, facts: impl Into<String>) -> Self {
        let transient = matches!(category, ErrorCategory::Transport | ErrorCategory::Timeout);
        let facts = facts.into();
        Self {
            inner: Arc::new(Inner {
                category,
                message: facts.clone(),
                facts,
                status: None,
                aadsts: Vec::new(),
                transient,
                retry_after: None,
                problem: None,
                url: None,
                source: None,
                parts: Parts::default(),
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner)
            .expect("builder methods are called before the error is shared")
    }

    /// Attach the HTTP status; 408, 429 and 5xx make the error transient.
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        let code = u16::from(status);
        let inner = self.inner_mut();
        inner.status = Some(status);
        inner.transient = code == 408 || code == 429 || code >= 500;
        self
    }

    /// Attach the AADSTS codes Entra reported.
    pub(crate) fn with_aadsts(mut self, codes: Vec<u32>) -> Self {
        self.inner_mut().aadsts = codes;
        self
    }

    /// Record how long the server asked us to wait (`Retry-After`).
    pub(crate) fn with_retry_after(mut self, after: Option<azure_core::time::Duration>) -> Self {
        self.inner_mut().retry_after = after;
        self
    }

    /// The catalogue entry: records the problem id and ends the message with "See <its
    /// absolute URL>" ([`Self::documentation_url`]).
    pub(crate) fn with_problem(mut self, problem: ProblemId) -> Self {
        let inner = self.inner_mut();
        inner.problem = Some(problem);
        inner.url = Some(problem.documentation_url());
        inner.render();
        self
    }

    /// The fix, as a command or value: recorded ([`Self::fix`]) and written into the message
    /// after the facts ("Fix: <fix>"), so that both say the same. A sentence: ends with a period.
    pub(crate) fn with_fix(mut self, fix: impl Into<String>) -> Self {
        let mut fix = fix.into();
        if !fix.ends_with('.') {
            fix.push('.');
        }
        let inner = self.inner_mut();
        inner.parts.fix = Some(fix);
        inner.parts.fix_in_message = true;
        inner.render();
        self
    }

    /// Record the fix that the facts already state (Entra's errors put it before Entra's own
    /// words), without writing it a second time.
    pub(crate) fn with_stated_fix(mut self, fix: impl Into<String>) -> Self {
        let inner = self.inner_mut();
        inner.parts.fix = Some(fix.into());
        inner.parts.fix_in_message = false;
        inner.render();
        self
    }

    /// Keep the catalogue entry and fix of the error this one wraps.
    pub(crate) fn with_problem_of(mut self, other: &CredentialError) -> Self {
        let (problem, url, fix) = (
            other.inner.problem,
            other.inner.url.clone(),
            other.inner.parts.fix.clone(),
        );
        let inner = self.inner_mut();
        inner.problem = problem;
        inner.url = url;
        inner.parts.fix = fix;
        inner.parts.fix_in_message = false;
        self
    }

    /// Override whether the error is worth retrying.
    pub(crate) fn with_transient(mut self, transient: bool) -> Self {
        self.inner_mut().transient = transient;
        self
    }

    /// Attach an underlying cause. Its `Display` must not contain secrets.
    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.inner_mut().source = Some(Arc::new(source));
        self
    }

    /// Attach what Entra's error answer said: its `error`, the first line of its
    /// `error_description`, its `trace_id` and `correlation_id`.
    pub(crate) fn with_entra_answer(
        mut self,
        error: Option<String>,
        description: Option<String>,
        trace_id: Option<String>,
        correlation_id: Option<String>,
    ) -> Self {
        let parts = &mut self.inner_mut().parts;
        parts.entra_error = error;
        parts.entra_description = description;
        parts.trace_id = trace_id;
        parts.correlation_id = correlation_id;
        self
    }

    /// Entra's `error` (e.g. `invalid_client`), when Entra answered with an error.
    pub fn entra_error(&self) -> Option<&str> {
        self.inner.parts.entra_error.as_deref()
    }

    /// The first line of Entra's `error_description` (it starts with the AADSTS code).
    pub fn entra_description(&self) -> Option<&str> {
        self.inner.parts.entra_description.as_deref()
    }

    /// Entra's trace id, to quote to Microsoft support.
    pub fn trace_id(&self) -> Option<&str> {
        self.inner.parts.trace_id.as_deref()
    }

    /// Entra's correlation id, to quote to Microsoft support.
    pub fn correlation_id(&self) -> Option<&str> {
        self.inner.parts.correlation_id.as_deref()
    }

    /// How to fix it, as a command or value; the message says the same ("Fix: ..."). `doctor`
    /// gives the same fix for the same problem.
    pub fn fix(&self) -> Option<&str> {
        self.inner.parts.fix.as_deref()
    }

    /// Which part of the flow failed.
    pub fn category(&self) -> ErrorCategory {
        self.inner.category
    }

    /// True when trying again later may succeed (5xx, 408, 429, connection failures, time-outs;
    /// not a certificate the client does not trust, for another host, or expired).
    pub fn is_transient(&self) -> bool {
        self.inner.transient
    }

    /// True when the credential is simply not configured in this environment.
    pub fn is_not_configured(&self) -> bool {
        self.inner.category == ErrorCategory::NotConfigured
    }

    /// The HTTP status of Entra's answer, when there was one.
    pub fn http_status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// How long the token endpoint asked clients to wait before retrying (`Retry-After`, in
    /// seconds or as an HTTP date), when it said so. The cache waits at least this long.
    pub fn retry_after(&self) -> Option<azure_core::time::Duration> {
        self.inner.retry_after
    }

    /// The AADSTS codes Entra reported (e.g. `[70021]`), empty when none.
    pub fn aadsts_codes(&self) -> &[u32] {
        &self.inner.aadsts
    }

    /// The absolute, versioned URL of the documentation section about this failure (docs.rs,
    /// this release), e.g. `https://docs.rs/azure_identity_k8s/0.1.0/azure_identity_k8s/troubleshooting/index.html#aadsts70021`:
    /// [`ProblemId::documentation_url`] of [`Self::problem_id`].
    pub fn documentation_url(&self) -> Option<&str> {
        self.inner.url.as_deref()
    }

    /// The problem's entry in the catalogue, for programs to branch on and to search logs for
    /// (its string form is the documented stable id, e.g. `token-expired` or `aadsts70021`).
    /// It never changes between retries of the same fault, unlike [`Self::trace_id`] and
    /// [`Self::correlation_id`]. Every error of the credential carries one.
    pub fn problem_id(&self) -> Option<ProblemId> {
        self.inner.problem
    }

    /// What failed and why: the message without its fix and link (for `doctor`'s summary).
    #[cfg_attr(not(feature = "doctor"), allow(dead_code))]
    pub(crate) fn facts(&self) -> &str {
        &self.inner.facts
    }

    /// The message's first line without the "WorkloadIdentityCredential: " prefix and its final
    /// period: the problem with its key values, the same for every retry of the fault (e.g.
    /// "Entra ID rejected the token request: tenant … was not found at … (AADSTS90002)").
    pub(crate) fn headline(&self) -> &str {
        let first = self.inner.facts.lines().next().unwrap_or_default();
        let first = first
            .strip_prefix("WorkloadIdentityCredential: ")
            .unwrap_or(first);
        first.strip_suffix('.').unwrap_or(first)
    }

    /// The full message (what failed, why, how to fix it). Its first line names the problem and
    /// stays the same across retries of the same fault; Entra's trace and correlation ids, which
    /// change with every request, are only on later lines (and in [`Self::trace_id`] and
    /// [`Self::correlation_id`]).
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Convert to the `azure_core::Error` returned at the `TokenCredential` boundary: kind
    /// `Credential`, this error as its source, the same message.
    pub fn into_azure_error(self) -> azure_core::Error {
        let message = self.inner.message.clone();
        azure_core::Error::with_error(ErrorKind::Credential, self, message)
    }
}

/// `err` as a log field, on one line: a [`CredentialError`]'s [`headline`](CredentialError::headline)
/// (the problem with its values; the cache's WARN carries its problem id, fix and URL as fields of
/// their own), any other error's message with line breaks and control characters escaped. So a
/// failure is one record in a log that keeps one line per event.
pub(crate) fn log_line(err: &azure_core::Error) -> std::borrow::Cow<'_, str> {
    match err.downcast_ref::<CredentialError>() {
        Some(e) => std::borrow::Cow::Borrowed(e.headline()),
        None => std::borrow::Cow::Owned(crate::escape::escape(&err.to_string()).into_owned()),
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl fmt::Debug for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialError")
            .field("category", &self.inner.category)
            .field("status", &self.inner.status)
            .field("aadsts", &self.inner.aadsts)
            .field("problem_id", &self.inner.problem)
            .field("entra_error", &self.inner.parts.entra_error)
            .field("trace_id", &self.inner.parts.trace_id)
            .field("correlation_id", &self.inner.parts.correlation_id)
            .field("transient", &self.inner.transient)
            .field("message", &self.inner.message)
            .finish()
    }
}

impl std::error::Error for CredentialError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<CredentialError> for azure_core::Error {
    fn from(e: CredentialError) -> Self {
        e.into_azure_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_decides_transience() {
        let e = CredentialError::new(ErrorCategory::Entra, "x").with_status(StatusCode::from(503));
        assert!(e.is_transient());
        let e = CredentialError::new(ErrorCategory::Entra, "x").with_status(StatusCode::from(400));
        assert!(!e.is_transient());
        let e = CredentialError::new(ErrorCategory::Entra, "x").with_status(StatusCode::from(429));
        assert!(e.is_transient());
        assert!(CredentialError::new(ErrorCategory::Transport, "x").is_transient());
    }

    #[test]
    fn azure_error_keeps_source_and_codes() {
        let e = CredentialError::new(ErrorCategory::Entra, "AADSTS70021: no match")
            .with_status(StatusCode::from(400))
            .with_aadsts(vec![70021]);
        let az: azure_core::Error = e.into();
        assert!(matches!(az.kind(), ErrorKind::Credential));
        let inner = az
            .downcast_ref::<CredentialError>()
            .expect("source is CredentialError");
        assert_eq!(inner.aadsts_codes(), &[70021]);
        assert_eq!(inner.http_status(), Some(StatusCode::from(400)));
        assert!(az.to_string().contains("AADSTS70021"));
    }
}
