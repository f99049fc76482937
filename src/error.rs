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

use crate::escape::escape;
pub use crate::problem::ErrorCategory;
use crate::problem::ProblemId;
use azure_core::error::ErrorKind;
use azure_core::http::StatusCode;
use azure_core::time::Duration;
use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// The credential a message names unless the error says otherwise.
pub(crate) const WORKLOAD: &str = "WorkloadIdentityCredential";

/// A credential failure: what failed, why, and how to fix it. Never contains a token.
///
/// Its `Display` is the message: "WorkloadIdentityCredential: " (or the other credential's
/// name), the facts, `Fix: <fix>`, what Entra said (for Entra's answers) and `See <url>`, each on
/// a line of its own when the facts take several. The first line names the problem and stays
/// the same across retries of the same fault; Entra's trace and correlation ids, which change
/// with every request, are only on later lines.
#[derive(Clone)]
pub struct CredentialError(Box<Data>);

#[derive(Clone)]
struct Data {
    problem: ProblemId,
    category: ErrorCategory,
    transient: bool,
    /// The credential the message starts with ("<name>: "); `None` when the facts name it.
    name: Option<&'static str>,
    /// What failed and why, with the values.
    facts: String,
    /// The entry's fix ([`ProblemId::fix`]) unless the facts gave one.
    fix: Option<Cow<'static, str>>,
    /// [`ProblemId::documentation_url`] of `problem`.
    url: String,
    status: Option<StatusCode>,
    aadsts: Vec<u32>,
    retry_after: Option<Duration>,
    entra: Option<EntraAnswer>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    /// The `Display` text, once [`CredentialError::message`] has asked for it.
    message: OnceLock<String>,
}

/// What Entra's error answer said: its `error`, the first line of its `error_description`, its
/// `trace_id` and `correlation_id`.
#[derive(Clone, Default)]
pub(crate) struct EntraAnswer {
    pub(crate) error: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) trace_id: Option<String>,
    pub(crate) correlation_id: Option<String>,
}

impl CredentialError {
    /// An error of `problem`: its category, transience, fix and link come from the catalogue
    /// entry; `facts` says what failed and why, with the values.
    pub(crate) fn new(problem: ProblemId, facts: impl Into<String>) -> Self {
        Self(Box::new(Data {
            problem,
            category: problem.category(),
            transient: problem.is_transient(),
            name: Some(WORKLOAD),
            facts: facts.into(),
            fix: problem.fix().map(Cow::Borrowed),
            url: problem.documentation_url(),
            status: None,
            aadsts: Vec::new(),
            retry_after: None,
            entra: None,
            source: None,
            message: OnceLock::new(),
        }))
    }

    /// How to fix it, from the facts, as a command or value; a sentence (a final period is added
    /// if missing).
    pub(crate) fn with_fix(mut self, fix: impl Into<String>) -> Self {
        let mut fix = fix.into();
        if !fix.ends_with('.') {
            fix.push('.');
        }
        self.data().fix = Some(Cow::Owned(fix));
        self
    }

    /// The error of another credential (`BlockingTokenCredential`, `AwsWebIdentitySource`, a
    /// chain's source): the message starts with `name`, or with the facts when `None` (they name
    /// it themselves).
    pub(crate) fn named(mut self, name: Option<&'static str>) -> Self {
        self.data().name = name;
        self
    }

    /// The facts rewritten by `f` (e.g. put in the context of a wrapping error).
    pub(crate) fn map_facts(mut self, f: impl FnOnce(&str) -> String) -> Self {
        let facts = f(&self.0.facts);
        self.data().facts = facts;
        self
    }

    /// The category (and with it the transience: a transport failure or a time-out is transient)
    /// that an outside library's kind of failure decides, where one problem covers several (the
    /// AWS SDK: no credentials, a time-out, no answer).
    #[cfg(feature = "aws")]
    pub(crate) fn with_category(mut self, category: ErrorCategory) -> Self {
        let data = self.data();
        data.category = category;
        data.transient = matches!(category, ErrorCategory::Transport | ErrorCategory::Timeout);
        self
    }

