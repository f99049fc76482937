//! The checks behind `azure-identity-k8s doctor`: from "it fails" to "it works".
//!
//! [`run`] walks the whole path a token takes, in order, and returns a [`Report`]: one [`Check`]
//! per step with its outcome, what it looked at, and for every warning or failure the exact fix.
//!
//! | # | check | looks at |
//! |---|---|---|
//! | 1 | `configuration` | client id, tenant id, token file, authority, expected audience, and which source supplied each (option, environment variable, well-known path, default) |
//! | 2 | `token-file` | path, symlink layout (the kubelet's `..data` atomic writer), age, readable, size |
//! | 3 | `jwt` | the token is a JWT; `alg`, `kid`, `iss`, `sub`, `aud`, `iat`, `exp`, the `kubernetes.io` namespace, service account and pod |
//! | 4 | `audience` | the expected audience is in `aud`; AWS and cluster audiences are refused |
//! | 5 | `expiry` | not expired; not older than 80 % of its lifetime (else the kubelet is not rotating it) |
//! | 6 | `issuer` | HTTPS, no whitespace, trailing slash, a name Entra can resolve |
//! | 7 | `discovery` | `{iss}/.well-known/openid-configuration` fetched from here over HTTPS |
//! | 8 | `jwks` | its `jwks_uri` fetched, and the token's `kid` in it |
//! | 9 | `signature` | the RS256 signature verified with that key, as Entra does |
//! | 10 | `scope` | the test scope has the `<resource>/.default` form |
//! | 11 | `exchange` | a real token request through [`WorkloadIdentityCredential`]; on an Entra error, the AADSTS code explained and the federated credential that would match |
//!
//! With cargo feature `aws` and `DoctorOptions::aws` set, the assertion is a JWT from AWS STS
//! `GetWebIdentityToken` (IAM outbound identity federation, `docs/aws-outbound.md`) instead of a
//! token file: checks 2 to 5 are replaced by one `aws-sts` check (the options, then a JWT from
//! STS with its issuer, role-ARN subject, audience and expiry, or the AWS error code and its fix),
//! checks 6 to 9 run on that JWT's issuer and `kid`, and the exchange goes through the credential
//! of `WorkloadIdentityCredential::from_aws`, with the same JWT. On AADSTS70021 the fix names the
//! federated credential to create: the account's issuer, the role ARN, the audience.
//!
//! A check whose input is missing (no token, no JWKS, ...) is skipped, and says why. The exchange
//! runs whenever the token passes the local checks, even if the issuer looks unreachable from
//! here: Entra's view (from the public internet) is the one that counts.
//!
//! ```no_run
//! # async fn example() {
//! use azure_identity_k8s::doctor::{self, DoctorOptions};
//! let report = doctor::run(DoctorOptions::default()).await;
//! print!("{report}");
//! if let Some(first) = report.first_failure() {
//!     eprintln!("fix {} first: {}", first.id, first.fix.as_deref().unwrap_or(""));
//! }
//! # }
//! ```

#[cfg(feature = "aws")]
mod aws;
mod oidc;
mod report;

pub use report::{Check, CheckId, MatchingFederatedCredential, Report, Status};

use crate::assertion::ForeignAudience;
use crate::clock::{Clock, SystemClock};
use crate::config::{
    self, AZURE_AUTHORITY_HOST, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_AUDIENCE,
    AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID, ConfigInputs, ResolvedConfig, Sourced,
    ValueSource,
};
use crate::credential::{
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions, validate_scopes,
};
use crate::error::{CredentialError, ErrorCategory};
use crate::jwt::{self, DecodedJwt};
use azure_core::credentials::TokenCredential as _;
use azure_core::http::Url;
use oidc::{FetchError, Fetcher, Jwk};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// The scope of the test exchange when none is given: Azure Storage exists in every cloud, and
/// Entra issues an app-only token for it whether or not the identity has any role there.
pub const DEFAULT_SCOPE: &str = "https://storage.azure.com/.default";

/// Tolerated clock difference, as the credential and Entra allow.
const CLOCK_SKEW: Duration = Duration::minutes(5);
/// The kubelet replaces a projected token at 80 % of its lifetime, or after 24 h.
const ROTATION_FRACTION: f64 = 0.8;
const ROTATION_CAP: Duration = Duration::hours(24);
/// A little slack past the kubelet's deadline before calling it late (its sync period + jitter).
const ROTATION_GRACE: Duration = Duration::minutes(2);

/// What to check.
#[derive(Debug)]
pub struct DoctorOptions {
    /// The credential's options, exactly as the application passes them (transport, client id,
    /// environment, ...). Unset values fall back to the environment as in the credential.
    pub credential: WorkloadIdentityCredentialOptions,
    /// The scope of the test exchange. Default [`DEFAULT_SCOPE`].
    pub scope: String,
    /// Do not contact Entra (the exchange is reported as skipped).
    pub skip_exchange: bool,
    /// Check AWS outbound identity federation instead of a token file: the assertion comes from
    /// AWS STS `GetWebIdentityToken` with these options, as with
    /// [`WorkloadIdentityCredential::from_aws`]. Default: unset.
    #[cfg(feature = "aws")]
    pub aws: Option<crate::assertion::AwsWebIdentitySourceOptions>,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        Self {
            credential: WorkloadIdentityCredentialOptions::default(),
            scope: DEFAULT_SCOPE.to_string(),
            skip_exchange: false,
            #[cfg(feature = "aws")]
            aws: None,
        }
    }
}

/// Run every check, in order. Never panics and never returns early: the report says what failed.
pub async fn run(options: DoctorOptions) -> Report {
    run_with_clock(options, Arc::new(SystemClock)).await
}

/// The values the token checks need, from the resolved configuration or, when resolution failed,
/// from whatever could be found.
struct Inputs {
    config: Option<ResolvedConfig>,
    token_file: Option<Sourced<PathBuf>>,
    expected_audience: String,
}

struct Doctor {
    now: OffsetDateTime,
    checks: Vec<Check>,
}

impl Doctor {
    fn push(&mut self, check: Check) -> Status {
        let s = check.status;
        self.checks.push(check);
        s
    }

    fn skip(&mut self, id: CheckId, why: &str) {
        self.checks
            .push(Check::new(id, Status::Skip, format!("skipped: {why}")));
    }
}

