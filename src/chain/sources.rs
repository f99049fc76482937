//! The sources of [`DefaultAzureCredential`](super::DefaultAzureCredential) other than managed
//! identity: the environment's client secret, and the developer tools; plus two fixed sources for
//! credentials that could not be constructed.

use super::CredentialUnavailable;
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
use std::fmt;
use std::sync::Arc;

/// `AZURE_CLIENT_SECRET`: a client secret of the application (the Environment source).
pub(crate) const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
const AZURE_CLIENT_CERTIFICATE_PATH: &str = "AZURE_CLIENT_CERTIFICATE_PATH";
const AZURE_USERNAME: &str = "AZURE_USERNAME";

/// A source that is never available here, for the reason given.
pub(crate) struct Unavailable {
    pub(crate) reason: String,
}

impl fmt::Debug for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unavailable")
            .field("reason", &self.reason)
            .finish()
    }
}

#[async_trait::async_trait]
impl TokenCredential for Unavailable {
    async fn get_token(
        &self,
        _: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Err(CredentialUnavailable::new(self.reason.clone()).into())
    }
}

/// A source that is configured but could not be constructed: every call fails with that error,
/// which stops the chain.
pub(crate) struct Broken {
    pub(crate) error: BrokenError,
}

pub(crate) enum BrokenError {
    Credential(crate::CredentialError),
    Message(String),
}

impl fmt::Debug for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = match &self.error {
            BrokenError::Credential(e) => e.message().to_string(),
            BrokenError::Message(m) => m.clone(),
        };
        f.debug_struct("Broken").field("error", &m).finish()
    }
}

#[async_trait::async_trait]
impl TokenCredential for Broken {
    async fn get_token(
        &self,
        _: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Err(match &self.error {
            BrokenError::Credential(e) => e.clone().into(),
            BrokenError::Message(m) => {
                azure_core::Error::with_message(ErrorKind::Credential, m.clone())
            }
        })
    }
}

/// Wraps a credential and turns the errors `classify` recognises into "unavailable".
pub(crate) struct Classified {
    pub(crate) inner: Arc<dyn TokenCredential>,
    pub(crate) classify: fn(&azure_core::Error) -> Option<String>,
}

impl fmt::Debug for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classified")
            .field("inner", &self.inner)
            .finish()
    }
}

#[async_trait::async_trait]
impl TokenCredential for Classified {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        match self.inner.get_token(scopes, options).await {
            Ok(t) => Ok(t),
            Err(e) => match (self.classify)(&e) {
                Some(reason) => Err(CredentialUnavailable::new(reason).into()),
                None => Err(e),
            },
        }
    }
}

/// The authority for credentials of azure_identity, resolved through our [`Env`] so that
/// azure_identity never reads `AZURE_AUTHORITY_HOST` from the process environment itself.
pub(crate) fn cloud_for(env: &Env, client_options: &ClientOptions) -> Arc<CloudConfiguration> {
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
        let fix = |var: &'static str| move || format!("set {var} to its value in valid UTF-8");
        for (var, secret) in [
            (AZURE_CLIENT_SECRET, true),
            (AZURE_TENANT_ID, false),
            (AZURE_CLIENT_ID, false),
            (AZURE_AUTHORITY_HOST, false),
        ] {
            if let Err(e) = env.var_checked("EnvironmentCredential", var, secret, fix(var)) {
                return Arc::new(Broken {
                    error: BrokenError::Credential(e),
                });
            }
        }
    }
    let secret = env.var(AZURE_CLIENT_SECRET);
    let tenant = env.var(AZURE_TENANT_ID);
    let client = env.var(AZURE_CLIENT_ID);
    let Some(secret) = secret else {
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
        return Arc::new(Unavailable { reason });
    };
    let (Some(tenant), Some(client)) = (tenant, client) else {
        let missing: Vec<&str> = [
            (AZURE_TENANT_ID, env.var(AZURE_TENANT_ID)),
            (AZURE_CLIENT_ID, env.var(AZURE_CLIENT_ID)),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| n)
        .collect();
        return Arc::new(Unavailable {
            reason: format!(
                "{AZURE_CLIENT_SECRET} is set but {} is not, so the client secret cannot be used",
                missing.join(" and ")
            ),
        });
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
        Err(e) => Arc::new(Broken {
            error: BrokenError::Message(format!(
                "EnvironmentCredential: {AZURE_TENANT_ID}, {AZURE_CLIENT_ID} and {AZURE_CLIENT_SECRET} are set but invalid: {e}"
            )),
        }),
    }
}

fn error_text(err: &azure_core::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut current = std::error::Error::source(err);
    while let Some(e) = current {
        parts.push(e.to_string());
        current = e.source();
    }
    parts.join(": ")
}

/// Developer-tool errors that mean "not installed" or "not logged in" are "unavailable".
pub(crate) fn classify_developer_tool(err: &azure_core::Error) -> Option<String> {
    let text = error_text(err);
    let lower = text.to_ascii_lowercase();
    let unavailable = [
        "not found on path",
        "wasn't found on path",
        "az login",
        "azd auth login",
        "not logged in",
        "no such file or directory",
    ];
    unavailable
        .iter()
        .any(|needle| lower.contains(needle))
        .then(|| one_line(&err.to_string()))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn azure_cli(
    executor: Option<Arc<dyn Executor>>,
    tenant_id: Option<String>,
) -> Arc<dyn TokenCredential> {
    match AzureCliCredential::new(Some(AzureCliCredentialOptions {
        executor,
        tenant_id,
        ..Default::default()
    })) {
        Ok(inner) => Arc::new(Classified {
            inner,
            classify: classify_developer_tool,
        }),
        Err(e) => Arc::new(Broken {
            error: BrokenError::Message(format!("AzureCliCredential: {e}")),
        }),
    }
}

pub(crate) fn azure_developer_cli(
    executor: Option<Arc<dyn Executor>>,
    tenant_id: Option<String>,
) -> Arc<dyn TokenCredential> {
    match AzureDeveloperCliCredential::new(Some(AzureDeveloperCliCredentialOptions {
        executor,
        tenant_id,
    })) {
        Ok(inner) => Arc::new(Classified {
            inner,
            classify: classify_developer_tool,
        }),
        Err(e) => Arc::new(Broken {
            error: BrokenError::Message(format!("AzureDeveloperCliCredential: {e}")),
        }),
    }
}
