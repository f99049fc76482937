//! `/_emulator/...`: a small JSON control API for other languages and the command line.
//!
//! - `POST /_emulator/faults` `{"endpoint":"token","fault":{"status":503}}` queues a one-shot
//!   fault; add `"persistent":true` to set the persistent one (`"fault":null` clears it).
//! - `DELETE /_emulator/faults` clears every fault.
//! - `GET /_emulator/requests` lists the request log; `DELETE /_emulator/requests` clears it.

use crate::faults::{Endpoint, fault_from_json};
use crate::server::{Incoming2, Reply, RequestRecord, State};
use hyper::Method;
use serde_json::{Value, json};

pub(crate) fn endpoint_name(e: Endpoint) -> &'static str {
    match e {
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

fn parse_endpoint(s: &str) -> Option<Endpoint> {
    let norm: String = s
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    Endpoint::ALL
        .into_iter()
        .find(|e| endpoint_name(*e).replace('_', "") == norm)
}

pub(crate) fn record_json(r: &RequestRecord) -> Value {
    json!({
        "endpoint": endpoint_name(r.endpoint),
        "method": r.method,
        "path": r.path,
        "client_id": r.client_id,
        "scope": r.scope,
        "status": r.status,
        "form": r.form.iter().filter(|(k, _)| k.as_str() != "client_assertion").collect::<std::collections::BTreeMap<_, _>>(),
        "at": r.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    })
}

pub(crate) fn handle(state: &State, inc: &Incoming2) -> Reply {
    let bad = |m: &str| Reply::json(400, &json!({"error": m}));
    match (&inc.method, inc.path.as_str()) {
        (&Method::POST, "/_emulator/faults") => {
            let Ok(v) = serde_json::from_slice::<Value>(&inc.body) else {
                return bad("body is not JSON");
            };
            let Some(endpoint) = v
                .get("endpoint")
                .and_then(Value::as_str)
                .and_then(parse_endpoint)
            else {
                return bad("unknown or missing 'endpoint'");
            };
            let persistent = v
                .get("persistent")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let fault = match v.get("fault") {
                None | Some(Value::Null) => None,
                Some(f) => match fault_from_json(f) {
                    Some(f) => Some(f),
                    None => return bad("unknown 'fault'"),
                },
            };
            match (persistent, fault) {
                (true, f) => state.set_fault(endpoint, f),
                (false, Some(f)) => state.push_fault(endpoint, f),
                (false, None) => return bad("missing 'fault'"),
            }
            Reply::json(200, &json!({"ok": true}))
        }
        (&Method::DELETE, "/_emulator/faults") => {
            state.clear_faults();
            Reply::json(200, &json!({"ok": true}))
        }
        (&Method::GET, "/_emulator/requests") => {
            let list: Vec<Value> = state.requests().iter().map(record_json).collect();
            Reply::json(200, &Value::from(list))
        }
        (&Method::DELETE, "/_emulator/requests") => {
            state.reset_log();
            Reply::json(200, &json!({"ok": true}))
        }
        _ => Reply::json(404, &json!({"error": "unknown control endpoint"})),
    }
}
