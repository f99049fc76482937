//! [`DefaultAzureCredential`]: the chain users of the other Azure SDKs expect, with this crate's
//! workload identity in the workload slot and `AZURE_TOKEN_CREDENTIALS` support.

use super::managed_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions};
use super::sources::{self, Failing};
use super::{ChainSource, ChainedTokenCredential, ChainedTokenCredentialOptions};
use crate::config::Env;
use crate::credential::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::ClientOptions;
use azure_identity::{ClientAssertionCredentialOptions, Executor};
use std::fmt;
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
#[derive(Default)]
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

impl fmt::Debug for DefaultAzureCredentialOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultAzureCredentialOptions")
            .field("env", &self.env)
            .field("workload_identity", &self.workload_identity)
            .field("managed_identity", &self.managed_identity)
            .field("token_credentials", &self.token_credentials)
            .finish_non_exhaustive()
    }
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
    let all = |state| {
        Ok((
            &SOURCES[..],
            format!("all sources ({AZURE_TOKEN_CREDENTIALS} is {state})"),
        ))
    };
    let Some(raw) = value else {
        return all("not set");
    };
    let v = raw.trim();
    if v.is_empty() {
        return all("empty");
    }
    let names = if v.eq_ignore_ascii_case("prod") {
        &SOURCES[..3]
    } else if v.eq_ignore_ascii_case("dev") {
        &SOURCES[3..]
    } else if let Some(i) = SOURCES.iter().position(|n| n.eq_ignore_ascii_case(v)) {
        &SOURCES[i..=i]
    } else {
        return Err(azure_core::Error::with_message(
            ErrorKind::Credential,
            format!(
                "DefaultAzureCredential: {origin} has the invalid value {raw:?}. Valid values (case-insensitive): prod ({}), dev ({}), or one credential's name: {}",
                SOURCES[..3].join(", "),
                SOURCES[3..].join(", "),
                SOURCES.join(", ")
            ),
        ));
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
pub struct DefaultAzureCredential {
    chain: Arc<ChainedTokenCredential>,
    selection: String,
}

impl fmt::Debug for DefaultAzureCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultAzureCredential")
            .field("sources", &self.chain.source_names())
            .field("selected", &self.chain.selected_source())
            .finish_non_exhaustive()
    }
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
            let credential = match name {
                ENVIRONMENT => sources::environment(&env, &client_options),
                WORKLOAD_IDENTITY => built(WorkloadIdentityCredential::new(Some(
                    workload_identity.take().unwrap_or_else(workload_options),
                ))),
                MANAGED_IDENTITY => built(ManagedIdentityCredential::new(Some(
                    managed_identity
                        .take()
                        .unwrap_or_else(|| ManagedIdentityCredentialOptions {
                            client_options: client_options.clone(),
                            env: env.clone(),
                            ..Default::default()
                        }),
                ))),
                _ => sources::developer_tool(name, developer_tools_executor.clone()),
            };
            chain.push(ChainSource::new(name, credential));
            #[cfg(feature = "aws")]
            if name == WORKLOAD_IDENTITY
                && let Some(aws) = aws_outbound.take()
            {
                let credential =
                    WorkloadIdentityCredential::from_aws(Some(workload_options()), aws);
                chain.push(ChainSource::new(AWS_WEB_IDENTITY, built(credential)));
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

/// A constructed credential, or a source that returns the reason it could not be one
/// ("unavailable" when it is simply not configured; otherwise the error stops the chain).
fn built<C: TokenCredential + 'static>(
    result: azure_core::Result<Arc<C>>,
) -> Arc<dyn TokenCredential> {
    match result {
        Ok(c) => c,
        Err(e) => Failing::with(e),
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
