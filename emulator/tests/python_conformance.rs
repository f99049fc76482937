//! Python azure-identity's WorkloadIdentityCredential accepts the emulator. The interpreter is
//! `$ENTRA_EMULATOR_PYTHON` (the test command creates a virtualenv with azure-identity pinned and
//! sets it), else `python3`. A missing azure-identity is a failure, never a silent skip.

mod common;
use common::*;
use entra_emulator::ProjectedVolume;
use std::process::Command;

fn python() -> String {
    std::env::var("ENTRA_EMULATOR_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn python_has_azure_identity() -> bool {
    Command::new(python())
        .args(["-c", "import azure.identity"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn python_workload_identity_credential_gets_a_token() {
    assert!(
        python_has_azure_identity(),
        "{} cannot import azure.identity: run the README's test command (bash scripts/test.sh), \
         which installs it, or `pip install azure-identity==1.27.0`",
        python()
    );
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let vol = ProjectedVolume::create(
        &dir.path().join("token"),
        "azure-identity-token",
        s.issuer.clone(),
        s.sa.clone(),
    )
    .unwrap();
    let ca = dir.path().join("ca.pem");
    s.emu.write_ca_pem(&ca).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/workload_identity.py"
    );
    let authority = s.emu.authority_host();
    let token_file = vol.token_path();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .env("AZURE_AUTHORITY_HOST", authority)
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_CLIENT_ID", CLIENT)
            .env("AZURE_FEDERATED_TOKEN_FILE", token_file)
            .env("REQUESTS_CA_BUNDLE", &ca)
            .env("SSL_CERT_FILE", &ca)
            .env_remove("AZURE_CLIENT_SECRET")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["aud"], "https://storage.azure.com");
    assert_eq!(claims["appid"], CLIENT);
    assert_eq!(claims["tid"], TENANT);
}
