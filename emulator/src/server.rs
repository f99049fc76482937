//! The router: accepts TLS connections, parses each request once, logs it, applies the
//! endpoint's fault, and hands the request to its endpoint's handler with the part of the
//! [`State`] that handler needs.

use crate::directory::Directory;
use crate::entra::{self, OIDC_FETCH_TIMEOUT};
use crate::faults::{Endpoint, Fault, Faults, RetryAfter};
use crate::http::{Reply, Request, reason};
use crate::keys::DecodedJwt;
use crate::kube::Issuers;
use crate::log::{RequestLog, RequestRecord};
use crate::resources::{self, Secrets};
use crate::sts::{self, StsState};
use crate::util::{http_date, now, uuid_v4};
use crate::{control, tls};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::Response;
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

type Body = BoxBody<Bytes, Aborted>;

/// The largest request body accepted.
const MAX_REQUEST_BODY: usize = 4 * 1024 * 1024;

/// Everything one emulator holds, one part per concern, shared by the server and the
/// [`Emulator`](crate::Emulator) handles.
pub(crate) struct State {
    /// `https://127.0.0.1:PORT`.
    pub(crate) authority: String,
    pub(crate) port: u16,
    pub(crate) directory: Directory,
    pub(crate) issuers: Issuers,
    pub(crate) secrets: Secrets,
    pub(crate) sts: StsState,
    pub(crate) faults: Faults,
    pub(crate) log: RequestLog,
}

impl State {
    pub(crate) fn new(port: u16) -> State {
        let authority = format!("https://127.0.0.1:{port}");
        let oidc_client = tls::client_builder()
            .http1_only()
            .connect_timeout(OIDC_FETCH_TIMEOUT)
            .build()
            .expect("reqwest client");
        State {
            directory: Directory::new(&authority, oidc_client),
            issuers: Issuers::new(&authority),
            authority,
            port,
            secrets: Secrets::default(),
            sts: StsState::default(),
            faults: Faults::default(),
            log: RequestLog::default(),
        }
    }

    fn classify(&self, path: &str) -> Endpoint {
        if let Some((e, _)) = self.issuers.find(path) {
            return e;
        }
        if path.trim_end_matches('/') == sts::STS_PATH {
            return Endpoint::Sts;
        }
        match path.split('/').skip(1).collect::<Vec<_>>().as_slice() {
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

async fn handle(
    state: Arc<State>,
    req: hyper::Request<Incoming>,
) -> Result<Response<Body>, Aborted> {
    let at = now();
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(response(Reply::text(413, "Request body too large"))),
    };
    let path = parts.uri.path().to_owned();
    let endpoint = state.classify(&path);
    let decode = |bytes: &[u8]| url::form_urlencoded::parse(bytes).into_owned().collect();
    let correlation_id = ["client-request-id", "x-ms-client-request-id"]
        .iter()
        .find_map(|h| parts.headers.get(*h).and_then(|v| v.to_str().ok()))
        .filter(|v| v.len() <= 64 && !v.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(uuid_v4);
    let req = Request {
        method: parts.method,
        path,
        query: parts
            .uri
            .query()
            .map(|q| decode(q.as_bytes()))
            .unwrap_or_default(),
        headers: parts.headers,
        form: if matches!(endpoint, Endpoint::Token | Endpoint::Sts) {
            decode(&body)
        } else {
            BTreeMap::new()
        },
        body,
        correlation_id,
    };
    let (client_id, scope) = if endpoint == Endpoint::Token {
        (
            req.form.get("client_id").cloned(),
            req.form.get("scope").cloned(),
        )
    } else {
        let claim = |jwt: &DecodedJwt, name| jwt.claim_str(name).map(str::to_owned);
        match req.bearer().and_then(DecodedJwt::parse) {
            Some(jwt) => (claim(&jwt, "appid"), claim(&jwt, "aud")),
            None => (None, None),
        }
    };
    let seq = state.log.record(RequestRecord {
        endpoint,
        method: req.method.to_string(),
        path: req.path.clone(),
        client_id,
        scope,
        status: 0,
        form: req.form.clone(),
        at,
        seq: 0,
    });

    let mut numbers_as_strings = false;
    let fault_reply = match state.faults.next(endpoint) {
        None => None,
        Some(Fault::Status(s)) => Some(Reply::status(s)),
        Some(Fault::Throttle { retry_after }) => Some(retry_reply(429, retry_after)),
        Some(Fault::Unavailable { retry_after }) => Some(retry_reply(503, retry_after)),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        Some(Fault::Hang) => std::future::pending().await,
        Some(Fault::Reset) => return Err(Aborted("connection reset by fault")),
        Some(Fault::Truncated) => {
            state.log.set_status(seq, 200);
            return Ok(truncated_response());
        }
        Some(Fault::Html(s)) => Some(html(s)),
        Some(Fault::Empty(s)) => Some(Reply::empty(s)),
        Some(Fault::Oversized(s, n)) => Some(Reply::new(s, "text/plain", vec![b'x'; n])),
        Some(Fault::NumbersAsStrings) => {
            numbers_as_strings = true;
            None
        }
        Some(Fault::Redirect(s, location)) => Some(Reply::empty(s).header("location", &location)),
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
            entra::error(status, &error, code, message)
                .reply(&state.authority, &req.correlation_id),
        ),
    };
    let reply = match fault_reply {
        Some(r) => r,
        None => route(&state, endpoint, &req, numbers_as_strings).await,
    };
    state.log.set_status(seq, reply.status);
    Ok(response(reply))
}

/// Hands `req` to its endpoint's handler.
async fn route(
    state: &State,
    endpoint: Endpoint,
    req: &Request,
    numbers_as_strings: bool,
) -> Reply {
    match endpoint {
        Endpoint::Token => entra::token(&state.directory, req, numbers_as_strings).await,
        Endpoint::EntraDiscovery => entra::discovery(&state.directory, req),
        Endpoint::Discovery | Endpoint::Jwks => match state.issuers.find(&req.path) {
            Some((endpoint, issuer)) => issuer.reply(endpoint),
            None => Reply::text(404, "Not Found"),
        },
        Endpoint::Graph => resources::graph(&state.directory, req),
        Endpoint::KeyVault => resources::key_vault(&state.directory, &state.secrets, req),
        Endpoint::Control => control::handle(
            &state.faults,
            &state.log,
            &state.directory,
            &state.issuers,
            &state.secrets,
            req,
        ),
        Endpoint::Sts => sts::handle(&state.sts, req),
        Endpoint::Other => Reply::text(404, "Not Found"),
    }
}

fn response(reply: Reply) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(reply.body)
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = hyper::StatusCode::from_u16(reply.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

/// A gateway's HTML error page.
fn html(status: u16) -> Reply {
    let title = reason(status);
    Reply::new(
        status,
        "text/html",
        format!(
            "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        ),
    )
}

/// A 429 or 503 with `Retry-After`.
fn retry_reply(status: u16, retry_after: RetryAfter) -> Reply {
    let value = match retry_after {
        RetryAfter::Seconds(s) => s.to_string(),
        RetryAfter::HttpDate(s) => {
            http_date(now() + time::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 4)))
        }
    };
    Reply::status(status).header("retry-after", &value)
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
