//! azure_core 0.21's `auth::TokenCredential` over any azure_core 1.x [`TokenCredential`]:
//! [`TokenCredentialAdapter`], for the crates of the legacy SDK line (`azure_storage_blobs`,
//! `azure_storage_datalake`, `azure_data_tables`, `azure_storage_queues`,
//! `azure_security_keyvault`, `azure_data_cosmos` and `azure_messaging_servicebus` 0.21).
//!
//! azure_identity 0.21's `WorkloadIdentityCredential` reads the token file once, when it is
//! created; once that token expires (24 hours on EKS, an hour on AKS) every exchange fails with
//! AADSTS700024 although the kubelet keeps the file fresh. The adapter hands such a client this
//! crate's credential, which reads the file at every exchange; the change is one line (example:
//! the [crate docs](crate), section "azure_core 0.21").
//!
//! # Errors
//!
//! A failure is an `azure_core_0_21::Error` of kind `Credential` whose text is the credential's
//! and whose source is the credential's [`azure_core::Error`] (1.x); this crate's
//! [`CredentialError`](crate::CredentialError) (problem id, fix, HTTP status, AADSTS codes) is
//! reachable through it:
//!
//! ```
//! # #[cfg(feature = "azure_core_0_21")]
//! # mod demo {
//! use azure_identity_k8s::CredentialError;
//!
//! fn credential_error(err: &azure_core_0_21::Error) -> Option<&CredentialError> {
//!     err.downcast_ref::<azure_core::Error>()?.downcast_ref::<CredentialError>()
//! }
//! # }
//! ```
//!
//! A client usually wraps it in an error of its own; walk `std::error::Error::source` down to it.

use azure_core::credentials::TokenCredential;
use azure_core_0_21::auth::AccessToken;
use azure_core_0_21::error::{Error, ErrorKind};
use std::sync::Arc;

/// azure_core 0.21's `auth::TokenCredential` over an `Arc<dyn TokenCredential>` (azure_core 1.x):
/// the wrapped credential's token for the scopes asked, with its expiry (`expires_on`, UTC).
/// `Debug` shows the wrapped credential's `Debug`, never a token.
#[derive(Debug)]
pub struct TokenCredentialAdapter {
    credential: Arc<dyn TokenCredential>,
}

impl TokenCredentialAdapter {
    /// The adapter, in the `Arc` the 0.21 clients take as `Arc<dyn auth::TokenCredential>`
    /// (for example `StorageCredentials::token_credential`).
    pub fn new(credential: Arc<dyn TokenCredential>) -> Arc<Self> {
        Arc::new(Self { credential })
    }
}

#[async_trait::async_trait]
impl azure_core_0_21::auth::TokenCredential for TokenCredentialAdapter {
    /// The wrapped credential's `get_token(scopes, None)`: for this crate's credentials a cache
    /// hit until the token nears its expiry. Errors as in the [module docs](self).
    async fn get_token(&self, scopes: &[&str]) -> azure_core_0_21::Result<AccessToken> {
        let token = self.credential.get_token(scopes, None).await;
        let token = token.map_err(|e| Error::new(ErrorKind::Credential, e))?;
        Ok(AccessToken::new(
            token.token.secret().to_owned(),
            token.expires_on,
        ))
    }

    /// A no-op that returns `Ok(())`. The 1.x `TokenCredential` trait has no way to clear a
    /// cache, and nothing needs one: this crate's credentials refresh ahead of expiry and read
    /// the token file at every exchange, so their cache holds nothing stale to drop, and a forced
    /// exchange would only cost a round trip to Entra. No 0.21 client calls it; only
    /// azure_identity 0.21's own credential chains forward it.
    async fn clear_cache(&self) -> azure_core_0_21::Result<()> {
        Ok(())
    }
}
