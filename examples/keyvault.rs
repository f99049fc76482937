//! The real `azure_security_keyvault_secrets` client reading a secret with this crate's credential.
//! The client's first request carries no token; the vault answers 401 with a challenge naming the
//! tenant and resource; the client then asks the credential for `https://vault.azure.net/.default`.
//!
//! Local (default): the embedded emulator plays Entra ID, the cluster's OIDC issuer and a Key
//! Vault-like secret store.
//!
//! ```sh
//! cargo run --example keyvault
//! ```
//!
//! Azure: set `AZURE_KEYVAULT_URL` (e.g. `https://myvault.vault.azure.net/`) and pass the secret's
//! name (default `example-secret`); the credential is `DefaultAzureCredential::new(None)` (in a
//! pod: the workload identity), which needs the "Key Vault Secrets User" role on the vault.
//!
//! ```sh
//! AZURE_KEYVAULT_URL=https://myvault.vault.azure.net/ cargo run --example keyvault -- db-password
//! ```

use azure_core::credentials::TokenCredential;
use azure_core::http::ClientOptions;
use azure_identity::ClientAssertionCredentialOptions;
use azure_identity_k8s::{
    DefaultAzureCredential, Env, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use entra_emulator::{Emulator, Endpoint, FederatedCredential, ServiceAccountToken};
use std::sync::Arc;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11";

async fn read_secret(client: &SecretClient, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let secret = client.get_secret(name, None).await?.into_model()?;
    let value = secret.value.unwrap_or_default();
    println!(
        "secret {name}: {} characters, starts with {:?}… (id {})",
        value.chars().count(),
        value.chars().take(3).collect::<String>(),
        secret.id.unwrap_or_default()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "example-secret".into());
    if let Ok(vault_url) = std::env::var("AZURE_KEYVAULT_URL") {
        let credential = DefaultAzureCredential::new(None)?;
        let client = SecretClient::new(&vault_url, credential.clone(), None)?;
        read_secret(&client, &name).await?;
        println!(
            "authenticated with {}",
            credential.selected_source().unwrap_or("?")
        );
        return Ok(());
    }

    let emu = Emulator::start().await?;
    let issuer = emu.add_eks_issuer();
    emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(issuer.url(), ServiceAccountToken::default().subject()),
    );
    emu.set_secret(&name, "s3cr3t-from-the-emulated-vault");
    let dir = tempfile::tempdir()?;
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, issuer.mint(&ServiceAccountToken::default()))?;
    let client_options = ClientOptions {
        transport: Some(emu.transport()),
        ..Default::default()
    };
    let credential: Arc<dyn TokenCredential> =
        WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: client_options.clone(),
            },
            env: Env::from_pairs([
                ("AZURE_CLIENT_ID", CLIENT.to_string()),
                ("AZURE_TENANT_ID", TENANT.to_string()),
                (
                    "AZURE_FEDERATED_TOKEN_FILE",
                    token_file.display().to_string(),
                ),
                ("AZURE_AUTHORITY_HOST", emu.authority_host()),
            ]),
            ..Default::default()
        }))?;
    let client = SecretClient::new(
        emu.base_url().as_str(),
        credential,
        Some(SecretClientOptions {
            client_options,
            // The emulated vault is 127.0.0.1, not a subdomain of the challenge's vault.azure.net.
            verify_challenge_resource: Some(false),
            ..Default::default()
        }),
    )?;
    read_secret(&client, &name).await?;
    for r in emu.requests() {
        if matches!(r.endpoint, Endpoint::KeyVault | Endpoint::Token) {
            println!(
                "  {:<8} {} {} -> {}",
                format!("{:?}", r.endpoint),
                r.method,
                r.path,
                r.status
            );
        }
    }
    Ok(())
}
