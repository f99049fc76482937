//! The binary prints the environment, serves tokens for it, stops on SIGTERM, and its HTTP
//! control API stages mistakes (a federated credential, a token for another audience or issuer,
//! a Key Vault secret) with no Rust on the user's side.
#![cfg(unix)]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The running binary, the environment it printed, and a client trusting its CA.
struct Binary {
    child: Child,
    env: BTreeMap<String, String>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Binary {
    fn start() -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_entra_emulator"))
            .args(["--dir", dir.path().to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut env = BTreeMap::new();
        while env.len() < 6 {
            let line = lines.next().unwrap().unwrap();
            let (k, v) = line
                .strip_prefix("export ")
                .unwrap()
                .split_once('=')
                .unwrap();
            env.insert(k.to_owned(), v.to_owned());
        }
        let ca = std::fs::read(&env["SSL_CERT_FILE"]).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .no_proxy()
            .build()
            .unwrap();
        Binary {
            child,
            env,
            client,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.env["AZURE_AUTHORITY_HOST"])
    }

    /// The token endpoint's answer to a client-credentials request with `assertion`.
    async fn exchange(&self, assertion: &str, scope: &str) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(&format!(
                "/{}/oauth2/v2.0/token",
                self.env["AZURE_TENANT_ID"]
            )))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs([
                        ("grant_type", "client_credentials"),
                        ("client_id", self.env["AZURE_CLIENT_ID"].as_str()),
                        ("scope", scope),
                        ("client_assertion_type", entra_emulator::JWT_BEARER),
                        ("client_assertion", assertion),
                    ])
                    .finish(),
            )
            .send()
            .await
            .unwrap();
        read(r).await
    }

    /// A control API call: its status and JSON answer.
    async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .request(method, self.url(path))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        read(r).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.control(reqwest::Method::POST, path, body).await;
        assert_eq!(status, 200, "{path}: {answer}");
        answer
    }

    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "{exit:?}");
    }
}

