//! Credential chains: [`ChainedTokenCredential`] and [`DefaultAzureCredential`] (see [the
//! guide](crate::guides::chain)).
//!
//! A chain tries named sources in order: a source that is unavailable here ([`is_unavailable`])
//! is skipped; a source that is configured but fails stops the chain (trying the next one would
//! hide a real problem, and might authenticate as another identity); the first source that
//! produces a token is kept. When none does, the [`ChainError`] lists every source with why it was
//! skipped, why it failed, or that it was not tried. Each attempt runs in a `tracing` span
//! `credential_attempt{chain, source}`: a skip is logged at DEBUG, a failure at WARN, the
//! selection at INFO.

mod default;
mod managed_identity;

pub use default::{AZURE_TOKEN_CREDENTIALS, DefaultAzureCredential, DefaultAzureCredentialOptions};
pub use managed_identity::{
    DEFAULT_IMDS_ENDPOINT, DEFAULT_IMDS_PROBE_TIMEOUT, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions,
};

use crate::CredentialError;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, OnceLock};
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
}

impl fmt::Display for CredentialUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for CredentialUnavailable {}

/// An `azure_core::Error` of kind `Credential` carrying the value (see [`is_unavailable`]).
impl From<CredentialUnavailable> for azure_core::Error {
    fn from(e: CredentialUnavailable) -> Self {
        azure_core::Error::with_error(ErrorKind::Credential, e.clone(), e.message)
    }
}

/// True when `err` says "this source is not configured here" rather than "this source failed":
/// the first of these found in its source chain decides: a [`CredentialUnavailable`], a
/// [`CredentialError`] (of category [`NotConfigured`](crate::ErrorCategory::NotConfigured)), or
/// a [`ChainError`] in which no source was available.
pub fn is_unavailable(err: &azure_core::Error) -> bool {
    causes(err)
        .find_map(|e| {
            if e.is::<CredentialUnavailable>() {
                Some(true)
            } else if let Some(c) = e.downcast_ref::<CredentialError>() {
                Some(c.is_not_configured())
            } else {
                e.downcast_ref::<ChainError>().map(|c| c.failed.is_none())
            }
        })
        .unwrap_or(false)
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

/// The error of a chain none of whose sources produced a token: the source of the
/// `azure_core::Error` (kind `Credential`) the chain returns, reached with
/// `err.downcast_ref::<ChainError>()`. Its `Display` lists every source, one line each:
/// `- <name>: unavailable: <reason>`, `- <name>: failed: <error>` (the source that stopped the
/// chain, also [`failure`](Self::failure)) or `- <name>: not tried`.
#[derive(Debug)]
pub struct ChainError {
    chain: String,
    /// One line per source, in order, without the `- `.
    attempts: Vec<String>,
    /// The source that was configured but failed, and its error.
    failed: Option<(String, azure_core::Error)>,
}

impl ChainError {
    /// The error of the source that was configured but failed, if one did (the chain stopped
    /// there). `None` when every source was unavailable.
    pub fn failure(&self) -> Option<&azure_core::Error> {
        self.failed.as_ref().map(|(_, e)| e)
    }
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chain = &self.chain;
        match &self.failed {
            Some((source, _)) => write!(
                f,
                "{chain}: {source} is configured but failed to get a token, so the chain stopped there (a source that is set up but broken is an error to fix, not a reason to try the next one)."
            )?,
            None => {
                // The sources and their rules, on docs.rs for this version (a repository path
                // means nothing in a production log).
                let page = if chain == "DefaultAzureCredential" {
                    "chain/struct.DefaultAzureCredential.html"
                } else {
                    "chain/index.html"
                };
                write!(
                    f,
                    "{chain}: no credential in the chain is available in this environment; configure one of them (see {}{page}).",
                    crate::problem::DOCS_ROOT
                )?
            }
        }
        f.write_str(" Attempts:")?;
        self.attempts.iter().try_for_each(|a| write!(f, "\n- {a}"))
    }
}

impl StdError for ChainError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.failure().map(|e| e as &(dyn StdError + 'static))
    }
}

/// `s` with every run of whitespace (line breaks included) made one space.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn causes(err: &azure_core::Error) -> impl Iterator<Item = &(dyn StdError + 'static)> {
    std::iter::successors(Some(err as &(dyn StdError + 'static)), |&e| e.source())
}

fn credential_error(message: String) -> azure_core::Error {
    azure_core::Error::with_message(ErrorKind::Credential, message)
}

/// Options for [`ChainedTokenCredential`].
#[derive(Debug, Clone, Default)]
pub struct ChainedTokenCredentialOptions {
    /// The chain's name in errors and logs (default `ChainedTokenCredential`).
    pub name: Option<String>,
}

/// Tries named sources in order until one produces a token, then keeps that source (see the
/// [module docs](self)).
#[derive(Debug)]
pub struct ChainedTokenCredential {
    name: String,
    sources: Vec<ChainSource>,
    selected: OnceLock<usize>,
}

impl ChainedTokenCredential {
    /// A chain of `sources`, tried in the order given. Fails when `sources` is empty.
    pub fn new(
        sources: Vec<ChainSource>,
        options: Option<ChainedTokenCredentialOptions>,
    ) -> azure_core::Result<Arc<Self>> {
        let name = options
            .and_then(|o| o.name)
            .unwrap_or_else(|| "ChainedTokenCredential".to_string());
        if sources.is_empty() {
            return Err(credential_error(format!(
                "{name}: a chain needs at least one source"
            )));
        }
        Ok(Arc::new(Self {
            name,
            sources,
            selected: OnceLock::new(),
        }))
    }

    /// The sources' names, in order.
    pub fn source_names(&self) -> Vec<&str> {
        self.sources.iter().map(ChainSource::name).collect()
    }

    /// The name of the source the chain now uses, once one has produced a token.
    pub fn selected_source(&self) -> Option<&str> {
        self.selected.get().map(|&i| self.sources[i].name())
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
        let mut error = ChainError {
            chain: self.name.clone(),
            attempts: Vec::new(),
            failed: None,
        };
        for (index, source) in self.sources.iter().enumerate() {
            if error.failed.is_some() {
                error.attempts.push(format!("{}: not tried", source.name));
                continue;
            }
            let span = tracing::info_span!("credential_attempt", chain = %self.name, source = %source.name);
            let result = source
                .credential
                .get_token(scopes, options.clone())
                .instrument(span.clone())
                .await;
            let err = match result {
                Ok(token) => {
                    if self.selected.set(index).is_ok() {
                        tracing::info!(parent: &span, "source selected: it produced a token; later calls use it only");
                    }
                    return Ok(token);
                }
                Err(err) => err,
            };
            let (line, status) = (one_line(&err.to_string()), crate::error::log_line(&err));
            let name = &source.name;
            if is_unavailable(&err) {
                tracing::debug!(parent: &span, reason = %status, "source unavailable; trying the next one");
                error.attempts.push(format!("{name}: unavailable: {line}"));
            } else {
                tracing::warn!(parent: &span, error = %status, "source is configured but failed; the chain stops");
                error.attempts.push(format!("{name}: failed: {line}"));
                error.failed = Some((name.clone(), err));
            }
        }
        let message = error.to_string();
        Err(azure_core::Error::with_error(
            ErrorKind::Credential,
            error,
            message,
        ))
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
            ce.attempts,
            [
                "A: unavailable: a not set",
                "B: failed: b broken",
                "C: not tried"
            ]
        );
        let (failed, error) = ce.failed.as_ref().unwrap();
        assert_eq!(
            (failed.as_str(), error.to_string()),
            ("B", "b broken".into())
        );
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
