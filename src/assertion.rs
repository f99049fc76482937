//! Where client assertions come from.
//!
//! An [`AssertionSource`] supplies the JWT that is presented to Entra ID as the federated client
//! assertion. The projected service-account token file ([`TokenFileSource`]) is the built-in
//! source; others (AWS outbound federation, your own) plug into the same exchange and cache.

#[cfg(feature = "aws")]
mod aws;
mod client_assertion;
pub(crate) mod file_read;
pub(crate) mod foreign;
pub(crate) mod token_file;

#[cfg(all(feature = "aws", feature = "doctor"))]
pub(crate) use aws::STS_ANSWER_FIX;
#[cfg(feature = "aws")]
pub use aws::{
    AwsProbe, AwsStsError, AwsWebIdentitySource, AwsWebIdentitySourceOptions, ConfigLoaderHook,
};
pub use client_assertion::ClientAssertionSource;
pub(crate) use foreign::ForeignAudience;
pub use token_file::TokenFileSource;

use crate::error::CredentialError;
use crate::jwt::Claims;
use azure_core::credentials::Secret;
use std::fmt;

/// A client assertion: the JWT to present, plus what is known about it for diagnostics.
///
/// `Debug` never shows the JWT.
#[derive(Clone, Debug)]
pub struct Assertion {
    jwt: Secret,
    claims: Option<Claims>,
    origin: String,
}

impl Assertion {
    /// A new assertion. `jwt` is the compact JWT (three base64url parts, surrounding whitespace
    /// already removed) sent as `client_assertion`; `claims` are its decoded, unverified claims
    /// when known (deserialize the JWT's payload into [`Claims`] with serde), used only in
    /// messages; `origin` says where it came from (e.g. a file path), shown in messages and
    /// `Debug`.
    pub fn new(jwt: String, claims: Option<Claims>, origin: impl Into<String>) -> Self {
        Self {
            jwt: Secret::new(jwt),
            claims,
            origin: origin.into(),
        }
    }

    /// The JWT itself. Handle with care: it is a credential.
    pub fn secret(&self) -> &str {
        self.jwt.secret()
    }

    /// The decoded (unverified) claims, when known.
    pub fn claims(&self) -> Option<&Claims> {
        self.claims.as_ref()
    }

    /// Where the assertion came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// A source of client assertions, for
/// [`WorkloadIdentityCredential::with_assertion_source`](crate::WorkloadIdentityCredential::with_assertion_source).
///
/// Implement it outside the crate to supply assertions from anywhere (a secret store, another
/// token service); the credential's cache, exchange and diagnostics stay the same. A source that
/// only needs to return a string can implement `azure_identity::ClientAssertion` instead (see
/// [`ClientAssertionSource`]).
#[async_trait::async_trait]
pub trait AssertionSource: Send + Sync + fmt::Debug + 'static {
    /// Produce a fresh assertion for the next token request: the compact JWT to present as
    /// `client_assertion`, its [`Claims`] when known (they explain Entra's errors: issuer,
    /// subject and audience of a federated identity credential mismatch), and where it came from.
    /// Called once per exchange, so a rotated token is picked up by the very next request.
    ///
    /// # Errors
    ///
    /// A [`CredentialError`]; a custom source builds it with
    /// [`CredentialError::assertion_source_failed`]. Its
    /// [`is_transient`](CredentialError::is_transient) decides how soon the cache tries again.
    async fn assertion(&self) -> Result<Assertion, CredentialError>;

    /// A short description for diagnostics and messages (e.g. "token file /var/run/…"); never
    /// the assertion.
    fn describe(&self) -> String;

    /// The error for an [`assertion`](Self::assertion) call that outlived `bound`, the
    /// credential's `RefreshPolicy::attempt_timeout` (the attempt is abandoned and retried).
    /// `None`, the default, gives the credential's generic error, which points at the token file
    /// or the assertion source; a source whose hang has a known cause (a network service it
    /// calls) names it and its fix here.
    fn timed_out(&self, bound: azure_core::time::Duration) -> Option<CredentialError> {
        let _ = bound;
        None
    }
}