pub(crate) async fn run_with_clock(
    #[cfg_attr(not(feature = "aws"), allow(unused_mut))] mut options: DoctorOptions,
    clock: Arc<dyn Clock>,
) -> Report {
    #[cfg(feature = "aws")]
    let aws_options = options.aws.take();
    #[cfg(feature = "aws")]
    let mut aws_source = None;
    let DoctorOptions {
        credential,
        scope,
        skip_exchange,
        ..
    } = options;
    let mut d = Doctor {
        now: clock.now(),
        checks: Vec::new(),
    };
    let client_options = credential.credential_options.client_options.clone();

    // 1. configuration
    #[cfg(feature = "aws")]
    let inputs = check_configuration(&mut d, &credential, aws_options.is_some());
    #[cfg(not(feature = "aws"))]
    let inputs = check_configuration(&mut d, &credential, false);
    let mut usable = inputs.config.is_some();
    // The audience the federated credential must carry.
    #[cfg_attr(not(feature = "aws"), allow(unused_mut))]
    let mut fic_audience = inputs.expected_audience.clone();

    // 2-5, or aws-sts: the assertion
    #[cfg_attr(not(feature = "aws"), allow(unused_labels))]
    let (token, decoded) = 'assertion: {
        #[cfg(feature = "aws")]
        if let Some(o) = aws_options {
            let sts = aws::check_sts(&mut d, o, &inputs, clock.clone()).await;
            aws_source = sts.source;
            usable &= sts.jwt.is_some();
            if let Some(aud) = sts.jwt.as_ref().and_then(|(_, j)| j.claims.aud.first()) {
                fic_audience = aud.clone();
            }
            break 'assertion sts.jwt.unzip();
        }
        file_assertion(&mut d, &inputs, &mut usable)
    };

    // 6-9. issuer, discovery, JWKS, signature
    match (&token, &decoded) {
        (Some(token), Some(jwt)) => check_issuer_side(&mut d, token, jwt, client_options).await,
        _ => {
            for id in [
                CheckId::Issuer,
                CheckId::Discovery,
                CheckId::Jwks,
                CheckId::Signature,
            ] {
                d.skip(id, "no token");
            }
        }
    }

    // 10. scope
    let scope_ok = match validate_scopes(&[scope.as_str()]) {
        Ok(()) => {
            d.push(Check::new(
                CheckId::Scope,
                Status::Ok,
                format!("{scope} has the <resource>/.default form"),
            )) == Status::Ok
        }
        Err(e) => {
            let fix = match scope.strip_suffix("/.default") {
                None if !scope.trim().is_empty() && !scope.contains(' ') => {
                    format!("Request {}/.default (pass --scope {}/.default).", scope.trim_end_matches('/'), scope.trim_end_matches('/'))
                }
                _ => "Request exactly one scope of the form <resource>/.default, e.g. --scope https://storage.azure.com/.default.".to_string(),
            };
            d.push(
                Check::new(CheckId::Scope, Status::Fail, e.message().to_string())
                    .detail("scope", scope.clone())
                    .fix(fix)
                    .docs("invalid-scope"),
            );
            false
        }
    };

    // 11. exchange
    if skip_exchange {
        d.skip(CheckId::Exchange, "not requested (--no-exchange)");
    } else if !usable {
        d.skip(CheckId::Exchange, "the credential would refuse this configuration or token locally; fix the failures above first");
    } else if !scope_ok {
        d.skip(CheckId::Exchange, "the scope is invalid");
    } else if let (Some(config), Some(jwt)) = (&inputs.config, &decoded) {
        #[cfg_attr(not(feature = "aws"), allow(unused_labels))]
        let (built, fix) = 'built: {
            #[cfg(feature = "aws")]
            if let Some(source) = aws_source {
                break 'built (
                    WorkloadIdentityCredential::from_aws_source(credential, source, clock),
                    aws::fic_fix(config, jwt, &fic_audience),
                );
            }
            (
                WorkloadIdentityCredential::build(credential, None, clock),
                fic_fix(config, jwt, &fic_audience),
            )
        };
        check_exchange(&mut d, built, &scope, config, fix).await;
    }

    let matching_federated_credential = decoded
        .as_ref()
        .and_then(|jwt| matching_fic(jwt, &fic_audience));
    let ok = !d.checks.iter().any(|c| c.status == Status::Fail);
    Report {
        ok,
        scope,
        checks: d.checks,
        matching_federated_credential,
    }
}

/// Checks 2 to 5 on the token file: its JWT and decoded form when it can be used.
fn file_assertion(
    d: &mut Doctor,
    inputs: &Inputs,
    usable: &mut bool,
) -> (Option<String>, Option<DecodedJwt>) {
    // 2. token file
    let token = match &inputs.token_file {
        Some(path) => check_token_file(d, path),
        None => {
            d.skip(
                CheckId::TokenFile,
                "no token file is configured (see `configuration`)",
            );
            None
        }
    };

    // 3. JWT
    let decoded = match &token {
        Some(t) => check_jwt(d, t),
        None => {
            d.skip(CheckId::Jwt, "the token file could not be read");
            None
        }
    };

    // 4, 5. audience, expiry
    match &decoded {
        Some(jwt) => {
            *usable &= check_audience(d, jwt, inputs) != Status::Fail;
            *usable &= check_expiry(d, jwt) != Status::Fail;
        }
        None => {
            *usable = false;
            d.skip(CheckId::Audience, "no token");
            d.skip(CheckId::Expiry, "no token");
        }
    }
    (token, decoded)
}

fn source_text(source: &ValueSource) -> String {
    match source {
        ValueSource::Options => "option".into(),
        ValueSource::EnvVar(v) => format!("env {v}"),
        ValueSource::WellKnownPath => "discovered webhook path".into(),
        ValueSource::Default => "default".into(),
    }
}

