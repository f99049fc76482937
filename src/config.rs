//! Options and their resolution against the environment.
//!
//! Each value is looked up in this order; the first one found wins:
//!
//! | value | 1. option | 2. environment | 3. otherwise |
//! |---|---|---|---|
//! | client id | `client_id` | `AZURE_CLIENT_ID` | not configured |
//! | tenant id | `tenant_id` | `AZURE_TENANT_ID` | not configured |
//! | token file | `token_file_path` | `AZURE_FEDERATED_TOKEN_FILE` | the first existing path of `well_known_token_paths` (the Azure Workload Identity webhook's current and pre-1.6 paths), else not configured |
//! | authority host | `credential_options.client_options.cloud` | `AZURE_AUTHORITY_HOST` | `https://login.microsoftonline.com` |
//! | expected audience | `expected_audience` | `AZURE_FEDERATED_TOKEN_AUDIENCE` | the cloud's recommended audience (`api://AzureADTokenExchange`, `...USGov`, `...China`); a token with another, non-foreign audience is then sent with a warning |
//!
//! The environment is read through [`Env`], so tests (and programs that keep their configuration
//! elsewhere) can supply it without touching the process environment.

use crate::entra::catalogue::{CLIENT_ID_COMMANDS, TENANT_ID_COMMAND};
use crate::error::{CredentialError, ErrorCategory};
use crate::problem::ProblemId;
use azure_core::cloud::CloudConfiguration;
use azure_core::http::Url;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Where the Azure Workload Identity webhook (v1.6 and later) mounts the token.
pub const WEBHOOK_TOKEN_PATH: &str = "/var/run/secrets/azure/wi/token/azure-identity-token";
/// Where the Azure Workload Identity webhook before v1.6 mounted the token.
pub const WEBHOOK_TOKEN_PATH_PRE_1_6: &str = "/var/run/secrets/azure/tokens/azure-identity-token";

/// The public cloud's authority host, the default when neither the options' cloud nor
/// `AZURE_AUTHORITY_HOST` names another.
pub const PUBLIC_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// Azure US Government's authority host (set it as `AZURE_AUTHORITY_HOST`, or use
/// `CloudConfiguration::AzureGovernment` in the options).
pub const US_GOV_AUTHORITY_HOST: &str = "https://login.microsoftonline.us";
/// Azure China's (21Vianet) authority host (set it as `AZURE_AUTHORITY_HOST`, or use
/// `CloudConfiguration::AzureChina` in the options).
pub const CHINA_AUTHORITY_HOST: &str = "https://login.chinacloudapi.cn";

/// Recommended federated-credential audience in the public cloud.
pub const AUDIENCE_PUBLIC: &str = "api://AzureADTokenExchange";
/// Recommended federated-credential audience in Azure US Government.
pub const AUDIENCE_US_GOV: &str = "api://AzureADTokenExchangeUSGov";
/// Recommended federated-credential audience in Azure China.
pub const AUDIENCE_CHINA: &str = "api://AzureADTokenExchangeChina";

/// The environment seen by the credential: the process environment (default) or a fixed map.
#[derive(Clone, Default)]
pub struct Env(Option<Arc<HashMap<String, String>>>);

impl Env {
    /// The process environment (the default).
    pub fn process() -> Self {
        Self(None)
    }

    /// A fixed environment holding exactly these variables.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self(Some(Arc::new(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )))
    }

    /// The value of `name`, if set: from the fixed map, or from the process environment (a value
    /// that is not Unicode counts as unset, as does an empty value).
    pub fn var(&self, name: &str) -> Option<String> {
        let value = match &self.0 {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.is_empty())
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: values may be anything, including secrets of other credentials.
        match &self.0 {
            None => f.write_str("Env::process()"),
            Some(map) => {
                let mut names: Vec<&String> = map.keys().collect();
                names.sort();
                f.debug_tuple("Env::from_pairs").field(&names).finish()
            }
        }
    }
}

/// Where a configuration value came from; shown in errors and by `doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueSource {
    /// Set in the options passed to the constructor.
    Options,
    /// Read from this environment variable.
    EnvVar(&'static str),
    /// Found at a well-known path of the Azure Workload Identity webhook.
    WellKnownPath,
    /// The built-in default.
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
    /// The value.
    pub value: T,
    /// Its origin.
    pub source: ValueSource,
}

