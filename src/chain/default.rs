//! [`DefaultAzureCredential`]: the chain users of the other Azure SDKs expect, with this crate's
//! workload identity in the workload slot and `AZURE_TOKEN_CREDENTIALS` support; its environment
//! (client secret) and developer-tool sources; [`Failing`], the source of a credential that could
//! not be constructed.

use super::managed_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions};
use super::{
    ChainSource, ChainedTokenCredential, ChainedTokenCredentialOptions, CredentialUnavailable,
    causes, credential_error, one_line,
};
use crate::CredentialError;
use crate::config::{AZURE_AUTHORITY_HOST, AZURE_CLIENT_ID, AZURE_TENANT_ID, Env};
use crate::credential::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::ClientOptions;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, AzureDeveloperCliCredential,
    AzureDeveloperCliCredentialOptions, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, Executor,
};
use std::sync::Arc;

/// `AZURE_TOKEN_CREDENTIALS`: `prod`, `dev` or one source's name (case-insensitive) to narrow
/// [`DefaultAzureCredential`] to those sources.
pub const AZURE_TOKEN_CREDENTIALS: &str = "AZURE_TOKEN_CREDENTIALS";

const ENVIRONMENT: &str = "EnvironmentCredential";
const WORKLOAD_IDENTITY: &str = "WorkloadIdentityCredential";
const MANAGED_IDENTITY: &str = "ManagedIdentityCredential";
const AZURE_CLI: &str = "AzureCliCredential";
const AZURE_DEVELOPER_CLI: &str = "AzureDeveloperCliCredential";
/// The opt-in AWS outbound federation source, right after [`WORKLOAD_IDENTITY`].
#[cfg(feature = "aws")]
const AWS_WEB_IDENTITY: &str = "AwsWebIdentityCredential";

/// [`DefaultAzureCredential`]'s sources, in the order they are tried. The first three are `prod`,
/// the last two `dev`.
const SOURCES: [&str; 5] = [
    ENVIRONMENT,
    WORKLOAD_IDENTITY,
    MANAGED_IDENTITY,
    AZURE_CLI,
    AZURE_DEVELOPER_CLI,
];

/// Options for [`DefaultAzureCredential`].
#[derive(Debug, Default)]
pub struct DefaultAzureCredentialOptions {
    /// HTTP options (transport, retry, cloud) for the sources that talk to Entra or IMDS.
    pub client_options: ClientOptions,
    /// The environment every source reads (default: the process environment), including
    /// `AZURE_TOKEN_CREDENTIALS`.
    pub env: Env,
    /// Options of the workload identity source. Default: built from `env` and `client_options`.
    /// When set, used as given (its own `env` included).
    pub workload_identity: Option<WorkloadIdentityCredentialOptions>,
    /// Options of the managed identity source. Default: built from `env` and `client_options`.
    /// When set, used as given.
    pub managed_identity: Option<ManagedIdentityCredentialOptions>,
    /// Runs the developer tools (`az`, `azd`). Default: azure_identity's executor.
    pub developer_tools_executor: Option<Arc<dyn Executor>>,
    /// Overrides `AZURE_TOKEN_CREDENTIALS`: `prod`, `dev` or one source's name (case-insensitive).
    pub token_credentials: Option<String>,
    /// Opt-in (feature `aws`): also try AWS outbound identity federation
    /// (`sts:GetWebIdentityToken`), as the source `AwsWebIdentityCredential` right after
    /// `WorkloadIdentityCredential`. Never enabled by default. It uses the workload identity's
    /// client id, tenant and authority; without AWS credentials or region it is "unavailable".
    #[cfg(feature = "aws")]
    pub aws_outbound: Option<crate::assertion::AwsWebIdentitySourceOptions>,
}

