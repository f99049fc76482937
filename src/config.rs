//! Options and their resolution against the environment.
//!
//! Each value is looked up in this order; the first one found wins:
//!
//! | value | 1. option | 2. environment | 3. otherwise |
//! |---|---|---|---|
//! | client id | `client_id` | `AZURE_CLIENT_ID` | not configured |
//! | tenant id | `tenant_id` | `AZURE_TENANT_ID` | not configured |
//! | token file | `token_file_path` | `AZURE_FEDERATED_TOKEN_FILE` | the first existing path of `well_known_token_paths` (the Azure Workload Identity webhook's current and pre-1.6 paths), else not configured (the error names a credential of something else found instead, such as the pod's default service-account token, which is never used) |
//! | authority host | `credential_options.client_options.cloud` | `AZURE_AUTHORITY_HOST` | `https://login.microsoftonline.com` |
//! | expected audience | `expected_audience` | `AZURE_FEDERATED_TOKEN_AUDIENCE` | the cloud's recommended audience (`api://AzureADTokenExchange`, `...USGov`, `...China`); a token with another, non-foreign audience is then sent with a warning |
//! | sending a token that is also a credential for AWS or the cluster (docs/security.md) | `allow_foreign_audience` | `AZURE_FEDERATED_TOKEN_ALLOW_FOREIGN_AUDIENCE` = `true` | refused; either switch also needs the expected audience set |
//!
//! The environment is read through [`Env`], so tests (and programs that keep their configuration
//! elsewhere) can supply it without touching the process environment. A variable of the table set
//! to bytes that are not UTF-8 is an [`InvalidConfiguration`](crate::ErrorCategory::InvalidConfiguration)
//! error naming it (not "unset"); `AZURE_FEDERATED_TOKEN_FILE` is a path and is used as the
//! operating system gives it, whatever its bytes.

mod env;
#[cfg(test)]
mod tests;

use crate::cloud::{self, Cloud, default_audience_for};
use crate::error::{CredentialError, WORKLOAD};
use crate::problem::ProblemId;
use azure_core::cloud::CloudConfiguration;
use azure_core::http::Url;
pub use env::Env;
use std::fmt;
use std::path::{Path, PathBuf};

/// `AZURE_CLIENT_ID`: client id of the app registration or user-assigned managed identity.
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
/// `AZURE_TENANT_ID`: the Entra tenant (directory) id.
pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
/// `AZURE_FEDERATED_TOKEN_FILE`: path of the projected service-account token.
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
/// `AZURE_AUTHORITY_HOST`: Entra authority, e.g. `https://login.microsoftonline.us`.
pub const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
/// `AZURE_FEDERATED_TOKEN_AUDIENCE`: the audience of the federated identity credential, when it
/// is another value than the cloud's recommended one. When set, a token without it is refused
/// before anything is sent.
pub const AZURE_FEDERATED_TOKEN_AUDIENCE: &str = "AZURE_FEDERATED_TOKEN_AUDIENCE";
/// `AZURE_FEDERATED_TOKEN_ALLOW_FOREIGN_AUDIENCE`: `true` (or `1`) sends a token that is also a
/// credential for AWS or the cluster's API server, as the option `allow_foreign_audience` does;
/// the token must still carry the expected audience, so set `AZURE_FEDERATED_TOKEN_AUDIENCE` too.
/// Any other value leaves the refusal on.
pub const AZURE_FEDERATED_TOKEN_ALLOW_FOREIGN_AUDIENCE: &str =
    "AZURE_FEDERATED_TOKEN_ALLOW_FOREIGN_AUDIENCE";

/// Where the Azure Workload Identity webhook (v1.6 and later) mounts the token.
pub const WEBHOOK_TOKEN_PATH: &str = "/var/run/secrets/azure/wi/token/azure-identity-token";
/// Where the Azure Workload Identity webhook before v1.6 mounted the token.
pub const WEBHOOK_TOKEN_PATH_PRE_1_6: &str = "/var/run/secrets/azure/tokens/azure-identity-token";

