//! `/_emulator/...`: a small JSON control API for other languages and the command line.
//!
//! - `POST /_emulator/faults` `{"endpoint":"token","fault":{"status":503}}` queues a one-shot
//!   fault; add `"persistent":true` to set the persistent one (`"fault":null` clears it).
//! - `DELETE /_emulator/faults` clears every fault.
//! - `GET /_emulator/requests` lists the request log; `DELETE /_emulator/requests` clears it.

use crate::faults::{Endpoint, Faults, fault_from_json};
use crate::http::{Reply, Request};
use crate::log::RequestLog;
use hyper::Method;
use serde_json::{Value, json};

pub(crate) fn handle(faults: &Faults, log: &RequestLog, req: &Request) -> Reply {
    let bad = |m: &str| Reply::json(400, &json!({"error": m}));
    let ok = || Reply::json(200, &json!({"ok": true}));
    match (&req.method, req.path.as_str()) {
        (&Method::POST, "/_emulator/faults") => {
            let Ok(v) = serde_json::from_slice::<Value>(&req.body) else {
                return bad("body is not JSON");
            };
            let Some(endpoint) = v
                .get("endpoint")
                .and_then(Value::as_str)
                .and_then(Endpoint::from_name)
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
                (true, f) => faults.set(endpoint, f),
                (false, Some(f)) => faults.push(endpoint, f),
                (false, None) => return bad("missing 'fault'"),
            }
            ok()
        }
        (&Method::DELETE, "/_emulator/faults") => {
            faults.clear();
            ok()
        }
        (&Method::GET, "/_emulator/requests") => {
            let list: Vec<Value> = log.all().iter().map(|r| r.to_json()).collect();
            Reply::json(200, &Value::from(list))
        }
        (&Method::DELETE, "/_emulator/requests") => {
            log.clear();
            ok()
        }
        _ => Reply::json(404, &json!({"error": "unknown control endpoint"})),
    }
}
