//! Managed identity that knows it may be running on AWS.
//!
//! On an EC2 instance (and so in an EKS pod) `169.254.169.254` is AWS's instance metadata service,
//! not Azure's. azure_identity's `ManagedIdentityCredential` would send its token request there,
//! retry AWS's 404s for more than a minute (404 is a retryable IMDS status on Azure) and finally
//! report an error that stops a chain. [`ManagedIdentityCredential`] first probes the endpoint once,
//! within a short bound, and reports "unavailable" unless the answer is an Azure IMDS answer.

use super::CredentialUnavailable;
use crate::config::{AZURE_CLIENT_ID, Env};
use azure_core::async_runtime::get_async_runtime;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, Url};
use azure_core::time::Duration;
use azure_identity::UserAssignedId;
use std::fmt;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Instant;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::OnceCell;

/// Azure's instance metadata endpoint (on AWS, the same address is AWS's metadata service).
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// How long the probe may take, connection and answer together.
pub const DEFAULT_IMDS_PROBE_TIMEOUT: Duration = Duration::seconds(1);

const PROBE_PATH: &str = "/metadata/identity/oauth2/token?api-version=2018-02-01";
const MAX_PROBE_RESPONSE: usize = 16 * 1024;

// Variables that select another managed identity source than IMDS (App Service, Azure Arc,
// Service Fabric, Azure ML, Cloud Shell): no probe then.
const NON_IMDS_SOURCE_VARS: [&str; 2] = ["IDENTITY_ENDPOINT", "MSI_ENDPOINT"];

/// Options for [`ManagedIdentityCredential`]. The first two fields are those of
/// `azure_identity::ManagedIdentityCredentialOptions`.
#[derive(Clone)]
pub struct ManagedIdentityCredentialOptions {
    /// The user-assigned identity to use. Default: `AZURE_CLIENT_ID` when set (as the other Azure
    /// SDKs' `DefaultAzureCredential` do), else the system-assigned identity.
    pub user_assigned_id: Option<UserAssignedId>,
    /// Options for the token requests' HTTP pipeline.
    pub client_options: ClientOptions,
    /// Where the probe is sent (plain HTTP). Default [`DEFAULT_IMDS_ENDPOINT`].
    pub imds_endpoint: Url,
    /// Bound on the probe: connecting, sending and reading the answer. Default
    /// [`DEFAULT_IMDS_PROBE_TIMEOUT`].
    pub probe_timeout: Duration,
    /// The credential used once the probe found Azure IMDS (or when the environment names another
    /// managed identity source). Default: `azure_identity::ManagedIdentityCredential`, which reads
    /// the process environment and always uses `169.254.169.254` itself.
    pub credential: Option<Arc<dyn TokenCredential>>,
    /// The environment read for `AZURE_CLIENT_ID` and the managed identity source variables.
    pub env: Env,
}

impl Default for ManagedIdentityCredentialOptions {
    fn default() -> Self {
        Self {
            user_assigned_id: None,
            client_options: ClientOptions::default(),
            imds_endpoint: Url::parse(DEFAULT_IMDS_ENDPOINT).expect("valid constant URL"),
            probe_timeout: DEFAULT_IMDS_PROBE_TIMEOUT,
            credential: None,
            env: Env::process(),
        }
    }
}

impl fmt::Debug for ManagedIdentityCredentialOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentityCredentialOptions")
            .field("user_assigned_id", &self.user_assigned_id)
            .field("imds_endpoint", &self.imds_endpoint.as_str())
            .field("probe_timeout", &self.probe_timeout)
            .finish_non_exhaustive()
    }
}

/// What the probe found.
#[derive(Debug, Clone)]
enum Probe {
    /// Azure IMDS answered (or another managed identity source is configured).
    Azure,
    /// Not Azure IMDS; the reason.
    Unavailable(String),
}

/// Azure managed identity (azure_identity's), behind a bounded probe of the metadata endpoint that
/// reports "unavailable" quickly on AWS, where that address belongs to AWS.
///
/// The probe runs once per credential, on the first `get_token`; its outcome is kept.
pub struct ManagedIdentityCredential {
    options: ManagedIdentityCredentialOptions,
    user_assigned_id: Option<UserAssignedId>,
    probe: OnceCell<Probe>,
    inner: OnceLock<Result<Arc<dyn TokenCredential>, String>>,
}

impl fmt::Debug for ManagedIdentityCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentityCredential")
            .field("user_assigned_id", &self.user_assigned_id)
            .field("imds_endpoint", &self.options.imds_endpoint.as_str())
            .field("probe", &self.probe.get())
            .finish_non_exhaustive()
    }
}