/// The public cloud's authority host ([`cloud::PUBLIC`]), the default when neither the options'
/// cloud nor `AZURE_AUTHORITY_HOST` names another.
pub const PUBLIC_AUTHORITY_HOST: &str = cloud::PUBLIC.authority_host;
/// Azure US Government's authority host ([`cloud::US_GOVERNMENT`]).
pub const US_GOV_AUTHORITY_HOST: &str = cloud::US_GOVERNMENT.authority_host;
/// Azure China's authority host ([`cloud::CHINA`]).
pub const CHINA_AUTHORITY_HOST: &str = cloud::CHINA.authority_host;
/// Recommended federated-credential audience in the public cloud.
pub const AUDIENCE_PUBLIC: &str = cloud::PUBLIC.exchange_audience;
/// Recommended federated-credential audience in Azure US Government.
pub const AUDIENCE_US_GOV: &str = cloud::US_GOVERNMENT.exchange_audience;
/// Recommended federated-credential audience in Azure China.
pub const AUDIENCE_CHINA: &str = cloud::CHINA.exchange_audience;

/// Prints the directory (tenant) id of the signed-in Azure CLI account.
pub(crate) const TENANT_ID_COMMAND: &str = "az account show --query tenantId -o tsv";
/// Print the client id (appId) of a user-assigned managed identity, and of an app registration.
pub(crate) const CLIENT_ID_COMMANDS: &str = "`az identity show -n <identity> -g <group> --query clientId -o tsv` (managed identity) or `az ad app list --display-name <name> --query '[].appId' -o tsv` (app registration)";

/// Where a configuration value came from; shown in errors and by `doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueSource {
    Options,
    EnvVar(&'static str),
    WellKnownPath,
    Default,
}

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Options => f.write_str("the credential options"),
            Self::EnvVar(name) => write!(f, "the environment variable {name}"),
            Self::WellKnownPath => {
                f.write_str("the Azure Workload Identity webhook's well-known path")
            }
            Self::Default => f.write_str("the default"),
        }
    }
}

/// A resolved value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sourced<T> {
    pub value: T,
    pub source: ValueSource,
}

impl<T> Sourced<T> {
    pub(crate) fn new(value: T, source: ValueSource) -> Self {
        Self { value, source }
    }
}

/// Fully resolved and validated configuration; `expected_audience` is the audience the
/// service-account token must carry.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedConfig {
    pub client_id: Sourced<String>,
    pub tenant_id: Sourced<String>,
    pub token_file: Sourced<PathBuf>,
    pub authority_host: Sourced<Url>,
    pub expected_audience: Sourced<String>,
}

impl ResolvedConfig {
    /// The token endpoint: `{authority}/{tenant}/oauth2/v2.0/token`.
    pub(crate) fn token_endpoint(&self) -> Url {
        let mut url = self.authority_host.value.clone();
        // `resolve` refuses an authority that cannot be a base: the path always extends.
        if let Ok(mut path) = url.path_segments_mut() {
            let tenant = self.tenant_id.value.as_str();
            path.pop_if_empty()
                .extend([tenant, "oauth2", "v2.0", "token"]);
        }
        url
    }
}

/// The raw inputs of resolution (a borrowed view of the options).
pub(crate) struct ConfigInputs<'a> {
    pub client_id: Option<&'a str>,
    pub tenant_id: Option<&'a str>,
    pub token_file_path: Option<&'a Path>,
    pub cloud: Option<&'a CloudConfiguration>,
    pub expected_audience: Option<&'a str>,
    pub well_known_token_paths: &'a [PathBuf],
    pub env: &'a Env,
    /// When no token file is found, for the expected audience: what was found instead and not
    /// used (a credential of something else, such as the pod's default service-account token),
    /// and the fix; `None` when nothing was.
    pub unused_token: &'a dyn Fn(&str) -> Option<(String, String)>,
}

/// The option, else the environment variable `var`, with its source. A variable that is set but
/// is not Unicode is refused with `fix`: taken as unset, it would say "not configured" for a
/// variable that is set, or fall back to the public cloud in silence.
fn read(
    option: Option<&str>,
    env: &Env,
    var: &'static str,
    fix: impl FnOnce() -> String,
) -> Result<Option<Sourced<String>>, CredentialError> {
    Ok(match option {
        Some(v) => Some(Sourced::new(v.to_string(), ValueSource::Options)),
        None => (env.var_checked(WORKLOAD, var, false, fix)?)
            .map(|value| Sourced::new(value, ValueSource::EnvVar(var))),
    })
}

