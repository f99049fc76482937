//! AWS STS `GetWebIdentityToken` (IAM outbound identity federation) and the account's issuer.
//!
//! - `POST /sts` (also `/sts/`): the AWS query protocol (`Action=GetWebIdentityToken`,
//!   `Version=2011-06-15`, `Audience.member.N`, `DurationSeconds`, `SigningAlgorithm`), answered
//!   with STS's XML. The caller is the role whose access key id appears in the SigV4
//!   `Authorization` header (`AWS4-HMAC-SHA256 Credential=<key id>/<date>/<region>/sts/aws4_request, ...`);
//!   the signature itself is not verified.
//! - The account's issuer `https://127.0.0.1:PORT/<uuid>.tokens.sts.global.api.aws` serves
//!   `/.well-known/openid-configuration` and `/.well-known/jwks.json` like any other issuer, so
//!   the Entra side federates it with a plain [`FederatedCredential`](crate::FederatedCredential)
//!   (issuer = [`AwsAccount::issuer_url`], subject = [`AwsRole::role_arn`]).

use crate::http::{Reply, Request};
use crate::kube::Issuer;
use crate::util::{b64, now, random_bytes, random_hex, rfc3339, uuid_v4};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The path STS is served at: [`Emulator::sts_endpoint_url`](crate::Emulator::sts_endpoint_url).
pub(crate) const STS_PATH: &str = "/sts";

/// The query-protocol API version of STS.
pub const STS_API_VERSION: &str = "2011-06-15";

/// STS state shared by the server and the handles.
#[derive(Default)]
pub(crate) struct StsState {
    accounts: Mutex<Vec<Arc<AccountState>>>,
    /// Answered, oldest first, to the next valid calls.
    pub(crate) errors: Mutex<VecDeque<StsError>>,
    /// How many tokens were issued.
    pub(crate) issued: AtomicUsize,
}

struct AccountState {
    id: String,
    issuer: Issuer,
    enabled: AtomicBool,
    roles: Mutex<Vec<RoleState>>,
}

#[derive(Clone)]
struct RoleState {
    name: String,
    arn: String,
    access_key_id: String,
    allowed: bool,
    expired: bool,
}

/// An AWS account as the emulator's STS sees it: an outbound-federation issuer and IAM roles.
///
/// Cheap to clone; clones share the account.
#[derive(Clone)]
pub struct AwsAccount {
    inner: Arc<AccountState>,
}

impl std::fmt::Debug for AwsAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsAccount")
            .field("id", &self.inner.id)
            .field("issuer", &self.inner.issuer.url())
            .finish_non_exhaustive()
    }
}

/// Static credentials of a role registered with [`AwsAccount::add_role`]; the emulator's STS
/// identifies the caller by `access_key_id`. `Debug` hides the secret.
#[derive(Clone)]
pub struct AwsRole {
    /// `arn:aws:iam::<account>:role/<name>`: the `sub` of the role's web identity tokens.
    pub role_arn: String,
    /// The access key id (`ASIA...`).
    pub access_key_id: String,
    /// The secret access key (not checked: SigV4 signatures are not verified).
    pub secret_access_key: String,
    /// A session token, as temporary role credentials carry.
    pub session_token: String,
}

impl std::fmt::Debug for AwsRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsRole")
            .field("role_arn", &self.role_arn)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// An STS error answered instead of the next `GetWebIdentityToken` result (see
/// [`Emulator::push_sts_error`](crate::Emulator::push_sts_error)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsError {
    /// HTTP status.
    pub status: u16,
    /// `Sender` or `Receiver`.
    pub kind: String,
    /// The error code, e.g. `Throttling`.
    pub code: String,
    /// The message.
    pub message: String,
}

impl StsError {
    /// An error with `status`, `code` and `message`; the type is `Receiver` for 5xx, else `Sender`.
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        StsError {
            status,
            kind: if status >= 500 { "Receiver" } else { "Sender" }.to_owned(),
            code: code.into(),
            message: message.into(),
        }
    }

    /// `400 Throttling: Rate exceeded`, as STS throttles.
    pub fn throttling() -> Self {
        StsError::new(400, "Throttling", "Rate exceeded")
    }

    /// `503 ServiceUnavailable`.
    pub fn service_unavailable() -> Self {
        StsError::new(503, "ServiceUnavailable", "Service is unavailable.")
    }

    fn reply(&self) -> Reply {
        let request_id = uuid_v4();
        let body = format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/{STS_API_VERSION}/\">\n  <Error>\n    <Type>{}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
            xml_escape(&self.kind),
            xml_escape(&self.code),
            xml_escape(&self.message)
        );
        xml(self.status, body, &request_id)
    }
}