/// The sources to use, from `AZURE_TOKEN_CREDENTIALS` (or the option overriding it), and why.
fn selection(
    options: &DefaultAzureCredentialOptions,
) -> azure_core::Result<(&'static [&'static str], String)> {
    let (value, origin) = match &options.token_credentials {
        Some(v) => (Some(v.clone()), "the token_credentials option"),
        None => (
            // Not UTF-8 is not "unset" (which would mean every source).
            options.env.var_checked("DefaultAzureCredential", AZURE_TOKEN_CREDENTIALS, false, || {
                format!(
                    "set {AZURE_TOKEN_CREDENTIALS} to prod, dev or one credential's name ({}), or unset it",
                    SOURCES.join(", ")
                )
            })?,
            "the environment variable AZURE_TOKEN_CREDENTIALS",
        ),
    };
    let raw = value.as_deref().unwrap_or_default();
    let v = raw.trim();
    if v.is_empty() {
        let state = if value.is_none() { "not set" } else { "empty" };
        let why = format!("all sources ({AZURE_TOKEN_CREDENTIALS} is {state})");
        return Ok((&SOURCES[..], why));
    }
    let names = if v.eq_ignore_ascii_case("prod") {
        &SOURCES[..3]
    } else if v.eq_ignore_ascii_case("dev") {
        &SOURCES[3..]
    } else if let Some(i) = SOURCES.iter().position(|n| n.eq_ignore_ascii_case(v)) {
        &SOURCES[i..=i]
    } else {
        return Err(credential_error(format!(
            "DefaultAzureCredential: {origin} has the invalid value {raw:?}. Valid values (case-insensitive): prod ({}), dev ({}), or one credential's name: {}",
            SOURCES[..3].join(", "),
            SOURCES[3..].join(", "),
            SOURCES.join(", ")
        )));
    };
    Ok((
        names,
        format!("{AZURE_TOKEN_CREDENTIALS}={v} (from {origin})"),
    ))
}

/// Tries, in order: `EnvironmentCredential` (azure_identity's `ClientSecretCredential` when
/// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` are set), this crate's
/// [`WorkloadIdentityCredential`], [`ManagedIdentityCredential`] (azure_identity's, behind a
/// bounded probe that says "unavailable" quickly on AWS), `AzureCliCredential` and
/// `AzureDeveloperCliCredential` (azure_identity's).
///
/// A source that is not configured is skipped; a source that is configured but fails stops the
/// chain with an error listing every source and why it was skipped, failed or not tried
/// ([`ChainError`](super::ChainError)); the first source that produces a token is used from then
/// on ([`selected_source`](Self::selected_source)). `AZURE_TOKEN_CREDENTIALS` narrows the chain:
/// `prod` (the first three), `dev` (the developer tools) or one source's name; any other value
/// fails construction. See [the chain](crate::guides::chain).
#[derive(Debug)]
pub struct DefaultAzureCredential {
    chain: Arc<ChainedTokenCredential>,
    selection: String,
}

impl DefaultAzureCredential {
    /// Create the chain. Reads `AZURE_TOKEN_CREDENTIALS` and each selected source's configuration
    /// through `options.env`; does no network I/O and runs no tool. Fails only when
    /// `AZURE_TOKEN_CREDENTIALS` is invalid; a source that is configured but cannot be built fails
    /// (and stops the chain) when a token is requested.
    pub fn new(options: Option<DefaultAzureCredentialOptions>) -> azure_core::Result<Arc<Self>> {
        let options = options.unwrap_or_default();
        let (names, why) = selection(&options)?;
        let DefaultAzureCredentialOptions {
            client_options,
            env,
            mut workload_identity,
            mut managed_identity,
            developer_tools_executor,
            #[cfg(feature = "aws")]
            mut aws_outbound,
            ..
        } = options;
        let workload_options = || WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: client_options.clone(),
            },
            env: env.clone(),
            ..Default::default()
        };
        let mut chain = Vec::with_capacity(names.len() + 1);
        for &name in names {
            let credential: azure_core::Result<Arc<dyn TokenCredential>> = match name {
                ENVIRONMENT => environment(&env, &client_options),
                WORKLOAD_IDENTITY => WorkloadIdentityCredential::new(Some(
                    workload_identity.take().unwrap_or_else(workload_options),
                ))
                .map(|c| c as _),
                MANAGED_IDENTITY => {
                    ManagedIdentityCredential::new(Some(managed_identity.take().unwrap_or_else(
                        || ManagedIdentityCredentialOptions {
                            client_options: client_options.clone(),
                            env: env.clone(),
                            ..Default::default()
                        },
                    )))
                    .map(|c| c as _)
                }
                _ => developer_tool(name, developer_tools_executor.clone()),
            };
            chain.push(source(name, credential));
            #[cfg(feature = "aws")]
            if name == WORKLOAD_IDENTITY
                && let Some(aws) = aws_outbound.take()
            {
                let credential =
                    WorkloadIdentityCredential::from_aws(Some(workload_options()), aws);
                chain.push(source(AWS_WEB_IDENTITY, credential.map(|c| c as _)));
            }
        }
        tracing::debug!(sources = ?chain.iter().map(ChainSource::name).collect::<Vec<_>>(), selection = %why, "DefaultAzureCredential created");
        let chain = ChainedTokenCredential::new(
            chain,
            Some(ChainedTokenCredentialOptions {
                name: Some("DefaultAzureCredential".into()),
            }),
        )?;
        Ok(Arc::new(Self {
            chain,
            selection: why,
        }))
    }

    /// The sources this chain tries, in order (after `AZURE_TOKEN_CREDENTIALS`).
    pub fn source_names(&self) -> Vec<&str> {
        self.chain.source_names()
    }

    /// Why these sources: e.g. `AZURE_TOKEN_CREDENTIALS=prod (from the environment variable ...)`.
    pub fn selection_reason(&self) -> &str {
        &self.selection
    }

    /// The source in use, once one has produced a token.
    pub fn selected_source(&self) -> Option<&str> {
        self.chain.selected_source()
    }
}

