//! Microsoft's own client accepts the emulator: azure_identity's WorkloadIdentityCredential
//! reads a projected token file and gets an access token.

mod common;
use azure_core::credentials::TokenCredential;
use azure_identity::{
    ClientAssertionCredentialOptions, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use common::*;
use entra_emulator::{Endpoint, ProjectedVolume};

#[allow(clippy::needless_update)] // needless on azure_identity 1.0 only
fn credential(
    s: &Setup,
    vol: &ProjectedVolume,
    client_id: &str,
) -> std::sync::Arc<WorkloadIdentityCredential> {
    WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            client_options: s.emu.client_options(),
        },
        client_id: Some(client_id.to_owned()),
        tenant_id: Some(TENANT.to_owned()),
        token_file_path: Some(vol.token_path()),
        // azure_identity 1.1 adds fields (enable_proxy, proxy_client).
        ..Default::default()
    }))
    .unwrap()
}

#[tokio::test]
async fn workload_identity_credential_gets_a_token() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let vol = ProjectedVolume::create(
        dir.path(),
        "azure-identity-token",
        s.issuer.clone(),
        s.sa.clone(),
    )
    .unwrap();
    let cred = credential(&s, &vol, CLIENT);
    let token = cred.get_token(&[STORAGE], None).await.unwrap();
    let c = claims(token.token.secret());
    assert_eq!(c["aud"], "https://storage.azure.com");
    assert_eq!(c["appid"], CLIENT);
    let left = token.expires_on - time::OffsetDateTime::now_utc();
    assert!(left > time::Duration::minutes(55), "{left}");
    let rec = s
        .emu
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::Token)
        .unwrap();
    assert_eq!(rec.form["client_assertion"], vol.current_token());
    assert_eq!(rec.form["grant_type"], "client_credentials");
}

#[tokio::test]
async fn workload_identity_credential_surfaces_aadsts_errors() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let vol = ProjectedVolume::create(dir.path(), "token", s.issuer.clone(), s.sa.clone()).unwrap();
    let cred = credential(&s, &vol, "99999999-9999-9999-9999-999999999999");
    let err = cred.get_token(&[STORAGE], None).await.unwrap_err();
    let text = format!("{err:?} {err}");
    assert!(text.contains("700016"), "{text}");
}