/// [`read`] for a report: a variable that is not Unicode counts as unset.
#[cfg(feature = "doctor")]
pub(crate) fn pick(option: Option<&str>, env: &Env, var: &'static str) -> Option<Sourced<String>> {
    read(option, env, var, String::new).ok().flatten()
}

/// Each missing value (client id, tenant id, token file: "no client id", or what was found
/// instead) with how to set it: the variable, the option, and the command that prints the value.
fn not_configured(missing: [Option<(String, String)>; 3]) -> CredentialError {
    let (what, how): (Vec<String>, Vec<String>) = missing.into_iter().flatten().unzip();
    CredentialError::new(
        ProblemId::NotConfigured,
        format!(
            "WorkloadIdentityCredential is not configured: {}.",
            what.join(", ")
        ),
    )
    .named(None)
    .with_fix(format!(
        "{}. In a pod, the Azure Workload Identity webhook sets them when the pod has the label \
         azure.workload.identity/use: \"true\" and its ServiceAccount the annotation azure.workload.identity/client-id; \
         without the webhook, set them in the pod spec (`azure-identity-k8s setup` prints a Deployment with them).",
        how.iter().map(|h| h.trim_end_matches('.')).collect::<Vec<_>>().join("; ")
    ))
}

/// A malformed value: `what` names it, `problem` says what is wrong with it, `fix` gives the
/// value or command that corrects it.
fn invalid(what: &str, problem: &str, fix: impl Into<String>) -> CredentialError {
    let facts = format!("invalid {what}: {problem}.");
    CredentialError::new(ProblemId::InvalidConfiguration, facts).with_fix(fix)
}

/// An option set to an empty value (the environment's empty values count as unset).
fn empty(what: &str, source: &ValueSource, fix: String) -> CredentialError {
    invalid(what, &format!("the value from {source} is empty"), fix)
}

fn set_to(var: &str, option: &str, value: &str) -> String {
    format!("set {var} (or the option {option}) to {value}")
}

fn client_id_fix() -> String {
    let value = format!(
        "the application's or user-assigned managed identity's client id (appId, not the object id), printed by {CLIENT_ID_COMMANDS}"
    );
    set_to(AZURE_CLIENT_ID, "client_id", &value)
}

fn tenant_id_fix() -> String {
    let value = format!("the directory (tenant) id printed by `{TENANT_ID_COMMAND}`");
    set_to(AZURE_TENANT_ID, "tenant_id", &value)
}

/// The fix of a missing or empty token file path; `tried`: the webhook paths looked for.
fn token_file_fix(tried: &[PathBuf]) -> String {
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    let tried = match tried.is_empty() {
        true => String::new(),
        false => format!(" (the webhook's paths {} do not exist)", tried.join(", ")),
    };
    let value = format!(
        "the file of the pod's projected serviceAccountToken volume (audience {AUDIENCE_PUBLIC}), <mountPath>/<path>, e.g. {WEBHOOK_TOKEN_PATH_PRE_1_6}{tried}"
    );
    set_to(AZURE_FEDERATED_TOKEN_FILE, "token_file_path", &value)
}

/// The fix of a malformed authority host from `source`: the cloud's host, or this one over
/// HTTPS.
fn authority_fix(source: &ValueSource, https: Option<String>) -> String {
    let hosts = cloud::authority_hosts();
    let value = match https {
        Some(h) => format!("{h}, the tenant's cloud: {hosts}"),
        None => format!("the tenant's cloud: {hosts}"),
    };
    match source {
        ValueSource::Options => format!("set the cloud option's authority_host to {value}"),
        _ => format!("set {AZURE_AUTHORITY_HOST} to {value}"),
    }
}

/// Reject surrounding whitespace (a classic copy-paste or `echo` mistake) with a message that says
/// exactly what is wrong, without echoing the value's full content where it could matter.
/// Surrounding whitespace gets the trimmed value as the fix; whitespace inside the value (two
/// words, a pasted list) gets `field_fix`, the field's own value or command: removing the spaces
/// would only guess ("my tenant" is not "mytenant").
fn check_no_whitespace(
    what: &str,
    v: &Sourced<String>,
    field_fix: impl FnOnce() -> String,
) -> Result<(), CredentialError> {
    let (trimmed, from) = (v.value.trim(), format!("the value from {}", v.source));
    if trimmed.chars().any(char::is_whitespace) {
        let problem = format!("{from} contains whitespace inside ({:?})", v.value);
        return Err(invalid(what, &problem, field_fix()));
    }
    if trimmed != v.value {
        let problem = format!(
            "{from} contains whitespace ({:?}); a trailing newline often comes from `echo` or a file",
            v.value
        );
        let fix = format!("set {} to {trimmed:?}, without the whitespace", v.source);
        return Err(invalid(what, &problem, fix));
    }
    Ok(())
}