impl ManagedIdentityCredential {
    /// Create the credential. Does no I/O.
    pub fn new(options: Option<ManagedIdentityCredentialOptions>) -> azure_core::Result<Arc<Self>> {
        let options = options.unwrap_or_default();
        if options.imds_endpoint.scheme() != "http" || options.imds_endpoint.host_str().is_none() {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!(
                    "ManagedIdentityCredential: imds_endpoint {} must be an http://host[:port] URL (IMDS is plain HTTP on a link-local address)",
                    options.imds_endpoint
                ),
            ));
        }
        let user_assigned_id = options.user_assigned_id.clone().or_else(|| {
            options
                .env
                .var(AZURE_CLIENT_ID)
                .map(UserAssignedId::ClientId)
        });
        Ok(Arc::new(Self {
            options,
            user_assigned_id,
            probe: OnceCell::new(),
            inner: OnceLock::new(),
        }))
    }

    async fn probe(&self) -> &Probe {
        self.probe
            .get_or_init(|| async {
                if let Some(var) = NON_IMDS_SOURCE_VARS.iter().find(|v| self.options.env.var(v).is_some()) {
                    tracing::debug!(var, "managed identity source configured by the environment; no IMDS probe");
                    return Probe::Azure;
                }
                let started = Instant::now();
                let probe = probe_imds(&self.options.imds_endpoint, self.options.probe_timeout).await;
                tracing::debug!(endpoint = %self.options.imds_endpoint, elapsed_ms = started.elapsed().as_millis() as u64, ?probe, "IMDS probe");
                probe
            })
            .await
    }

    fn inner(&self) -> Result<Arc<dyn TokenCredential>, String> {
        if let Some(c) = &self.options.credential {
            return Ok(c.clone());
        }
        self.inner
            .get_or_init(|| {
                azure_identity::ManagedIdentityCredential::new(Some(
                    azure_identity::ManagedIdentityCredentialOptions {
                        user_assigned_id: self.user_assigned_id.clone(),
                        client_options: self.options.client_options.clone(),
                    },
                ))
                .map(|c| c as Arc<dyn TokenCredential>)
                .map_err(|e| e.to_string())
            })
            .clone()
    }
}

#[async_trait::async_trait]
impl TokenCredential for ManagedIdentityCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if let Probe::Unavailable(reason) = self.probe().await {
            return Err(
                CredentialUnavailable::new(format!("ManagedIdentityCredential: {reason}")).into(),
            );
        }
        let inner = self.inner().map_err(|e| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!("ManagedIdentityCredential: {e}"),
            )
        })?;
        inner.get_token(scopes, options).await.map_err(|e| {
            let text = e.to_string();
            // IMDS answers 400 "Identity not found" when no identity is assigned to the VM.
            if text.contains("Identity not found") || text.contains("No managed identity") {
                CredentialUnavailable::new(format!("ManagedIdentityCredential: Azure IMDS answered but no managed identity is assigned: {text}")).into()
            } else {
                e
            }
        })
    }
}

/// Send one `GET /metadata/identity/oauth2/token` (with `Metadata: true`, no resource) to the
/// endpoint and classify the answer, all within `bound`.
async fn probe_imds(endpoint: &Url, bound: Duration) -> Probe {
    let url = format!("{}{}", endpoint.as_str().trim_end_matches('/'), PROBE_PATH);
    let request = probe_http(endpoint);
    let timeout = get_async_runtime().sleep(bound);
    futures::pin_mut!(request);
    match futures::future::select(request, timeout).await {
        futures::future::Either::Left((Ok(answer), _)) => classify(&url, &answer),
        futures::future::Either::Left((Err(e), _)) => Probe::Unavailable(format!(
            "no Azure instance metadata service at {url} ({e}); not running on an Azure VM, VM scale set or AKS node"
        )),
        futures::future::Either::Right(((), _)) => Probe::Unavailable(format!(
            "no answer from the instance metadata endpoint {url} within {} ms; not an Azure VM (on AWS, the metadata address belongs to EC2 and may not answer from a pod at all)",
            bound.whole_milliseconds()
        )),
    }
}

struct HttpAnswer {
    status: u16,
    reason: String,
    server: Option<String>,
    body: String,
}

async fn probe_http(endpoint: &Url) -> std::io::Result<HttpAnswer> {
    let host = endpoint
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = endpoint.port_or_known_default().unwrap_or(80);
    let mut stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    let path = format!("{}{}", endpoint.path().trim_end_matches('/'), PROBE_PATH);
    let host_header = match endpoint.port() {
        Some(p) => format!("{}:{p}", endpoint.host_str().unwrap_or_default()),
        None => endpoint.host_str().unwrap_or_default().to_string(),
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nMetadata: true\r\nUser-Agent: {}/{}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() >= MAX_PROBE_RESPONSE || response_complete(&buf) {
            break;
        }
    }
    parse_answer(&buf).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "the answer is not HTTP")
    })
}