    /// Attach the HTTP status; 408, 429 and 5xx make the error transient.
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        let data = self.data();
        data.status = Some(status);
        data.transient = matches!(u16::from(status), 408 | 429 | 500..);
        self
    }

    /// Attach the AADSTS codes Entra reported.
    pub(crate) fn with_aadsts(mut self, codes: Vec<u32>) -> Self {
        self.data().aadsts = codes;
        self
    }

    /// Record how long the server asked us to wait (`Retry-After`).
    pub(crate) fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.data().retry_after = after;
        self
    }

    /// Whether trying again may succeed, where the facts decide it (an AWS error code, the kind
    /// of a custom source's error).
    pub(crate) fn with_transient(mut self, transient: bool) -> Self {
        self.data().transient = transient;
        self
    }

    /// Attach an underlying cause. Its `Display` must not contain secrets.
    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.data().source = Some(Arc::new(source));
        self
    }

    /// Attach what Entra's error answer said; the message quotes it after the fix.
    pub(crate) fn with_entra_answer(mut self, answer: EntraAnswer) -> Self {
        self.data().entra = Some(answer);
        self
    }

    /// The data to change: the message is rendered again when next asked for.
    fn data(&mut self) -> &mut Data {
        self.0.message.take();
        &mut self.0
    }

    /// Entra's `error` (e.g. `invalid_client`), when Entra answered with an error.
    pub fn entra_error(&self) -> Option<&str> {
        self.0.entra.as_ref()?.error.as_deref()
    }

    /// The first line of Entra's `error_description` (it starts with the AADSTS code).
    pub fn entra_description(&self) -> Option<&str> {
        self.0.entra.as_ref()?.description.as_deref()
    }

    /// Entra's trace id, to quote to Microsoft support.
    pub fn trace_id(&self) -> Option<&str> {
        self.0.entra.as_ref()?.trace_id.as_deref()
    }

    /// Entra's correlation id, to quote to Microsoft support.
    pub fn correlation_id(&self) -> Option<&str> {
        self.0.entra.as_ref()?.correlation_id.as_deref()
    }

    /// How to fix it, as a command or value; the message says the same ("Fix: ..."). `doctor`
    /// gives the same fix for the same problem.
    pub fn fix(&self) -> Option<&str> {
        self.0.fix.as_deref()
    }

    /// Which part of the flow failed: the category of [`Self::problem_id`]'s entry.
    pub fn category(&self) -> ErrorCategory {
        self.0.category
    }

    /// True when trying again later may succeed (5xx, 408, 429, connection failures, time-outs;
    /// not a certificate the client does not trust, for another host, or expired).
    pub fn is_transient(&self) -> bool {
        self.0.transient
    }

    /// True when the credential is simply not configured in this environment.
    pub fn is_not_configured(&self) -> bool {
        self.0.category == ErrorCategory::NotConfigured
    }

    /// The HTTP status of Entra's answer, when there was one.
    pub fn http_status(&self) -> Option<StatusCode> {
        self.0.status
    }

    /// How long the token endpoint asked clients to wait before retrying (`Retry-After`, in
    /// seconds or as an HTTP date), when it said so. The cache waits at least this long.
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    /// The AADSTS codes Entra reported (e.g. `[70021]`), empty when none.
    pub fn aadsts_codes(&self) -> &[u32] {
        &self.0.aadsts
    }

    /// The absolute, versioned URL of the documentation section about this failure (docs.rs,
    /// this release), e.g. `https://docs.rs/azure_identity_k8s/0.1.0/azure_identity_k8s/troubleshooting/index.html#aadsts70021`:
    /// [`ProblemId::documentation_url`] of [`Self::problem_id`].
    pub fn documentation_url(&self) -> Option<&str> {
        Some(&self.0.url)
    }

    /// The problem's entry in the catalogue, for programs to branch on and to search logs for
    /// (its string form is the documented stable id, e.g. `token-expired` or `aadsts70021`).
    /// It never changes between retries of the same fault, unlike [`Self::trace_id`] and
    /// [`Self::correlation_id`]. Every error of the credential carries one.
    pub fn problem_id(&self) -> Option<ProblemId> {
        Some(self.0.problem)
    }

    /// What failed and why, after the credential's name: the message without its fix and link
    /// (for `doctor`'s summary).
    #[cfg_attr(not(feature = "doctor"), allow(dead_code))]
    pub(crate) fn facts(&self) -> Cow<'_, str> {
        match self.0.name {
            Some(name) => Cow::Owned(format!("{name}: {}", self.0.facts)),
            None => Cow::Borrowed(&self.0.facts),
        }
    }

    /// The first line of the facts without its final period (and without the name of this
    /// crate's credential): the problem with its key values, the same for every retry of the
    /// fault (e.g. "Entra ID rejected the token request: tenant … was not found at … (AADSTS90002)").
    pub(crate) fn headline(&self) -> Cow<'_, str> {
        let first = self.0.facts.lines().next().unwrap_or_default();
        let first = first.strip_suffix('.').unwrap_or(first);
        match self.0.name {
            Some(name) if name != WORKLOAD => Cow::Owned(format!("{name}: {first}")),
            _ => Cow::Borrowed(first),
        }
    }

    /// The full message (what failed, why, how to fix it): the error's `Display`.
    pub fn message(&self) -> &str {
        self.0.message.get_or_init(|| self.to_string())
    }

    /// Convert to the `azure_core::Error` returned at the `TokenCredential` boundary: kind
    /// `Credential`, this error as its source, the same message.
    pub fn into_azure_error(self) -> azure_core::Error {
        let message = self.message().to_owned();
        azure_core::Error::with_error(ErrorKind::Credential, self, message)
    }
}

