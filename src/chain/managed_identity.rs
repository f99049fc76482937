//! Managed identity that knows it may be running on AWS: see [`ManagedIdentityCredential`].

use super::{CredentialUnavailable, credential_error};
use crate::config::{AZURE_CLIENT_ID, Env};
use crate::http::{Failure, SendError, send_capped};
use azure_core::async_runtime::get_async_runtime;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::headers::{self, HeaderName};
use azure_core::http::{ClientOptions, Context, Method, Request, Url};
use azure_core::time::Duration;
use azure_identity::UserAssignedId;
use futures::future::{Either, select};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::OnceCell;

/// Azure's instance metadata endpoint (on AWS, the same address is AWS's metadata service).
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// How long the probe may take, connection and answer together.
pub const DEFAULT_IMDS_PROBE_TIMEOUT: Duration = Duration::seconds(1);

const MAX_PROBE_RESPONSE: usize = 16 * 1024;

// Variables that select another managed identity source than IMDS (App Service, Azure Arc,
// Service Fabric, Azure ML, Cloud Shell): no probe then.
const NON_IMDS_SOURCE_VARS: [&str; 2] = ["IDENTITY_ENDPOINT", "MSI_ENDPOINT"];

/// Options for [`ManagedIdentityCredential`]. The first two fields are those of
/// `azure_identity::ManagedIdentityCredentialOptions`.
#[derive(Clone, Debug)]
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

/// What the probe found: `Ok` for Azure IMDS (or another managed identity source named by the
/// environment), else why this is not Azure IMDS.
type Probe = Result<(), String>;

/// Azure managed identity (azure_identity's), behind a bounded probe of the metadata endpoint that
/// reports "unavailable" quickly on AWS, where `169.254.169.254` is EC2's metadata service
/// (azure_identity's credential would retry AWS's 404s for over a minute, then stop the chain).
///
/// The probe (one `GET` through the options' transport, no retries, bounded by `probe_timeout`)
/// runs on the first `get_token`. A conclusive outcome (an answer, or another managed identity
/// source named by the environment) is kept; after a time-out or a refused connection the next
/// `get_token` probes again. See [the guide](crate::guides::chain#managed-identity-on-aws).
#[derive(Debug)]
pub struct ManagedIdentityCredential {
    /// With `user_assigned_id` resolved (`AZURE_CLIENT_ID`).
    options: ManagedIdentityCredentialOptions,
    /// The conclusive outcome; concurrent first calls share one probe.
    probe: OnceCell<Probe>,
    inner: OnceLock<Result<Arc<dyn TokenCredential>, String>>,
}

impl ManagedIdentityCredential {
    /// Create the credential. Reads `AZURE_CLIENT_ID` from `options.env` when
    /// `user_assigned_id` is unset; does no I/O (the probe runs on the first `get_token`).
    ///
    /// # Errors
    ///
    /// Kind `Credential` when `imds_endpoint` is not an `http://host[:port]` URL.
    pub fn new(options: Option<ManagedIdentityCredentialOptions>) -> azure_core::Result<Arc<Self>> {
        let mut options = options.unwrap_or_default();
        if options.imds_endpoint.scheme() != "http" || options.imds_endpoint.host_str().is_none() {
            return Err(credential_error(format!(
                "ManagedIdentityCredential: imds_endpoint {} must be an http://host[:port] URL (IMDS is plain HTTP on a link-local address)",
                options.imds_endpoint
            )));
        }
        if options.user_assigned_id.is_none() {
            options.user_assigned_id = options
                .env
                .var(AZURE_CLIENT_ID)
                .map(UserAssignedId::ClientId);
        }
        Ok(Arc::new(Self {
            options,
            probe: OnceCell::new(),
            inner: OnceLock::new(),
        }))
    }

    async fn probe(&self) -> Probe {
        let o = &self.options;
        let kept = self.probe.get_or_try_init(|| async {
            if let Some(var) = NON_IMDS_SOURCE_VARS.iter().find(|v| o.env.var_os(v).is_some()) {
                tracing::debug!(var, "managed identity source configured by the environment; no IMDS probe");
                return Ok(Ok(()));
            }
            let started = Instant::now();
            let probe =
                probe_imds(&o.imds_endpoint, o.client_options.clone(), o.probe_timeout).await;
            tracing::debug!(endpoint = %o.imds_endpoint, elapsed_ms = started.elapsed().as_millis() as u64, ?probe, "IMDS probe (Err: no answer, not kept)");
            probe
        });
        kept.await.cloned().unwrap_or_else(Err)
    }
}

#[async_trait::async_trait]
impl TokenCredential for ManagedIdentityCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let name = "ManagedIdentityCredential";
        if let Err(reason) = self.probe().await {
            return Err(CredentialUnavailable::new(format!("{name}: {reason}")).into());
        }
        let inner = self.inner.get_or_init(|| match &self.options.credential {
            Some(c) => Ok(c.clone()),
            None => azure_identity::ManagedIdentityCredential::new(Some(
                azure_identity::ManagedIdentityCredentialOptions {
                    user_assigned_id: self.options.user_assigned_id.clone(),
                    client_options: self.options.client_options.clone(),
                },
            ))
            .map(|c| c as _)
            .map_err(|e| e.to_string()),
        });
        let inner = inner
            .as_ref()
            .map_err(|e| credential_error(format!("{name}: {e}")))?;
        inner.get_token(scopes, options).await.map_err(|e| {
            let text = e.to_string();
            // IMDS answers 400 "Identity not found" when no identity is assigned to the VM.
            if text.contains("Identity not found") || text.contains("No managed identity") {
                CredentialUnavailable::new(format!(
                    "{name}: Azure IMDS answered but no managed identity is assigned: {text}"
                ))
                .into()
            } else {
                e
            }
        })
    }
}