/// Fully resolved and validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedConfig {
    /// Client id of the application or user-assigned managed identity.
    pub client_id: Sourced<String>,
    /// Tenant id.
    pub tenant_id: Sourced<String>,
    /// Path of the projected service-account token.
    pub token_file: Sourced<PathBuf>,
    /// Entra authority host (HTTPS).
    pub authority_host: Sourced<Url>,
    /// The audience the service-account token must carry.
    pub expected_audience: Sourced<String>,
}

impl ResolvedConfig {
    /// The token endpoint: `{authority}/{tenant}/oauth2/v2.0/token`.
    pub(crate) fn token_endpoint(&self) -> Result<Url, CredentialError> {
        let mut url = self.authority_host.value.clone();
        url.path_segments_mut()
            .map_err(|_| {
                invalid(
                    "authority host",
                    "it cannot be a base URL",
                    authority_fix(
                        &Sourced {
                            value: self.authority_host.value.to_string(),
                            source: self.authority_host.source.clone(),
                        },
                        None,
                    ),
                )
            })?
            .pop_if_empty()
            .extend([self.tenant_id.value.as_str(), "oauth2", "v2.0", "token"]);
        Ok(url)
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
}

/// Each missing value (client id, tenant id, token file) with how to set it: the variable, the
/// option, and the command that prints the value.
fn not_configured(missing: &[(&str, String)]) -> CredentialError {
    let (what, how): (Vec<&str>, Vec<&str>) = missing.iter().map(|(w, h)| (*w, h.as_str())).unzip();
    CredentialError::new(
        ErrorCategory::NotConfigured,
        format!(
            "WorkloadIdentityCredential is not configured: no {}.",
            what.join(", no ")
        ),
    )
    .with_fix(format!(
        "set {}. In a pod, the Azure Workload Identity webhook sets them when the pod has the label \
         azure.workload.identity/use: \"true\" and its ServiceAccount the annotation azure.workload.identity/client-id; \
         without the webhook, set them in the pod spec (`azure-identity-k8s setup` prints a Deployment with them).",
        how.join("; ")
    ))
    .with_problem(ProblemId::NotConfigured)
}

/// A malformed value: `what` names it, `problem` says what is wrong with it, `fix` gives the
/// value or command that corrects it.
fn invalid(what: &str, problem: &str, fix: impl Into<String>) -> CredentialError {
    CredentialError::new(
        ErrorCategory::InvalidConfiguration,
        format!("WorkloadIdentityCredential: invalid {what}: {problem}."),
    )
    .with_fix(fix)
    .with_problem(ProblemId::InvalidConfiguration)
}

/// Set `var` (or the option) to the value `command` prints.
fn set_to(var: &str, option: &str, value: &str) -> String {
    format!("set {var} (or the option {option}) to {value}")
}

/// The fix of a missing or malformed client id.
fn client_id_fix() -> String {
    set_to(
        AZURE_CLIENT_ID,
        "client_id",
        &format!(
            "the application's or user-assigned managed identity's client id (appId, not the object id), printed by {CLIENT_ID_COMMANDS}"
        ),
    )
}

/// The fix of a missing or malformed tenant id.
fn tenant_id_fix() -> String {
    set_to(
        AZURE_TENANT_ID,
        "tenant_id",
        &format!("the directory (tenant) id printed by `{TENANT_ID_COMMAND}`"),
    )
}

/// The fix of a missing or empty token file path; `tried`: the webhook paths looked for.
fn token_file_fix(tried: &[PathBuf]) -> String {
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    set_to(
        AZURE_FEDERATED_TOKEN_FILE,
        "token_file_path",
        &format!(
            "the file of the pod's projected serviceAccountToken volume (audience {AUDIENCE_PUBLIC}), <mountPath>/<path>, e.g. {WEBHOOK_TOKEN_PATH_PRE_1_6}{}",
            if tried.is_empty() {
                String::new()
            } else {
                format!(" (the webhook's paths {} do not exist)", tried.join(", "))
            }
        ),
    )
}

/// The fix of a malformed authority host: the cloud's host, or this one over HTTPS.
fn authority_fix(raw: &Sourced<String>, https: Option<String>) -> String {
    let hosts = format!(
        "{PUBLIC_AUTHORITY_HOST} (public cloud), {US_GOV_AUTHORITY_HOST} (US Government) or {CHINA_AUTHORITY_HOST} (China)"
    );
    let value = match https {
        Some(h) => format!("{h}, the tenant's cloud: {hosts}"),
        None => format!("the tenant's cloud: {hosts}"),
    };
    match raw.source {
        ValueSource::Options => format!("set the cloud option's authority_host to {value}"),
        _ => format!("set {AZURE_AUTHORITY_HOST} to {value}"),
    }
}

/// The option, else the environment variable `var`, with its source.
pub(crate) fn pick(option: Option<&str>, env: &Env, var: &'static str) -> Option<Sourced<String>> {
    match option {
        Some(v) => Some(Sourced {
            value: v.to_string(),
            source: ValueSource::Options,
        }),
        None => env.var(var).map(|value| Sourced {
            value,
            source: ValueSource::EnvVar(var),
        }),
    }
}

/// Reject surrounding whitespace (a classic copy-paste or `echo` mistake) with a message that says
/// exactly what is wrong, without echoing the value's full content where it could matter.
fn check_no_whitespace(what: &str, v: &Sourced<String>) -> Result<(), CredentialError> {
    if v.value.trim() != v.value || v.value.chars().any(char::is_whitespace) {
        let clean: String = v.value.chars().filter(|c| !c.is_whitespace()).collect();
        return Err(invalid(
            what,
            &format!(
                "the value from {} contains whitespace ({:?}); a trailing newline often comes from `echo` or a file",
                v.source, v.value
            ),
            format!("set {} to {clean:?}, without the whitespace", v.source),
        ));
    }
    Ok(())
}

pub(crate) fn validate_tenant_id(t: &Sourced<String>) -> Result<(), CredentialError> {
    check_no_whitespace("tenant id", t)?;
    if t.value.is_empty()
        || !t
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(invalid(
            "tenant id",
            &format!(
                "{:?} (from {}) may contain only letters, digits, '-' and '.'; expected a directory id \
                 such as 72f988bf-86f1-41af-91ab-2d7cd011db47 or a domain such as contoso.onmicrosoft.com",
                t.value, t.source
            ),
            tenant_id_fix(),
        ));
    }
    Ok(())
}

