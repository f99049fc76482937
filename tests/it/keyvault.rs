//! The real `azure_security_keyvault_secrets` client against the emulator's Key Vault-like API:
//! the first request goes out without a token, the vault answers 401 with a challenge naming the
//! tenant and resource, the client asks our credential for `https://vault.azure.net/.default`, and
//! retries with the token.

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::{
    DefaultAzureCredential, DefaultAzureCredentialOptions, Env, WorkloadIdentityCredential,
};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use entra_emulator::Endpoint;
use std::sync::Arc;

fn secret_client(fx: &Fixture, credential: Arc<dyn TokenCredential>) -> SecretClient {
    let options = SecretClientOptions {
        client_options: fx.client_options(),
        // The challenge names vault.azure.net, which 127.0.0.1 is not a subdomain of.
        verify_challenge_resource: Some(false),
        ..Default::default()
    };
    SecretClient::new(fx.emu.base_url().as_str(), credential, Some(options)).unwrap()
}

#[tokio::test]
async fn secret_client_reads_a_secret_through_the_401_challenge() {
    let fx = Fixture::new().await;
    fx.emu.set_secret("db-password", "old");
    let latest = fx
        .emu
        .set_secret("db-password", "correct horse battery staple");
    let client = secret_client(
        &fx,
        WorkloadIdentityCredential::new(Some(fx.options())).unwrap(),
    );

    let secret = client
        .get_secret("db-password", None)
        .await
        .expect("get_secret")
        .into_model()
        .unwrap();
    assert_eq!(
        secret.value.as_deref(),
        Some("correct horse battery staple")
    );
    assert!(
        secret
            .id
            .as_deref()
            .unwrap_or_default()
            .ends_with(&format!("/secrets/db-password/{latest}")),
        "{:?}",
        secret.id
    );

    // What went over the wire: an unauthenticated request answered by the challenge, one token
    // request for the vault's resource, then the authorised request.
    let kv: Vec<(u16, Option<String>)> = fx
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == Endpoint::KeyVault)
        .map(|r| (r.status, r.scope))
        .collect();
    assert_eq!(
        kv,
        vec![
            (401, None),
            (200, Some("https://vault.azure.net".to_string()))
        ]
    );
    assert_eq!(fx.emu.token_request_count_for_scope(VAULT), 1);

    // The client keeps the challenge's scope and our credential its token: no new exchange.
    client.get_secret("db-password", None).await.unwrap();
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);
}

#[tokio::test]
async fn a_missing_secret_is_the_vaults_404_not_a_credential_error() {
    let fx = Fixture::new().await;
    let client = secret_client(
        &fx,
        WorkloadIdentityCredential::new(Some(fx.options())).unwrap(),
    );
    let err = client
        .get_secret("nope", None)
        .await
        .expect_err("no such secret");
    assert_eq!(err.http_status().map(u16::from), Some(404), "{err:?}");
    assert!(
        err.to_string().contains("SecretNotFound") || format!("{err:?}").contains("SecretNotFound"),
        "{err:?}"
    );
}

#[tokio::test]
async fn secret_client_works_with_default_azure_credential() {
    let fx = Fixture::new().await;
    fx.emu.set_secret("api-key", "k");
    let credential = DefaultAzureCredential::new(Some(DefaultAzureCredentialOptions {
        client_options: fx.client_options(),
        env: Env::from_pairs([
            ("AZURE_CLIENT_ID", CLIENT.to_string()),
            ("AZURE_TENANT_ID", TENANT.to_string()),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                fx.token_path.display().to_string(),
            ),
            ("AZURE_AUTHORITY_HOST", fx.emu.authority_host()),
            // One source only: nothing here may probe the real metadata address.
            (
                "AZURE_TOKEN_CREDENTIALS",
                "WorkloadIdentityCredential".to_string(),
            ),
        ]),
        ..Default::default()
    }))
    .unwrap();
    let client = secret_client(&fx, credential.clone());
    let secret = client
        .get_secret("api-key", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(secret.value.as_deref(), Some("k"));
    assert_eq!(
        credential.selected_source(),
        Some("WorkloadIdentityCredential")
    );
}
