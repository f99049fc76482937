//! Code outside the crate implements this crate's extension point, `AssertionSource`: its
//! assertions (with the `jwt::Claims` it decoded itself) get the cache and Entra's errors
//! explained with their claims; its failures are `CredentialError::assertion_source_failed`,
//! transient or not by the kind of its own error.

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_identity_k8s::assertion::{Assertion, AssertionSource};
use azure_identity_k8s::jwt::Claims;
use azure_identity_k8s::{CredentialError, ErrorCategory, ProblemId, WorkloadIdentityCredential};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entra_emulator::{Endpoint, ServiceAccountToken};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const WHAT: &str = "vault kv/entra-assertion";

/// A source as an application would write it: a JWT kept in a secret store (here minted by the
/// emulator's issuer) with its claims deserialized by serde, or the store's error.
#[derive(Debug)]
struct VaultSource {
    jwt: Result<String, ErrorKind>,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl AssertionSource for VaultSource {
    async fn assertion(&self) -> Result<Assertion, CredentialError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let jwt = self.jwt.clone().map_err(|kind| {
            CredentialError::assertion_source_failed(
                &self.describe(),
                azure_core::Error::with_message(kind, "the vault is sealed"),
            )
        })?;
        let payload = jwt
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok());
        let claims = payload.and_then(|p| serde_json::from_slice::<Claims>(&p).ok());
        Ok(Assertion::new(jwt, claims, WHAT))
    }

    fn describe(&self) -> String {
        WHAT.into()
    }
}

fn credential(
    fx: &Fixture,
    jwt: Result<String, ErrorKind>,
) -> (Arc<WorkloadIdentityCredential>, Arc<VaultSource>) {
    let source = Arc::new(VaultSource {
        jwt,
        calls: AtomicUsize::new(0),
    });
    let cred =
        WorkloadIdentityCredential::with_assertion_source(source.clone(), Some(fx.options()))
            .expect("constructs");
    (cred, source)
}

#[tokio::test]
async fn its_assertions_get_the_cache_and_their_claims_explain_entra() {
    let fx = Fixture::new().await;
    let jwt = fx.issuer.mint(&ServiceAccountToken::default());
    let (cred, source) = credential(&fx, Ok(jwt));
    for _ in 0..3 {
        let t = cred.get_token(&[STORAGE], None).await.unwrap();
        assert_eq!(claims(t.token.secret())["appid"], CLIENT);
    }
    assert_eq!(source.calls.load(Ordering::SeqCst), 1, "one assertion");
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);

    // A federated identity credential mismatch names the issuer from the source's own claims
    // (Entra's answer does not give it).
    let other = fx.issuer.mint(&ServiceAccountToken {
        service_account: "other".into(),
        ..Default::default()
    });
    let (cred, _) = credential(&fx, Ok(other));
    let ce = credential_error(&cred.get_token(&[STORAGE], None).await.unwrap_err());
    assert_eq!(ce.aadsts_codes(), &[70021]);
    assert!(
        ce.message().contains(&format!(
            "(vault kv/entra-assertion) has:\n    issuer:   {}",
            fx.issuer.url()
        )) && ce.message().contains("system:serviceaccount:default:other"),
        "{ce}"
    );
}

#[tokio::test]
async fn its_failures_are_credential_errors_transient_by_their_kind() {
    let fx = Fixture::new().await;
    for (kind, transient) in [
        (ErrorKind::Io, true),
        (ErrorKind::Connection, true),
        (ErrorKind::Other, false),
        (ErrorKind::Credential, false),
    ] {
        let (cred, source) = credential(&fx, Err(kind.clone()));
        let ce = credential_error(&cred.get_token(&[STORAGE], None).await.unwrap_err());
        assert_eq!(ce.category(), ErrorCategory::Assertion);
        assert_eq!(ce.problem_id(), Some(ProblemId::ClientAssertionSource));
        assert_eq!(ce.is_transient(), transient, "{kind:?}");
        assert!(
            ce.message().contains(WHAT) && ce.message().contains("the vault is sealed"),
            "{ce}"
        );
        assert!(ce.fix().is_some_and(|f| f.contains(WHAT)), "{ce}");
        let inner = std::error::Error::source(&ce)
            .and_then(|s| s.downcast_ref::<azure_core::Error>())
            .expect("the source's own error");
        assert_eq!(inner.kind(), &kind);
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    }
    assert_eq!(fx.emu.request_count(Endpoint::Token), 0, "nothing sent");
}
