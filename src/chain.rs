//! Credential chains: [`ChainedTokenCredential`] and [`DefaultAzureCredential`].
//!
//! A chain tries named sources in order. A source that is not configured here reports
//! *unavailable* and the chain moves on to the next one; a source that is configured but fails
//! stops the chain, because trying the next source would hide a real problem (and might
//! authenticate as another identity). Once a source has produced a token, the chain keeps using
//! that source. When no source produces a token, the error lists every attempt with its reason.
//!
//! A source signals "unavailable" by returning an error that [`is_unavailable`] recognises: a
//! [`CredentialUnavailable`], or a [`CredentialError`](crate::CredentialError) whose
//! [`is_not_configured`](crate::CredentialError::is_not_configured) is true, or the error of a
//! nested chain none of whose sources was available.
//!
//! Each attempt runs inside a `tracing` span named `credential_attempt` with the fields `chain`
//! and `source`.

mod default;
mod managed_identity;
mod sources;

pub use default::{AZURE_TOKEN_CREDENTIALS, DefaultAzureCredential, DefaultAzureCredentialOptions};
pub use managed_identity::{
    DEFAULT_IMDS_ENDPOINT, DEFAULT_IMDS_PROBE_TIMEOUT, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions,
};

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use tracing::Instrument;

/// The error a chain source returns when it is not configured or not usable in this environment
/// (no variables set, tool not installed, no metadata service). A chain moves on to its next
/// source; the message is kept in the chain's final error, so say why and how to configure it.
#[derive(Debug, Clone)]
pub struct CredentialUnavailable {
    message: String,
}

impl CredentialUnavailable {
    /// A new "unavailable" reason.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// Why the source is unavailable.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// As an `azure_core::Error` of kind `Credential` carrying this value (see [`is_unavailable`]).
    pub fn into_azure_error(self) -> azure_core::Error {
        let message = self.message.clone();
        azure_core::Error::with_error(ErrorKind::Credential, self, message)
    }
}

impl fmt::Display for CredentialUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CredentialUnavailable {}

impl From<CredentialUnavailable> for azure_core::Error {
    fn from(e: CredentialUnavailable) -> Self {
        e.into_azure_error()
    }
}

/// True when `err` says "this source is not configured here" rather than "this source failed":
/// a [`CredentialUnavailable`] anywhere in its source chain, a
/// [`CredentialError`](crate::CredentialError) of category
/// [`NotConfigured`](crate::ErrorCategory::NotConfigured), or a [`ChainError`] in which no source
/// was available.
pub fn is_unavailable(err: &azure_core::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if e.is::<CredentialUnavailable>() {
            return true;
        }
        if let Some(c) = e.downcast_ref::<crate::CredentialError>() {
            return c.is_not_configured();
        }
        if let Some(c) = e.downcast_ref::<ChainError>() {
            return c.failure().is_none();
        }
        if let Some(inner) = e.downcast_ref::<azure_core::Error>() {
            // `azure_core::Error::source` skips nothing, but be explicit about nesting.
            current = std::error::Error::source(inner);
            continue;
        }
        current = e.source();
    }
    false
}

/// One named source of a chain.
#[derive(Clone)]
pub struct ChainSource {
    name: String,
    credential: Arc<dyn TokenCredential>,
}