#[async_trait::async_trait]
impl TokenCredential for DefaultAzureCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.chain.get_token(scopes, options).await
    }
}

const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
const AZURE_CLIENT_CERTIFICATE_PATH: &str = "AZURE_CLIENT_CERTIFICATE_PATH";
const AZURE_USERNAME: &str = "AZURE_USERNAME";

/// The source of a credential that could not be constructed: every call fails with the
/// construction's error, "unavailable" (the chain moves on) when the source is not configured here,
/// otherwise an error that stops the chain at the first token request. A [`CredentialUnavailable`]
/// or [`CredentialError`] is returned as itself (downcastable; unavailable when "not
/// configured"), anything else by its text.
#[derive(Debug)]
struct Failing(azure_core::Error);

#[async_trait::async_trait]
impl TokenCredential for Failing {
    async fn get_token(
        &self,
        _: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Err(
            if let Some(e) = self.0.downcast_ref::<CredentialUnavailable>() {
                e.clone().into()
            } else if let Some(e) = self.0.downcast_ref::<CredentialError>() {
                e.clone().into()
            } else {
                credential_error(self.0.to_string())
            },
        )
    }
}

/// A source for `credential`, or for the error that constructing it failed with ([`Failing`]).
fn source(name: &str, credential: azure_core::Result<Arc<dyn TokenCredential>>) -> ChainSource {
    ChainSource::new(name, credential.unwrap_or_else(|e| Arc::new(Failing(e))))
}

/// The Environment source: `ClientSecretCredential` when `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
/// `AZURE_CLIENT_SECRET` are all set.
fn environment(
    env: &Env,
    client_options: &ClientOptions,
) -> azure_core::Result<Arc<dyn TokenCredential>> {
    // With a client secret set (whatever its bytes), a variable of the source that is not UTF-8
    // is named, not taken as unset (for AZURE_AUTHORITY_HOST: not the public cloud in silence).
    if env.var_os(AZURE_CLIENT_SECRET).is_some() {
        for var in [
            AZURE_CLIENT_SECRET,
            AZURE_TENANT_ID,
            AZURE_CLIENT_ID,
            AZURE_AUTHORITY_HOST,
        ] {
            let secret = var == AZURE_CLIENT_SECRET;
            env.var_checked("EnvironmentCredential", var, secret, || {
                format!("set {var} to its value in valid UTF-8")
            })?;
        }
    }
    let Some(secret) = env.var(AZURE_CLIENT_SECRET) else {
        let reason = if env.var(AZURE_CLIENT_CERTIFICATE_PATH).is_some() {
            format!(
                "{AZURE_CLIENT_CERTIFICATE_PATH} is set, but client certificates are not supported by this chain; use a client secret ({AZURE_CLIENT_SECRET}) or workload identity"
            )
        } else if env.var(AZURE_USERNAME).is_some() {
            format!(
                "{AZURE_USERNAME} is set, but username/password authentication is not supported (it cannot satisfy multi-factor authentication)"
            )
        } else {
            format!(
                "{AZURE_CLIENT_SECRET} is not set (the Environment source needs {AZURE_TENANT_ID}, {AZURE_CLIENT_ID} and {AZURE_CLIENT_SECRET})"
            )
        };
        return Err(CredentialUnavailable::new(reason).into());
    };
    let (Some(tenant), Some(client)) = (env.var(AZURE_TENANT_ID), env.var(AZURE_CLIENT_ID)) else {
        let missing: Vec<&str> = [AZURE_TENANT_ID, AZURE_CLIENT_ID]
            .into_iter()
            .filter(|v| env.var(v).is_none())
            .collect();
        return Err(CredentialUnavailable::new(format!(
            "{AZURE_CLIENT_SECRET} is set but {} is not, so the client secret cannot be used",
            missing.join(" and ")
        ))
        .into());
    };
    let mut client_options = client_options.clone();
    // The authority resolved through our Env, so that azure_identity never reads
    // AZURE_AUTHORITY_HOST from the process environment itself.
    client_options.cloud.get_or_insert_with(|| {
        Arc::new(match env.var(AZURE_AUTHORITY_HOST) {
            Some(host) => {
                let mut custom = CustomConfiguration::default();
                custom.authority_host = host;
                CloudConfiguration::Custom(custom)
            }
            None => CloudConfiguration::AzurePublic,
        })
    });
    let options = Some(ClientSecretCredentialOptions { client_options });
    ClientSecretCredential::new(&tenant, client, Secret::new(secret), options)
        .map(|c| c as _)
        .map_err(|e| {
            credential_error(format!(
                "EnvironmentCredential: {AZURE_TENANT_ID}, {AZURE_CLIENT_ID} and {AZURE_CLIENT_SECRET} are set but invalid: {e}"
            ))
        })
}

