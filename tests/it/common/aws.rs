//! AWS outbound federation fixture (feature `aws`): an AWS account with outbound federation, a
//! role, and the fixture's application federated with (the account's issuer, the role ARN).

use super::*;
use aws_sdk_sts::config::SharedHttpClient;
use aws_smithy_http_client::tls;
use azure_identity_k8s::assertion::AwsWebIdentitySourceOptions;
use entra_emulator::{AwsAccount, AwsRole};

pub const ACCOUNT: &str = "123456789012";
pub const ROLE: &str = "WorkloadRole";

pub struct Aws {
    pub fx: Fixture,
    pub account: AwsAccount,
    pub role: AwsRole,
}

impl Aws {
    pub async fn new() -> Self {
        let fx = Fixture::new().await;
        let account = fx.emu.add_aws_account(ACCOUNT);
        let role = account.add_role(ROLE);
        fx.emu.remove_federated_credentials(TENANT, CLIENT);
        fx.emu.add_federated_credential(
            TENANT,
            CLIENT,
            FederatedCredential::new(account.issuer_url(), role.role_arn.clone()),
        );
        Aws { fx, account, role }
    }

    /// Static credentials, region and STS endpoint through `Env` (never the process
    /// environment); an HTTPS client for the AWS SDK that trusts only the emulator's CA.
    pub fn aws_options(&self) -> AwsWebIdentitySourceOptions {
        let http = trusting(self.fx.emu.ca_pem());
        AwsWebIdentitySourceOptions {
            env: Env::from_pairs([
                ("AWS_ACCESS_KEY_ID", self.role.access_key_id.clone()),
                ("AWS_SECRET_ACCESS_KEY", self.role.secret_access_key.clone()),
                ("AWS_SESSION_TOKEN", self.role.session_token.clone()),
                ("AWS_REGION", "us-east-1".to_string()),
                ("AWS_ENDPOINT_URL_STS", self.fx.emu.sts_endpoint_url()),
            ]),
            configure_loader: Some(Arc::new(move |loader| loader.http_client(http.clone()))),
            ..Default::default()
        }
    }
}

/// An HTTPS client for the AWS SDK that trusts only `ca_pem` (the emulator's CA, PEM).
pub fn trusting(ca_pem: String) -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(
                    tls::TrustStore::empty().with_pem_certificate(ca_pem.into_bytes()),
                )
                .build()
                .expect("TLS context"),
        )
        .build_https()
}
