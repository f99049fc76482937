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
use std::fmt;

/// A client assertion: the JWT to present, plus what is known about it for diagnostics.
///
/// `Debug` never shows the JWT.
#[derive(Clone)]
pub struct Assertion {
    jwt: String,
    claims: Option<Claims>,
    origin: String,
}

impl Assertion {
    /// A new assertion. `origin` says where it came from (e.g. a file path); `claims` are its
    /// decoded, unverified claims when known.
    pub fn new(jwt: String, claims: Option<Claims>, origin: impl Into<String>) -> Self {
        Self {
            jwt,
            claims,
            origin: origin.into(),
        }
    }

    /// The JWT itself. Handle with care: it is a credential.
    pub fn secret(&self) -> &str {
        &self.jwt
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

impl fmt::Debug for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Assertion")
            .field("origin", &self.origin)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

/// A source of client assertions.
#[async_trait::async_trait]
pub trait AssertionSource: Send + Sync + fmt::Debug + 'static {
    /// Produce a fresh assertion for the next token request. Called once per exchange, so a
    /// rotated token is picked up by the very next request.
    async fn assertion(&self) -> Result<Assertion, CredentialError>;

    /// A short description for diagnostics (e.g. "token file /var/run/…").
    fn describe(&self) -> String;
}
