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

mod common;
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::DefaultAzureCredential;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use common::LocalPod;
use entra_emulator::Endpoint;
use std::sync::Arc;

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

    let pod = LocalPod::start().await?;
    let emu = &pod.emu;
    emu.set_secret(&name, "s3cr3t-from-the-emulated-vault");
    let client_options = pod.client_options();
    let credential: Arc<dyn TokenCredential> = pod.credential()?;
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
