//! Any [`azure_identity::ClientAssertion`] as the assertion source: the field's standard trait, so
//! code outside this crate can supply assertions (and report its own errors as
//! `azure_core::Error`) while keeping this crate's cache and diagnostics.

use super::{Assertion, AssertionSource, ForeignAudience};
use crate::config::AUDIENCE_PUBLIC;
use crate::error::CredentialError;
use crate::escape::escape;
use crate::problem::ProblemId;
use azure_core::error::ErrorKind;
use azure_identity::ClientAssertion;

/// An [`AssertionSource`] over an [`azure_identity::ClientAssertion`].
///
/// The assertion returned by [`ClientAssertion::secret`] is sent as it is (surrounding whitespace
/// trimmed). When it is a JWT, its claims are decoded (unverified) to explain Entra's errors, and a
/// token whose audience makes it a credential for AWS or the Kubernetes API is refused unless
/// foreign audiences are allowed. An error of the source reaches the caller with the source's
/// `azure_core::Error` as its [`source`](std::error::Error::source); it is transient (retried by
/// the cache sooner) when its kind is `Io`, `Connection`, or an HTTP 408, 429 or 5xx.
#[derive(Debug)]
pub struct ClientAssertionSource<C> {
    assertion: C,
    allow_foreign_audience: bool,
}

impl<C: ClientAssertion> ClientAssertionSource<C> {
    /// Wrap `assertion`. `allow_foreign_audience`: send assertions whose audience is AWS STS, the
    /// EKS Pod Identity agent, the Kubernetes API server or their own issuer (default: refused).
    pub fn new(assertion: C, allow_foreign_audience: bool) -> Self {
        Self {
            assertion,
            allow_foreign_audience,
        }
    }
}

impl CredentialError {
    /// The error of an assertion source that could not produce an assertion: what a custom
    /// [`AssertionSource`] returns from [`assertion`](AssertionSource::assertion) when it fails
    /// (and what [`ClientAssertionSource`] makes of its `ClientAssertion`'s error).
    ///
    /// `what` names the source in the message and the fix (e.g. its
    /// [`describe`](AssertionSource::describe)); `e` is the source's own error, quoted in the
    /// message and kept as [`source`](std::error::Error::source), so neither may contain the
    /// assertion. Build `e` from any error with `azure_core::Error::new(kind, error)` or
    /// `azure_core::Error::with_message(kind, message)`.
    ///
    /// The result has category [`ErrorCategory::Assertion`](crate::ErrorCategory::Assertion) and problem
    /// [`ProblemId::ClientAssertionSource`]. It is transient (the cache tries again after
    /// `RefreshPolicy::transient_error_ttl` instead of `permanent_error_ttl`) when `e`'s kind is
    /// `Io`, `Connection`, or an HTTP response with status 408, 429 or 5xx.
    pub fn assertion_source_failed(what: &str, e: azure_core::Error) -> Self {
        let transient = match e.kind() {
            ErrorKind::Io | ErrorKind::Connection => true,
            ErrorKind::HttpResponse { status, .. } => {
                matches!(u16::from(*status), 408 | 429 | 500..)
            }
            _ => false,
        };
        // Both come from outside the crate: escaped, so a multi-line error (or a control
        // character) stays on the first line instead of breaking it; `e` itself is the source.
        let what = escape(what);
        Self::new(
        ProblemId::ClientAssertionSource,
        format!("the client assertion source ({what}) failed: {}.", escape(&e.to_string())),
    )
    .with_fix(format!("correct what makes {what} fail (its error above); it is retried, sooner after an I/O, connection, 408, 429 or 5xx error."))
    .with_transient(transient)
    .with_source(e)
    }
}

#[async_trait::async_trait]
impl<C: ClientAssertion + 'static> AssertionSource for ClientAssertionSource<C> {
    async fn assertion(&self) -> Result<Assertion, CredentialError> {
        let what = self.describe();
        let secret = self
            .assertion
            .secret(None)
            .await
            .map_err(|e| CredentialError::assertion_source_failed(&what, e))?;
        let jwt = secret.trim();
        if jwt.is_empty() {
            return Err(CredentialError::new(
                ProblemId::ClientAssertionSource,
                format!("the client assertion source ({what}) returned an empty assertion."),
            )
            .with_fix(format!(
                "make {what} return the JWT to present to Entra ID."
            )));
        }
        // Diagnostics only: an assertion that is not a JWT is sent as it is, for Entra to judge.
        let claims = crate::jwt::decode(jwt).ok().map(|d| d.claims);
        if let Some(c) = &claims
            && let Some(foreign) = ForeignAudience::first_in_claims(c)
        {
            if !self.allow_foreign_audience {
                return Err(CredentialError::new(
                    ProblemId::ForeignAudience,
                    format!(
                        "refused to send the assertion of {what}: its audience ({}) makes it a credential for {}, and sending it to Entra ID would hand that credential to a third party.",
                        c.audiences_display(),
                        foreign.describe()
                    ),
                )
                .with_fix(format!("have {what} issue a token for the federated identity credential's audience ({AUDIENCE_PUBLIC} by default).")));
            }
            tracing::warn!(source = %what, "sending an assertion that is also a credential for {} (allow_foreign_audience is set)", foreign.describe());
        }
        Ok(Assertion::new(jwt.to_string(), claims, what))
    }

    fn describe(&self) -> String {
        format!("client assertion {}", std::any::type_name::<C>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_line_source_error_stays_on_the_first_line_escaped() {
        let e = azure_core::Error::with_message(
            ErrorKind::Other,
            "vault said no\n\u{1b}[31mFORGED log line",
        );
        let err = CredentialError::assertion_source_failed("my source\n", e);
        let message = err.message();
        assert!(!message.chars().any(char::is_control), "{message:?}");
        assert!(
            message.starts_with(
                r"WorkloadIdentityCredential: the client assertion source (my source\n) failed: vault said no\n\u{1b}[31mFORGED log line."
            ),
            "{message}"
        );
        // The source's own error is kept as it is.
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("no\n\u{1b}"), "{source:?}");
    }
}
