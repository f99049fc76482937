//! Code outside the crate implements the field's standard trait, `azure_identity::ClientAssertion`,
//! and gets this crate's cache, checks and diagnostics.

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::ClientMethodOptions;
use azure_identity::ClientAssertion;
use azure_identity_k8s::{ErrorCategory, WorkloadIdentityCredential};
use entra_emulator::{Endpoint, ServiceAccountToken};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An assertion source as an application would write it: it hands out a token it obtained
/// elsewhere, or fails with an `azure_core::Error` of its own.
#[derive(Debug)]
struct MyAssertion {
    token: Result<String, &'static str>,
    calls: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl ClientAssertion for MyAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.token
            .clone()
            .map_err(|m| azure_core::Error::with_message(ErrorKind::Io, m))
    }
}

fn credential(
    fx: &Fixture,
    token: Result<String, &'static str>,
) -> (Arc<WorkloadIdentityCredential>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let assertion = MyAssertion {
        token,
        calls: calls.clone(),
    };
    let cred = WorkloadIdentityCredential::with_client_assertion(assertion, Some(fx.options()))
        .expect("constructs");
    (cred, calls)
}

#[tokio::test]
async fn any_client_assertion_gets_the_cache() {
    let fx = Fixture::new().await;
    let jwt = fx.issuer.mint(&ServiceAccountToken::default());
    let (cred, calls) = credential(&fx, Ok(jwt));
    for _ in 0..3 {
        let t = cred.get_token(&[STORAGE], None).await.unwrap();
        assert_eq!(claims(t.token.secret())["appid"], CLIENT);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one assertion for one cached token"
    );
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);
}

#[tokio::test]
async fn its_errors_keep_their_kind_and_say_where_they_came_from() {
    let fx = Fixture::new().await;
    let (cred, _) = credential(&fx, Err("the vault holding the assertion is unreachable"));
    let e = cred.get_token(&[STORAGE], None).await.unwrap_err();
    let ce = credential_error(&e);
    assert_eq!(ce.category(), ErrorCategory::Assertion);
    assert!(ce.is_transient(), "an Io error is worth retrying");
    assert!(
        ce.message().contains("MyAssertion")
            && ce
                .message()
                .contains("the vault holding the assertion is unreachable")
            && ce.message().contains("#client-assertion-source"),
        "{ce}"
    );
    let inner = std::error::Error::source(&ce)
        .and_then(|s| s.downcast_ref::<azure_core::Error>())
        .expect("the source's own error");
    assert!(matches!(inner.kind(), ErrorKind::Io));
    assert_eq!(fx.emu.request_count(Endpoint::Token), 0);
}

#[tokio::test]
async fn its_assertions_get_the_diagnostics_and_the_security_checks() {
    let fx = Fixture::new().await;
    // A federated-credential mismatch is explained with the assertion's claims.
    let other = fx.issuer.mint(&ServiceAccountToken {
        service_account: "other".into(),
        ..Default::default()
    });
    let (cred, _) = credential(&fx, Ok(other));
    let ce = credential_error(&cred.get_token(&[STORAGE], None).await.unwrap_err());
    assert_eq!(ce.aadsts_codes(), &[70021]);
    assert!(
        ce.message().contains("system:serviceaccount:default:other"),
        "{ce}"
    );
    let requests = fx.emu.request_count(Endpoint::Token);
    // An IRSA token is refused before it is sent.
    let irsa = fx.issuer.mint(&ServiceAccountToken {
        audiences: vec!["sts.amazonaws.com".into()],
        ..Default::default()
    });
    let (cred, _) = credential(&fx, Ok(irsa));
    let ce = credential_error(&cred.get_token(&[STORAGE], None).await.unwrap_err());
    assert!(
        ce.message().contains("refused") && ce.message().contains("AWS STS"),
        "{ce}"
    );
    assert_eq!(
        fx.emu.request_count(Endpoint::Token),
        requests,
        "nothing sent"
    );
}