/// Send one `GET /metadata/identity/oauth2/token` (with `Metadata: true`, no resource) to the
/// endpoint through an azure_core pipeline without retries, and classify the answer, all within
/// `bound`: `Err` with the reason when no answer came (inconclusive: the next call probes again).
async fn probe_imds(
    endpoint: &Url,
    options: ClientOptions,
    bound: Duration,
) -> Result<Probe, String> {
    let mut url = endpoint.clone();
    url.set_path(&format!(
        "{}/metadata/identity/oauth2/token",
        endpoint.path().trim_end_matches('/')
    ));
    url.set_query(Some("api-version=2018-02-01"));
    let pipeline = crate::http::one_shot_pipeline(options);
    let mut req = Request::new(url.clone(), Method::Get);
    req.insert_header(HeaderName::from_static("metadata"), "true");
    req.insert_header(headers::ACCEPT, "application/json");
    let ctx = Context::new();
    let request = Box::pin(send_capped(&pipeline, &ctx, &mut req, MAX_PROBE_RESPONSE));
    let answer = match select(request, get_async_runtime().sleep(bound)).await {
        Either::Left((answer, _)) => answer,
        Either::Right(_) => {
            return Err(format!(
                "no answer from the instance metadata endpoint {url} within {} ms; not an Azure VM (on AWS, the metadata address belongs to EC2 and may not answer from a pod at all)",
                bound.whole_milliseconds()
            ));
        }
    };
    let (status, server, body) = match answer {
        Ok((status, headers, body)) => (
            status,
            headers.get_optional_string(&HeaderName::from_static("server")),
            body,
        ),
        Err(SendError::TooLarge { status }) => (status, None, Vec::new()),
        Err(SendError::Transport(e) | SendError::BrokeOff { error: e, .. }) => {
            let failure = Failure::of(&url, &e);
            return Err(format!(
                "no Azure instance metadata service at {url}: {} (cause: {}); not running on an Azure VM, VM scale set or AKS node",
                failure.words(),
                failure.chain
            ));
        }
    };
    let body = String::from_utf8_lossy(&body);
    Ok(classify(&url, u16::from(status), server.as_deref(), &body))
}

/// Azure IMDS answers its token path with JSON: a token, or an OAuth-style error object
/// (`{"error":"invalid_request","error_description":"Required audience parameter not specified"}`).
/// AWS's metadata service answers 401 (IMDSv2 requires a session token) or 404 with an empty or
/// HTML body, and says `Server: EC2ws`.
fn classify(url: &Url, status: u16, server: Option<&str>, body: &str) -> Probe {
    let json: Option<serde_json::Value> = serde_json::from_str(body.trim()).ok();
    let azure_shaped = json.as_ref().and_then(|v| v.as_object()).is_some_and(|o| {
        o.contains_key("access_token") || o.get("error").is_some_and(|e| e.is_string())
    });
    let server_is_aws = server.is_some_and(|s| s.to_ascii_lowercase().starts_with("ec2"));
    if azure_shaped && !server_is_aws {
        return Ok(());
    }
    let server = server
        .map(|s| format!(" (Server: {s})"))
        .unwrap_or_default();
    let what = format!("GET {url} answered HTTP {status}{server}");
    if server_is_aws || matches!(status, 401 | 404) {
        let why = match status {
            401 => "; 401 is AWS IMDSv2 asking for a session token",
            404 => "; AWS has no such path",
            _ => "",
        };
        Err(format!(
            "this looks like AWS EC2 metadata, not Azure IMDS: {what}{why}. There is no Azure managed identity on AWS; use WorkloadIdentityCredential (see {}struct.WorkloadIdentityCredential.html)",
            crate::problem::DOCS_ROOT
        ))
    } else {
        Err(format!(
            "the metadata endpoint is not Azure IMDS: {what}, which is not an Azure IMDS answer"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_and_aws_answers_are_told_apart() {
        let u = Url::parse("http://u").unwrap();
        let azure = "{\"error\":\"invalid_request\",\"error_description\":\"Required audience parameter not specified\"}";
        assert!(classify(&u, 400, Some("IMDS/150.870.65.1325"), azure).is_ok());
        let m = classify(&u, 401, Some("EC2ws"), "").unwrap_err();
        assert!(
            m.contains("AWS EC2 metadata") && m.contains("IMDSv2") && m.contains("EC2ws"),
            "{m}"
        );
        let m = classify(&u, 404, None, "<?xml").unwrap_err();
        assert!(m.contains("404"), "{m}");
        let m = classify(&u, 200, None, "hi").unwrap_err();
        assert!(m.contains("not Azure IMDS"), "{m}");
    }
}