fn authority_from_cloud(cloud: &CloudConfiguration) -> Result<String, CredentialError> {
    Ok(match cloud {
        CloudConfiguration::AzurePublic => PUBLIC_AUTHORITY_HOST.to_string(),
        CloudConfiguration::AzureGovernment => US_GOV_AUTHORITY_HOST.to_string(),
        CloudConfiguration::AzureChina => CHINA_AUTHORITY_HOST.to_string(),
        CloudConfiguration::Custom(custom) => custom.authority_host.clone(),
        other => {
            return Err(invalid(
                "cloud configuration",
                &format!("{other:?} is not supported"),
                "use CloudConfiguration::AzurePublic, AzureGovernment, AzureChina, or a custom cloud configuration with an authority_host",
            ));
        }
    })
}

/// The authority host as given, unchecked: the cloud option, else `AZURE_AUTHORITY_HOST`, else
/// the public cloud's.
pub(crate) fn authority_host_raw(
    cloud: Option<&CloudConfiguration>,
    env: &Env,
) -> Result<Sourced<String>, CredentialError> {
    Ok(match cloud {
        Some(cloud) => Sourced {
            value: authority_from_cloud(cloud)?,
            source: ValueSource::Options,
        },
        None => match env.var(AZURE_AUTHORITY_HOST) {
            Some(v) => Sourced {
                value: v,
                source: ValueSource::EnvVar(AZURE_AUTHORITY_HOST),
            },
            None => Sourced {
                value: PUBLIC_AUTHORITY_HOST.to_string(),
                source: ValueSource::Default,
            },
        },
    })
}

/// The recommended federated-credential audience for an authority host.
pub(crate) fn default_audience_for(authority: &Url) -> &'static str {
    match authority.host_str().unwrap_or_default() {
        h if h.ends_with("microsoftonline.us") => AUDIENCE_US_GOV,
        h if h.ends_with("chinacloudapi.cn") => AUDIENCE_CHINA,
        _ => AUDIENCE_PUBLIC,
    }
}

/// The token file: the option, else `AZURE_FEDERATED_TOKEN_FILE`, else the first existing
/// well-known path; `None` when there is none.
pub(crate) fn locate_token_file(
    option: Option<&Path>,
    env: &Env,
    well_known: &[PathBuf],
) -> Option<Sourced<PathBuf>> {
    if let Some(p) = option {
        return Some(Sourced {
            value: p.to_path_buf(),
            source: ValueSource::Options,
        });
    }
    if let Some(p) = env.var(AZURE_FEDERATED_TOKEN_FILE) {
        return Some(Sourced {
            value: PathBuf::from(p),
            source: ValueSource::EnvVar(AZURE_FEDERATED_TOKEN_FILE),
        });
    }
    well_known.iter().find(|p| p.exists()).map(|p| Sourced {
        value: p.clone(),
        source: ValueSource::WellKnownPath,
    })
}