fn with_source<T: std::fmt::Display>(v: &T, source: &ValueSource) -> String {
    format!("{v} (from {})", source_text(source))
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// What stands in for the token file when the assertion comes from AWS STS.
const AWS_ASSERTION: &str = "AWS STS GetWebIdentityToken (see `aws-sts`)";

fn check_configuration(d: &mut Doctor, o: &WorkloadIdentityCredentialOptions, aws: bool) -> Inputs {
    // As the credential does for a custom assertion source: no token file is needed.
    let placeholder = PathBuf::from(AWS_ASSERTION);
    let inputs = ConfigInputs {
        client_id: o.client_id.as_deref(),
        tenant_id: o.tenant_id.as_deref(),
        token_file_path: if aws {
            Some(placeholder.as_path())
        } else {
            o.token_file_path.as_deref()
        },
        cloud: o.credential_options.client_options.cloud.as_deref(),
        expected_audience: o.expected_audience.as_deref(),
        well_known_token_paths: &o.well_known_token_paths,
        env: &o.env,
    };
    match config::resolve(&inputs) {
        Ok(c) => {
            let mut check = Check::new(
                CheckId::Configuration,
                Status::Ok,
                if aws {
                    "client id and tenant id are configured; the assertion comes from AWS STS"
                } else {
                    "client id, tenant id and token file are configured"
                },
            )
            .detail(
                "client id",
                with_source(&c.client_id.value, &c.client_id.source),
            )
            .detail(
                "tenant id",
                with_source(&c.tenant_id.value, &c.tenant_id.source),
            )
            .detail(
                if aws { "assertion" } else { "token file" },
                if aws {
                    AWS_ASSERTION.to_string()
                } else {
                    with_source(&c.token_file.value.display(), &c.token_file.source)
                },
            )
            .detail(
                "authority",
                with_source(
                    &c.authority_host.value.as_str().trim_end_matches('/'),
                    &c.authority_host.source,
                ),
            )
            .detail(
                "expected audience",
                with_source(&c.expected_audience.value, &c.expected_audience.source),
            );
            if let Ok(ep) = c.token_endpoint() {
                check = check.detail("token endpoint", ep.to_string());
            }
            let mut warnings = Vec::new();
            if !is_guid(&c.client_id.value) {
                warnings.push(format!(
                    "The client id {:?} (from {}) is not a GUID. Use the application's or user-assigned managed identity's client id (appId), e.g. `az identity show -n <identity> -g <group> --query clientId -o tsv`.",
                    c.client_id.value, c.client_id.source
                ));
            }
            if !is_guid(&c.tenant_id.value) && !c.tenant_id.value.contains('.') {
                warnings.push(format!(
                    "The tenant id {:?} (from {}) is neither a GUID nor a domain name; use the directory id from `az account show --query tenantId -o tsv`.",
                    c.tenant_id.value, c.tenant_id.source
                ));
            }
            if !warnings.is_empty() {
                check.status = Status::Warn;
                check.summary = "configured, but a value looks wrong".into();
                check = check.fix(warnings.join("\n"));
            }
            d.push(check);
            let token_file = (!aws).then(|| c.token_file.clone());
            let expected_audience = c.expected_audience.value.clone();
            Inputs {
                config: Some(c),
                token_file,
                expected_audience,
            }
        }
        Err(e) => {
            let anchor = if e.is_not_configured() {
                "not-configured"
            } else {
                "invalid-configuration"
            };
            let mut check = Check::new(
                CheckId::Configuration,
                Status::Fail,
                e.message().to_string(),
            )
            .docs(anchor);
            for (label, option, var) in [
                ("client id", o.client_id.as_deref(), AZURE_CLIENT_ID),
                ("tenant id", o.tenant_id.as_deref(), AZURE_TENANT_ID),
                ("authority", None, AZURE_AUTHORITY_HOST),
                (
                    "expected audience",
                    o.expected_audience.as_deref(),
                    AZURE_FEDERATED_TOKEN_AUDIENCE,
                ),
            ] {
                let shown = match (option, o.env.var(var)) {
                    (Some(v), _) => format!("{v:?} (from option)"),
                    (None, Some(v)) => format!("{v:?} (from env {var})"),
                    (None, None) => format!("not set (option or env {var})"),
                };
                check = check.detail(label, shown);
            }
            let fix = if e.is_not_configured() && aws {
                format!(
                    "Set the missing value: env {AZURE_CLIENT_ID} and {AZURE_TENANT_ID} (or --client-id and --tenant-id). \
                     With AWS outbound federation no token file is needed."
                )
            } else if e.is_not_configured() {
                format!(
                    "Set the missing value. In the pod spec: env {AZURE_CLIENT_ID}, {AZURE_TENANT_ID} and {AZURE_FEDERATED_TOKEN_FILE} \
                     (`azure-identity-k8s setup` prints a Deployment with them), or with the Azure Workload Identity webhook label the pod \
                     azure.workload.identity/use: \"true\" and annotate its ServiceAccount with azure.workload.identity/client-id."
                )
            } else {
                "Correct the value named above at its source (option or environment variable)."
                    .to_string()
            };
            check = check.fix(fix);
            // Best effort, so the token can still be examined.
            let token_file = if aws {
                None
            } else {
                config::locate_token_file(
                    o.token_file_path.as_deref(),
                    &o.env,
                    &o.well_known_token_paths,
                )
            };
            if let Some(t) = &token_file {
                check = check.detail("token file", with_source(&t.value.display(), &t.source));
            }
            d.push(check);
            let expected_audience = o
                .expected_audience
                .clone()
                .or_else(|| o.env.var(AZURE_FEDERATED_TOKEN_AUDIENCE))
                .or_else(|| {
                    o.env
                        .var(AZURE_AUTHORITY_HOST)
                        .and_then(|a| Url::parse(&a).ok())
                        .map(|u| config::default_audience_for(&u).to_string())
                })
                .unwrap_or_else(|| config::AUDIENCE_PUBLIC.to_string());
            Inputs {
                config: None,
                token_file,
                expected_audience,
            }
        }
    }
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn fmt_duration(d: Duration) -> String {
    let s = d.whole_seconds().abs();
    let sign = if d.is_negative() { "-" } else { "" };
    if s >= 86400 {
        format!("{sign}{}d{:02}h", s / 86400, (s % 86400) / 3600)
    } else if s >= 3600 {
        format!("{sign}{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{sign}{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{sign}{s}s")
    }
}

/// How the token file is laid out: the kubelet's atomic writer, another symlink, or a plain file.
fn describe_layout(path: &Path) -> (String, bool) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return ("(cannot stat)".into(), false);
    };
    if !meta.file_type().is_symlink() {
        return (
            "a regular file (not the kubelet's ..data layout of a projected volume)".into(),
            false,
        );
    }
    let target = std::fs::read_link(path).unwrap_or_default();
    let via_data = target
        .components()
        .next()
        .is_some_and(|c| c.as_os_str() == "..data");
    if via_data && let Some(dir) = path.parent() {
        let data = dir.join("..data");
        if let Ok(ts) = std::fs::read_link(&data) {
            return (
                format!(
                    "projected volume (kubelet atomic writer): {} -> {} -> {}",
                    path.file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    target.display(),
                    ts.display()
                ),
                true,
            );
        }
    }
    (format!("a symlink to {}", target.display()), false)
}