impl AwsAccount {
    /// The 12-digit account id.
    pub fn id(&self) -> String {
        self.inner.id.clone()
    }

    /// The account's issuer (`https://127.0.0.1:PORT/<uuid>.tokens.sts.global.api.aws`).
    pub fn issuer(&self) -> Issuer {
        self.inner.issuer.clone()
    }

    /// The exact `iss` of the account's web identity tokens.
    pub fn issuer_url(&self) -> String {
        self.inner.issuer.url()
    }

    /// Turns outbound identity federation on or off (on when the account is added). When off,
    /// STS answers `OutboundWebIdentityFederationDisabledException`.
    pub fn set_outbound_federation_enabled(&self, enabled: bool) {
        self.inner.enabled.store(enabled, Ordering::SeqCst);
    }

    /// Adds a role allowed to call `sts:GetWebIdentityToken` and returns credentials for it.
    pub fn add_role(&self, name: &str) -> AwsRole {
        let role = AwsRole {
            role_arn: format!("arn:aws:iam::{}:role/{name}", self.inner.id),
            access_key_id: format!("ASIA{}", random_hex::<8>().to_ascii_uppercase()),
            secret_access_key: b64(random_bytes::<30>()),
            session_token: b64(random_bytes::<48>()),
        };
        self.inner.roles.lock().unwrap().push(RoleState {
            name: name.to_owned(),
            arn: role.role_arn.clone(),
            access_key_id: role.access_key_id.clone(),
            allowed: true,
            expired: false,
        });
        role
    }

    /// Whether the role's policies allow `sts:GetWebIdentityToken` (otherwise `AccessDenied`).
    pub fn set_role_allowed(&self, name: &str, allowed: bool) {
        self.update_role(name, |r| r.allowed = allowed);
    }

    /// Marks the role's credentials expired (STS then answers `ExpiredToken`).
    pub fn expire_role_credentials(&self, name: &str) {
        self.update_role(name, |r| r.expired = true);
    }

    fn update_role(&self, name: &str, f: impl Fn(&mut RoleState)) {
        for r in self.inner.roles.lock().unwrap().iter_mut() {
            if r.name == name {
                f(r);
            }
        }
    }
}

impl StsState {
    pub(crate) fn add_account(&self, id: &str, issuer: Issuer) -> AwsAccount {
        let mut accounts = self.accounts.lock().unwrap();
        if let Some(a) = accounts.iter().find(|a| a.id == id) {
            return AwsAccount { inner: a.clone() };
        }
        let inner = Arc::new(AccountState {
            id: id.to_owned(),
            issuer,
            enabled: AtomicBool::new(true),
            roles: Mutex::default(),
        });
        accounts.push(inner.clone());
        AwsAccount { inner }
    }

    fn caller(&self, access_key_id: &str) -> Option<(Arc<AccountState>, RoleState)> {
        let accounts = self.accounts.lock().unwrap();
        accounts.iter().find_map(|a| {
            let roles = a.roles.lock().unwrap();
            roles
                .iter()
                .find(|r| r.access_key_id == access_key_id)
                .map(|r| (a.clone(), r.clone()))
        })
    }
}

/// `(access key id, region)` from a SigV4 `Authorization` header.
fn sigv4_credential(req: &Request) -> Result<(String, String), StsError> {
    let missing = || {
        StsError::new(
            403,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        )
    };
    let header = req.authorization().ok_or_else(missing)?;
    let Some(rest) = header.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(StsError::new(
            400,
            "IncompleteSignature",
            "Authorization header requires the AWS4-HMAC-SHA256 scheme.",
        ));
    };
    let mut credential = None;
    let mut has_signature = false;
    for part in rest.split(',').map(str::trim) {
        if let Some(c) = part.strip_prefix("Credential=") {
            credential = Some(c);
        }
        has_signature |= part.starts_with("Signature=") && part.len() > "Signature=".len();
    }
    let scope: Vec<&str> = credential.unwrap_or("").split('/').collect();
    match scope.as_slice() {
        [key, _date, region, "sts", "aws4_request"] if has_signature && !key.is_empty() => {
            Ok(((*key).to_owned(), (*region).to_owned()))
        }
        _ => Err(StsError::new(
            400,
            "IncompleteSignature",
            "Authorization header requires 'Credential' (<key>/<date>/<region>/sts/aws4_request) and 'Signature' parameters.",
        )),
    }
}

fn validation(message: String) -> StsError {
    StsError::new(400, "ValidationError", message)
}

/// Handles `POST /sts`.
pub(crate) fn handle(sts: &StsState, req: &Request) -> Reply {
    match get_web_identity_token(sts, req) {
        Ok(r) => r,
        Err(e) => e.reply(),
    }
}

