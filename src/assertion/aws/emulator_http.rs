//! An HTTPS client for the AWS SDK that trusts only the emulator's CA. Tests only: the JWT cache's
//! unit tests (`jwt_cache_tests`); the integration tests have the same in `tests/it/common/aws.rs`.

use aws_sdk_sts::config::SharedHttpClient;
use aws_smithy_http_client::tls;

/// A client trusting only `ca_pem` (the emulator's CA, PEM).
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