impl ChainSource {
    /// A source called `name` (shown in errors, logs and [`ChainedTokenCredential::selected_source`]).
    pub fn new(name: impl Into<String>, credential: Arc<dyn TokenCredential>) -> Self {
        Self {
            name: name.into(),
            credential,
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for ChainSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainSource")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What happened when a chain tried one source.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The source produced a token.
    Succeeded,
    /// The source is not configured here; the chain moved on. The reason says why.
    Unavailable(String),
    /// The source is configured but failed; the chain stopped. The error's message.
    Failed(String),
    /// The source was not tried because an earlier source failed.
    NotTried,
}

/// One source tried by a chain, and the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// The source's name.
    pub source: String,
    /// The outcome.
    pub outcome: AttemptOutcome,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            AttemptOutcome::Succeeded => write!(f, "{}: succeeded", self.source),
            AttemptOutcome::Unavailable(reason) => {
                write!(f, "{}: unavailable: {}", self.source, one_line(reason))
            }
            AttemptOutcome::Failed(reason) => {
                write!(f, "{}: failed: {}", self.source, one_line(reason))
            }
            AttemptOutcome::NotTried => write!(f, "{}: not tried", self.source),
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The error of a chain none of whose sources produced a token. It is the source of the
/// `azure_core::Error` (kind `Credential`) the chain returns:
///
/// ```
/// # fn inspect(err: &azure_core::Error) {
/// use azure_identity_k8s::ChainError;
/// if let Some(chain) = err.downcast_ref::<ChainError>() {
///     for attempt in chain.attempts() {
///         println!("{attempt}");
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct ChainError {
    chain: String,
    attempts: Vec<Attempt>,
    failure: Option<azure_core::Error>,
}

impl ChainError {
    /// Every source, in order, with its outcome.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// The error of the source that was configured but failed, if one did (the chain stopped
    /// there). `None` when every source was unavailable.
    pub fn failure(&self) -> Option<&azure_core::Error> {
        self.failure.as_ref()
    }
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self
            .attempts
            .iter()
            .find(|a| matches!(a.outcome, AttemptOutcome::Failed(_)));
        match failed {
            Some(a) => write!(
                f,
                "{}: {} is configured but failed to get a token, so the chain stopped there (a source that is set up but broken is an error to fix, not a reason to try the next one).",
                self.chain, a.source
            )?,
            None => {
                // The sources and their rules, on docs.rs for this version (a repository path
                // means nothing in a production log).
                let page = if self.chain == "DefaultAzureCredential" {
                    "chain/struct.DefaultAzureCredential.html"
                } else {
                    "chain/index.html"
                };
                write!(
                    f,
                    "{}: no credential in the chain is available in this environment; configure one of them (see {}{page}).",
                    self.chain,
                    crate::problem::DOCS_ROOT
                )?
            }
        }
        f.write_str(" Attempts:")?;
        for a in &self.attempts {
            write!(f, "\n- {a}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ChainError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.failure
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Options for [`ChainedTokenCredential`].
#[derive(Debug, Clone, Default)]
pub struct ChainedTokenCredentialOptions {
    /// The chain's name in errors and logs (default `ChainedTokenCredential`).
    pub name: Option<String>,
    /// Try every source again on each call instead of keeping the first source that produced a
    /// token (default `false`: the chain is sticky).
    pub retry_sources: bool,
}

/// Tries named sources in order until one produces a token (see the [module docs](self)).
pub struct ChainedTokenCredential {
    name: String,
    sources: Vec<ChainSource>,
    retry_sources: bool,
    selected: OnceLock<usize>,
    selection_attempts: Mutex<Vec<Attempt>>,
}

impl fmt::Debug for ChainedTokenCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainedTokenCredential")
            .field("name", &self.name)
            .field("sources", &self.source_names())
            .field("selected", &self.selected_source())
            .finish_non_exhaustive()
    }
}

impl ChainedTokenCredential {
    /// A chain of `sources`, tried in the order given. Fails when `sources` is empty.
    pub fn new(
        sources: Vec<ChainSource>,
        options: Option<ChainedTokenCredentialOptions>,
    ) -> azure_core::Result<Arc<Self>> {
        let options = options.unwrap_or_default();
        let name = options
            .name
            .unwrap_or_else(|| "ChainedTokenCredential".to_string());
        if sources.is_empty() {
            return Err(azure_core::Error::with_message(
                ErrorKind::Credential,
                format!("{name}: a chain needs at least one source"),
            ));
        }
        Ok(Arc::new(Self {
            name,
            sources,
            retry_sources: options.retry_sources,
            selected: OnceLock::new(),
            selection_attempts: Mutex::new(Vec::new()),
        }))
    }

    /// The sources' names, in order.
    pub fn source_names(&self) -> Vec<&str> {
        self.sources.iter().map(|s| s.name.as_str()).collect()
    }

    /// The name of the source the chain now uses, once one has produced a token.
    pub fn selected_source(&self) -> Option<&str> {
        self.selected.get().map(|&i| self.sources[i].name.as_str())
    }

    /// The attempts of the call that selected the source (why earlier sources were skipped), or of
    /// the last call that tried the sources, when none has been selected yet.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.selection_attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn try_sources(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let mut attempts: Vec<Attempt> = Vec::with_capacity(self.sources.len());
        let mut failure = None;
        for (index, source) in self.sources.iter().enumerate() {
            let span = tracing::info_span!("credential_attempt", chain = %self.name, source = %source.name);
            let result = source
                .credential
                .get_token(scopes, options.clone())
                .instrument(span.clone())
                .await;
            match result {
                Ok(token) => {
                    span.in_scope(|| tracing::info!("source produced a token"));
                    attempts.push(Attempt {
                        source: source.name.clone(),
                        outcome: AttemptOutcome::Succeeded,
                    });
                    if !self.retry_sources && self.selected.set(index).is_ok() {
                        span.in_scope(|| {
                            tracing::info!("source selected; later calls use it only")
                        });
                    }
                    self.record(attempts);
                    return Ok(token);
                }
                Err(err) if is_unavailable(&err) => {
                    span.in_scope(|| tracing::debug!(reason = %crate::error::log_line(&err), "source unavailable; trying the next one"));
                    attempts.push(Attempt {
                        source: source.name.clone(),
                        outcome: AttemptOutcome::Unavailable(err.to_string()),
                    });
                }
                Err(err) => {
                    span.in_scope(|| tracing::warn!(error = %crate::error::log_line(&err), "source is configured but failed; the chain stops"));
                    attempts.push(Attempt {
                        source: source.name.clone(),
                        outcome: AttemptOutcome::Failed(err.to_string()),
                    });
                    failure = Some(err);
                    break;
                }
            }
        }
        for source in &self.sources[attempts.len()..] {
            attempts.push(Attempt {
                source: source.name.clone(),
                outcome: AttemptOutcome::NotTried,
            });
        }
        self.record(attempts.clone());
        let chain_error = ChainError {
            chain: self.name.clone(),
            attempts,
            failure,
        };
        let message = chain_error.to_string();
        Err(azure_core::Error::with_error(
            ErrorKind::Credential,
            chain_error,
            message,
        ))
    }

    fn record(&self, attempts: Vec<Attempt>) {
        *self
            .selection_attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = attempts;
    }
}

#[async_trait::async_trait]
impl TokenCredential for ChainedTokenCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if let Some(&index) = self.selected.get() {
            let source = &self.sources[index];
            let span = tracing::debug_span!("credential_attempt", chain = %self.name, source = %source.name);
            // The selected source's own error is returned as is (its type and message intact).
            return source
                .credential
                .get_token(scopes, options)
                .instrument(span)
                .await;
        }
        self.try_sources(scopes, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::credentials::Secret;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct Fake {
        result: Result<(), (bool, &'static str)>,
        calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Fake {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.result {
                Ok(()) => Ok(AccessToken::new(
                    Secret::new("t"),
                    time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                )),
                Err((true, m)) => Err(CredentialUnavailable::new(m).into()),
                Err((false, m)) => Err(azure_core::Error::with_message(ErrorKind::Credential, m)),
            }
        }
    }

    fn fake(result: Result<(), (bool, &'static str)>) -> Arc<Fake> {
        Arc::new(Fake {
            result,
            calls: AtomicUsize::new(0),
        })
    }

    #[tokio::test]
    async fn unavailable_moves_on_failure_stops() {
        let a = fake(Err((true, "a not set")));
        let b = fake(Err((false, "b broken")));
        let c = fake(Ok(()));
        let chain = ChainedTokenCredential::new(
            vec![
                ChainSource::new("A", a.clone()),
                ChainSource::new("B", b.clone()),
                ChainSource::new("C", c.clone()),
            ],
            None,
        )
        .unwrap();
        let err = chain.get_token(&["x/.default"], None).await.unwrap_err();
        let ce = err.downcast_ref::<ChainError>().unwrap();
        assert_eq!(
            ce.attempts()[0].outcome,
            AttemptOutcome::Unavailable("a not set".into())
        );
        assert_eq!(
            ce.attempts()[1].outcome,
            AttemptOutcome::Failed("b broken".into())
        );
        assert_eq!(ce.attempts()[2].outcome, AttemptOutcome::NotTried);
        assert_eq!(c.calls.load(Ordering::SeqCst), 0);
        assert!(!is_unavailable(&err));
        assert!(chain.selected_source().is_none());
    }

    #[tokio::test]
    async fn all_unavailable_is_itself_unavailable() {
        let chain = ChainedTokenCredential::new(
            vec![ChainSource::new("A", fake(Err((true, "nope"))))],
            None,
        )
        .unwrap();
        let err = chain.get_token(&["x/.default"], None).await.unwrap_err();
        assert!(is_unavailable(&err), "{err}");
        assert!(err.to_string().contains("- A: unavailable: nope"), "{err}");
    }

    #[test]
    fn empty_chain_is_rejected() {
        assert!(ChainedTokenCredential::new(Vec::new(), None).is_err());
    }

    #[test]
    fn not_configured_credential_error_is_unavailable() {
        let e = crate::CredentialError::new(crate::ProblemId::NotConfigured, "no client id");
        assert!(is_unavailable(&e.into()));
        let e = crate::CredentialError::new(crate::ProblemId::TokenFileMissing, "missing");
        assert!(!is_unavailable(&e.into()));
    }
}
