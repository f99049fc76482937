//! azure_core 0.31's `credentials::TokenCredential` over any azure_core 1.x [`TokenCredential`]:
//! [`TokenCredentialAdapter`], for redis 1.x's `entra-id` feature (`EntraIdCredentialsProvider::
//! new_with_credential`) and crates pinned to azure_core 0.31 (recipe: the [crate docs](crate),
//! section "azure_core 0.31").
//!
//! # Errors
//!
//! A failure is an `azure_core_0_31::Error` of kind `Credential` whose text is the credential's
//! and whose source is the credential's [`azure_core::Error`] (1.x); this crate's
//! [`CredentialError`](crate::CredentialError) (problem id, fix, HTTP status, AADSTS codes) is
//! reachable through it:
//!
//! ```
//! # #[cfg(feature = "azure_core_0_31")]
//! # mod demo {
//! use azure_identity_k8s::CredentialError;
//!
//! fn credential_error(err: &azure_core_0_31::Error) -> Option<&CredentialError> {
//!     err.downcast_ref::<azure_core::Error>()?.downcast_ref::<CredentialError>()
//! }
//! # }
//! ```

use azure_core::credentials::TokenCredential;
use azure_core_0_31::credentials::{AccessToken, TokenRequestOptions};
use azure_core_0_31::error::{Error, ErrorKind};
use std::sync::Arc;

/// azure_core 0.31's `credentials::TokenCredential` over an `Arc<dyn TokenCredential>`
/// (azure_core 1.x): the wrapped credential's token for the scopes asked, with its expiry
/// (`expires_on`, UTC). `Debug` shows the wrapped credential's `Debug`, never a token.
#[derive(Debug)]
pub struct TokenCredentialAdapter {
    credential: Arc<dyn TokenCredential>,
}

impl TokenCredentialAdapter {
    /// The adapter, in the `Arc` the 0.31 clients take as `Arc<dyn TokenCredential>`.
    pub fn new(credential: Arc<dyn TokenCredential>) -> Arc<Self> {
        Arc::new(Self { credential })
    }
}

#[async_trait::async_trait]
impl azure_core_0_31::credentials::TokenCredential for TokenCredentialAdapter {
    /// The wrapped credential's `get_token(scopes, None)`: for this crate's credentials a cache
    /// hit until the token nears its expiry. The 0.31 `options` are not forwarded: they carry
    /// only a 0.31 `Context`, which a 1.x credential cannot read. Errors as in the
    /// [module docs](self).
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core_0_31::Result<AccessToken> {
        let token = self.credential.get_token(scopes, None).await;
        let token = token.map_err(|e| Error::new(ErrorKind::Credential, e))?;
        Ok(AccessToken::new(
            token.token.secret().to_owned(),
            token.expires_on,
        ))
    }
}
