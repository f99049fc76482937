//! Entra ID's endpoints: the token endpoint with Entra's validation order and error shapes, and
//! Entra's discovery documents.

use crate::directory::Directory;
use crate::http::{Reply, Request};
use crate::keys::DecodedJwt;
use crate::util::{discovery_document, entra_timestamp, now, uuid_v4};
use hyper::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;
use time::macros::format_description;

/// `client_assertion_type` for a JWT bearer assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How far `nbf`/`exp` of an assertion may be off before AADSTS700024.
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// How long Entra waits for an issuer's discovery document or JWKS.
pub(crate) const OIDC_FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// An Entra error about to be rendered.
#[derive(Debug)]
pub(crate) struct EntraError {
    status: u16,
    error: String,
    code: u32,
    message: String,
}

/// An Entra error answer: `AADSTS<code>: <message>` with that status and OAuth `error`.
pub(crate) fn error(status: u16, error: &str, code: u32, message: impl Into<String>) -> EntraError {
    EntraError {
        status,
        error: error.to_owned(),
        code,
        message: message.into(),
    }
}

fn invalid_client(status: u16, code: u32, message: impl Into<String>) -> EntraError {
    error(status, "invalid_client", code, message)
}

/// AADSTS90002 with that OAuth `error` (`invalid_request` at the token endpoint,
/// `invalid_tenant` at discovery).
fn unknown_tenant(oauth_error: &str, tenant: &str) -> EntraError {
    error(
        400,
        oauth_error,
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    )
}

fn missing(param: &str) -> EntraError {
    error(
        400,
        "invalid_request",
        900144,
        format!("The request body must contain the following parameter: '{param}'."),
    )
}

impl EntraError {
    /// Renders Entra's JSON error body.
    pub(crate) fn reply(&self, authority: &str, correlation_id: &str) -> Reply {
        let trace_id = uuid_v4();
        let ts = entra_timestamp(now());
        let description = format!(
            "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {ts}",
            self.code, self.message
        );
        let body = json!({
            "error": self.error,
            "error_description": description,
            "error_codes": [self.code],
            "timestamp": ts,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("{authority}/error?code={}", self.code),
        });
        Reply::json(self.status, &body)
            .header("x-ms-request-id", &trace_id)
            .header("cache-control", "no-store, no-cache")
    }
}

fn precise_time(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z"
    ))
    .expect("formatting a UTC time cannot fail")
}

/// `/{tenant}/oauth2/v2.0/token`: validates a token request in Entra's order and issues an
/// access token; `numbers_as_strings` forces [`AccessTokenOptions::numbers_as_strings`](crate::AccessTokenOptions::numbers_as_strings).
pub(crate) async fn token(dir: &Directory, req: &Request, numbers_as_strings: bool) -> Reply {
    let result = if req.method == Method::POST {
        validate(dir, req.segments()[0], &req.form).await
    } else {
        Err(error(
            400,
            "invalid_request",
            900561,
            format!(
                "The endpoint only accepts POST, OPTIONS requests. Received a {} request.",
                req.method
            ),
        ))
    };
    match result {
        Ok(grant) => success(dir, &grant, numbers_as_strings),
        Err(e) => e.reply(&dir.authority, &req.correlation_id),
    }
}

struct Grant {
    tenant: String,
    client_id: String,
    resource: String,
}