pub(crate) fn resolve(inputs: &ConfigInputs<'_>) -> Result<ResolvedConfig, CredentialError> {
    let env = inputs.env;
    let client_id = pick(inputs.client_id, env, AZURE_CLIENT_ID);
    let tenant_id = pick(inputs.tenant_id, env, AZURE_TENANT_ID);
    let token_file = locate_token_file(inputs.token_file_path, env, inputs.well_known_token_paths);
    let (Some(client_id), Some(tenant_id), Some(token_file)) =
        (client_id.clone(), tenant_id.clone(), token_file.clone())
    else {
        let mut missing = Vec::new();
        if client_id.is_none() {
            missing.push(("client id", client_id_fix()));
        }
        if tenant_id.is_none() {
            missing.push(("tenant id", tenant_id_fix()));
        }
        if token_file.is_none() {
            missing.push(("token file", token_file_fix(inputs.well_known_token_paths)));
        }
        return Err(not_configured(&missing));
    };
    if client_id.value.is_empty() {
        return Err(invalid(
            "client id",
            &format!("the value from {} is empty", client_id.source),
            client_id_fix(),
        ));
    }
    check_no_whitespace("client id", &client_id)?;
    validate_tenant_id(&tenant_id)?;
    if token_file.value.as_os_str().is_empty() {
        return Err(invalid(
            "token file path",
            &format!("the value from {} is empty", token_file.source),
            token_file_fix(&[]),
        ));
    }

    let authority_raw = authority_host_raw(inputs.cloud, env)?;
    check_no_whitespace("authority host", &authority_raw)?;
    let url = Url::parse(&authority_raw.value).map_err(|e| {
        invalid(
            "authority host",
            &format!(
                "{:?} (from {}) is not a URL ({e})",
                authority_raw.value, authority_raw.source
            ),
            authority_fix(&authority_raw, None),
        )
    })?;
    if url.scheme() != "https" {
        return Err(invalid(
            "authority host",
            &format!(
                "{:?} (from {}) does not use HTTPS; tokens are only requested over HTTPS",
                authority_raw.value, authority_raw.source
            ),
            authority_fix(
                &authority_raw,
                url.host_str().map(|h| match url.port() {
                    Some(p) => format!("https://{h}:{p}"),
                    None => format!("https://{h}"),
                }),
            ),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
        return Err(invalid(
            "authority host",
            &format!(
                "{:?} (from {}) must be a plain https://host[:port] URL",
                authority_raw.value, authority_raw.source
            ),
            authority_fix(&authority_raw, Some(url.origin().ascii_serialization())),
        ));
    }
    let authority_host = Sourced {
        value: url,
        source: authority_raw.source,
    };

    let expected_audience = match pick(
        inputs.expected_audience,
        env,
        AZURE_FEDERATED_TOKEN_AUDIENCE,
    ) {
        Some(a) => {
            check_no_whitespace("expected audience", &a)?;
            a
        }
        None => Sourced {
            value: default_audience_for(&authority_host.value).to_string(),
            source: ValueSource::Default,
        },
    };

    Ok(ResolvedConfig {
        client_id,
        tenant_id,
        token_file,
        authority_host,
        expected_audience,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(env: &'a Env, paths: &'a [PathBuf]) -> ConfigInputs<'a> {
        ConfigInputs {
            client_id: None,
            tenant_id: None,
            token_file_path: None,
            cloud: None,
            expected_audience: None,
            well_known_token_paths: paths,
            env,
        }
    }

    fn full_env() -> Env {
        Env::from_pairs([
            (AZURE_CLIENT_ID, "11111111-2222-3333-4444-555555555555"),
            (AZURE_TENANT_ID, "contoso.onmicrosoft.com"),
            (AZURE_FEDERATED_TOKEN_FILE, "/tmp/token"),
        ])
    }

    #[test]
    fn env_fills_everything_and_defaults_apply() {
        let env = full_env();
        let c = resolve(&inputs(&env, &[])).unwrap();
        assert_eq!(c.client_id.source, ValueSource::EnvVar(AZURE_CLIENT_ID));
        assert_eq!(c.token_file.value, PathBuf::from("/tmp/token"));
        assert_eq!(
            c.authority_host.value.as_str(),
            "https://login.microsoftonline.com/"
        );
        assert_eq!(c.authority_host.source, ValueSource::Default);
        assert_eq!(c.expected_audience.value, AUDIENCE_PUBLIC);
        assert_eq!(
            c.token_endpoint().unwrap().as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
    }

    #[test]
    fn options_win_over_env() {
        let env = full_env();
        let mut i = inputs(&env, &[]);
        i.client_id = Some("from-options");
        let c = resolve(&i).unwrap();
        assert_eq!(c.client_id.value, "from-options");
        assert_eq!(c.client_id.source, ValueSource::Options);
    }

    #[test]
    fn missing_values_are_not_configured_and_name_the_variable() {
        let env = Env::from_pairs::<&str, &str>([]);
        let e = resolve(&inputs(&env, &[])).unwrap_err();
        assert!(e.is_not_configured());
        assert!(e.message().contains("AZURE_CLIENT_ID"), "{e}");
        let env = Env::from_pairs([(AZURE_CLIENT_ID, "x")]);
        let e = resolve(&inputs(&env, &[])).unwrap_err();
        assert!(e.message().contains("AZURE_TENANT_ID"), "{e}");
        let env = Env::from_pairs([(AZURE_CLIENT_ID, "x"), (AZURE_TENANT_ID, "t")]);
        let paths = [PathBuf::from("/definitely/not/here/token")];
        let e = resolve(&inputs(&env, &paths)).unwrap_err();
        assert!(e.is_not_configured());
        assert!(
            e.message().contains("AZURE_FEDERATED_TOKEN_FILE")
                && e.message().contains("/definitely/not/here/token"),
            "{e}"
        );
    }

    #[test]
    fn well_known_path_is_discovered() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("azure-identity-token");
        std::fs::write(&p, "x").unwrap();
        let env = Env::from_pairs([(AZURE_CLIENT_ID, "x"), (AZURE_TENANT_ID, "t")]);
        let paths = [PathBuf::from("/nope/token"), p.clone()];
        let c = resolve(&inputs(&env, &paths)).unwrap();
        assert_eq!(c.token_file.value, p);
        assert_eq!(c.token_file.source, ValueSource::WellKnownPath);
    }

    #[test]
    fn bad_values_are_rejected_with_the_reason() {
        for (var, value, needle) in [
            (AZURE_TENANT_ID, "bad/tenant", "tenant id"),
            (AZURE_TENANT_ID, "tenant\n", "whitespace"),
            (AZURE_CLIENT_ID, "client id", "whitespace"),
            (
                AZURE_AUTHORITY_HOST,
                "http://login.microsoftonline.com",
                "HTTPS",
            ),
            (AZURE_AUTHORITY_HOST, "not a url", "whitespace"),
            (
                AZURE_AUTHORITY_HOST,
                "login.microsoftonline.com",
                "not a URL",
            ),
        ] {
            let mut pairs: HashMap<&str, &str> = [
                (AZURE_CLIENT_ID, "c"),
                (AZURE_TENANT_ID, "t"),
                (AZURE_FEDERATED_TOKEN_FILE, "/tmp/x"),
            ]
            .into_iter()
            .collect();
            pairs.insert(var, value);
            let env = Env::from_pairs(pairs);
            let e = resolve(&inputs(&env, &[])).unwrap_err();
            assert_eq!(
                e.category(),
                ErrorCategory::InvalidConfiguration,
                "{var}={value:?}"
            );
            assert!(e.message().contains(needle), "{var}={value:?}: {e}");
        }
    }

    #[test]
    fn cloud_selects_authority_and_audience() {
        let env = full_env();
        let mut i = inputs(&env, &[]);
        let cloud = CloudConfiguration::AzureGovernment;
        i.cloud = Some(&cloud);
        let c = resolve(&i).unwrap();
        assert_eq!(
            c.authority_host.value.host_str(),
            Some("login.microsoftonline.us")
        );
        assert_eq!(c.expected_audience.value, AUDIENCE_US_GOV);
        let cloud = CloudConfiguration::AzureChina;
        i.cloud = Some(&cloud);
        assert_eq!(resolve(&i).unwrap().expected_audience.value, AUDIENCE_CHINA);
    }

    #[test]
    fn debug_of_env_shows_names_only() {
        let env = Env::from_pairs([("AZURE_CLIENT_SECRET", "hunter2")]);
        let s = format!("{env:?}");
        assert!(
            s.contains("AZURE_CLIENT_SECRET") && !s.contains("hunter2"),
            "{s}"
        );
    }
}