fn validate_tenant_id(t: &Sourced<String>) -> Result<(), CredentialError> {
    check_no_whitespace("tenant id", t, tenant_id_fix)?;
    let bad = |problem: &str| {
        let facts = format!("{:?} (from {}) {problem}", t.value, t.source);
        Err(invalid("tenant id", &facts, tenant_id_fix()))
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if t.value.is_empty() || !t.value.chars().all(allowed) {
        return bad(
            "may contain only letters, digits, '-' and '.'; expected a directory id such as \
             72f988bf-86f1-41af-91ab-2d7cd011db47 or a domain such as contoso.onmicrosoft.com",
        );
    }
    if MULTI_TENANT_ALIASES
        .iter()
        .any(|a| t.value.eq_ignore_ascii_case(a))
    {
        return bad(
            "is a multi-tenant alias of the authority, not a tenant: an app-only token (client \
             credentials, as with a federated credential) is issued by the one directory that \
             holds the application or managed identity",
        );
    }
    Ok(())
}

/// The authority's aliases for "any tenant", which the client-credentials flow cannot use.
const MULTI_TENANT_ALIASES: [&str; 3] = ["common", "organizations", "consumers"];

/// The authority host as a URL: HTTPS, no query or fragment, and no path that holds what the
/// credential adds itself: the tenant, or the token endpoint's `oauth2` / `v2.0` (an MSAL authority
/// or the endpoint pasted into `AZURE_AUTHORITY_HOST`), or a multi-tenant alias; Entra would
/// answer 404 or "tenant not found" for the doubled path. Other paths (a gateway's prefix) are
/// kept.
fn authority_url(raw: &Sourced<String>, tenant_id: &str) -> Result<Url, CredentialError> {
    let bad = |problem: String, https: Option<String>| {
        let facts = format!("{:?} (from {}) {problem}", raw.value, raw.source);
        invalid("authority host", &facts, authority_fix(&raw.source, https))
    };
    check_no_whitespace("authority host", raw, || authority_fix(&raw.source, None))?;
    let url = Url::parse(&raw.value).map_err(|e| bad(format!("is not a URL ({e})"), None))?;
    if url.scheme() != "https" {
        let https = url.host_str().map(|h| match url.port() {
            Some(p) => format!("https://{h}:{p}"),
            None => format!("https://{h}"),
        });
        let problem = "does not use HTTPS; tokens are only requested over HTTPS";
        return Err(bad(problem.into(), https));
    }
    let origin = Some(url.origin().ascii_serialization());
    if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
        return Err(bad(
            "must be a plain https://host[:port] URL".into(),
            origin,
        ));
    }
    let pasted = url.path_segments().into_iter().flatten().find(|seg| {
        seg.eq_ignore_ascii_case(tenant_id)
            || ["oauth2", "v2.0"]
                .iter()
                .chain(&MULTI_TENANT_ALIASES)
                .any(|s| seg.eq_ignore_ascii_case(s))
    });
    if let Some(seg) = pasted {
        return Err(bad(
            format!(
                "has the path {:?}, which holds {seg:?}: the authority host is only \
                 https://host[:port]; the credential adds /<tenant>/oauth2/v2.0/token itself \
                 (the tenant comes from {AZURE_TENANT_ID} or the option tenant_id)",
                url.path()
            ),
            origin,
        ));
    }
    Ok(url)
}