fn get_web_identity_token(sts: &StsState, req: &Request) -> Result<Reply, StsError> {
    if req.method != hyper::Method::POST {
        return Err(StsError::new(
            405,
            "InvalidAction",
            "STS query requests must be POSTed.",
        ));
    }
    let form = &req.form;
    let action = form.get("Action").map(String::as_str).unwrap_or("");
    if action != "GetWebIdentityToken" {
        return Err(StsError::new(
            400,
            "InvalidAction",
            format!("Could not find operation {action} for version {STS_API_VERSION}"),
        ));
    }
    if form.get("Version").map(String::as_str) != Some(STS_API_VERSION) {
        return Err(StsError::new(
            400,
            "InvalidAction",
            format!(
                "Could not find operation {action} for version {}",
                form.get("Version").map(String::as_str).unwrap_or("")
            ),
        ));
    }
    let (key, region) = sigv4_credential(req)?;
    let Some((account, role)) = sts.caller(&key) else {
        return Err(StsError::new(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ));
    };
    if role.expired {
        return Err(StsError::new(
            400,
            "ExpiredToken",
            "The security token included in the request is expired",
        ));
    }
    // Validation (as STS does it, before authorization).
    let mut audiences = Vec::new();
    for n in 1.. {
        match form.get(&format!("Audience.member.{n}")) {
            Some(a) => audiences.push(a.clone()),
            None => break,
        }
    }
    if audiences.is_empty() || audiences.len() > 10 {
        return Err(validation(format!(
            "1 validation error detected: Value at 'audience' failed to satisfy constraint: Member must have length between 1 and 10 (got {})",
            audiences.len()
        )));
    }
    let duration = match form.get("DurationSeconds") {
        None => 300,
        Some(d) => match d.parse::<i64>() {
            Ok(d) if (60..=3600).contains(&d) => d,
            _ => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must have value between 60 and 3600"
                )));
            }
        },
    };
    let alg = form.get("SigningAlgorithm").map(String::as_str);
    match alg {
        Some("RS256") => {}
        Some("ES384") => {
            return Err(validation(
                "SigningAlgorithm ES384 is valid in AWS but not implemented by this emulator (and not accepted by Entra ID); use RS256".to_owned(),
            ));
        }
        other => {
            return Err(validation(format!(
                "1 validation error detected: Value '{}' at 'signingAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [RS256, ES384]",
                other.unwrap_or("null")
            )));
        }
    }
    // One-shot errors queued by a test come after the caller is known.
    if let Some(e) = sts.errors.lock().unwrap().pop_front() {
        return Err(e);
    }
    if !role.allowed {
        return Err(StsError::new(
            403,
            "AccessDenied",
            format!(
                "User: arn:aws:sts::{}:assumed-role/{}/session is not authorized to perform: sts:GetWebIdentityToken because no identity-based policy allows the sts:GetWebIdentityToken action",
                account.id, role.name
            ),
        ));
    }
    if !account.enabled.load(Ordering::SeqCst) {
        return Err(StsError::new(
            403,
            "OutboundWebIdentityFederationDisabledException",
            "Outbound web identity federation is disabled for this account. Enable it with EnableOutboundWebIdentityFederation.",
        ));
    }
    let iat = now().unix_timestamp();
    let exp = iat + duration;
    let aud = if audiences.len() == 1 {
        Value::from(audiences[0].clone())
    } else {
        Value::from(audiences)
    };
    let claims = json!({
        "iss": account.issuer.url(),
        "aud": aud,
        "sub": role.arn,
        "iat": iat,
        "exp": exp,
        "jti": uuid_v4(),
        "https://sts.amazonaws.com/": {
            "aws_account": account.id,
            "source_region": region,
        },
    });
    let jwt = account.issuer.sign_claims(&claims);
    sts.issued.fetch_add(1, Ordering::SeqCst);
    let expiration = time::OffsetDateTime::from_unix_timestamp(exp)
        .map(rfc3339)
        .unwrap_or_default();
    let request_id = uuid_v4();
    let body = format!(
        "<GetWebIdentityTokenResponse xmlns=\"https://sts.amazonaws.com/doc/{STS_API_VERSION}/\">\n  <GetWebIdentityTokenResult>\n    <WebIdentityToken>{jwt}</WebIdentityToken>\n    <Expiration>{expiration}</Expiration>\n  </GetWebIdentityTokenResult>\n  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n</GetWebIdentityTokenResponse>\n"
    );
    Ok(xml(200, body, &request_id))
}

fn xml(status: u16, body: String, request_id: &str) -> Reply {
    Reply::new(status, "text/xml", body).header("x-amzn-requestid", request_id)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