async fn validate(
    dir: &Directory,
    tenant: &str,
    form: &BTreeMap<String, String>,
) -> Result<Grant, EntraError> {
    let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());

    // 1. tenant
    if !dir.registry.lock().unwrap().has_tenant(tenant) {
        return Err(unknown_tenant("invalid_request", tenant));
    }
    // 2. application
    let client_id = get("client_id").ok_or_else(|| missing("client_id"))?;
    let (fics, fic_clock) = {
        let registry = dir.registry.lock().unwrap();
        let fics = registry.fics(tenant, client_id).map(<[_]>::to_vec);
        (fics, registry.now())
    };
    let Some(fics) = fics else {
        return Err(error(
            400,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        ));
    };
    // 3. grant type
    match get("grant_type") {
        None => return Err(missing("grant_type")),
        Some("client_credentials") => {}
        // Entra's words, without advice (RFC 8693 token exchange included: real Entra answers
        // "AADSTS70003: The app requested an unsupported grant type
        // 'urn:ietf:params:oauth:grant-type:token-exchange'." and nothing more).
        Some(other) => {
            return Err(error(
                400,
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{other}'."),
            ));
        }
    }
    // 4. client authentication: a JWT bearer assertion only
    let assertion = match (get("client_assertion"), get("client_secret")) {
        (Some(a), _) => a,
        (None, Some(_)) => {
            return Err(invalid_client(
                401,
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
            ));
        }
        (None, None) => {
            return Err(invalid_client(
                401,
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
            ));
        }
    };
    match get("client_assertion_type") {
        None => return Err(missing("client_assertion_type")),
        Some(JWT_BEARER) => {}
        Some(other) => {
            return Err(invalid_client(
                401,
                70002,
                format!(
                    "Error validating credentials. The client_assertion_type '{other}' is not supported; expected '{JWT_BEARER}'."
                ),
            ));
        }
    }
    // 5. scope: exactly one resource, with /.default
    let scope = get("scope").ok_or_else(|| missing("scope"))?;
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if let Some(bad) = scopes.iter().find(|s| !s.ends_with("/.default")) {
        return Err(error(
            400,
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {bad} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    }
    if scopes.len() != 1 {
        return Err(error(
            400,
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid. static scope limit exceeded."
            ),
        ));
    }
    let resource = scopes[0].trim_end_matches("/.default").to_owned();
    // 6. the assertion is a JWT
    let Some(jwt) = DecodedJwt::parse(assertion) else {
        return Err(invalid_client(
            401,
            50027,
            "JWT token is invalid or malformed.",
        ));
    };
    // 7. federated identity credential: exact, case-sensitive issuer, subject, audience
    let iss = jwt.claim_str("iss").unwrap_or("");
    let sub = jwt.claim_str("sub").unwrap_or("");
    let auds = jwt.audiences();
    let valid_from = (fics.iter())
        .filter(|(f, _)| {
            f.issuer == iss && f.subject == sub && f.audiences.iter().any(|a| auds.contains(a))
        })
        .map(|(_, from)| *from)
        .min();
    let Some(valid_from) = valid_from else {
        return Err(invalid_client(
            400,
            70021,
            format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'. https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
                auds.join(",")
            ),
        ));
    };
    if valid_from > fic_clock {
        // Not propagated yet (FederatedCredential::valid_after).
        return Err(invalid_client(
            400,
            700213,
            format!(
                "No matching federated identity record found for presented assertion subject '{sub}'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
            ),
        ));
    }
    // 8. issuer discovery + JWKS, over HTTPS from the issuer itself
    let jwks = fetch_jwks(&dir.oidc_client, iss).await.map_err(|reason| {
        invalid_client(
            400,
            90061,
            format!("Request to External OIDC endpoint failed. {reason}"),
        )
    })?;
    // 9. signature: an EC-signed assertion is refused before its signature is checked, a kid
    // the JWKS does not list (a rotated key not yet republished) has its own code.
    if let Some(alg @ ("ES256" | "ES384" | "ES512")) = jwt.alg() {
        return Err(invalid_client(
            401,
            5002738,
            format!(
                "Invalid JWT token. '{alg}' is not a supported signature algorithm. Supported algorithms for client assertions are: RS256, RS384, RS512."
            ),
        ));
    }
    if let Some(kid) = jwt.kid() {
        let listed = jwks
            .get("keys")
            .and_then(Value::as_array)
            .is_some_and(|keys| {
                keys.iter()
                    .any(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
            });
        if !listed {
            return Err(invalid_client(
                401,
                7000272,
                format!(
                    "The key used to sign the client assertion was not found in the issuer's JWKS. kid: '{kid}'. Issuer: '{iss}'."
                ),
            ));
        }
    }
    jwt.verify_with_jwks(&jwks).map_err(|reason| {
        invalid_client(
            401,
            700027,
            format!(
                "Client assertion failed signature validation. (Reason - {reason} Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.)"
            ),
        )
    })?;
    // 10. time validity, and (when enforced) Entra's limit on an external token's lifetime
    check_times(&jwt)?;
    let limit = *dir.max_assertion_lifetime.lock().unwrap();
    if let (Some(limit), Some(exp), Some(iat)) =
        (limit, jwt.claim_time("exp"), jwt.claim_time("iat"))
        && exp - iat > limit.as_secs() as i64
    {
        return Err(invalid_client(
            400,
            70023,
            format!(
                "The external token has a lifetime of {} seconds, more than the maximum of {} seconds.",
                exp - iat,
                limit.as_secs()
            ),
        ));
    }
    Ok(Grant {
        tenant: tenant.to_owned(),
        client_id: client_id.to_owned(),
        resource,
    })
}

