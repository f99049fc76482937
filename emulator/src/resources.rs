//! Resource APIs for examples: a Graph-like API and a Key Vault-like secret store, both
//! validating the bearer token (signature by the emulator's Entra key, audience, expiry).

use crate::directory::Directory;
use crate::http::{Reply, Request};
use crate::keys::DecodedJwt;
use crate::util::{now, random_hex, rfc3339, stable_uuid, uuid_v4};
use hyper::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Graph's audience.
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
/// Key Vault's audience.
pub const KEY_VAULT_AUDIENCE: &str = "https://vault.azure.net";

/// The Key Vault-like store: secret name → versions, oldest first.
#[derive(Default)]
pub(crate) struct Secrets(Mutex<BTreeMap<String, Vec<SecretVersion>>>);

#[derive(Clone, Debug)]
struct SecretVersion {
    version: String,
    value: String,
    /// Unix seconds.
    created: i64,
}

impl Secrets {
    /// Stores a new version of `name` (32 hex characters) and returns its id.
    pub(crate) fn set(&self, name: &str, value: &str) -> String {
        let version = random_hex::<16>();
        let mut secrets = self.0.lock().unwrap();
        secrets
            .entry(name.to_owned())
            .or_default()
            .push(SecretVersion {
                version: version.clone(),
                value: value.to_owned(),
                created: now().unix_timestamp(),
            });
        version
    }

    /// That version of `name`, or its latest.
    fn get(&self, name: &str, version: Option<&str>) -> Option<SecretVersion> {
        let secrets = self.0.lock().unwrap();
        let versions = secrets.get(name)?;
        match version {
            None => versions.last().cloned(),
            Some(v) => versions.iter().find(|s| s.version == v).cloned(),
        }
    }
}

/// Checks a bearer token: RS256 by the emulator's Entra key, `aud` one of `audiences`
/// (a trailing `/` tolerated), `nbf <= now < exp`. Returns the claims.
fn validate_bearer(
    dir: &Directory,
    token: Option<&str>,
    audiences: &[&str],
) -> Result<Value, String> {
    let token = token.ok_or("Access token is empty.")?;
    let jwt = DecodedJwt::parse(token).ok_or("IDX14100: JWT is not well formed.")?;
    jwt.verify_with_jwks(&dir.jwks())
        .map_err(|r| format!("Access token validation failure: signature. {r}"))?;
    let aud = jwt.claim_str("aud").unwrap_or("");
    if !audiences
        .iter()
        .any(|a| aud.trim_end_matches('/') == a.trim_end_matches('/'))
    {
        return Err(format!(
            "Invalid audience. Expected {}, found: {aud}.",
            audiences.join(" or ")
        ));
    }
    let t = now().unix_timestamp();
    let exp = jwt.claim_time("exp").unwrap_or(0);
    let nbf = jwt.claim_time("nbf").unwrap_or(0);
    if t >= exp {
        return Err("Lifetime validation failed, the token is expired.".to_owned());
    }
    if nbf > t + 300 {
        return Err("Lifetime validation failed, the token is not yet valid.".to_owned());
    }
    Ok(jwt.claims)
}

fn graph_error(status: u16, code: &str, message: &str, req: &Request) -> Reply {
    Reply::json(
        status,
        &json!({"error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": rfc3339(now()),
                "request-id": uuid_v4(),
                "client-request-id": req.correlation_id,
            }
        }}),
    )
}

