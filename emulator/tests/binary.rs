//! The binary prints the environment, serves tokens for it, and stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[cfg(unix)]
#[tokio::test]
async fn binary_prints_environment_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_entra_emulator"))
        .args(["--dir", dir.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut env = std::collections::BTreeMap::new();
    while env.len() < 6 {
        let line = lines.next().unwrap().unwrap();
        let (k, v) = line
            .strip_prefix("export ")
            .unwrap()
            .split_once('=')
            .unwrap();
        env.insert(k.to_owned(), v.to_owned());
    }
    for k in [
        "AZURE_AUTHORITY_HOST",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
        "SSL_CERT_FILE",
    ] {
        assert!(env.contains_key(k), "{k} missing: {env:?}");
    }
    let ca = std::fs::read(&env["SSL_CERT_FILE"]).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .no_proxy()
        .build()
        .unwrap();
    let assertion = std::fs::read_to_string(&env["AZURE_FEDERATED_TOKEN_FILE"]).unwrap();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "client_credentials"),
            ("client_id", env["AZURE_CLIENT_ID"].as_str()),
            ("scope", "https://storage.azure.com/.default"),
            ("client_assertion_type", entra_emulator::JWT_BEARER),
            ("client_assertion", assertion.as_str()),
        ])
        .finish();
    let r = client
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            env["AZURE_AUTHORITY_HOST"], env["AZURE_TENANT_ID"]
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}
