//! The azure_core 0.31 adapter: the token and its expiry passed through, the error's text and
//! `CredentialError` kept.

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_core_0_31::credentials::TokenCredential as _;
use azure_core_0_31::error::ErrorKind;
use azure_identity_k8s::integrations::azure_core_0_31::TokenCredentialAdapter;
use azure_identity_k8s::{CredentialError, ProblemId, WorkloadIdentityCredential};
use entra_emulator::Endpoint;

#[tokio::test]
async fn the_adapter_passes_the_credentials_token_and_expiry_through() {
    let fx = Fixture::new().await;
    let credential = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let adapter = TokenCredentialAdapter::new(credential.clone());
    let old = adapter.get_token(&[VAULT], None).await.unwrap();
    let new = credential.get_token(&[VAULT], None).await.unwrap();
    assert_eq!(old.token.secret(), new.token.secret());
    assert_eq!(old.expires_on, new.expires_on);
    assert_eq!(claims(old.token.secret())["aud"], "https://vault.azure.net");
    // Options are accepted (and not forwarded); the cached token answers.
    let options = azure_core_0_31::credentials::TokenRequestOptions::default();
    let again = adapter.get_token(&[VAULT], Some(options)).await.unwrap();
    assert_eq!(again.token.secret(), new.token.secret());
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);
    let debug = format!("{adapter:?}");
    assert!(debug.starts_with("TokenCredentialAdapter"), "{debug}");
    assert!(!debug.contains(new.token.secret()), "{debug}");
}

#[tokio::test]
async fn a_failure_keeps_the_credentials_text_and_its_credential_error() {
    let fx = Fixture::new().await;
    let (credential, text) = fx.unfederated_credential().await;
    let err = TokenCredentialAdapter::new(credential)
        .get_token(&[STORAGE], None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Credential);
    assert_eq!(err.to_string(), text);
    let ours = err
        .downcast_ref::<azure_core::Error>()
        .and_then(|e| e.downcast_ref::<CredentialError>())
        .expect("the 1.x error, and ours behind it");
    assert_eq!(ours.problem_id(), Some(ProblemId::Aadsts(70021)));
    assert!(ours.fix().is_some());
}
