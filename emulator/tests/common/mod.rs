//! Shared helpers for the integration tests.
#![allow(dead_code)]

use entra_emulator::{Emulator, FederatedCredential, Issuer, JWT_BEARER, ServiceAccountToken};
use serde_json::Value;

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT: &str = "8c2d3b5f-4a6e-4b1c-9d7e-0f1a2b3c4d5e";
pub const STORAGE: &str = "https://storage.azure.com/.default";

pub struct Setup {
    pub emu: Emulator,
    pub issuer: Issuer,
    pub sa: ServiceAccountToken,
    pub client: reqwest::Client,
}

/// An emulator with one tenant, one app and a FIC for default/workload on an EKS issuer.
pub async fn setup() -> Setup {
    let emu = Emulator::start().await.unwrap();
    let issuer = emu.add_eks_issuer();
    let sa = ServiceAccountToken::new("default", "workload");
    emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(issuer.url(), sa.subject()),
    );
    let client = emu.reqwest_client();
    Setup {
        emu,
        issuer,
        sa,
        client,
    }
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub fn code(&self) -> i64 {
        self.body["error_codes"][0].as_i64().unwrap_or(-1)
    }
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
    pub fn description(&self) -> &str {
        self.body["error_description"].as_str().unwrap_or("")
    }
    /// Asserts an Entra error shape.
    pub fn assert_entra_error(&self, status: u16, error: &str, code: i64) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.error(), error, "{}", self.body);
        assert_eq!(self.code(), code, "{}", self.body);
        let d = self.description();
        assert!(d.starts_with(&format!("AADSTS{code}: ")), "{d}");
        assert!(d.contains("\r\nTrace ID: "), "{d}");
        assert!(d.contains("\r\nCorrelation ID: "), "{d}");
        assert!(d.contains("\r\nTimestamp: "), "{d}");
        for k in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
            assert!(self.body[k].is_string(), "missing {k}: {}", self.body);
        }
    }
}

pub async fn post_form(s: &Setup, tenant: &str, pairs: &[(&str, &str)]) -> Answer {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let resp = s
        .client
        .post(format!(
            "{}/{tenant}/oauth2/v2.0/token",
            s.emu.authority_host()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        headers,
    }
}

/// A well-formed client-credentials request with `assertion`.
pub async fn request_token(s: &Setup, assertion: &str) -> Answer {
    post_form(
        s,
        TENANT,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("scope", STORAGE),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
    )
    .await
}

/// Decodes a JWT's claims without verification.
pub fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let part = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Decodes a JWT's header.
pub fn header(jwt: &str) -> Value {
    use base64::Engine as _;
    let part = jwt.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `Response::json` needs reqwest's `json` feature; this does the same with serde_json.
pub trait JsonExt {
    /// The body parsed as JSON.
    fn json_value(self) -> impl std::future::Future<Output = Result<Value, String>>;
}

impl JsonExt for reqwest::Response {
    async fn json_value(self) -> Result<Value, String> {
        let bytes = self.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }
}