/// True once the headers and a `Content-Length` body (or a final chunk) have arrived.
fn response_complete(buf: &[u8]) -> bool {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let body = &buf[end + 4..];
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return body.len() >= len;
    }
    if head.contains("transfer-encoding: chunked") {
        return find(body, b"0\r\n\r\n").is_some();
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_answer(buf: &[u8]) -> Option<HttpAnswer> {
    let end = find(buf, b"\r\n\r\n").unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.lines();
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or("").trim().to_string();
    let mut server = None;
    let mut chunked = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("server") {
                server = Some(value.trim().to_string());
            }
            if name.eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
        }
    }
    let raw_body = buf.get(end + 4..).unwrap_or_default();
    let body = if chunked {
        dechunk(raw_body)
    } else {
        raw_body.to_vec()
    };
    Some(HttpAnswer {
        status,
        reason,
        server,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(raw, b"\r\n") {
        let size = std::str::from_utf8(&raw[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok());
        let Some(size) = size.filter(|&s| s > 0) else {
            break;
        };
        let start = line_end + 2;
        let stop = (start + size).min(raw.len());
        out.extend_from_slice(&raw[start..stop]);
        raw = raw.get(stop + 2..).unwrap_or_default();
    }
    out
}

/// Azure IMDS answers its token path with JSON: a token, or an OAuth-style error object
/// (`{"error":"invalid_request","error_description":"Required audience parameter not specified"}`).
/// AWS's metadata service answers 401 (IMDSv2 requires a session token) or 404 with an empty or
/// HTML body, and says `Server: EC2ws`.
fn classify(url: &str, answer: &HttpAnswer) -> Probe {
    let json: Option<serde_json::Value> = serde_json::from_str(answer.body.trim()).ok();
    let azure_shaped = json.as_ref().and_then(|v| v.as_object()).is_some_and(|o| {
        o.contains_key("access_token") || o.get("error").is_some_and(|e| e.is_string())
    });
    let server_is_aws = answer
        .server
        .as_deref()
        .is_some_and(|s| s.to_ascii_lowercase().starts_with("ec2"));
    if azure_shaped && !server_is_aws {
        return Probe::Azure;
    }
    let what = format!(
        "GET {url} answered {} {}{}",
        answer.status,
        answer.reason,
        answer
            .server
            .as_deref()
            .map(|s| format!(" (Server: {s})"))
            .unwrap_or_default()
    );
    let looks_aws = server_is_aws || matches!(answer.status, 401 | 404);
    if looks_aws {
        let why = match answer.status {
            401 => "; 401 is AWS IMDSv2 asking for a session token",
            404 => "; AWS has no such path",
            _ => "",
        };
        Probe::Unavailable(format!(
            "this looks like AWS EC2 metadata, not Azure IMDS: {what}{why}. There is no Azure managed identity on AWS; use WorkloadIdentityCredential (see docs/chain.md)"
        ))
    } else {
        Probe::Unavailable(format!(
            "the metadata endpoint is not Azure IMDS: {what}, which is not an Azure IMDS answer"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(raw: &str) -> HttpAnswer {
        parse_answer(raw.as_bytes()).unwrap()
    }

    #[test]
    fn azure_and_aws_answers_are_told_apart() {
        let azure = answer(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\nServer: IMDS/150.870.65.1325\r\nContent-Length: 88\r\n\r\n{\"error\":\"invalid_request\",\"error_description\":\"Required audience parameter not specified\"}",
        );
        assert!(matches!(classify("u", &azure), Probe::Azure));
        let v2 = answer("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nServer: EC2ws\r\n\r\n");
        let Probe::Unavailable(m) = classify("u", &v2) else {
            panic!()
        };
        assert!(
            m.contains("AWS EC2 metadata") && m.contains("IMDSv2") && m.contains("EC2ws"),
            "{m}"
        );
        let v1 = answer(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n<?xml\r\n0\r\n\r\n",
        );
        assert_eq!(v1.body, "<?xml");
        let Probe::Unavailable(m) = classify("u", &v1) else {
            panic!()
        };
        assert!(m.contains("404"), "{m}");
        let other = answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
        let Probe::Unavailable(m) = classify("u", &other) else {
            panic!()
        };
        assert!(m.contains("not Azure IMDS"), "{m}");
    }

    #[test]
    fn completeness() {
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"
        ));
        assert!(response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd"
        ));
        assert!(response_complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ));
    }
}