/// azure_identity's `AzureCliCredential` (`name` is `AzureCliCredential`) or
/// `AzureDeveloperCliCredential`, whose "not installed" and "not logged in" errors are
/// "unavailable".
fn developer_tool(
    name: &str,
    executor: Option<Arc<dyn Executor>>,
) -> azure_core::Result<Arc<dyn TokenCredential>> {
    let built: azure_core::Result<Arc<dyn TokenCredential>> = if name == AZURE_CLI {
        let options = AzureCliCredentialOptions {
            executor,
            ..Default::default()
        };
        AzureCliCredential::new(Some(options)).map(|c| c as _)
    } else {
        let options = AzureDeveloperCliCredentialOptions {
            executor,
            ..Default::default()
        };
        AzureDeveloperCliCredential::new(Some(options)).map(|c| c as _)
    };
    let tool = built.map_err(|e| credential_error(format!("{name}: {e}")))?;
    Ok(Arc::new(DeveloperTool(tool)))
}

#[derive(Debug)]
struct DeveloperTool(Arc<dyn TokenCredential>);

#[async_trait::async_trait]
impl TokenCredential for DeveloperTool {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        const UNAVAILABLE: [&str; 6] = [
            "not found on path",
            "wasn't found on path",
            "az login",
            "azd auth login",
            "not logged in",
            "no such file or directory",
        ];
        self.0.get_token(scopes, options).await.map_err(|e| {
            let unavailable = causes(&e).any(|e| {
                let text = e.to_string().to_ascii_lowercase();
                UNAVAILABLE.iter().any(|needle| text.contains(needle))
            });
            if unavailable {
                CredentialUnavailable::new(one_line(&e.to_string())).into()
            } else {
                e
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(v: &str) -> azure_core::Result<Vec<&'static str>> {
        let o = DefaultAzureCredentialOptions {
            env: Env::from_pairs([(AZURE_TOKEN_CREDENTIALS, v)]),
            ..Default::default()
        };
        selection(&o).map(|(n, _)| n.to_vec())
    }

    #[test]
    fn token_credentials_values() {
        assert_eq!(
            sel("prod").unwrap(),
            [ENVIRONMENT, WORKLOAD_IDENTITY, MANAGED_IDENTITY]
        );
        assert_eq!(sel(" DEV ").unwrap(), [AZURE_CLI, AZURE_DEVELOPER_CLI]);
        assert_eq!(
            sel("workloadidentitycredential").unwrap(),
            [WORKLOAD_IDENTITY]
        );
        assert_eq!(sel("").unwrap().len(), 5);
        let e = sel("production").unwrap_err().to_string();
        for n in [
            "\"production\"",
            "prod",
            "dev",
            ENVIRONMENT,
            AZURE_DEVELOPER_CLI,
            "AZURE_TOKEN_CREDENTIALS",
        ] {
            assert!(e.contains(n), "{n}: {e}");
        }
    }
}
