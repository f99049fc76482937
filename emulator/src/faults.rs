//! Endpoints, programmable faults, the per-endpoint fault table and the [`Gate`] used to hold
//! requests.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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

    /// The name used by the control API and in the request log's JSON (`key_vault`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::EntraDiscovery => "entra_discovery",
            Endpoint::Discovery => "discovery",
            Endpoint::Jwks => "jwks",
            Endpoint::Graph => "graph",
            Endpoint::KeyVault => "key_vault",
            Endpoint::Control => "control",
            Endpoint::Sts => "sts",
            Endpoint::Other => "other",
        }
    }

    /// The endpoint of a [`name`](Self::name), ignoring case, `_` and `-` (`KeyVault`,
    /// `key-vault`).
    pub(crate) fn from_name(s: &str) -> Option<Endpoint> {
        let norm = |s: &str| s.replace(['_', '-'], "").to_ascii_lowercase();
        let s = norm(s);
        Endpoint::ALL.into_iter().find(|e| norm(e.name()) == s)
    }
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
#[derive(Clone, Debug, Default)]
pub struct Gate {
    inner: Arc<GateInner>,
}

#[derive(Debug, Default)]
struct GateInner {
    open: tokio::sync::watch::Sender<bool>,
    waiting: AtomicUsize,
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

/// The faults set on each endpoint: a one-shot queue, a fault at a rate and a persistent fault.
#[derive(Default)]
pub(crate) struct Faults(Mutex<HashMap<Endpoint, FaultSlot>>);

#[derive(Default)]
struct FaultSlot {
    queue: VecDeque<Fault>,
    rate: Option<Rate>,
    persistent: Option<Fault>,
}

/// A fault given to the requests whose [`rate_draw`] is below `per_mille`.
struct Rate {
    fault: Fault,
    per_mille: u16,
    seed: u64,
    /// Requests drawn for so far (the next one's index).
    drawn: u64,
    /// Requests given the fault so far.
    injected: usize,
}

/// The draw in `0..1000` of the `n`th request (0-based) for a fault at a rate seeded with
/// `seed`: the `n`th output of SplitMix64 seeded with `seed`, modulo 1000.
fn rate_draw(seed: u64, n: u64) -> u16 {
    let mut z = seed.wrapping_add((n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % 1000) as u16
}

impl Faults {
    /// Queues a one-shot fault.
    pub(crate) fn push(&self, endpoint: Endpoint, fault: Fault) {
        let mut slots = self.0.lock().unwrap();
        slots.entry(endpoint).or_default().queue.push_back(fault);
    }

    /// Sets (or clears) the persistent fault.
    pub(crate) fn set(&self, endpoint: Endpoint, fault: Option<Fault>) {
        self.0
            .lock()
            .unwrap()
            .entry(endpoint)
            .or_default()
            .persistent = fault;
    }

    /// Sets the fault at a rate (replacing one set before, its draws and count).
    pub(crate) fn set_rate(&self, endpoint: Endpoint, fault: Fault, per_mille: u16, seed: u64) {
        self.0.lock().unwrap().entry(endpoint).or_default().rate = Some(Rate {
            fault,
            per_mille,
            seed,
            drawn: 0,
            injected: 0,
        });
    }

    /// How many requests to `endpoint` the fault at a rate was given to.
    pub(crate) fn injected(&self, endpoint: Endpoint) -> usize {
        let slots = self.0.lock().unwrap();
        let rate = slots.get(&endpoint).and_then(|s| s.rate.as_ref());
        rate.map_or(0, |r| r.injected)
    }

    pub(crate) fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    /// The fault for the next request to `endpoint`: the oldest queued one, else the fault at a
    /// rate if this request draws it, else the persistent one.
    pub(crate) fn next(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut slots = self.0.lock().unwrap();
        let slot = slots.get_mut(&endpoint)?;
        if let Some(fault) = slot.queue.pop_front() {
            return Some(fault);
        }
        if let Some(rate) = &mut slot.rate {
            rate.drawn += 1;
            if rate_draw(rate.seed, rate.drawn - 1) < rate.per_mille {
                rate.injected += 1;
                return Some(rate.fault.clone());
            }
        }
        slot.persistent.clone()
    }
}

/// The JSON form of a fault used by the control endpoint:
/// `{"status":503}`, `{"throttle":{"seconds":60}}`, `{"throttle":{"http_date":60}}`,
/// `{"unavailable":{"seconds":60}}`, `{"delay_ms":500}`, `"hang"`, `"reset"`, `"truncated"`,
/// `{"html":502}`, `{"empty":500}`, `{"oversized":[200,1048576]}`, `"numbers_as_strings"`,
/// `{"redirect":[307,"https://..."]}`, `{"entra":[400,"invalid_client",50196,"Loop detected."]}`.
pub(crate) fn fault_from_json(v: &Value) -> Option<Fault> {
    let u16_of = |v: &Value| v.as_u64().and_then(|n| u16::try_from(n).ok());
    let retry_after = |v: &Value| {
        let t = v.as_object()?;
        Some(match t.get("seconds") {
            Some(s) => RetryAfter::Seconds(s.as_u64()?),
            None => RetryAfter::HttpDate(t.get("http_date")?.as_u64()?),
        })
    };
    if let Some(s) = v.as_str() {
        return match s {
            "hang" => Some(Fault::Hang),
            "reset" => Some(Fault::Reset),
            "truncated" => Some(Fault::Truncated),
            "numbers_as_strings" => Some(Fault::NumbersAsStrings),
            _ => None,
        };
    }
    let (key, val) = v.as_object()?.iter().next()?;
    let arg = |i: usize| val.as_array()?.get(i);
    match key.as_str() {
        "status" => Some(Fault::Status(u16_of(val)?)),
        "html" => Some(Fault::Html(u16_of(val)?)),
        "empty" => Some(Fault::Empty(u16_of(val)?)),
        "delay_ms" => Some(Fault::Delay(Duration::from_millis(val.as_u64()?))),
        "redirect" => Some(Fault::Redirect(
            u16_of(arg(0)?)?,
            arg(1)?.as_str()?.to_owned(),
        )),
        "entra" => Some(Fault::Entra {
            status: u16_of(arg(0)?)?,
            error: arg(1)?.as_str()?.to_owned(),
            code: u32::try_from(arg(2)?.as_u64()?).ok()?,
            message: arg(3)?.as_str()?.to_owned(),
        }),
        "oversized" => Some(Fault::Oversized(
            u16_of(arg(0)?)?,
            usize::try_from(arg(1)?.as_u64()?).ok()?,
        )),
        "unavailable" => Some(Fault::Unavailable {
            retry_after: retry_after(val)?,
        }),
        "throttle" => Some(Fault::Throttle {
            retry_after: retry_after(val)?,
        }),
        _ => None,
    }
}
