//! The HTTPS server: shared state, routing, faults and the request log.

use crate::entra::{self, AccessTokenOptions, Registry};
use crate::faults::{Endpoint, Fault, RetryAfter};
use crate::keys::{DecodedJwt, SigningKey, jwks};
use crate::kube::IssuerState;
use crate::util::{http_date, now, uuid_v4};
use crate::{control, resources, sts, tls};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;

type Body = BoxBody<Bytes, Aborted>;

/// The largest request body accepted.
const MAX_REQUEST_BODY: usize = 4 * 1024 * 1024;

/// One request as seen by the emulator.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// The endpoint family.
    pub endpoint: Endpoint,
    /// HTTP method.
    pub method: String,
    /// Path (without the query).
    pub path: String,
    /// `client_id` of a token request, or `appid` of the bearer token of a resource request.
    pub client_id: Option<String>,
    /// `scope` of a token request, or `aud` of the bearer token of a resource request.
    pub scope: Option<String>,
    /// Status answered; 0 while the request is pending and when no response was sent
    /// ([`Fault::Hang`], [`Fault::Reset`]).
    pub status: u16,
    /// The decoded form body (token endpoint only).
    pub form: BTreeMap<String, String>,
    /// Arrival time.
    pub at: OffsetDateTime,
    pub(crate) seq: u64,
}

/// A response about to be sent.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            headers: vec![(
                "content-type".to_owned(),
                "application/json; charset=utf-8".to_owned(),
            )],
            body: Bytes::from(body.to_string()),
        }
    }

    pub(crate) fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: vec![(
                "content-type".to_owned(),
                "text/plain; charset=utf-8".to_owned(),
            )],
            body: Bytes::from(body.into()),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn into_response(self) -> Response<Body> {
        let mut resp = Response::new(Full::new(self.body).map_err(|never| match never {}).boxed());
        *resp.status_mut() = hyper::StatusCode::from_u16(self.status)
            .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        for (k, v) in self.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                resp.headers_mut().append(k, v);
            }
        }
        resp
    }
}

#[derive(Default)]
struct FaultSlot {
    queue: VecDeque<Fault>,
    persistent: Option<Fault>,
}

/// A stored secret version.
#[derive(Clone, Debug)]
pub(crate) struct SecretVersion {
    pub(crate) version: String,
    pub(crate) value: String,
    pub(crate) created: i64,
}

/// The key that signs access tokens. Like Entra's, it is shared by every tenant; it is also
/// shared by every emulator of the process (saves an RSA key generation per start).
fn entra_signing_key() -> Arc<SigningKey> {
    static KEY: std::sync::OnceLock<Arc<SigningKey>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| Arc::new(SigningKey::generate())).clone()
}

/// Everything the server and the handles share.
pub(crate) struct State {
    pub(crate) authority: String,
    pub(crate) port: u16,
    pub(crate) entra_key: Arc<SigningKey>,
    pub(crate) registry: Mutex<Registry>,
    pub(crate) issuers: Mutex<Vec<Arc<IssuerState>>>,
    pub(crate) token_options: Mutex<AccessTokenOptions>,
    /// Longest assertion lifetime (`exp - iat`) accepted; longer is AADSTS70023. `None`: no limit.
    pub(crate) max_assertion_lifetime: Mutex<Option<std::time::Duration>>,
    faults: Mutex<HashMap<Endpoint, FaultSlot>>,
    log: Mutex<Vec<RequestRecord>>,
    seq: AtomicU64,
    pub(crate) secrets: Mutex<BTreeMap<String, Vec<SecretVersion>>>,
    pub(crate) default_tenant: Mutex<Option<String>>,
    pub(crate) oidc_client: reqwest::Client,
    pub(crate) sts: sts::StsState,
}

