//! Endpoints, programmable faults and the [`Gate`] used to hold requests.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The endpoint families the emulator serves; faults and counters are kept per endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Endpoint {
    /// `POST /{tenant}/oauth2/v2.0/token`.
    Token,
    /// Entra's `/{tenant}/v2.0/.well-known/openid-configuration` and `/{tenant}/discovery/v2.0/keys`.
    EntraDiscovery,
    /// A cluster issuer's `/.well-known/openid-configuration`.
    Discovery,
    /// A cluster issuer's JWKS.
    Jwks,
    /// The Graph-like `/v1.0/...` API.
    Graph,
    /// The Key Vault-like `/secrets/...` API.
    KeyVault,
    /// The `/_emulator/...` control API.
    Control,
    /// AWS STS (`POST /sts`, `GetWebIdentityToken`).
    Sts,
    /// Anything else (answered 404).
    Other,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 9] = [
        Endpoint::Token,
        Endpoint::EntraDiscovery,
        Endpoint::Discovery,
        Endpoint::Jwks,
        Endpoint::Graph,
        Endpoint::KeyVault,
        Endpoint::Control,
        Endpoint::Sts,
        Endpoint::Other,
    ];
}

/// The value of a `Retry-After` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetryAfter {
    /// `Retry-After: <seconds>`.
    Seconds(u64),
    /// `Retry-After: <HTTP date>`, that many seconds from the time of the response.
    HttpDate(u64),
}

/// What to do to a request instead of (or before) answering it normally.
#[derive(Clone, Debug)]
pub enum Fault {
    /// That status with a short plain-text body (e.g. 500, 502, 503).
    Status(u16),
    /// 429 with `Retry-After` and a plain-text body.
    Throttle {
        /// The `Retry-After` value.
        retry_after: RetryAfter,
    },
    /// 503 with `Retry-After` and a plain-text body (an overloaded service asking for a pause).
    Unavailable {
        /// The `Retry-After` value.
        retry_after: RetryAfter,
    },
    /// Wait, then answer normally.
    Delay(Duration),
    /// Read the request and never answer (until the emulator shuts down).
    Hang,
    /// Close the connection without any response.
    Reset,
    /// 200 with a `Content-Length` larger than the bytes sent, then close the connection.
    Truncated,
    /// A gateway-style HTML page with that status.
    Html(u16),
    /// An empty body with that status.
    Empty(u16),
    /// A plain-text body of that many bytes with that status.
    Oversized(u16, usize),
    /// Answer normally, but a token response carries its numbers as JSON strings.
    NumbersAsStrings,
    /// Wait until [`Gate::release`], then answer normally.
    Hold(Gate),
    /// A redirect with that status (301, 302, 303, 307, 308) to that `Location`, empty body.
    Redirect(u16, String),
    /// Entra's JSON error answer, in Entra's shape (`error`, `error_description` starting with
    /// `AADSTS<code>:` and ending with the trace and correlation ids, `error_codes`, ...), for a
    /// code the emulator's validation cannot produce (e.g. AADSTS50196, the 70021 variants, a
    /// 700024 inside the credential's own clock skew).
    Entra {
        /// The HTTP status (Entra answers 400 or 401).
        status: u16,
        /// The OAuth `error` (e.g. `invalid_client`).
        error: String,
        /// The AADSTS code.
        code: u32,
        /// The text after `AADSTS<code>: ` in `error_description`.
        message: String,
    },
}

/// A gate that holds requests (see [`Fault::Hold`]) until released. Once released it stays
/// open: requests that arrive later pass straight through.
#[derive(Clone, Debug)]
pub struct Gate {
    inner: Arc<GateInner>,
}

#[derive(Debug)]
struct GateInner {
    open: tokio::sync::watch::Sender<bool>,
    waiting: AtomicUsize,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            inner: Arc::new(GateInner {
                open: tokio::sync::watch::Sender::new(false),
                waiting: AtomicUsize::new(0),
            }),
        }
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens the gate: every held request proceeds, and later ones are not held.
    pub fn release(&self) {
        self.inner.open.send_replace(true);
    }

    /// Whether [`release`](Self::release) was called.
    pub fn is_released(&self) -> bool {
        *self.inner.open.borrow()
    }

    /// How many requests are held right now.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests are held (polls; for tests).
    pub async fn wait_for_waiting(&self, n: usize) {
        while self.waiting() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Holds the caller until the gate opens.
    pub(crate) async fn pass(&self) {
        let mut rx = self.inner.open.subscribe();
        self.inner.waiting.fetch_add(1, Ordering::SeqCst);
        let _ = rx.wait_for(|open| *open).await;
        self.inner.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The JSON form of a fault used by the control endpoint:
/// `{"status":503}`, `{"throttle":{"seconds":60}}`, `{"throttle":{"http_date":60}}`,
/// `{"delay_ms":500}`, `"hang"`, `"reset"`, `"truncated"`, `{"html":502}`, `{"empty":500}`,
/// `{"oversized":[200,1048576]}`, `"numbers_as_strings"`, `{"redirect":[307,"https://..."]}`,
/// `{"entra":[400,"invalid_client",50196,"Loop detected."]}`.
pub(crate) fn fault_from_json(v: &serde_json::Value) -> Option<Fault> {
    use serde_json::Value;
    let u16_of = |v: &Value| v.as_u64().and_then(|n| u16::try_from(n).ok());
    if let Some(s) = v.as_str() {
        return match s {
            "hang" => Some(Fault::Hang),
            "reset" => Some(Fault::Reset),
            "truncated" => Some(Fault::Truncated),
            "numbers_as_strings" => Some(Fault::NumbersAsStrings),
            _ => None,
        };
    }
    let obj = v.as_object()?;
    let (key, val) = obj.iter().next()?;
    match key.as_str() {
        "status" => Some(Fault::Status(u16_of(val)?)),
        "html" => Some(Fault::Html(u16_of(val)?)),
        "empty" => Some(Fault::Empty(u16_of(val)?)),
        "delay_ms" => Some(Fault::Delay(Duration::from_millis(val.as_u64()?))),
        "redirect" => {
            let a = val.as_array()?;
            Some(Fault::Redirect(
                u16_of(a.first()?)?,
                a.get(1)?.as_str()?.to_owned(),
            ))
        }
        "entra" => {
            let a = val.as_array()?;
            Some(Fault::Entra {
                status: u16_of(a.first()?)?,
                error: a.get(1)?.as_str()?.to_owned(),
                code: u32::try_from(a.get(2)?.as_u64()?).ok()?,
                message: a.get(3)?.as_str()?.to_owned(),
            })
        }
        "oversized" => {
            let a = val.as_array()?;
            Some(Fault::Oversized(
                u16_of(a.first()?)?,
                usize::try_from(a.get(1)?.as_u64()?).ok()?,
            ))
        }
        "unavailable" => {
            let t = val.as_object()?;
            let retry_after = match t.get("seconds") {
                Some(s) => RetryAfter::Seconds(s.as_u64()?),
                None => RetryAfter::HttpDate(t.get("http_date")?.as_u64()?),
            };
            Some(Fault::Unavailable { retry_after })
        }
        "throttle" => {
            let t = val.as_object()?;
            if let Some(s) = t.get("seconds") {
                Some(Fault::Throttle {
                    retry_after: RetryAfter::Seconds(s.as_u64()?),
                })
            } else {
                Some(Fault::Throttle {
                    retry_after: RetryAfter::HttpDate(t.get("http_date")?.as_u64()?),
                })
            }
        }
        _ => None,
    }
}