/// The authority host as given, unchecked: the cloud option, else `AZURE_AUTHORITY_HOST`, else
/// the public cloud's.
pub(crate) fn authority_host_raw(
    cloud: Option<&CloudConfiguration>,
    env: &Env,
) -> Result<Sourced<String>, CredentialError> {
    let value = match cloud {
        None => {
            let fix = || authority_fix(&ValueSource::EnvVar(AZURE_AUTHORITY_HOST), None);
            let public = || Sourced::new(PUBLIC_AUTHORITY_HOST.to_string(), ValueSource::Default);
            return Ok(read(None, env, AZURE_AUTHORITY_HOST, fix)?.unwrap_or_else(public));
        }
        Some(CloudConfiguration::Custom(custom)) => custom.authority_host.clone(),
        Some(other) => {
            let known = Cloud::of_configuration(other).ok_or_else(|| {
                invalid(
                    "cloud configuration",
                    &format!("{other:?} is not supported"),
                    "use CloudConfiguration::AzurePublic, AzureGovernment, AzureChina, or a custom cloud configuration with an authority_host",
                )
            })?;
            known.authority_host.into()
        }
    };
    Ok(Sourced::new(value, ValueSource::Options))
}

/// The token file: the option, else `AZURE_FEDERATED_TOKEN_FILE`, else the first existing
/// well-known path; `None` when there is none.
pub(crate) fn locate_token_file(
    option: Option<&Path>,
    env: &Env,
    well_known: &[PathBuf],
) -> Option<Sourced<PathBuf>> {
    if let Some(p) = option {
        return Some(Sourced::new(p.to_path_buf(), ValueSource::Options));
    }
    let var = AZURE_FEDERATED_TOKEN_FILE;
    if let Some(p) = env.var_os(var) {
        return Some(Sourced::new(p.into(), ValueSource::EnvVar(var)));
    }
    well_known
        .iter()
        .find(|p| p.exists())
        .map(|p| Sourced::new(p.clone(), ValueSource::WellKnownPath))
}

pub(crate) fn resolve(inputs: &ConfigInputs<'_>) -> Result<ResolvedConfig, CredentialError> {
    let env = inputs.env;
    let client_id = read(inputs.client_id, env, AZURE_CLIENT_ID, client_id_fix)?;
    let tenant_id = read(inputs.tenant_id, env, AZURE_TENANT_ID, tenant_id_fix)?;
    let authority = authority_host_raw(inputs.cloud, env)?;
    let var = AZURE_FEDERATED_TOKEN_AUDIENCE;
    let fix = || format!("set {var} to the token's audience, e.g. {AUDIENCE_PUBLIC}, or unset it");
    let audience = read(inputs.expected_audience, env, var, fix)?;
    let token_file = locate_token_file(inputs.token_file_path, env, inputs.well_known_token_paths);
    let missing = [
        client_id
            .is_none()
            .then(|| ("no client id".into(), client_id_fix())),
        tenant_id
            .is_none()
            .then(|| ("no tenant id".into(), tenant_id_fix())),
        token_file.is_none().then(|| {
            let expected = match &audience {
                Some(a) => a.value.as_str(),
                None => Url::parse(&authority.value)
                    .map_or(AUDIENCE_PUBLIC, |u| default_audience_for(&u)),
            };
            (inputs.unused_token)(expected).unwrap_or_else(|| {
                let fix = token_file_fix(inputs.well_known_token_paths);
                ("no token file".to_string(), fix)
            })
        }),
    ];
    let (Some(client_id), Some(tenant_id), Some(token_file)) = (client_id, tenant_id, token_file)
    else {
        return Err(not_configured(missing));
    };
    if client_id.value.is_empty() {
        return Err(empty("client id", &client_id.source, client_id_fix()));
    }
    check_no_whitespace("client id", &client_id, client_id_fix)?;
    validate_tenant_id(&tenant_id)?;
    if token_file.value.as_os_str().is_empty() {
        return Err(empty(
            "token file path",
            &token_file.source,
            token_file_fix(&[]),
        ));
    }
    let url = authority_url(&authority, &tenant_id.value)?;
    let authority_host = Sourced::new(url, authority.source);
    let expected_audience = match audience {
        Some(a) => {
            check_no_whitespace("expected audience", &a, || {
                format!(
                    "set {} to the one audience of the projected token, e.g. {AUDIENCE_PUBLIC}",
                    a.source
                )
            })?;
            a
        }
        None => Sourced::new(
            default_audience_for(&authority_host.value).to_string(),
            ValueSource::Default,
        ),
    };
    Ok(ResolvedConfig {
        client_id,
        tenant_id,
        token_file,
        authority_host,
        expected_audience,
    })
}