/// `GET /v1.0/servicePrincipals(appId='{id}')` and `GET /v1.0/applications(appId='{id}')`.
pub(crate) fn graph(dir: &Directory, req: &Request) -> Reply {
    let claims = match validate_bearer(dir, req.bearer(), &[GRAPH_AUDIENCE]) {
        Ok(c) => c,
        Err(m) => {
            return graph_error(401, "InvalidAuthenticationToken", &m, req)
                .header("www-authenticate", &format!(
                    "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                    dir.authority
                ));
        }
    };
    if req.method != Method::GET {
        return graph_error(405, "Request_BadRequest", "Only GET is supported.", req);
    }
    let tid = claims.get("tid").and_then(Value::as_str).unwrap_or("");
    let rest = req.path.trim_start_matches("/v1.0/");
    let parse = |prefix: &str| {
        rest.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("(appId='"))
            .and_then(|r| r.strip_suffix("')"))
            .map(str::to_owned)
    };
    let (kind, app_id) = if let Some(id) = parse("servicePrincipals") {
        ("servicePrincipals", id)
    } else if let Some(id) = parse("applications") {
        ("applications", id)
    } else {
        return graph_error(
            400,
            "BadRequest",
            &format!("Resource not found for the segment '{rest}'."),
            req,
        );
    };
    if dir.registry.lock().unwrap().fics(tid, &app_id).is_none() {
        return graph_error(
            404,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{app_id}' does not exist or one of its queried reference-property objects are not present."
            ),
            req,
        );
    }
    let object_id = stable_uuid(&format!("{kind}/{tid}/{}", app_id.to_ascii_lowercase()));
    let display_name = format!("emulated-{}", &app_id[..app_id.len().min(8)]);
    let body = if kind == "servicePrincipals" {
        json!({
            "@odata.context": format!("{}/v1.0/$metadata#servicePrincipals/$entity", dir.authority),
            "id": object_id,
            "accountEnabled": true,
            "appId": app_id,
            "appDisplayName": display_name,
            "appOwnerOrganizationId": tid,
            "displayName": display_name,
            "servicePrincipalType": "Application",
            "servicePrincipalNames": [app_id],
            "signInAudience": "AzureADMyOrg",
            "tags": [],
            "appRoles": [],
            "keyCredentials": [],
            "passwordCredentials": [],
        })
    } else {
        json!({
            "@odata.context": format!("{}/v1.0/$metadata#applications/$entity", dir.authority),
            "id": object_id,
            "appId": app_id,
            "displayName": display_name,
            "createdDateTime": "2026-01-01T00:00:00Z",
            "signInAudience": "AzureADMyOrg",
            "identifierUris": [],
            "publisherDomain": "emulator.local",
            "keyCredentials": [],
            "passwordCredentials": [],
            "tags": [],
        })
    };
    Reply::json(200, &body).header("request-id", &uuid_v4())
}

fn kv_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

fn kv_challenge(dir: &Directory, message: &str) -> Reply {
    let tenant = dir
        .registry
        .lock()
        .unwrap()
        .default_tenant
        .clone()
        .unwrap_or_else(|| "organizations".to_owned());
    kv_error(401, "Unauthorized", message).header(
        "www-authenticate",
        &format!(
            "Bearer authorization=\"{}/{tenant}\", resource=\"{KEY_VAULT_AUDIENCE}\"",
            dir.authority
        ),
    )
}

/// `GET /secrets/{name}` and `GET /secrets/{name}/{version}`.
pub(crate) fn key_vault(dir: &Directory, secrets: &Secrets, req: &Request) -> Reply {
    let Some(token) = req.bearer() else {
        return kv_challenge(dir, "AKV10000: Request is missing a Bearer or PoP token.");
    };
    if let Err(m) = validate_bearer(dir, Some(token), &[KEY_VAULT_AUDIENCE]) {
        return kv_challenge(dir, &format!("AKV10022: {m}"));
    }
    if !req.query.contains_key("api-version") {
        return kv_error(
            400,
            "BadParameter",
            "The 'api-version' query parameter is missing.",
        );
    }
    if req.method != Method::GET {
        return kv_error(
            405,
            "BadParameter",
            "Only GET is supported by the emulator.",
        );
    }
    let segs: Vec<&str> = req
        .segments()
        .into_iter()
        .skip(1)
        .filter(|s| !s.is_empty())
        .collect();
    let (name, version) = match segs.as_slice() {
        [name] => (*name, None),
        [name, version] => (*name, Some(*version)),
        _ => return kv_error(400, "BadParameter", "Unsupported secret path."),
    };
    let Some(SecretVersion {
        version,
        value,
        created,
    }) = secrets.get(name, version)
    else {
        return kv_error(
            404,
            "SecretNotFound",
            &format!(
                "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
        );
    };
    Reply::json(
        200,
        &json!({
            "value": value,
            "id": format!("{}/secrets/{name}/{version}", dir.authority),
            "attributes": {
                "enabled": true,
                "created": created,
                "updated": created,
                "recoverableDays": 90,
                "recoveryLevel": "Recoverable+Purgeable",
            },
            "tags": {},
        }),
    )
}