/// `err` as a log field, on one line: a [`CredentialError`]'s [`headline`](CredentialError::headline)
/// (the problem with its values; the cache's WARN carries its problem id, fix and URL as fields of
/// their own), any other error's message with line breaks and control characters escaped. So a
/// failure is one record in a log that keeps one line per event.
pub(crate) fn log_line(err: &azure_core::Error) -> Cow<'_, str> {
    match err.downcast_ref::<CredentialError>() {
        Some(e) => e.headline(),
        None => Cow::Owned(escape(&err.to_string()).into_owned()),
    }
}

/// Log a token cache's `$event` (`Event` must be in scope) for the source of `$kind` tokens
/// (a literal: "access token") keyed by `$key = $value` (`scopes`, `audience`): an attempt's start
/// (DEBUG), its token (INFO), its failure (WARN, or DEBUG when `$quiet` and no cached token is
/// served: that source's caller logs the failure itself; the problem id, fix (escaped),
/// documentation URL and Entra's ids as fields of their own), a long outage (WARN, unless
/// `$quiet`), and a cached token served after a wait that ended without one (WARN). `$failed`
/// names the source in the failure records. A macro so that the records' target is the calling
/// source's module.
macro_rules! log_cache_event {
    ($event:expr, $key:ident = $value:expr, $kind:literal, $failed:literal, $quiet:literal) => {{
        match $event {
            Event::Refreshing { reason } => {
                ::tracing::debug!($key = %$value, reason, concat!("refreshing ", $kind));
            }
            Event::Acquired { expires_on, refresh_in, took } => ::tracing::info!(
                $key = %$value,
                expires_on = %expires_on,
                refresh_in_secs = refresh_in.whole_seconds(),
                duration_ms = took.whole_milliseconds() as i64,
                concat!("acquired ", $kind)
            ),
            Event::Failed { error, consecutive_failures, retry_in, valid_until, outage } => {
                let serving = match valid_until {
                    Some(_) => "; serving the cached token, which is still valid",
                    None => "",
                };
                macro_rules! failed {
                    ($level:ident) => {
                        ::tracing::event!(
                            ::tracing::Level::$level,
                            $key = %$value,
                            category = ?error.category(),
                            status = ?error.http_status().map(u16::from),
                            aadsts = ?error.aadsts_codes(),
                            transient = error.is_transient(),
                            consecutive_failures,
                            retry_in_secs = retry_in.as_seconds_f64(),
                            cached_token_valid_until = ?valid_until,
                            error = %error.headline(),
                            problem_id = error.problem_id().map(::tracing::field::display),
                            fix = error.fix().map(|f| ::tracing::field::display($crate::escape::escape(f))),
                            docs = error.documentation_url(),
                            trace_id = error.trace_id(),
                            correlation_id = error.correlation_id(),
                            concat!($failed, " refresh failed{}"),
                            serving
                        )
                    };
                }
                if $quiet && valid_until.is_none() {
                    failed!(DEBUG)
                } else {
                    failed!(WARN)
                }
                if let Some((failing_for, expires_in)) = outage && !$quiet {
                    ::tracing::warn!(
                        $key = %$value,
                        failing_for_secs = failing_for.whole_seconds(),
                        consecutive_failures,
                        token_expires_in_secs = expires_in.whole_seconds(),
                        category = ?error.category(),
                        aadsts = ?error.aadsts_codes(),
                        "token refreshes have been failing for {} s while a cached token is still served; \
                         callers will get errors when it expires in {} s unless a refresh succeeds",
                        failing_for.whole_seconds(),
                        expires_in.whole_seconds(),
                    );
                }
            }
            Event::ServedStale { error } => {
                ::tracing::warn!(
                    $key = %$value,
                    error = %error.headline(),
                    problem_id = error.problem_id().map(::tracing::field::display),
                    concat!(
                        $failed,
                        " refresh did not complete in time; serving the cached token, which is still valid"
                    )
                );
            }
        }
    }};
}
pub(crate) use log_cache_event;

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &*self.0;
        if let Some(name) = d.name {
            write!(f, "{name}: ")?;
        }
        f.write_str(&d.facts)?;
        let sep = if d.facts.contains('\n') || d.entra.is_some() {
            "\n  "
        } else {
            " "
        };
        if let Some(fix) = &d.fix {
            write!(f, "{sep}Fix: {fix}")?;
        }
        if let Some(e) = &d.entra {
            // Entra's words and ids, escaped like every value from outside (see `crate::escape`).
            let said = e.description.as_deref().unwrap_or_default();
            write!(f, "{sep}Entra said: {}", escape(said))?;
            if let (Some(t), Some(c)) = (&e.trace_id, &e.correlation_id) {
                write!(
                    f,
                    "{sep}Trace ID: {}, Correlation ID: {}",
                    escape(t),
                    escape(c)
                )?;
            }
        }
        write!(f, "{sep}See {}", d.url)
    }
}