fn check_token_file(d: &mut Doctor, path: &Sourced<PathBuf>) -> Option<String> {
    let p = &path.value;
    let shown = p.display().to_string();
    let base = |status, summary: String| {
        Check::new(CheckId::TokenFile, status, summary)
            .detail("path", with_source(&shown, &path.source))
    };
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) => {
            let (summary, fix, anchor) = match e.kind() {
                std::io::ErrorKind::NotFound => (
                    format!("{shown} does not exist"),
                    format!(
                        "Mount a projected serviceAccountToken volume (audience api://AzureADTokenExchange, expirationSeconds: 3600) and point {AZURE_FEDERATED_TOKEN_FILE} at <mountPath>/<path>; `azure-identity-k8s setup` prints the pod spec. With the Azure Workload Identity webhook, label the pod azure.workload.identity/use: \"true\"."
                    ),
                    "token-file-missing",
                ),
                std::io::ErrorKind::PermissionDenied => (
                    format!("{shown} cannot be read: permission denied"),
                    "Set the projected volume's defaultMode: 0444, or the pod's securityContext.fsGroup to a group of the container user.".to_string(),
                    "token-file-unreadable",
                ),
                _ => (format!("{shown} cannot be read ({e})"), "Check the volume mount.".to_string(), "token-file-unreadable"),
            };
            d.push(base(Status::Fail, summary).fix(fix).docs(anchor));
            return None;
        }
    };
    if meta.is_dir() {
        d.push(
            base(Status::Fail, format!("{shown} is a directory"))
                .fix("Point the token file at <mountPath>/<path> of the serviceAccountToken projection, not at the mount directory.")
                .docs("token-file-is-a-directory"),
        );
        return None;
    }
    let (layout, projected) = describe_layout(p);
    let mut check = base(Status::Ok, String::new()).detail("layout", layout);
    if let Ok(modified) = meta.modified() {
        let m = OffsetDateTime::from(modified);
        check = check.detail(
            "last written",
            format!("{} ({} ago)", fmt_time(m), fmt_duration(d.now - m)),
        );
    }
    check = check.detail("size", format!("{} bytes", meta.len()));
    let bytes = match std::fs::read(p) {
        Ok(b) => b,
        Err(e) => {
            let fix = if e.kind() == std::io::ErrorKind::PermissionDenied {
                "Set the projected volume's defaultMode: 0444, or the pod's securityContext.fsGroup to a group of the container user."
            } else {
                "Check the volume mount."
            };
            check.status = Status::Fail;
            check.summary = format!("{shown} cannot be read ({e})");
            d.push(check.fix(fix).docs("token-file-unreadable"));
            return None;
        }
    };
    let Ok(text) = String::from_utf8(bytes) else {
        check.status = Status::Fail;
        check.summary = format!("{shown} is not text (not UTF-8)");
        d.push(check.fix("Point the token file at the JWT written by the kubelet for a serviceAccountToken projection.").docs("token-file-not-a-jwt"));
        return None;
    };
    let token = text.trim().to_string();
    if token.is_empty() {
        check.status = Status::Fail;
        check.summary = format!("{shown} is empty");
        d.push(
            check
                .fix("Use a projected serviceAccountToken volume; never copy the token into a Secret or ConfigMap.")
                .docs("token-file-empty"),
        );
        return None;
    }
    if token.len() != text.len() {
        check = check.detail("whitespace", "surrounding whitespace (trimmed, harmless)");
    }
    check.summary = format!("{shown} is readable");
    if !projected {
        check = check.detail(
            "note",
            "not a projected volume: nothing rotates this file unless you do. The `expiry` check tells whether it is current.",
        );
    }
    d.push(check);
    Some(token)
}

fn opt(s: Option<&str>) -> String {
    s.map(str::to_string).unwrap_or_else(|| "(absent)".into())
}

fn opt_time(t: Option<OffsetDateTime>) -> String {
    t.map(fmt_time).unwrap_or_else(|| "(absent)".into())
}

fn check_jwt(d: &mut Doctor, token: &str) -> Option<DecodedJwt> {
    let decoded = match jwt::decode(token) {
        Ok(j) => j,
        Err(shape) => {
            d.push(
                Check::new(CheckId::Jwt, Status::Fail, format!("the token file does not hold a JWT: {shape}"))
                    .fix("Point the token file at the JWT written by the kubelet for a serviceAccountToken projection.")
                    .docs("token-file-not-a-jwt"),
            );
            return None;
        }
    };
    let (h, c) = (&decoded.header, &decoded.claims);
    let k = c.kubernetes.clone().unwrap_or_default();
    let mut check = Check::new(CheckId::Jwt, Status::Ok, "a service-account JWT")
        .detail("alg", opt(h.alg.as_deref()))
        .detail("kid", opt(h.kid.as_deref()))
        .detail("iss", opt(c.iss.as_deref()))
        .detail("sub", opt(c.sub.as_deref()))
        .detail("aud", c.audiences_display())
        .detail("iat", opt_time(c.issued_at()))
        .detail("exp", opt_time(c.expires_at()))
        .detail("namespace", opt(k.namespace.as_deref()))
        .detail(
            "service account",
            opt(k.serviceaccount.as_ref().and_then(|s| s.name.as_deref())),
        )
        .detail("pod", opt(k.pod.as_ref().and_then(|s| s.name.as_deref())));
    let mut problems = Vec::new();
    let mut fatal = false;
    if h.alg.as_deref() != Some("RS256") {
        fatal = true;
        problems.push(format!(
            "The token is signed with {}, but Entra accepts only RS256. Configure the cluster's service-account signing key as an RSA key (kube-apiserver --service-account-signing-key-file).",
            opt(h.alg.as_deref())
        ));
    }
    if c.iss.is_none() || c.sub.is_none() || c.aud.is_empty() || c.exp.is_none() {
        fatal = true;
        problems.push("The token lacks iss, sub, aud or exp; Entra needs all four. Use a projected serviceAccountToken.".into());
    }
    if let (Some(sub), Some(ns), Some(sa)) = (
        c.sub.as_deref(),
        k.namespace.as_deref(),
        k.serviceaccount.as_ref().and_then(|s| s.name.as_deref()),
    ) {
        let expected = format!("system:serviceaccount:{ns}:{sa}");
        if sub != expected {
            problems.push(format!("sub is {sub:?} but the kubernetes.io claim says {expected:?}; the federated credential must use the sub value."));
        }
    } else if c.kubernetes.is_none() {
        problems.push("No kubernetes.io claim: this is not a bound (projected) service-account token. Legacy Secret-based tokens never expire and should not be used.".into());
    }
    if h.kid.is_none() {
        problems
            .push("No kid in the header: Entra cannot pick the key from the issuer's JWKS.".into());
    }
    if !problems.is_empty() {
        check.status = if fatal { Status::Fail } else { Status::Warn };
        check.summary = if fatal {
            "the JWT cannot be a valid Entra assertion".into()
        } else {
            "a JWT, with remarks".into()
        };
        check = check.fix(problems.join("\n"));
    }
    let status = d.push(check);
    (status != Status::Fail).then_some(decoded)
}

