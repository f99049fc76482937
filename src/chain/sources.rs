//! The sources of [`DefaultAzureCredential`](super::DefaultAzureCredential) other than managed
//! identity: the environment's client secret and the developer tools; plus [`Failing`], the
//! source of a credential that could not be constructed.

use super::{CredentialUnavailable, one_line};
use crate::CredentialError;
use crate::config::{AZURE_AUTHORITY_HOST, AZURE_CLIENT_ID, AZURE_TENANT_ID, Env};
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::ClientOptions;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, AzureDeveloperCliCredential,
    AzureDeveloperCliCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    Executor,
};
use std::error::Error as StdError;
use std::sync::Arc;

const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
const AZURE_CLIENT_CERTIFICATE_PATH: &str = "AZURE_CLIENT_CERTIFICATE_PATH";
const AZURE_USERNAME: &str = "AZURE_USERNAME";

/// A source whose every call fails the same way: not configured here (unavailable: the chain moves
/// on), or configured but impossible to construct (the error stops the chain at the first token
/// request, not at the chain's construction).
#[derive(Debug)]
pub(crate) enum Failing {
    Unavailable(CredentialUnavailable),
    /// Kept as itself: downcastable, and unavailable when it is "not configured".
    Credential(CredentialError),
    Other(String),
}

impl Failing {
    /// A source that is unavailable for `reason`.
    pub(crate) fn unavailable(reason: String) -> Arc<dyn TokenCredential> {
        Arc::new(Self::Unavailable(CredentialUnavailable::new(reason)))
    }

    /// A source that always fails with `error` (a [`CredentialError`] stays one).
    pub(crate) fn with(error: azure_core::Error) -> Arc<dyn TokenCredential> {
        Arc::new(match error.downcast_ref::<CredentialError>() {
            Some(e) => Self::Credential(e.clone()),
            None => Self::Other(error.to_string()),
        })
    }
}

#[async_trait::async_trait]
impl TokenCredential for Failing {
    async fn get_token(
        &self,
        _: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Err(match self {
            Self::Unavailable(e) => e.clone().into(),
            Self::Credential(e) => e.clone().into(),
            Self::Other(m) => azure_core::Error::with_message(ErrorKind::Credential, m.clone()),
        })
    }
}

/// The authority for credentials of azure_identity, resolved through our [`Env`] so that
/// azure_identity never reads `AZURE_AUTHORITY_HOST` from the process environment itself.
fn cloud_for(env: &Env, client_options: &ClientOptions) -> Arc<CloudConfiguration> {
    if let Some(cloud) = &client_options.cloud {
        return cloud.clone();
    }
    match env.var(AZURE_AUTHORITY_HOST) {
        Some(host) => {
            let mut custom = CustomConfiguration::default();
            custom.authority_host = host;
            Arc::new(CloudConfiguration::Custom(custom))
        }
        None => Arc::new(CloudConfiguration::AzurePublic),
    }
}

/// The Environment source: `ClientSecretCredential` when `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
/// `AZURE_CLIENT_SECRET` are all set.
pub(crate) fn environment(env: &Env, client_options: &ClientOptions) -> Arc<dyn TokenCredential> {
    // With a client secret set (whatever its bytes), a variable of the source that is not UTF-8
    // is named, not taken as unset (for AZURE_AUTHORITY_HOST: not the public cloud in silence).
    if env.var_os(AZURE_CLIENT_SECRET).is_some() {
        for (var, secret) in [
            (AZURE_CLIENT_SECRET, true),
            (AZURE_TENANT_ID, false),
            (AZURE_CLIENT_ID, false),
            (AZURE_AUTHORITY_HOST, false),
        ] {
            if let Err(e) = env.var_checked("EnvironmentCredential", var, secret, || {
                format!("set {var} to its value in valid UTF-8")
            }) {
                return Failing::with(e.into());
            }
        }
    }
    let Some(secret) = env.var(AZURE_CLIENT_SECRET) else {
        return Failing::unavailable(if env.var(AZURE_CLIENT_CERTIFICATE_PATH).is_some() {
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
        });
    };
    let (Some(tenant), Some(client)) = (env.var(AZURE_TENANT_ID), env.var(AZURE_CLIENT_ID)) else {
        let missing: Vec<&str> = [AZURE_TENANT_ID, AZURE_CLIENT_ID]
            .into_iter()
            .filter(|v| env.var(v).is_none())
            .collect();
        return Failing::unavailable(format!(
            "{AZURE_CLIENT_SECRET} is set but {} is not, so the client secret cannot be used",
            missing.join(" and ")
        ));
    };
    let mut client_options = client_options.clone();
    client_options.cloud = Some(cloud_for(env, &client_options));
    match ClientSecretCredential::new(
        &tenant,
        client,
        Secret::new(secret),
        Some(ClientSecretCredentialOptions { client_options }),
    ) {
        Ok(c) => c,
        Err(e) => Arc::new(Failing::Other(format!(
            "EnvironmentCredential: {AZURE_TENANT_ID}, {AZURE_CLIENT_ID} and {AZURE_CLIENT_SECRET} are set but invalid: {e}"
        ))),
    }
}

/// azure_identity's `AzureCliCredential` (`name` is `AzureCliCredential`) or
/// `AzureDeveloperCliCredential`, whose "not installed" and "not logged in" errors are
/// "unavailable".
pub(crate) fn developer_tool(
    name: &str,
    executor: Option<Arc<dyn Executor>>,
) -> Arc<dyn TokenCredential> {
    let built: azure_core::Result<Arc<dyn TokenCredential>> = if name == "AzureCliCredential" {
        AzureCliCredential::new(Some(AzureCliCredentialOptions {
            executor,
            ..Default::default()
        }))
        .map(|c| c as _)
    } else {
        AzureDeveloperCliCredential::new(Some(AzureDeveloperCliCredentialOptions {
            executor,
            ..Default::default()
        }))
        .map(|c| c as _)
    };
    match built {
        Ok(tool) => Arc::new(DeveloperTool(tool)),
        Err(e) => Arc::new(Failing::Other(format!("{name}: {e}"))),
    }
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
            let unavailable =
                std::iter::successors(Some(&e as &(dyn StdError + 'static)), |&e| e.source()).any(
                    |e| {
                        let text = e.to_string().to_ascii_lowercase();
                        UNAVAILABLE.iter().any(|needle| text.contains(needle))
                    },
                );
            if unavailable {
                CredentialUnavailable::new(one_line(&e.to_string())).into()
            } else {
                e
            }
        })
    }
}
