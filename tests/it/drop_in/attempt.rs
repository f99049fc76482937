// Compiled twice by tests/it/drop_in.rs, like body.rs: once against azure_identity, once against
// this crate. Code written for azure_identity: construct, then request one token.

#[allow(clippy::needless_update)] // needed for one of the two crates, needless for the other
pub async fn attempt(
    client_options: azure_core::http::ClientOptions,
    client_id: String,
    tenant_id: String,
    token_file: std::path::PathBuf,
    scope: &str,
    between: Box<dyn FnOnce() + Send>,
) -> super::Attempt {
    use azure_core::credentials::TokenCredential;
    let options = WorkloadIdentityCredentialOptions {
        credential_options: azure_identity::ClientAssertionCredentialOptions { client_options },
        client_id: Some(client_id),
        tenant_id: Some(tenant_id),
        token_file_path: Some(token_file),
        ..Default::default()
    };
    let credential = match WorkloadIdentityCredential::new(Some(options)) {
        Ok(c) => c,
        Err(e) => return super::Attempt::New(e),
    };
    between();
    match credential.get_token(&[scope], None).await {
        Ok(t) => super::Attempt::Token(t),
        Err(e) => super::Attempt::GetToken(e),
    }
}
