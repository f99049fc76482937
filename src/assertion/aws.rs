//! AWS IAM outbound identity federation as an assertion source (cargo feature `aws`).
//!
//! Any AWS workload with IAM credentials (EKS Pod Identity, IRSA, ECS, Lambda, an EC2 instance
//! profile) asks AWS STS for a JWT with `sts:GetWebIdentityToken` and presents it to Entra ID as
//! the federated client assertion. The JWT's issuer is the account's outbound-federation issuer
//! (`https://<uuid>.tokens.sts.global.api.aws`), its subject the caller's IAM role ARN. No
//! Kubernetes OIDC issuer is involved. Setup: `docs/aws-outbound.md`.
//!
//! ```no_run
//! use azure_core::credentials::TokenCredential;
//! use azure_identity_k8s::WorkloadIdentityCredential;
//! use azure_identity_k8s::assertion::AwsWebIdentitySourceOptions;
//!
//! # async fn demo() -> azure_core::Result<()> {
//! // AZURE_CLIENT_ID, AZURE_TENANT_ID from the environment; AWS credentials and region from
//! // aws-config's default chain.
//! let credential = WorkloadIdentityCredential::from_aws(None, AwsWebIdentitySourceOptions::default())?;
//! let token = credential.get_token(&["https://storage.azure.com/.default"], None).await?;
//! # Ok(()) }
//! ```
//!
//! The options and the environment variables they fall back to, in the order they are
//! consulted, and how the JWT is cached and bounded in time: [the AWS outbound
//! page](crate::aws_outbound) ("Configuration").

mod client;
mod errors;
mod source;
#[cfg(test)]
mod tests;

pub use errors::AwsStsError;
#[cfg(feature = "doctor")]
pub(crate) use errors::STS_ANSWER_FIX;
pub use source::AwsWebIdentitySource;

use crate::config::Env;
use aws_config::{ConfigLoader, SdkConfig};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// The bound on one `GetWebIdentityToken` call (credential resolution, every attempt, the answer)
/// when the SDK configuration sets no operation time-out of its own. Shorter than the JWT
/// cache's attempt bound (25 s), which is shorter than the credential's default
/// `RefreshPolicy::attempt_timeout` (30 s), so a hung call ends with the SDK's own time-out
/// error first.
pub const STS_OPERATION_TIMEOUT: Duration = Duration::from_secs(20);

/// A function that adjusts aws-config's loader before it loads (HTTP client, retry, profile...).
pub type ConfigLoaderHook = Arc<dyn Fn(ConfigLoader) -> ConfigLoader + Send + Sync>;

/// Options for [`AwsWebIdentitySource`].
pub struct AwsWebIdentitySourceOptions {
    /// The `aud` of the JWT; it must equal the audience of the federated identity credential.
    /// Default: through [`WorkloadIdentityCredential::from_aws`](crate::WorkloadIdentityCredential::from_aws), the credential's expected
    /// audience (`AZURE_FEDERATED_TOKEN_AUDIENCE`, else the cloud's recommended one); otherwise
    /// `api://AzureADTokenExchange`.
    pub audience: Option<String>,
    /// Lifetime requested from STS (`DurationSeconds`), 60 s to 3600 s; default 300 s.
    pub duration: Duration,
    /// `SigningAlgorithm`: `RS256` (default, the only one Entra ID accepts) or `ES384`.
    pub signing_algorithm: String,
    /// The AWS region (`sts.<region>.amazonaws.com`). Overrides the environment and `sdk_config`.
    pub region: Option<String>,
    /// An STS endpoint URL (VPC endpoint, FIPS endpoint, a local emulator). HTTPS only.
    pub endpoint_url: Option<String>,
    /// A complete AWS configuration (credentials, region, HTTP client). When set, aws-config's
    /// loader is not used and the environment is not read for AWS settings.
    pub sdk_config: Option<SdkConfig>,
    /// Adjusts aws-config's loader (when `sdk_config` is unset) before it loads.
    pub configure_loader: Option<ConfigLoaderHook>,
    /// The environment read for AWS settings (default: the process environment).
    pub env: Env,
}

impl Default for AwsWebIdentitySourceOptions {
    fn default() -> Self {
        Self {
            audience: None,
            duration: Duration::from_secs(300),
            signing_algorithm: "RS256".to_string(),
            region: None,
            endpoint_url: None,
            sdk_config: None,
            configure_loader: None,
            env: Env::process(),
        }
    }
}

impl fmt::Debug for AwsWebIdentitySourceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |is: bool| is.then_some("set");
        f.debug_struct("AwsWebIdentitySourceOptions")
            .field("audience", &self.audience)
            .field("duration", &self.duration)
            .field("signing_algorithm", &self.signing_algorithm)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("sdk_config", &set(self.sdk_config.is_some()))
            .field("configure_loader", &set(self.configure_loader.is_some()))
            .field("env", &self.env)
            .finish()
    }
}

/// What [`AwsWebIdentitySource::probe`] found: the claims Entra will match against the
/// federated identity credential.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwsProbe {
    /// The region whose STS answered.
    pub region: String,
    /// The endpoint override in use, if any.
    pub endpoint_url: Option<String>,
    /// `iss`: the account's outbound-federation issuer (the federated credential's issuer).
    pub issuer: String,
    /// `sub`: the caller's role ARN (the federated credential's subject).
    pub subject: String,
    /// `aud` (the federated credential's audience).
    pub audiences: Vec<String>,
    /// When the JWT expires.
    pub expires_at: OffsetDateTime,
}