fn check_audience(d: &mut Doctor, jwt: &DecodedJwt, inputs: &Inputs) -> Status {
    let c = &jwt.claims;
    let expected = &inputs.expected_audience;
    let base = |status, summary: String| {
        Check::new(CheckId::Audience, status, summary)
            .detail("token aud", c.audiences_display())
            .detail("expected", expected.clone())
    };
    if let Some(foreign) = ForeignAudience::first_in(&c.aud) {
        let what = foreign.describe();
        return d.push(
            base(Status::Fail, format!("refused: the token's audience makes it a credential for {what}"))
                .fix(format!(
                    "Mount a dedicated projected token for Entra (serviceAccountToken: {{audience: {expected}, expirationSeconds: 3600, path: azure-identity-token}}) and point {AZURE_FEDERATED_TOKEN_FILE} at it; keep this token for what it is for."
                ))
                .docs("foreign-audience"),
        );
    }
    if c.aud.iter().any(|a| a == expected) {
        return d.push(base(Status::Ok, format!("the token carries {expected}")));
    }
    let mut fix = format!(
        "Set the projected volume's serviceAccountToken.audience to {expected}; or, if the federated credential deliberately uses {}, set {AZURE_FEDERATED_TOKEN_AUDIENCE}={} (or expected_audience).",
        c.aud
            .first()
            .map(String::as_str)
            .unwrap_or("another audience"),
        c.aud.first().map(String::as_str).unwrap_or("<audience>")
    );
    // A cloud mismatch: the token is for one cloud's exchange audience, the authority another's.
    let clouds = [
        (config::AUDIENCE_PUBLIC, "https://login.microsoftonline.com"),
        (config::AUDIENCE_US_GOV, "https://login.microsoftonline.us"),
        (config::AUDIENCE_CHINA, "https://login.chinacloudapi.cn"),
    ];
    if let Some((aud, host)) = clouds.iter().find(|(a, _)| c.aud.iter().any(|x| x == a))
        && clouds.iter().any(|(a, _)| a == expected)
    {
        let authority = inputs
            .config
            .as_ref()
            .map(|cfg| {
                with_source(
                    &cfg.authority_host.value.as_str().trim_end_matches('/'),
                    &cfg.authority_host.source,
                )
            })
            .unwrap_or_else(|| "(unknown)".into());
        fix = format!(
            "The token's audience {aud} is the exchange audience of the cloud at {host}, but the authority is {authority}, which expects {expected}. \
             If the identity lives in that cloud, set {AZURE_AUTHORITY_HOST}={host}; otherwise set the projected volume's audience to {expected}."
        );
    }
    d.push(
        base(
            Status::Fail,
            format!(
                "the token's audience is {}, not {expected}",
                c.audiences_display()
            ),
        )
        .fix(fix)
        .docs("audience-mismatch"),
    )
}

fn check_expiry(d: &mut Doctor, jwt: &DecodedJwt) -> Status {
    let c = &jwt.claims;
    let now = d.now;
    let Some(exp) = c.expires_at() else {
        return d.push(
            Check::new(CheckId::Expiry, Status::Fail, "the token has no exp")
                .fix("Use a projected serviceAccountToken; it always expires."),
        );
    };
    let mut check = Check::new(CheckId::Expiry, Status::Ok, String::new()).detail(
        "expires",
        format!("{} (in {})", fmt_time(exp), fmt_duration(exp - now)),
    );
    let rotate_by = c.issued_at().map(|iat| {
        let lifetime = exp - iat;
        let deadline = iat + std::cmp::min(lifetime * ROTATION_FRACTION, ROTATION_CAP);
        (iat, lifetime, deadline)
    });
    if let Some((iat, lifetime, deadline)) = rotate_by {
        check = check
            .detail(
                "issued",
                format!("{} ({} ago)", fmt_time(iat), fmt_duration(now - iat)),
            )
            .detail("lifetime", fmt_duration(lifetime))
            .detail("kubelet replaces it by", fmt_time(deadline));
    }
    let not_rotating = "The kubelet is not rotating this file: make sure it is a projected serviceAccountToken volume (not a copied Secret or a file baked into the image), that the kubelet on the node is healthy (`kubectl describe pod`, kubelet logs), and that nothing reads the token once and keeps it.";
    if exp + CLOCK_SKEW < now {
        check.status = Status::Fail;
        check.summary = format!("the token expired {} ago", fmt_duration(now - exp));
        return d.push(check.fix(not_rotating).docs("token-expired"));
    }
    if let Some(nbf) = c.not_before()
        && nbf > now + CLOCK_SKEW
    {
        check.status = Status::Fail;
        check.summary = format!(
            "the token is not valid before {} ({} from now)",
            fmt_time(nbf),
            fmt_duration(nbf - now)
        );
        return d.push(check.fix("This machine's clock (or the API server's) is wrong; check NTP (chrony) on the node.").docs("token-not-yet-valid"));
    }
    if let Some((_, lifetime, deadline)) = rotate_by {
        if now > deadline + ROTATION_GRACE {
            check.status = Status::Warn;
            check.summary = format!(
                "valid, but {} past the time the kubelet should have replaced it",
                fmt_duration(now - deadline)
            );
            return d.push(check.fix(not_rotating).docs("token-expired"));
        }
        if lifetime > Duration::hours(24) {
            check.status = Status::Warn;
            check.summary = format!("valid, but its lifetime is {}", fmt_duration(lifetime));
            return d.push(check.fix("Use expirationSeconds: 3600 for the Entra token: a long-lived token is a long-lived credential if it leaks."));
        }
    }
    check.summary = format!("valid for another {}", fmt_duration(exp - now));
    d.push(check)
}

/// Issuer hosts that can only be resolved inside a cluster or a private network.
fn private_issuer_host(host: &str) -> bool {
    let h = host.trim_end_matches('.');
    h == "kubernetes.default.svc"
        || h == "kubernetes"
        || h.ends_with(".svc")
        || h.ends_with(".cluster.local")
        || h.ends_with(".local")
        || h.ends_with(".internal")
        || !h.contains('.') && h != "localhost" && h.parse::<std::net::IpAddr>().is_err()
}

