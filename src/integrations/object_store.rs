//! object_store's Azure `CredentialProvider` over any [`TokenCredential`]:
//! [`TokenCredentialProvider`].
//!
//! One implementation serves object_store 0.13 (DataFusion 55, delta-rs 1.0, polars 0.55; feature
//! `object_store_0_13`) and 0.14 (lance; feature `object_store_0_14`): enable the one your store
//! uses. The type parameter is the `AzureCredential` of the object_store version in use and
//! is inferred from `MicrosoftAzureBuilder::with_credentials` (example: the [crate docs](crate),
//! section "object_store").
//!
//! # Cost per request
//!
//! object_store asks its provider for a credential before **every** request. The adapter asks the
//! wrapped credential for a token each time (for this crate's credentials a cache hit, answered
//! without waiting; refresh ahead of expiry, backoff after failures and serving a still-valid token
//! while Entra is unavailable are the credential's business) and, while the token is the one it saw
//! last, returns the same `Arc<AzureCredential>`: the adapter itself allocates only when the token
//! changes.
//!
//! # Errors
//!
//! A failure of the credential reaches the caller as `object_store::Error::Generic` with `store`
//! `"MicrosoftAzure"` and the credential's [`azure_core::Error`] as `source`; its text is the
//! credential's text, and this crate's [`CredentialError`](crate::CredentialError) (category, HTTP
//! status, AADSTS codes, transience) is reachable through it:
//!
//! ```
//! # #[cfg(feature = "object_store_0_13")]
//! # mod demo {
//! # use object_store_0_13 as object_store;
//! use azure_identity_k8s::CredentialError;
//!
//! fn credential_error(err: &object_store::Error) -> Option<&CredentialError> {
//!     match err {
//!         object_store::Error::Generic { source, .. } => source
//!             .downcast_ref::<azure_core::Error>()?
//!             .downcast_ref::<CredentialError>(),
//!         _ => None,
//!     }
//! }
//! # }
//! ```

use super::STORAGE_SCOPE;
use azure_core::credentials::TokenCredential;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// The `store` name object_store gives its Azure errors, used for the adapter's errors too.
const STORE: &str = "MicrosoftAzure";

/// object_store's `CredentialProvider<Credential = AzureCredential>` over an
/// `Arc<dyn TokenCredential>`: every request is authorized with a bearer token for the adapter's
/// scope (default [`STORAGE_SCOPE`]).
///
/// `C` is `object_store::azure::AzureCredential` of object_store 0.13 or 0.14 (see
/// [`BearerCredential`]); it is inferred where the provider is handed to
/// `MicrosoftAzureBuilder::with_credentials`. `Debug` shows the scope and the wrapped credential,
/// never a token.
pub struct TokenCredentialProvider<C> {
    credential: Arc<dyn TokenCredential>,
    scope: String,
    /// The credential built from the last token seen, handed out again while the token is unchanged.
    last: Mutex<Option<Arc<C>>>,
}

impl<C: BearerCredential> TokenCredentialProvider<C> {
    /// An adapter asking `credential` for tokens for [`STORAGE_SCOPE`]
    /// (`https://storage.azure.com/.default`).
    pub fn new(credential: Arc<dyn TokenCredential>) -> Self {
        Self {
            credential,
            scope: STORAGE_SCOPE.to_string(),
            last: Mutex::new(None),
        }
    }

    /// The same adapter asking for `scope` instead, e.g. an account-scoped
    /// `https://ACCOUNT.blob.core.windows.net/.default` or a sovereign cloud's (see the table in
    /// [`integrations`](super)). The scope is checked by the credential on the first request; a
    /// scope it refuses fails that request with the credential's error.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The scope requested for every token.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// A bearer credential for the current token: the previous `Arc` while the token is
    /// unchanged, a new one when it changed. Errors are the credential's, unchanged.
    async fn bearer(&self) -> azure_core::Result<Arc<C>> {
        let token = self.credential.get_token(&[&self.scope], None).await?;
        let secret = token.token.secret();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = last.as_ref().filter(|c| c.bearer_token() == Some(secret)) {
            return Ok(Arc::clone(current));
        }
        let fresh = Arc::new(C::from_bearer_token(secret.to_owned()));
        *last = Some(Arc::clone(&fresh));
        Ok(fresh)
    }
}

