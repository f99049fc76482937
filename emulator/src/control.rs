//! `/_emulator/...`: a small JSON control API for other languages and the command line (the
//! binary's users stage mistakes without writing Rust). emulator/README.md documents each call.
//!
//! - `POST /_emulator/faults` `{"endpoint":"token","fault":{"status":503}}` queues a one-shot
//!   fault; add `"persistent":true` to set the persistent one (`"fault":null` clears it), or
//!   `"per_mille":20,"seed":7` to give it to that share of the requests.
//! - `DELETE /_emulator/faults` clears every fault.
//! - `GET /_emulator/requests` lists the request log; `DELETE /_emulator/requests` clears it.
//! - `GET /_emulator/issuers` lists the issuers' URLs; `POST /_emulator/issuers` adds one.
//! - `POST /_emulator/federated-credentials` adds a federated identity credential; `DELETE`
//!   removes an application's.
//! - `POST /_emulator/tokens` mints a service-account token (any audience, issuer or lifetime).
//! - `POST /_emulator/secrets` seeds a Key Vault secret.

use crate::directory::{Directory, FederatedCredential};
use crate::faults::{Endpoint, Faults, fault_from_json};
use crate::http::{Reply, Request};
use crate::kube::{Issuers, ServiceAccountToken};
use crate::log::RequestLog;
use crate::resources::Secrets;
use hyper::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// `value`'s string field `key`.
fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// `value`'s field `key`, a list of strings; `None` when absent, `Some(Err)` when not such a list.
fn strings(value: &Value, key: &str) -> Option<Result<Vec<String>, ()>> {
    let list = value.get(key)?;
    Some(
        list.as_array()
            .and_then(|l| l.iter().map(|s| s.as_str().map(str::to_owned)).collect())
            .ok_or(()),
    )
}

pub(crate) fn handle(
    faults: &Faults,
    log: &RequestLog,
    directory: &Directory,
    issuers: &Issuers,
    secrets: &Secrets,
    req: &Request,
) -> Reply {
    let bad = |m: &str| Reply::json(400, &json!({"error": m}));
    let ok = || Reply::json(200, &json!({"ok": true}));
    let route = (&req.method, req.path.as_str());
    let body = || serde_json::from_slice::<Value>(&req.body).ok();
    // The JSON body of a call that needs one.
    let needs_body = matches!(
        route,
        (
            &Method::POST,
            "/_emulator/faults"
                | "/_emulator/federated-credentials"
                | "/_emulator/tokens"
                | "/_emulator/secrets"
        ) | (&Method::DELETE, "/_emulator/federated-credentials")
    );
    let v = match (needs_body, body()) {
        (true, None) => return bad("body is not JSON"),
        (_, v) => v.unwrap_or(Value::Null),
    };
    match route {
        (&Method::POST, "/_emulator/faults") => {
            let Some(endpoint) = text(&v, "endpoint").and_then(Endpoint::from_name) else {
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
            let per_mille = match v.get("per_mille").map(Value::as_u64) {
                None => None,
                Some(Some(n @ 0..=1000)) => Some(n as u16),
                Some(_) => return bad("'per_mille' is not a number from 0 to 1000"),
            };
            let seed = v.get("seed").and_then(Value::as_u64).unwrap_or(0);
            match (persistent, per_mille, fault) {
                (true, None, f) => faults.set(endpoint, f),
                (false, Some(n), Some(f)) => faults.set_rate(endpoint, f, n, seed),
                (false, None, Some(f)) => faults.push(endpoint, f),
                (true, Some(_), _) => return bad("'persistent' and 'per_mille' together"),
                (false, _, None) => return bad("missing 'fault'"),
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
        (&Method::GET, "/_emulator/issuers") => Reply::json(200, &json!(issuers.urls())),
        (&Method::POST, "/_emulator/issuers") => {
            // An empty body or `{}`: EKS-shaped; `{"path":"/s3/bucket"}`: that path.
            let issuer = match body().as_ref().and_then(|v| text(v, "path")) {
                Some(path) => issuers.add(path),
                None => issuers.add_eks(),
            };
            Reply::json(200, &json!({"issuer": issuer.url()}))
        }
        (&Method::POST, "/_emulator/federated-credentials") => {
            let (Some(tenant), Some(client), Some(issuer), Some(subject)) = (
                text(&v, "tenant_id"),
                text(&v, "client_id"),
                text(&v, "issuer"),
                text(&v, "subject"),
            ) else {
                return bad("'tenant_id', 'client_id', 'issuer' and 'subject' are required");
            };
            let mut fic = FederatedCredential::new(issuer, subject);
            match strings(&v, "audiences") {
                Some(Ok(audiences)) => fic.audiences = audiences,
                Some(Err(())) => return bad("'audiences' is not a list of strings"),
                None => {}
            }
            if let Some(name) = text(&v, "name") {
                fic.name = name.to_owned();
            }
            match v.get("valid_after_secs").map(Value::as_u64) {
                Some(Some(s)) => fic.valid_after = Duration::from_secs(s),
                Some(None) => return bad("'valid_after_secs' is not a number of seconds"),
                None => {}
            }
            directory
                .registry
                .lock()
                .unwrap()
                .add_fic(tenant, client, fic);
            ok()
        }
        (&Method::DELETE, "/_emulator/federated-credentials") => {
            let (Some(tenant), Some(client)) = (text(&v, "tenant_id"), text(&v, "client_id"))
            else {
                return bad("'tenant_id' and 'client_id' are required");
            };
            directory
                .registry
                .lock()
                .unwrap()
                .remove_fics(tenant, client);
            ok()
        }
        (&Method::POST, "/_emulator/tokens") => {
            let Some(issuer) = issuers.get(text(&v, "issuer")) else {
                return bad("'issuer' is not an issuer of this emulator (GET /_emulator/issuers)");
            };
            let mut sa = ServiceAccountToken::default();
            if let Some(ns) = text(&v, "namespace") {
                sa.namespace = ns.to_owned();
            }
            if let Some(name) = text(&v, "service_account") {
                sa.service_account = name.to_owned();
            }
            match strings(&v, "audiences") {
                Some(Ok(audiences)) => sa.audiences = audiences,
                Some(Err(())) => return bad("'audiences' is not a list of strings"),
                None => {}
            }
            match v.get("lifetime_secs").map(Value::as_u64) {
                Some(Some(s)) => sa.lifetime = Duration::from_secs(s),
                Some(None) => return bad("'lifetime_secs' is not a number of seconds"),
                None => {}
            }
            let token = match text(&v, "iss") {
                Some(iss) => issuer.mint_claiming(&sa, iss),
                None => issuer.mint(&sa),
            };
            Reply::json(200, &json!({"token": token}))
        }
        (&Method::POST, "/_emulator/secrets") => {
            let (Some(name), Some(value)) = (text(&v, "name"), text(&v, "value")) else {
                return bad("'name' and 'value' are required");
            };
            let version = secrets.set(name, value);
            Reply::json(200, &json!({"ok": true, "version": version}))
        }
        _ => Reply::json(404, &json!({"error": "unknown control endpoint"})),
    }
}