async fn check_issuer_side(
    d: &mut Doctor,
    token: &str,
    jwt: &DecodedJwt,
    client_options: azure_core::http::ClientOptions,
) {
    let Some(iss) = jwt.claims.iss.clone() else {
        for id in [
            CheckId::Issuer,
            CheckId::Discovery,
            CheckId::Jwks,
            CheckId::Signature,
        ] {
            d.skip(id, "the token has no iss");
        }
        return;
    };

    // 6. issuer form
    let mut check =
        Check::new(CheckId::Issuer, Status::Ok, String::new()).detail("iss", format!("{iss:?}"));
    let parsed = Url::parse(&iss);
    let mut fatal = Vec::new();
    let mut notes = Vec::new();
    if iss.trim() != iss || iss.chars().any(char::is_whitespace) {
        fatal.push(
            "The issuer contains whitespace. Fix kube-apiserver's --service-account-issuer value."
                .to_string(),
        );
    }
    match &parsed {
        Err(e) => fatal.push(format!("The issuer is not a URL ({e}); Entra needs an https:// URL.")),
        Ok(u) if u.scheme() != "https" => fatal.push(format!(
            "The issuer uses {}://; Entra fetches the discovery document only over HTTPS. Set kube-apiserver --service-account-issuer to an https:// URL that serves it (see docs/self-managed.md).",
            u.scheme()
        )),
        Ok(u) => {
            let host = u.host_str().unwrap_or_default();
            if private_issuer_host(host) {
                fatal.push(format!(
                    "The issuer host {host} exists only inside the cluster or a private network; Entra fetches {iss}/.well-known/openid-configuration from the public internet. Give the cluster a public issuer (see docs/self-managed.md)."
                ));
            }
            if host.starts_with("oidc.eks.") && host.ends_with(".amazonaws.com") {
                check = check.detail("kind", "EKS cluster issuer");
            } else if host.starts_with("s3.") || host.contains(".s3.") || host.contains(".s3-") {
                check = check.detail("kind", "issuer published on S3 (self-managed cluster)");
            }
        }
    }
    if iss.ends_with('/') {
        notes.push("The issuer ends with '/'. That is allowed, but the federated credential's issuer must end with '/' too (exact match). EKS issuers have no trailing slash.".to_string());
    } else {
        check = check.detail(
            "trailing slash",
            "none: the federated credential's issuer must have none either",
        );
    }
    if !fatal.is_empty() {
        check.status = Status::Fail;
        check.summary = "Entra cannot use this issuer".into();
        fatal.extend(notes);
        d.push(check.fix(fatal.join("\n")).docs("aadsts90061"));
    } else if !notes.is_empty() {
        check.status = Status::Warn;
        check.summary = "an HTTPS issuer with a trailing slash".into();
        d.push(check.fix(notes.join("\n")).docs("aadsts700211"));
    } else {
        check.summary = "an HTTPS issuer".into();
        d.push(check);
    }
    if parsed
        .as_ref()
        .map(|u| u.scheme() != "https")
        .unwrap_or(true)
    {
        for id in [CheckId::Discovery, CheckId::Jwks, CheckId::Signature] {
            d.skip(id, "the issuer is not an https:// URL");
        }
        return;
    }

    // 7. discovery
    let fetcher = Fetcher::new(client_options);
    let Ok(disco_url) = oidc::discovery_url(&iss) else {
        for id in [CheckId::Discovery, CheckId::Jwks, CheckId::Signature] {
            d.skip(id, "no discovery URL can be built from the issuer");
        }
        return;
    };
    let publish_fix = |what: &str| {
        format!(
            "{what} Entra fetches {disco_url} and then its jwks_uri from the public internet, anonymously, over HTTPS. \
             On EKS the issuer always serves them (check the cluster's issuer URL); on a self-managed cluster publish both documents, \
             e.g. to a public S3 bucket (see docs/self-managed.md)."
        )
    };
    let disco: oidc::Discovery = match fetcher.get_json(&disco_url).await {
        Ok(v) => v,
        Err(e) => {
            let what = match &e {
                FetchError::Transport(_) => {
                    "The discovery document could not be fetched from here."
                }
                FetchError::Status(_) => {
                    "The issuer does not serve a discovery document at this URL."
                }
                FetchError::Body(_) => "The discovery document is not valid JSON.",
            };
            d.push(
                Check::new(
                    CheckId::Discovery,
                    Status::Fail,
                    format!("GET {disco_url}: {e}"),
                )
                .detail("url", disco_url.to_string())
                .fix(publish_fix(what))
                .docs("aadsts90061"),
            );
            d.skip(CheckId::Jwks, "no discovery document");
            d.skip(CheckId::Signature, "no discovery document");
            return;
        }
    };
    let mut check = Check::new(
        CheckId::Discovery,
        Status::Ok,
        format!("{disco_url} is served"),
    )
    .detail("url", disco_url.to_string())
    .detail("issuer", opt(disco.issuer.as_deref()))
    .detail("jwks_uri", opt(disco.jwks_uri.as_deref()));
    let mut problems = Vec::new();
    if disco.issuer.as_deref() != Some(iss.as_str()) {
        problems.push(format!(
            "The document's issuer {} differs from the token's iss {iss:?}; OpenID Connect requires them to be equal. Publish a discovery document whose issuer is exactly the --service-account-issuer value.",
            disco.issuer.as_deref().map(|i| format!("{i:?}")).unwrap_or_else(|| "(absent)".into())
        ));
    }
    if let Some(algs) = &disco.id_token_signing_alg_values_supported
        && !algs.iter().any(|a| a == "RS256")
    {
        problems.push(format!(
            "id_token_signing_alg_values_supported is {algs:?}; Entra needs RS256."
        ));
    }
    let jwks_url = match disco.jwks_uri.as_deref().map(Url::parse) {
        Some(Ok(u)) if u.scheme() == "https" => Some(u),
        Some(Ok(u)) => {
            check.status = Status::Fail;
            check.summary = "the jwks_uri is not HTTPS".into();
            problems.push(format!(
                "jwks_uri uses {}://; Entra fetches it only over HTTPS.",
                u.scheme()
            ));
            None
        }
        _ => {
            check.status = Status::Fail;
            check.summary = "the discovery document has no valid jwks_uri".into();
            problems.push(
                "Add a jwks_uri (an https:// URL of the JWKS) to the discovery document.".into(),
            );
            None
        }
    };
    if !problems.is_empty() {
        if check.status == Status::Ok {
            check.status = Status::Warn;
        }
        check = check.fix(problems.join("\n")).docs("aadsts90061");
    }
    d.push(check);
    let Some(jwks_url) = jwks_url else {
        d.skip(CheckId::Jwks, "no usable jwks_uri");
        d.skip(CheckId::Signature, "no usable jwks_uri");
        return;
    };

    // 8. JWKS
    let jwks: oidc::Jwks = match fetcher.get_json(&jwks_url).await {
        Ok(v) => v,
        Err(e) => {
            d.push(
                Check::new(CheckId::Jwks, Status::Fail, format!("GET {jwks_url}: {e}"))
                    .detail("url", jwks_url.to_string())
                    .fix(publish_fix("The JWKS could not be fetched."))
                    .docs("aadsts90061"),
            );
            d.skip(CheckId::Signature, "no JWKS");
            return;
        }
    };
    let kids: Vec<String> = jwks
        .keys
        .iter()
        .map(|k| k.kid.clone().unwrap_or_else(|| "(no kid)".into()))
        .collect();
    let kid = jwt.header.kid.clone();
    let key: Option<Jwk> = match &kid {
        Some(kid) => jwks
            .keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .cloned(),
        None if jwks.keys.len() == 1 => jwks.keys.first().cloned(),
        None => None,
    };
    let base = Check::new(CheckId::Jwks, Status::Ok, String::new())
        .detail("url", jwks_url.to_string())
        .detail("token kid", opt(kid.as_deref()))
        .detail(
            "published kids",
            if kids.is_empty() {
                "(none)".into()
            } else {
                kids.join(", ")
            },
        );
    let Some(key) = key else {
        let mut c = base;
        c.status = Status::Fail;
        c.summary = match &kid {
            Some(k) => format!("the JWKS does not contain the key {k} that signed this token"),
            None => "the token has no kid and the JWKS has several keys".into(),
        };
        d.push(
            c.fix(
                "Publish the current service-account signing key in the JWKS (`kubectl get --raw /openid/v1/jwks` prints the keys the API server uses; copy that document to the jwks_uri). \
                 After a signing-key rotation, publish the new key before the API server signs with it, and keep the old one until its tokens have expired.",
            )
            .docs("aadsts700027"),
        );
        d.skip(CheckId::Signature, "the signing key is not published");
        return;
    };
    let mut c = base;
    c.summary = "the JWKS holds the token's signing key".into();
    if let Some(alg) = &key.alg
        && alg != "RS256"
    {
        c.status = Status::Warn;
        c = c.fix(format!(
            "The published key says alg {alg}; Entra verifies RS256 only."
        ));
    }
    d.push(c);

    // 9. signature
    match oidc::verify_rs256(token, &key) {
        Ok(()) => {
            d.push(Check::new(
                CheckId::Signature,
                Status::Ok,
                "the RS256 signature verifies with the published key",
            ));
        }
        Err(e) => {
            d.push(
                Check::new(CheckId::Signature, Status::Fail, format!("signature verification failed: {e}"))
                    .detail("kid", opt(kid.as_deref()))
                    .fix(
                        "The key published under this kid is not the key that signed the token: the JWKS is stale or was copied from another cluster. \
                         Republish the JWKS from the API server (`kubectl get --raw /openid/v1/jwks`).",
                    )
                    .docs("aadsts700027"),
            );
        }
    }
}

