//! The issuer side, as Entra sees it: discovery document, JWKS, RSA signature.

use crate::http::{Failure, SendError, send_capped};
use azure_core::http::headers;
use azure_core::http::{ClientOptions, Method, Pipeline, Request, Url};
use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::Deserialize;

/// Largest discovery document or JWKS read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// How long one fetch may take (Entra itself gives up quickly too).
const FETCH_TIMEOUT_SECS: i64 = 10;

/// Fetches documents through an azure_core pipeline (the credential's transport and TLS roots).
pub(crate) struct Fetcher {
    pipeline: Pipeline,
}

/// Why a fetch failed.
pub(crate) enum FetchError {
    /// No answer: DNS, connection, TLS (the classified cause).
    Transport(Failure),
    /// No answer within [`FETCH_TIMEOUT_SECS`].
    TimedOut,
    /// An answer that is not 2xx.
    Status(u16),
    /// A 2xx answer that is not the expected JSON.
    Body(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Transport(e) => write!(f, "{e}"),
            FetchError::TimedOut => write!(f, "no answer within {FETCH_TIMEOUT_SECS} s"),
            FetchError::Status(s) => write!(f, "HTTP {s}"),
            FetchError::Body(e) => write!(f, "an answer that is not the expected JSON ({e})"),
        }
    }
}

impl Fetcher {
    pub(crate) fn new(options: ClientOptions) -> Self {
        // One request per check: the doctor reports what it sees rather than retrying for minutes.
        Self {
            pipeline: crate::http::one_shot_pipeline(options),
        }
    }

    async fn get_bytes(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        let mut req = Request::new(url.clone(), Method::Get);
        req.insert_header(headers::ACCEPT, "application/json");
        let (status, _headers, body) = send_capped(&self.pipeline, &mut req, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| match e {
                SendError::Transport(error) | SendError::BrokeOff { error, .. } => {
                    FetchError::Transport(Failure::of(url, &error))
                }
                SendError::TooLarge { .. } => {
                    FetchError::Body(format!("larger than {MAX_DOCUMENT_BYTES} bytes"))
                }
            })?;
        if !status.is_success() {
            return Err(FetchError::Status(u16::from(status)));
        }
        Ok(body)
    }

    /// GET `url` and parse it as JSON of type `T`, within [`FETCH_TIMEOUT_SECS`].
    pub(crate) async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        url: &Url,
    ) -> Result<T, FetchError> {
        let fetch = Box::pin(self.get_bytes(url));
        let timeout = azure_core::async_runtime::get_async_runtime()
            .sleep(azure_core::time::Duration::seconds(FETCH_TIMEOUT_SECS));
        let bytes = match futures::future::select(fetch, timeout).await {
            futures::future::Either::Left((r, _)) => r?,
            futures::future::Either::Right(_) => return Err(FetchError::TimedOut),
        };
        serde_json::from_slice(&bytes).map_err(|e| FetchError::Body(e.to_string()))
    }
}

/// The fields of an OpenID discovery document that Entra uses.
#[derive(Debug, Deserialize)]
pub(crate) struct Discovery {
    #[serde(default)]
    pub(crate) issuer: Option<String>,
    #[serde(default)]
    pub(crate) jwks_uri: Option<String>,
    #[serde(default)]
    pub(crate) id_token_signing_alg_values_supported: Option<Vec<String>>,
}

/// A JWKS.
#[derive(Debug, Deserialize)]
pub(crate) struct Jwks {
    #[serde(default)]
    pub(crate) keys: Vec<Jwk>,
}

/// One key of a JWKS (the RSA fields only).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Jwk {
    #[serde(default)]
    pub(crate) kty: Option<String>,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    pub(crate) alg: Option<String>,
    #[serde(default)]
    pub(crate) n: Option<String>,
    #[serde(default)]
    pub(crate) e: Option<String>,
}

/// The URL of the discovery document of `issuer`, as Entra builds it.
pub(crate) fn discovery_url(issuer: &str) -> Result<Url, String> {
    Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
    .map_err(|e| e.to_string())
}

fn b64(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .or_else(|| URL_SAFE.decode(part).ok())
}

/// Verify a compact JWS signed with `alg` (RS256, RS384 or RS512) against an RSA JWK, as Entra
/// does.
pub(crate) fn verify_rsa(jwt: &str, alg: &str, key: &Jwk) -> Result<(), String> {
    use aws_lc_rs::signature::{
        RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512,
        RsaPublicKeyComponents,
    };
    let algorithm = match alg {
        "RS256" => &RSA_PKCS1_2048_8192_SHA256,
        "RS384" => &RSA_PKCS1_2048_8192_SHA384,
        "RS512" => &RSA_PKCS1_2048_8192_SHA512,
        other => return Err(format!("{other} is not an RSA PKCS#1 signature")),
    };
    if key.kty.as_deref() != Some("RSA") {
        return Err(format!(
            "the published key has kty {:?}, not \"RSA\"",
            key.kty.as_deref().unwrap_or("(none)")
        ));
    }
    let n = key
        .n
        .as_deref()
        .and_then(b64)
        .ok_or("the published key has no valid modulus `n`")?;
    let e = key
        .e
        .as_deref()
        .and_then(b64)
        .ok_or("the published key has no valid exponent `e`")?;
    let (signing_input, sig) = jwt
        .rsplit_once('.')
        .ok_or("the token has no signature part")?;
    let sig = b64(sig).ok_or("the token's signature is not base64url")?;
    RsaPublicKeyComponents { n: &n, e: &e }
        .verify(algorithm, signing_input.as_bytes(), &sig)
        .map_err(|_| "the signature does not verify with this key".to_string())
}