impl State {
    pub(crate) fn new(port: u16) -> State {
        State {
            authority: format!("https://127.0.0.1:{port}"),
            port,
            entra_key: entra_signing_key(),
            registry: Mutex::default(),
            issuers: Mutex::default(),
            token_options: Mutex::default(),
            max_assertion_lifetime: Mutex::default(),
            faults: Mutex::default(),
            log: Mutex::default(),
            seq: AtomicU64::new(0),
            secrets: Mutex::default(),
            default_tenant: Mutex::default(),
            oidc_client: tls::client_builder()
                .http1_only()
                .connect_timeout(entra::OIDC_FETCH_TIMEOUT)
                .build()
                .expect("reqwest client"),
            sts: sts::StsState::default(),
        }
    }

    /// The Entra signing keys as a JWKS.
    pub(crate) fn entra_jwks(&self) -> Value {
        jwks([&*self.entra_key])
    }

    /// Signs an access token; returns it with its claims.
    pub(crate) fn issue_access_token(
        &self,
        tenant: &str,
        client_id: &str,
        resource: &str,
        lifetime: Duration,
    ) -> (String, Value) {
        let claims = entra::access_token_claims(tenant, client_id, resource, lifetime);
        (self.entra_key.sign_jwt(&claims, Some("JWT")), claims)
    }

    pub(crate) fn push_fault(&self, endpoint: Endpoint, fault: Fault) {
        self.faults
            .lock()
            .unwrap()
            .entry(endpoint)
            .or_default()
            .queue
            .push_back(fault);
    }

    pub(crate) fn set_fault(&self, endpoint: Endpoint, fault: Option<Fault>) {
        self.faults
            .lock()
            .unwrap()
            .entry(endpoint)
            .or_default()
            .persistent = fault;
    }

    pub(crate) fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
    }

    fn next_fault(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap();
        let slot = faults.get_mut(&endpoint)?;
        slot.queue.pop_front().or_else(|| slot.persistent.clone())
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        self.log.lock().unwrap().clone()
    }

    pub(crate) fn reset_log(&self) {
        self.log.lock().unwrap().clear();
    }

    fn record(&self, mut rec: RequestRecord) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        rec.seq = seq;
        self.log.lock().unwrap().push(rec);
        seq
    }

    fn set_status(&self, seq: u64, status: u16) {
        let mut log = self.log.lock().unwrap();
        if let Some(r) = log.iter_mut().rev().find(|r| r.seq == seq) {
            r.status = status;
        }
    }

    fn find_issuer(&self, path: &str) -> Option<(Endpoint, Arc<IssuerState>)> {
        let issuers = self.issuers.lock().unwrap();
        for i in issuers.iter() {
            if i.discovery_path() == path {
                return Some((Endpoint::Discovery, i.clone()));
            }
            if i.jwks_path == path {
                return Some((Endpoint::Jwks, i.clone()));
            }
        }
        None
    }

    fn classify(&self, path: &str) -> Endpoint {
        if let Some((e, _)) = self.find_issuer(path) {
            return e;
        }
        if path.trim_end_matches('/') == sts::STS_PATH {
            return Endpoint::Sts;
        }
        let segs: Vec<&str> = path.split('/').skip(1).collect();
        match segs.as_slice() {
            [_, "oauth2", "v2.0", "token"] => Endpoint::Token,
            [_, "v2.0", ".well-known", "openid-configuration"]
            | [_, "discovery", "v2.0", "keys"]
            | ["common", "discovery", "instance"] => Endpoint::EntraDiscovery,
            ["v1.0", ..] => Endpoint::Graph,
            ["secrets", ..] => Endpoint::KeyVault,
            ["_emulator", ..] => Endpoint::Control,
            _ => Endpoint::Other,
        }
    }
}