fn check_times(jwt: &DecodedJwt) -> Result<(), EntraError> {
    let now = now();
    let skew = time::Duration::try_from(CLOCK_SKEW).expect("small");
    let at = |s: Option<i64>| s.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok());
    let exp = at(jwt.claim_time("exp"));
    let nbf = at(jwt.claim_time("nbf")).or(at(jwt.claim_time("iat")));
    let Some(exp) = exp else {
        return Err(invalid_client(
            401,
            50027,
            "JWT token is invalid or malformed. The assertion has no 'exp' claim.",
        ));
    };
    let too_early = nbf.is_some_and(|nbf| nbf > now + skew);
    if exp + skew < now || too_early {
        let from = nbf.map(precise_time).unwrap_or_default();
        return Err(invalid_client(
            400,
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {from}, expiry time of assertion {}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                precise_time(now),
                precise_time(exp)
            ),
        ));
    }
    Ok(())
}

async fn fetch_jwks(client: &reqwest::Client, iss: &str) -> Result<Value, String> {
    if !iss.starts_with("https://") {
        return Err(format!("The issuer '{iss}' is not an HTTPS URL."));
    }
    let discovery_url = discovery_document(iss);
    let discovery = fetch_json(client, &discovery_url).await?;
    let jwks_uri = discovery
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("The document at '{discovery_url}' has no 'jwks_uri'."))?
        .to_owned();
    if !jwks_uri.starts_with("https://") {
        return Err(format!("The jwks_uri '{jwks_uri}' is not an HTTPS URL."));
    }
    let jwks = fetch_json(client, &jwks_uri).await?;
    if !jwks.get("keys").is_some_and(Value::is_array) {
        return Err(format!("The document at '{jwks_uri}' is not a JWKS."));
    }
    Ok(jwks)
}

async fn fetch_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let resp = client
        .get(url)
        .timeout(OIDC_FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("Endpoint: '{url}'. Error: {e}."))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!(
            "Endpoint: '{url}'. HTTP status: {}.",
            status.as_u16()
        ));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("Endpoint: '{url}'. Error: {e}."))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| format!("Endpoint: '{url}'. The response is not JSON."))
}

fn success(dir: &Directory, grant: &Grant, force_strings: bool) -> Reply {
    let options = dir.token_options.lock().unwrap().clone();
    let token = dir.issue_access_token(
        &grant.tenant,
        &grant.client_id,
        &grant.resource,
        options.lifetime,
    );
    let secs = |d: Duration| -> Value {
        if options.numbers_as_strings || force_strings {
            Value::from(d.as_secs().to_string())
        } else {
            Value::from(d.as_secs())
        }
    };
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": secs(options.lifetime),
        "ext_expires_in": secs(options.ext_expires_in.unwrap_or(options.lifetime)),
        "access_token": token,
    });
    if let Some(r) = options.refresh_in {
        body["refresh_in"] = secs(r);
    }
    Reply::json(200, &body)
        .header("x-ms-request-id", &uuid_v4())
        .header("cache-control", "no-store, no-cache")
}

/// Entra's discovery: `/common/discovery/instance`, and for a registered tenant
/// `/{tenant}/v2.0/.well-known/openid-configuration` and `/{tenant}/discovery/v2.0/keys`.
pub(crate) fn discovery(dir: &Directory, req: &Request) -> Reply {
    match req.segments().as_slice() {
        ["common", "discovery", "instance"] => instance_discovery(&dir.authority),
        [tenant, ..] if !dir.registry.lock().unwrap().has_tenant(tenant) => {
            unknown_tenant("invalid_tenant", tenant).reply(&dir.authority, &req.correlation_id)
        }
        [tenant, "v2.0", ..] => openid_configuration(&dir.authority, tenant),
        _ => Reply::json(200, &dir.jwks()),
    }
}

fn openid_configuration(a: &str, tenant: &str) -> Reply {
    let body = json!({
        "token_endpoint": format!("{a}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{a}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{a}/{tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{a}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{a}/{tenant}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{a}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver", "oid"],
        "kerberos_endpoint": format!("{a}/{tenant}/kerberos"),
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    });
    Reply::json(200, &body)
}

/// `/common/discovery/instance` (MSAL's instance discovery) for the emulator host.
fn instance_discovery(a: &str) -> Reply {
    let host = a.trim_start_matches("https://");
    Reply::json(
        200,
        &json!({
            "tenant_discovery_endpoint": format!("{a}/common/v2.0/.well-known/openid-configuration"),
            "api-version": "1.1",
            "metadata": [{
                "preferred_network": host,
                "preferred_cache": host,
                "aliases": [host],
            }],
        }),
    )
}
