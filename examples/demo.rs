//! The crate's main job, end to end, against the embedded emulator (no cloud needed):
//! a "pod" with a kubelet-written projected token gets Entra ID access tokens and calls a
//! resource API with them; then the usual misconfigurations fail with errors that say what to fix.
//!
//! Run: `cargo run --example demo`

use azure_core::credentials::TokenCredential;
use azure_core::http::ClientOptions;
use azure_identity::ClientAssertionCredentialOptions;
use azure_identity_k8s::{Env, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
use entra_emulator::{
    Emulator, Endpoint, FederatedCredential, ProjectedVolume, ServiceAccountToken,
};
use std::sync::Arc;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11";

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or_default()
}

/// The credential a pod would build with `WorkloadIdentityCredential::new(None)`, except that the
/// environment is given explicitly and the transport trusts the emulator's CA.
fn credential(emu: &Emulator, env: Env) -> azure_core::Result<Arc<WorkloadIdentityCredential>> {
    let client_options = ClientOptions {
        transport: Some(emu.transport()),
        ..Default::default()
    };
    WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions { client_options },
        env,
        ..Default::default()
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    step(
        1,
        "Starting the emulator: Entra ID + an EKS-shaped OIDC issuer, HTTPS on 127.0.0.1",
    );
    let emu = Emulator::start().await?;
    let issuer = emu.add_eks_issuer();
    println!("    authority host: {}", emu.authority_host());
    println!("    cluster issuer: {}", issuer.url());

    step(
        2,
        "Registering the app and its federated identity credential (what `az identity federated-credential create` does)",
    );
    let sa = ServiceAccountToken::new("payments", "api");
    emu.add_tenant(TENANT);
    emu.add_application(TENANT, CLIENT);
    emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(issuer.url(), sa.subject()),
    );
    println!(
        "    issuer={} subject={} audience=api://AzureADTokenExchange",
        issuer.url(),
        sa.subject()
    );

    step(
        3,
        "The kubelet writes the projected service-account token (atomic-writer layout, ..data symlink)",
    );
    let dir = tempfile::tempdir()?;
    let volume = ProjectedVolume::create(
        dir.path(),
        "azure-identity-token",
        issuer.clone(),
        sa.clone(),
    )?;
    println!(
        "    {} -> {}",
        volume.token_path().display(),
        std::fs::read_link(volume.token_path())?.display()
    );
    let env = Env::from_pairs([
        ("AZURE_CLIENT_ID", CLIENT.to_string()),
        ("AZURE_TENANT_ID", TENANT.to_string()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            volume.token_path().display().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST", emu.authority_host()),
    ]);
    println!(
        "    pod environment: AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST"
    );

    step(
        4,
        "WorkloadIdentityCredential::new + get_token(\"https://graph.microsoft.com/.default\")",
    );
    let cred = credential(&emu, env.clone())?;
    let token = cred
        .get_token(&["https://graph.microsoft.com/.default"], None)
        .await?;
    let c = claims(token.token.secret());
    println!(
        "    got a token: aud={} appid={} iss={} expires_on={}",
        c["aud"], c["appid"], c["iss"], token.expires_on
    );
    println!("    (the token itself is never printed or logged)");

    step(5, "Calling the (emulated) Microsoft Graph with it");
    let body = emu
        .reqwest_client()
        .get(format!(
            "{}v1.0/servicePrincipals(appId='{CLIENT}')",
            emu.base_url()
        ))
        .bearer_auth(token.token.secret())
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let sp: serde_json::Value = serde_json::from_slice(&body)?;
    println!(
        "    GET /v1.0/servicePrincipals(appId='{CLIENT}') -> displayName={} id={}",
        sp["displayName"], sp["id"]
    );

    step(
        6,
        "Ten more calls for the same scope are served from the cache",
    );
    for _ in 0..10 {
        cred.get_token(&["https://graph.microsoft.com/.default"], None)
            .await?;
    }
    println!(
        "    token requests sent to Entra so far: {}",
        emu.request_count(Endpoint::Token)
    );

    step(
        7,
        "The kubelet rotates the token; the next exchange sends the new one",
    );
    let before = volume.current_token();
    let after = volume.rotate_now()?;
    cred.get_token(&["https://vault.azure.net/.default"], None)
        .await?;
    let sent = emu
        .requests()
        .into_iter()
        .rfind(|r| r.endpoint == Endpoint::Token)
        .map(|r| r.form["client_assertion"].clone());
    println!(
        "    rotated: {}; the last exchange sent the new token: {}",
        before != after,
        sent.as_deref() == Some(after.as_str())
    );

    step(
        8,
        "Misconfiguration: the pod runs as service account `billing` instead of `api`",
    );
    let wrong_dir = tempfile::tempdir()?;
    let wrong = ProjectedVolume::create(
        wrong_dir.path(),
        "azure-identity-token",
        issuer.clone(),
        ServiceAccountToken::new("payments", "billing"),
    )?;
    let bad_env = Env::from_pairs([
        ("AZURE_CLIENT_ID", CLIENT.to_string()),
        ("AZURE_TENANT_ID", TENANT.to_string()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            wrong.token_path().display().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST", emu.authority_host()),
    ]);
    match credential(&emu, bad_env)?
        .get_token(&["https://storage.azure.com/.default"], None)
        .await
    {
        Ok(_) => println!("    unexpected success"),
        Err(e) => println!(
            "    error:\n      {}",
            e.to_string().replace('\n', "\n      ")
        ),
    }

    step(
        9,
        "Misconfiguration: reusing the IRSA token (audience sts.amazonaws.com) is refused before anything is sent",
    );
    let irsa_dir = tempfile::tempdir()?;
    let irsa = ProjectedVolume::create(
        irsa_dir.path(),
        "token",
        issuer.clone(),
        ServiceAccountToken {
            audiences: vec!["sts.amazonaws.com".into()],
            ..sa.clone()
        },
    )?;
    let irsa_env = Env::from_pairs([
        ("AZURE_CLIENT_ID", CLIENT.to_string()),
        ("AZURE_TENANT_ID", TENANT.to_string()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            irsa.token_path().display().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST", emu.authority_host()),
    ]);
    let requests_before = emu.request_count(Endpoint::Token);
    if let Err(e) = credential(&emu, irsa_env)?
        .get_token(&["https://storage.azure.com/.default"], None)
        .await
    {
        println!("    error:\n      {e}");
    }
    println!(
        "    requests sent to Entra for it: {}",
        emu.request_count(Endpoint::Token) - requests_before
    );

    println!(
        "\nDone. See README.md for the test command and docs/troubleshooting.md for every error."
    );
    emu.shutdown().await;
    Ok(())
}