/// A response's status and JSON body.
async fn read(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn binary_prints_environment_and_stops() {
    let b = Binary::start();
    for k in [
        "AZURE_AUTHORITY_HOST",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
        "SSL_CERT_FILE",
    ] {
        assert!(b.env.contains_key(k), "{k} missing: {:?}", b.env);
    }
    let assertion = std::fs::read_to_string(&b.env["AZURE_FEDERATED_TOKEN_FILE"]).unwrap();
    let (status, _) = b
        .exchange(&assertion, "https://storage.azure.com/.default")
        .await;
    assert_eq!(status, 200);
    tokio::task::spawn_blocking(move || b.stop()).await.unwrap();
}

#[tokio::test]
async fn the_control_api_stages_mistakes_from_the_binary() {
    let b = Binary::start();
    let storage = "https://storage.azure.com/.default";
    let (tenant, client) = (
        b.env["AZURE_TENANT_ID"].clone(),
        b.env["AZURE_CLIENT_ID"].clone(),
    );
    // The binary's issuer is the first one listed, the one its token file comes from.
    let (_, issuers) = b
        .control(reqwest::Method::GET, "/_emulator/issuers", Value::Null)
        .await;
    let issuer = issuers[0].as_str().unwrap().to_owned();
    let file = std::fs::read_to_string(&b.env["AZURE_FEDERATED_TOKEN_FILE"]).unwrap();
    assert_eq!(claims(&file)["iss"], issuer.as_str());

    // A token for another audience (the IRSA one): minted, then refused for want of a credential.
    let minted = b
        .post(
            "/_emulator/tokens",
            json!({"audiences": ["sts.amazonaws.com"], "lifetime_secs": 600}),
        )
        .await;
    let aws = minted["token"].as_str().unwrap();
    let c = claims(aws);
    assert_eq!(c["aud"], json!(["sts.amazonaws.com"]));
    assert_eq!(c["iss"], issuer.as_str());
    assert_eq!(c["sub"], "system:serviceaccount:default:workload");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);
    let (status, answer) = b.exchange(aws, storage).await;
    assert_eq!(
        (status, answer["error_codes"][0].as_i64()),
        (400, Some(70021))
    );

    // Another issuer, and a service account of its own: no credential matches until one is added.
    let other = b.post("/_emulator/issuers", Value::Null).await["issuer"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(other, issuer);
    let token = b
        .post(
            "/_emulator/tokens",
            json!({"issuer": other, "namespace": "billing", "service_account": "billing-api"}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        claims(&token)["sub"],
        "system:serviceaccount:billing:billing-api"
    );
    let (status, answer) = b.exchange(&token, storage).await;
    assert_eq!(
        (status, answer["error_codes"][0].as_i64()),
        (400, Some(70021))
    );
    b.post(
        "/_emulator/federated-credentials",
        json!({"tenant_id": tenant, "client_id": client, "issuer": other,
               "subject": "system:serviceaccount:billing:billing-api", "name": "second-cluster"}),
    )
    .await;
    let (status, answer) = b.exchange(&token, storage).await;
    assert_eq!(status, 200, "{answer}");

    // A token claiming an issuer the emulator does not serve (signed with a served one's key):
    // Entra cannot fetch its discovery document.
    let foreign_iss = b.url("/id/NOT-SERVED");
    let foreign_iss = foreign_iss.as_str();
    let token = b
        .post("/_emulator/tokens", json!({"iss": foreign_iss}))
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(claims(&token)["iss"], foreign_iss);
    b.post(
        "/_emulator/federated-credentials",
        json!({"tenant_id": tenant, "client_id": client, "issuer": foreign_iss,
               "subject": "system:serviceaccount:default:workload"}),
    )
    .await;
    let (status, answer) = b.exchange(&token, storage).await;
    assert_eq!(
        (status, answer["error_codes"][0].as_i64()),
        (400, Some(90061)),
        "{answer}"
    );

    // A Key Vault secret, read with a token for the vault.
    let seeded = b
        .post(
            "/_emulator/secrets",
            json!({"name": "db-password", "value": "s3cr3t"}),
        )
        .await;
    let version = seeded["version"].as_str().unwrap();
    let (status, vault) = b.exchange(&file, "https://vault.azure.net/.default").await;
    assert_eq!(status, 200);
    let (status, secret) = read(
        b.client
            .get(b.url("/secrets/db-password?api-version=2025-07-01"))
            .bearer_auth(vault["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{secret}");
    assert_eq!(secret["value"], "s3cr3t");
    assert!(
        secret["id"].as_str().unwrap().ends_with(version),
        "{secret}"
    );

    // Removing the application's credentials brings AADSTS70021 back for the binary's own token.
    b.control(
        reqwest::Method::DELETE,
        "/_emulator/federated-credentials",
        json!({"tenant_id": tenant, "client_id": client}),
    )
    .await;
    let (status, answer) = b.exchange(&file, storage).await;
    assert_eq!(
        (status, answer["error_codes"][0].as_i64()),
        (400, Some(70021))
    );

    // Bad calls say what is wrong.
    for (path, body, error) in [
        (
            "/_emulator/tokens",
            json!({"issuer": "https://nowhere"}),
            "'issuer' is not an issuer",
        ),
        (
            "/_emulator/tokens",
            json!({"audiences": "x"}),
            "'audiences' is not a list",
        ),
        (
            "/_emulator/federated-credentials",
            json!({"issuer": "x"}),
            "are required",
        ),
        (
            "/_emulator/federated-credentials",
            json!({"tenant_id": "t", "client_id": "c", "issuer": "i", "subject": "s",
                   "valid_after_secs": "10"}),
            "'valid_after_secs' is not",
        ),
        ("/_emulator/secrets", json!({"name": "x"}), "are required"),
    ] {
        let (status, answer) = b.control(reqwest::Method::POST, path, body).await;
        assert_eq!(status, 400, "{path}");
        assert!(
            answer["error"].as_str().unwrap().contains(error),
            "{answer}"
        );
    }
    tokio::task::spawn_blocking(move || b.stop()).await.unwrap();
}
