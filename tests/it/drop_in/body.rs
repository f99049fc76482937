// This file is compiled twice by tests/it/drop_in.rs: once with
//     use azure_identity::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
// and once with
//     use azure_identity_k8s::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
// in scope. It is ordinary code written for azure_identity; nothing in it may change.

#[allow(clippy::needless_update)] // needed for one of the two crates, needless for the other
pub async fn get_storage_token(
    client_options: azure_core::http::ClientOptions,
    client_id: String,
    tenant_id: String,
    token_file: std::path::PathBuf,
) -> azure_core::Result<azure_core::credentials::AccessToken> {
    use azure_core::credentials::TokenCredential;
    let options = WorkloadIdentityCredentialOptions {
        credential_options: azure_identity::ClientAssertionCredentialOptions { client_options },
        client_id: Some(client_id),
        tenant_id: Some(tenant_id),
        token_file_path: Some(token_file),
        ..Default::default()
    };
    let credential: std::sync::Arc<WorkloadIdentityCredential> =
        WorkloadIdentityCredential::new(Some(options))?;
    let as_dyn: std::sync::Arc<dyn TokenCredential> = credential.clone();
    as_dyn
        .get_token(&["https://storage.azure.com/.default"], None)
        .await
}
