//! reqsign's [`ProvideCredential`] over any [`TokenCredential`], for OpenDAL's `azblob` and `azdls`
//! services: [`TokenCredentialProvider`].
//!
//! OpenDAL 0.59 signs Azure Storage requests with reqsign 3 (`reqsign-core`,
//! `reqsign-azure-storage`); its builders (`Azblob`, `Azdls`) take the providers to ask as a
//! `reqsign_core::ProvideCredentialChain<reqsign_azure_storage::Credential>` in
//! `credential_provider_chain` (example: the [crate docs](crate), section "OpenDAL").
//!
//! # Expiry
//!
//! OpenDAL keeps a credential until 20 s before the expiry it is given, and for ever if none is
//! given, so every credential carries the token's real expiry (`AccessToken::expires_on`). OpenDAL
//! therefore asks again only in the token's last 20 s, and holds its signing lock meanwhile. This
//! crate's credentials are then inside their mandatory margin
//! ([`RefreshPolicy::mandatory_margin`](crate::RefreshPolicy), 60 s) and refresh before answering:
//! the requests signed at that moment wait for one token exchange (bounded by
//! `RefreshPolicy::attempt_timeout`), once per token lifetime; if the exchange fails they get the
//! still-valid token and OpenDAL asks again on its next request.
//!
//! # Errors
//!
//! Called directly (`ProvideCredential::provide_credential`), a failure is a `reqsign_core::Error`
//! whose message is the credential's text and whose source is the credential's
//! [`azure_core::Error`]; it is retryable when the failure is transient. But
//! `ProvideCredentialChain`, which OpenDAL's builders require, drops a provider's error and moves
//! on, so OpenDAL itself reports only "failed to load signing credential". The adapter therefore
//! logs every failure with `tracing` at WARN, with the credential's text, so the reason reaches
//! the application's logs.

use super::STORAGE_SCOPE;
use azure_core::credentials::TokenCredential;
use reqsign_azure_storage::Credential;
use reqsign_core::time::Timestamp;
use reqsign_core::{Context, ErrorKind, ProvideCredential};
use std::fmt;
use std::sync::Arc;

use crate::{CredentialError, ErrorCategory};

/// reqsign's `ProvideCredential<Credential = reqsign_azure_storage::Credential>` over an
/// `Arc<dyn TokenCredential>`: a bearer token for the adapter's scope (default [`STORAGE_SCOPE`])
/// with its real expiry. `Debug` shows the scope and the wrapped credential, never a token.
pub struct TokenCredentialProvider {
    credential: Arc<dyn TokenCredential>,
    scope: String,
}

impl TokenCredentialProvider {
    /// An adapter asking `credential` for tokens for [`STORAGE_SCOPE`]
    /// (`https://storage.azure.com/.default`).
    pub fn new(credential: Arc<dyn TokenCredential>) -> Self {
        Self {
            credential,
            scope: STORAGE_SCOPE.to_string(),
        }
    }

    /// The same adapter asking for `scope` instead, e.g. an account-scoped
    /// `https://ACCOUNT.blob.core.windows.net/.default` or a sovereign cloud's (see the table in
    /// [`integrations`](super)). The scope is checked by the credential on the first request.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The scope requested for every token.
    pub fn scope(&self) -> &str {
        &self.scope
    }
}

impl fmt::Debug for TokenCredentialProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCredentialProvider")
            .field("scope", &self.scope)
            .field("credential", &self.credential)
            .finish()
    }
}

impl ProvideCredential for TokenCredentialProvider {
    type Credential = Credential;

    /// A bearer credential with the token's expiry; never `Ok(None)`: a credential that cannot
    /// produce a token fails with its error (see the module docs for what OpenDAL does with it).
    async fn provide_credential(&self, _: &Context) -> reqsign_core::Result<Option<Credential>> {
        let token = (self.credential.get_token(&[&self.scope], None).await)
            .inspect_err(|err| tracing::warn!(scope = %self.scope, error = %crate::error::log_line(err), "OpenDAL asked for an Azure Storage token and the credential failed"))
            .map_err(reqsign_error)?;
        let millis = token.expires_on.unix_timestamp_nanos() / 1_000_000;
        let expires_on = i64::try_from(millis)
            .ok()
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .ok_or_else(|| {
                reqsign_core::Error::unexpected(format!(
                    "the credential returned a token expiring at {}, which reqsign cannot represent",
                    token.expires_on
                ))
            })?;
        Ok(Some(Credential::with_bearer_token(
            token.token.secret(),
            Some(expires_on),
        )))
    }
}

/// The credential's error as reqsign's: same text, the `azure_core::Error` as source, the kind
/// from this crate's [`ErrorCategory`] where there is one, retryable when transient.
fn reqsign_error(err: azure_core::Error) -> reqsign_core::Error {
    let ours = err.downcast_ref::<CredentialError>();
    let kind = match ours.map(CredentialError::category) {
        Some(
            ErrorCategory::NotConfigured
            | ErrorCategory::InvalidConfiguration
            | ErrorCategory::InvalidScope
            | ErrorCategory::TokenFile,
        ) => ErrorKind::ConfigInvalid,
        Some(ErrorCategory::Entra)
            if ours.and_then(CredentialError::http_status).map(u16::from) == Some(429) =>
        {
            ErrorKind::RateLimited
        }
        Some(ErrorCategory::Assertion | ErrorCategory::Entra) => ErrorKind::PermissionDenied,
        Some(_) => ErrorKind::Unexpected,
        None => ErrorKind::CredentialInvalid,
    };
    let retryable = ours.is_some_and(CredentialError::is_transient);
    reqsign_core::Error::new(kind, err.to_string())
        .set_retryable(retryable)
        .with_source(err)
}