/// The federated credential that would match this token.
fn matching_fic(jwt: &DecodedJwt, expected_audience: &str) -> Option<MatchingFederatedCredential> {
    let c = &jwt.claims;
    // The audience the credential should carry: the expected one (a token without it is refused
    // locally, and the `audience` check says how to fix the token).
    let audience = expected_audience.to_string();
    Some(MatchingFederatedCredential {
        issuer: c.iss.clone()?,
        subject: c.sub.clone()?,
        audience,
    })
}

fn fic_fix(config: &ResolvedConfig, jwt: &DecodedJwt, audience: &str) -> String {
    let c = &jwt.claims;
    let iss = c.iss.clone().unwrap_or_default();
    let sub = c.sub.clone().unwrap_or_default();
    let slash = if iss.ends_with('/') {
        "The issuer ends with '/': the credential's issuer must too."
    } else {
        "The issuer has no trailing slash: the credential's must not have one either."
    };
    let commands = crate::setup::SetupInput::from_claims(c)
        .ok()
        .map(|input| crate::setup::SetupInput {
            audience: audience.to_string(),
            client_id: Some(config.client_id.value.clone()),
            tenant_id: Some(config.tenant_id.value.clone()),
            ..input
        })
        .and_then(|input| crate::setup::plan(&input).ok())
        .map(|p| {
            format!(
                "\nFor a user-assigned managed identity:\n  {}\nFor an app registration:\n  {}",
                p.az_identity_command, p.az_app_command
            )
        })
        .unwrap_or_default();
    format!(
        "Give application {client} a federated identity credential with exactly (case-sensitive):\n  issuer:   {iss}\n  subject:  {sub}\n  audience: {audience}\n{slash} \
         The namespace and service account in the subject are the pod's. A credential created in the last few minutes may still be propagating; \
         wait a minute and retry.{commands}",
        client = config.client_id.value,
    )
}