/// Accepts connections until `shutdown` turns true or its sender is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config());
    let conn_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let state = state.clone();
                let mut shutdown = conn_shutdown.clone();
                tokio::spawn(async move {
                    let conn = async {
                        let Ok(Ok(tls)) =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                        else {
                            return;
                        };
                        let svc = hyper::service::service_fn(move |req| {
                            let state = state.clone();
                            async move { handle(state, req).await }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                            .await;
                    };
                    tokio::select! {
                        _ = conn => {}
                        _ = shutdown.wait_for(|s| *s) => {}
                    }
                });
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Aborted(&'static str);
impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for Aborted {}

/// Parsed pieces of a request handed to the handlers.
pub(crate) struct Incoming2 {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: BTreeMap<String, String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) form: BTreeMap<String, String>,
    pub(crate) correlation_id: String,
}

impl Incoming2 {
    /// The bearer token of the `Authorization` header.
    pub(crate) fn bearer(&self) -> Option<&str> {
        let v = self
            .headers
            .get(hyper::header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Aborted> {
    let at = now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query: BTreeMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(Reply::text(413, "Request body too large").into_response()),
    };
    let endpoint = state.classify(&path);
    let form: BTreeMap<String, String> = if matches!(endpoint, Endpoint::Token | Endpoint::Sts) {
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        BTreeMap::new()
    };
    let correlation_id = ["client-request-id", "x-ms-client-request-id"]
        .iter()
        .find_map(|h| parts.headers.get(*h).and_then(|v| v.to_str().ok()))
        .filter(|v| v.len() <= 64 && !v.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(uuid_v4);
    let inc = Incoming2 {
        method: parts.method.clone(),
        path: path.clone(),
        query,
        headers: parts.headers,
        body,
        form,
        correlation_id,
    };
    let (client_id, scope) = if endpoint == Endpoint::Token {
        (
            inc.form.get("client_id").cloned(),
            inc.form.get("scope").cloned(),
        )
    } else {
        match inc.bearer().and_then(DecodedJwt::parse) {
            Some(jwt) => (
                jwt.claim_str("appid").map(str::to_owned),
                jwt.claim_str("aud").map(str::to_owned),
            ),
            None => (None, None),
        }
    };
    let seq = state.record(RequestRecord {
        endpoint,
        method: inc.method.to_string(),
        path,
        client_id,
        scope,
        status: 0,
        form: inc.form.clone(),
        at,
        seq: 0,
    });

    let mut numbers_as_strings = false;
    let fault_reply = match state.next_fault(endpoint) {
        None => None,
        Some(Fault::Status(s)) => Some(Reply::text(s, reason(s))),
        Some(Fault::Throttle { retry_after }) => Some(retry_reply(429, retry_after)),
        Some(Fault::Unavailable { retry_after }) => Some(retry_reply(503, retry_after)),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        Some(Fault::Hang) => {
            std::future::pending::<()>().await;
            None
        }
        Some(Fault::Reset) => return Err(Aborted("connection reset by fault")),
        Some(Fault::Truncated) => {
            state.set_status(seq, 200);
            return Ok(truncated_response());
        }
        Some(Fault::Html(s)) => Some(html(s)),
        Some(Fault::Empty(s)) => Some(Reply {
            status: s,
            headers: Vec::new(),
            body: Bytes::new(),
        }),
        Some(Fault::Oversized(s, n)) => Some(Reply {
            status: s,
            headers: vec![("content-type".to_owned(), "text/plain".to_owned())],
            body: Bytes::from(vec![b'x'; n]),
        }),
        Some(Fault::NumbersAsStrings) => {
            numbers_as_strings = true;
            None
        }
        Some(Fault::Redirect(s, location)) => Some(Reply {
            status: s,
            headers: vec![("location".to_owned(), location)],
            body: Bytes::new(),
        }),
        Some(Fault::Hold(gate)) => {
            gate.pass().await;
            None
        }
        Some(Fault::Entra {
            status,
            error,
            code,
            message,
        }) => Some(
            crate::entra::EntraError {
                status,
                error,
                code,
                message,
            }
            .reply(&state.authority, &inc.correlation_id),
        ),
    };
    let reply = match fault_reply {
        Some(r) => r,
        None => route(&state, endpoint, &inc, numbers_as_strings).await,
    };
    state.set_status(seq, reply.status);
    Ok(reply.into_response())
}

fn reason(status: u16) -> String {
    let r = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    format!("{status} {r}")
}

fn html(status: u16) -> Reply {
    let title = reason(status);
    Reply {
        status,
        headers: vec![("content-type".to_owned(), "text/html".to_owned())],
        body: Bytes::from(format!(
            "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )),
    }
}

fn truncated_response() -> Response<Body> {
    const PARTIAL: &str = r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAiOiJKV1Qi"#;
    let frames = futures::stream::unfold(0u8, |step| async move {
        match step {
            0 => Some((Ok(Frame::data(Bytes::from_static(PARTIAL.as_bytes()))), 1)),
            1 => {
                // let the partial body reach the client before the connection is torn down
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((
                    Err::<Frame<Bytes>, Aborted>(Aborted("truncated by fault")),
                    2,
                ))
            }
            _ => None,
        }
    });
    let mut resp = Response::new(StreamBody::new(frames).boxed());
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp.headers_mut().insert(
        hyper::header::CONTENT_LENGTH,
        HeaderValue::from(PARTIAL.len() as u64 + 4096),
    );
    resp
}

async fn route(
    state: &State,
    endpoint: Endpoint,
    inc: &Incoming2,
    numbers_as_strings: bool,
) -> Reply {
    let segs: Vec<&str> = inc.path.split('/').skip(1).collect();
    match endpoint {
        Endpoint::Token => {
            if inc.method != Method::POST {
                return entra::EntraError {
                    status: 400,
                    error: "invalid_request".to_owned(),
                    code: 900561,
                    message: format!(
                        "The endpoint only accepts POST, OPTIONS requests. Received a {} request.",
                        inc.method
                    ),
                }
                .reply(&state.authority, &inc.correlation_id);
            }
            entra::token(
                state,
                segs[0],
                &inc.form,
                numbers_as_strings,
                &inc.correlation_id,
            )
            .await
        }
        Endpoint::EntraDiscovery => match segs.as_slice() {
            ["common", "discovery", "instance"] => entra::instance_discovery(state),
            [tenant, "v2.0", ..] => entra::tenant_error(state, tenant, &inc.correlation_id)
                .unwrap_or_else(|| entra::openid_configuration(state, tenant)),
            [tenant, ..] => entra::tenant_error(state, tenant, &inc.correlation_id)
                .unwrap_or_else(|| Reply::json(200, &state.entra_jwks())),
            _ => Reply::text(404, "Not Found"),
        },
        Endpoint::Discovery | Endpoint::Jwks => {
            let Some((e, issuer)) = state.find_issuer(&inc.path) else {
                return Reply::text(404, "Not Found");
            };
            if !issuer.available() {
                return s3_not_found();
            }
            if e == Endpoint::Discovery {
                Reply::json(200, &issuer.discovery_document(&state.authority))
            } else {
                Reply::json(200, &issuer.jwks())
            }
            .header("cache-control", "public, max-age=3600")
        }
        Endpoint::Graph => resources::graph(state, inc),
        Endpoint::KeyVault => resources::key_vault(state, inc),
        Endpoint::Control => control::handle(state, inc),
        Endpoint::Sts => sts::handle(&state.sts, inc),
        Endpoint::Other => Reply::text(404, "Not Found"),
    }
}

fn s3_not_found() -> Reply {
    Reply {
        status: 404,
        headers: vec![("content-type".to_owned(), "application/xml".to_owned())],
        body: Bytes::from_static(
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>",
        ),
    }
}

/// A 429 or 503 with `Retry-After`.
fn retry_reply(status: u16, retry_after: RetryAfter) -> Reply {
    let value = match retry_after {
        RetryAfter::Seconds(s) => s.to_string(),
        RetryAfter::HttpDate(s) => {
            http_date(now() + time::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 4)))
        }
    };
    Reply::text(status, reason(status)).header("retry-after", &value)
}