impl<C> fmt::Debug for TokenCredentialProvider<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCredentialProvider")
            .field("scope", &self.scope)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

/// object_store's `AzureCredential`, of each supported version: built from a bearer token, and
/// read back to tell whether a new token arrived. Sealed: implemented for
/// `object_store::azure::AzureCredential` of 0.13 and 0.14 only.
pub trait BearerCredential: sealed::Sealed + Send + Sync + 'static {
    /// `AzureCredential::BearerToken(token)`.
    fn from_bearer_token(token: String) -> Self;
    /// The token of a `BearerToken`, `None` for other kinds.
    fn bearer_token(&self) -> Option<&str>;
}

mod sealed {
    pub trait Sealed {}
}

/// The version-specific glue: `BearerCredential` for the version's `AzureCredential`, and its
/// `CredentialProvider` trait, both delegating to the one implementation above.
macro_rules! object_store_version {
    ($krate:ident) => {
        impl sealed::Sealed for ::$krate::azure::AzureCredential {}

        impl BearerCredential for ::$krate::azure::AzureCredential {
            fn from_bearer_token(token: String) -> Self {
                Self::BearerToken(token)
            }
            fn bearer_token(&self) -> Option<&str> {
                match self {
                    Self::BearerToken(token) => Some(token),
                    _ => None,
                }
            }
        }

        #[async_trait::async_trait]
        impl ::$krate::CredentialProvider
            for TokenCredentialProvider<::$krate::azure::AzureCredential>
        {
            type Credential = ::$krate::azure::AzureCredential;

            async fn get_credential(&self) -> ::$krate::Result<Arc<Self::Credential>> {
                self.bearer()
                    .await
                    .map_err(|source| ::$krate::Error::Generic {
                        store: STORE,
                        source: Box::new(source),
                    })
            }
        }
    };
}

#[cfg(feature = "object_store_0_13")]
object_store_version!(object_store_0_13);
#[cfg(feature = "object_store_0_14")]
object_store_version!(object_store_0_14);

#[cfg(test)]
#[cfg(feature = "object_store_0_14")]
mod tests {
    use super::*;
    use azure_core::credentials::{AccessToken, TokenRequestOptions};
    use object_store_0_14::CredentialProvider;
    use object_store_0_14::azure::AzureCredential;

    /// Hands out `token` (changed by the test) and records the scopes asked for.
    #[derive(Debug, Default)]
    struct Fake {
        token: Mutex<String>,
        scopes: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Fake {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.scopes.lock().unwrap().push(scopes.join(" "));
            let token = self.token.lock().unwrap().clone();
            if token.is_empty() {
                return Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Credential,
                    "no token: set one",
                ));
            }
            Ok(AccessToken::new(
                token,
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            ))
        }
    }

    fn bearer(c: &AzureCredential) -> &str {
        c.bearer_token().expect("a bearer token")
    }

    #[tokio::test]
    async fn one_arc_per_token_a_new_one_when_the_token_changes() {
        let fake = Arc::new(Fake::default());
        *fake.token.lock().unwrap() = "t1".into();
        let provider = TokenCredentialProvider::<AzureCredential>::new(fake.clone());
        let a = provider.get_credential().await.unwrap();
        let b = provider.get_credential().await.unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(bearer(&a), "t1");

        *fake.token.lock().unwrap() = "t2".into();
        let c = provider.get_credential().await.unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(bearer(&c), "t2");
        assert!(Arc::ptr_eq(&c, &provider.get_credential().await.unwrap()));
        assert_eq!(*fake.scopes.lock().unwrap(), vec![STORAGE_SCOPE; 4]);
    }

    #[tokio::test]
    async fn the_scope_is_configurable_and_errors_pass_through() {
        let fake = Arc::new(Fake::default());
        let scope = "https://myaccount.blob.core.chinacloudapi.cn/.default";
        let provider =
            TokenCredentialProvider::<AzureCredential>::new(fake.clone()).with_scope(scope);
        let err = provider.get_credential().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Generic MicrosoftAzure error: no token: set one"
        );
        assert_eq!(*fake.scopes.lock().unwrap(), vec![scope]);
        // A failure does not poison later calls.
        *fake.token.lock().unwrap() = "t".into();
        assert_eq!(bearer(&provider.get_credential().await.unwrap()), "t");
    }
}