async fn check_exchange(
    d: &mut Doctor,
    credential: Result<Arc<WorkloadIdentityCredential>, CredentialError>,
    scope: &str,
    config: &ResolvedConfig,
    fic_fix: String,
) {
    let base = |status, summary: String| {
        Check::new(CheckId::Exchange, status, summary)
            .detail(
                "endpoint",
                config
                    .token_endpoint()
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
            )
            .detail("client id", config.client_id.value.clone())
            .detail("scope", scope.to_string())
    };
    let credential = match credential {
        Ok(c) => c,
        Err(e) => {
            d.push(
                base(Status::Fail, e.message().to_string())
                    .fix("Fix the configuration (see `configuration`).")
                    .docs("invalid-configuration"),
            );
            return;
        }
    };
    let started = std::time::Instant::now();
    let result = credential.get_token(&[scope], None).await;
    let elapsed = format!("{} ms", started.elapsed().as_millis());
    match result {
        Ok(token) => {
            let mut c = base(
                Status::Ok,
                format!("Entra ID issued an access token for {scope}"),
            )
            .detail("expires", fmt_time(token.expires_on))
            .detail("took", elapsed);
            // The access token's (unverified) identity claims, never the token.
            if let Some(claims) = access_token_claims(token.token.secret()) {
                for (label, key) in [
                    ("token aud", "aud"),
                    ("token tid", "tid"),
                    ("token appid", "appid"),
                    ("token oid", "oid"),
                ] {
                    if let Some(v) = claims.get(key).and_then(|v| v.as_str()) {
                        c = c.detail(label, v.to_string());
                    }
                }
            }
            d.push(c);
        }
        Err(e) => {
            let Some(err) = e.downcast_ref::<CredentialError>().cloned() else {
                d.push(
                    base(Status::Fail, e.to_string())
                        .fix("Unexpected error; run with RUST_LOG=debug for details."),
                );
                return;
            };
            let codes = err.aadsts_codes().to_vec();
            let summary = match (err.category(), codes.first()) {
                (ErrorCategory::Entra, Some(code)) => {
                    format!("Entra ID rejected the request: AADSTS{code}")
                }
                (ErrorCategory::Entra, None) => "Entra ID rejected the request".into(),
                (ErrorCategory::Transport, _) => "the token endpoint could not be reached".into(),
                (ErrorCategory::Timeout, _) => "the token endpoint did not answer in time".into(),
                (ErrorCategory::InvalidResponse, _) => {
                    "the token endpoint's answer is not Entra's".into()
                }
                _ => "the credential failed".into(),
            };
            let tenant = with_source(&config.tenant_id.value, &config.tenant_id.source);
            let client = with_source(&config.client_id.value, &config.client_id.source);
            let authority = with_source(
                &config.authority_host.value.as_str().trim_end_matches('/'),
                &config.authority_host.source,
            );
            let (fix, anchor) = match (err.category(), codes.first().copied()) {
                (ErrorCategory::Entra, Some(code @ (70021 | 700211 | 700212 | 700213 | 7002137 | 7002138))) => (fic_fix, format!("aadsts{code}")),
                (ErrorCategory::Entra, Some(code @ (90002 | 90023))) => (
                    format!(
                        "Tenant {tenant} does not exist at {authority}. Use the directory id from `az account show --query tenantId -o tsv`; \
                         if the tenant is in a sovereign cloud set {AZURE_AUTHORITY_HOST} (https://login.microsoftonline.us, https://login.chinacloudapi.cn)."
                    ),
                    format!("aadsts{code}"),
                ),
                (ErrorCategory::Entra, Some(700016)) => (
                    format!(
                        "No application or managed identity with client id {client} exists in tenant {tenant}. Use the client id (appId), not the object id: \
                         `az identity show -n <identity> -g <group> --query clientId -o tsv` or `az ad app list --display-name <name> --query [].appId -o tsv`; \
                         check that the tenant and the authority ({authority}) are right."
                    ),
                    "aadsts700016".into(),
                ),
                (ErrorCategory::Entra, Some(90061)) => (
                    "Entra could not fetch the issuer's discovery document or JWKS from the public internet. See the `discovery` and `jwks` checks; \
                     a document reachable from this pod may still be private (VPC endpoint, private bucket, firewall)."
                        .into(),
                    "aadsts90061".into(),
                ),
                (ErrorCategory::Entra, Some(code @ (700027 | 50027 | 900384))) => (
                    "Entra could not verify the token's signature with the issuer's published keys. See the `jwks` and `signature` checks; publish the API server's current keys (`kubectl get --raw /openid/v1/jwks`).".into(),
                    format!("aadsts{code}"),
                ),
                (ErrorCategory::Entra, Some(700024)) => (
                    "Entra considers the token expired or not yet valid: check the node's clock (NTP) and that the file is rotated (see `expiry`).".into(),
                    "aadsts700024".into(),
                ),
                (ErrorCategory::Entra, Some(code @ (1002012 | 70011))) => (
                    "Request exactly one scope of the form <resource>/.default, e.g. --scope https://storage.azure.com/.default.".into(),
                    format!("aadsts{code}"),
                ),
                (ErrorCategory::Entra, _) => (
                    "See Entra's message above and the AADSTS error reference.".into(),
                    "entra-errors".into(),
                ),
                (ErrorCategory::Transport | ErrorCategory::Timeout, _) => (
                    format!(
                        "Check the authority {authority}: it must be the Entra endpoint of the tenant's cloud (https://login.microsoftonline.com, \
                         https://login.microsoftonline.us, https://login.chinacloudapi.cn). Allow egress to it on port 443 (security groups, network \
                         policies, proxy: HTTPS_PROXY/NO_PROXY); for a TLS-inspecting proxy, trust its CA with SSL_CERT_FILE."
                    ),
                    if err.category() == ErrorCategory::Timeout { "timeout".into() } else { "transport".into() },
                ),
                (ErrorCategory::InvalidResponse, _) => (
                    format!("Check that the authority {authority} is Entra ID and that no proxy answers in its place."),
                    "invalid-response".into(),
                ),
                _ => ("See the message above.".into(), "entra-errors".into()),
            };
            let mut c = base(Status::Fail, summary).detail("took", elapsed);
            if let Some(s) = err.http_status() {
                c = c.detail("http status", u16::from(s).to_string());
            }
            // Entra's own words and the ids to quote to support; the explanation is the fix below.
            let entra_said: Vec<&str> = err
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("Entra said:") || l.starts_with("Trace ID:"))
                .collect();
            if entra_said.is_empty() || err.category() != ErrorCategory::Entra {
                c = c.detail("error", err.message().to_string());
            } else {
                c = c.detail(
                    "entra",
                    entra_said
                        .join("\n")
                        .trim_start_matches("Entra said: ")
                        .to_string(),
                );
            }
            c.aadsts = codes;
            d.push(c.fix(fix).docs(&anchor));
        }
    }
}

fn access_token_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_and_durations() {
        assert!(is_guid("3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11"));
        assert!(!is_guid("my-app"));
        assert_eq!(fmt_duration(Duration::seconds(3725)), "1h02m");
        assert_eq!(fmt_duration(Duration::seconds(-90)), "-1m30s");
    }

    #[test]
    fn private_hosts() {
        for h in [
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "issuer.internal",
            "kubernetes",
        ] {
            assert!(private_issuer_host(h), "{h}");
        }
        for h in [
            "oidc.eks.us-east-1.amazonaws.com",
            "127.0.0.1",
            "s3.eu-west-1.amazonaws.com",
            "localhost",
        ] {
            assert!(!private_issuer_host(h), "{h}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn atomic_writer_layout_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let ts = dir.path().join("..2026_01_01_00_00_00.1");
        std::fs::create_dir(&ts).unwrap();
        std::fs::write(ts.join("token"), "x").unwrap();
        std::os::unix::fs::symlink("..2026_01_01_00_00_00.1", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/token", dir.path().join("token")).unwrap();
        let (text, projected) = describe_layout(&dir.path().join("token"));
        assert!(projected, "{text}");
        assert!(
            text.contains("..data/token") && text.contains("..2026_01_01"),
            "{text}"
        );
        let (text, projected) = describe_layout(&ts.join("token"));
        assert!(!projected && text.contains("regular file"), "{text}");
    }
}