impl fmt::Debug for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &*self.0;
        f.debug_struct("CredentialError")
            .field("category", &d.category)
            .field("status", &d.status)
            .field("aadsts", &d.aadsts)
            .field("problem_id", &d.problem)
            .field("entra_error", &self.entra_error())
            .field("trace_id", &self.trace_id())
            .field("correlation_id", &self.correlation_id())
            .field("transient", &d.transient)
            .field("message", &self.message())
            .finish()
    }
}

impl std::error::Error for CredentialError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source.as_deref().map(|e| e as _)
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
        let e = CredentialError::new(ProblemId::EntraError, "x").with_status(StatusCode::from(503));
        assert!(e.is_transient());
        let e = CredentialError::new(ProblemId::EntraError, "x").with_status(StatusCode::from(400));
        assert!(!e.is_transient());
        let e = CredentialError::new(ProblemId::EntraError, "x").with_status(StatusCode::from(429));
        assert!(e.is_transient());
        assert!(CredentialError::new(ProblemId::Transport, "x").is_transient());
    }

    #[test]
    fn azure_error_keeps_source_and_codes() {
        let e = CredentialError::new(ProblemId::Aadsts(70021), "AADSTS70021: no match")
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

    /// One format: the name once, the facts, "Fix:", Entra's words, "See"; one line for one-line
    /// facts, indented lines otherwise; a builder call after `message()` renders it again.
    #[test]
    fn display_writes_the_name_facts_fix_and_link_once() {
        let url = ProblemId::TokenExpired.documentation_url();
        let e = CredentialError::new(ProblemId::TokenExpired, "expired.");
        let fix = ProblemId::TokenExpired.fix().unwrap();
        assert_eq!(e.fix(), Some(fix), "the entry's fix");
        assert_eq!(
            e.message(),
            format!("WorkloadIdentityCredential: expired. Fix: {fix} See {url}")
        );
        let e = e
            .named(None)
            .with_fix("do this")
            .map_facts(|f| format!("two\n  lines, {f}"));
        assert_eq!(
            e.to_string(),
            format!("two\n  lines, expired.\n  Fix: do this.\n  See {url}")
        );
        assert_eq!(e.headline(), "two");
        let e = CredentialError::new(ProblemId::Aadsts(70021), "rejected.")
            .with_fix("match it.")
            .with_entra_answer(EntraAnswer {
                description: Some("AADSTS70021: no match\u{1b}".into()),
                trace_id: Some("t".into()),
                correlation_id: Some("c".into()),
                ..EntraAnswer::default()
            });
        assert!(
            e.message().ends_with(&format!(
                "rejected.\n  Fix: match it.\n  Entra said: AADSTS70021: no match\\u{{1b}}\n  Trace ID: t, Correlation ID: c\n  See {}",
                ProblemId::Aadsts(70021).documentation_url()
            )),
            "{e}"
        );
        assert_eq!(e.category(), ErrorCategory::Entra);
        let cloned = e.clone();
        assert_eq!(cloned.message(), e.message());
    }
}
