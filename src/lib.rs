#![doc = include_str!(concat!(env!("OUT_DIR"), "/README.md"))]
#![warn(missing_docs)]

pub mod assertion;
#[cfg(feature = "blocking")]
pub mod blocking;
mod cache;
pub mod chain;
mod clock;
pub mod cloud;
pub mod config;
mod credential;
#[cfg(feature = "doctor")]
pub mod doctor;
mod entra;
mod error;
mod escape;
// The documentation pages: docs/*.md with their links rewritten for docs.rs by build.rs. Error
// messages link these module paths (src/problem.rs): never move one.
#[doc = include_str!(concat!(env!("OUT_DIR"), "/troubleshooting.md"))]
pub mod troubleshooting {}
#[doc = include_str!(concat!(env!("OUT_DIR"), "/aws-outbound.md"))]
pub mod aws_outbound {}
/// Documentation pages, no items: setting up [EKS](guides::eks) or a
/// [self-managed cluster](guides::self_managed), the [security](guides::security) rules,
/// [`DefaultAzureCredential`'s chain](guides::chain), [reliability](guides::reliability),
/// [performance](guides::performance), [raw-token recipes](guides::recipes), Azure
/// [next to IRSA or EKS Pod Identity](guides::irsa), [several clusters](guides::multi_cluster),
/// [Helm values](guides::helm) and the [architecture](guides::architecture).
pub mod guides {
    #[doc = include_str!(concat!(env!("OUT_DIR"), "/security.md"))]
    pub mod security {}
    #[doc = include_str!(concat!(env!("OUT_DIR"), "/self-managed.md"))]
    pub mod self_managed {}
    #[doc = include_str!(concat!(env!("OUT_DIR"), "/eks.md"))]
    pub mod eks {}
    #[doc = include_str!(concat!(env!("OUT_DIR"), "/chain.md"))]
    pub mod chain {}
    #[doc = include_str!(concat!(env!("OUT_DIR"), "/reliability.md"))]
    pub mod reliability {}
    #[doc = include_str!(concat!(env!("OUT_DIR"), "/performance.md"))]
    pub mod performance {}
    // Its snippets that need only this crate are doctests (the others are `ignore`).
    #[doc = include_str!(concat!(env!("OUT_DIR"), "/recipes.md"))]
    pub mod recipes {}
    #[doc = include_str!(concat!(env!("OUT_DIR"), "/irsa.md"))]
    pub mod irsa {}
    #[doc = include_str!(concat!(env!("OUT_DIR"), "/multi-cluster.md"))]
    pub mod multi_cluster {}
    #[doc = include_str!(concat!(env!("OUT_DIR"), "/helm.md"))]
    pub mod helm {}
    #[doc = include_str!(concat!(env!("OUT_DIR"), "/architecture.md"))]
    pub mod architecture {}
}
mod http;
pub mod integrations;
pub mod jwt;
mod problem;
mod scope;
/// Seams for tests (cargo feature `test-util`; not for production): [`ManualClock`](test_util::ManualClock),
/// which [`WorkloadIdentityCredential::with_clock`] and `AwsWebIdentitySource::with_test_clock` take.
#[cfg(feature = "test-util")]
pub mod test_util {
    pub use crate::clock::ManualClock;
}
#[cfg(feature = "doctor")]
pub mod setup;
mod shell;

/// Not part of the API: entry points for the fuzz targets (`fuzz/`) and the property tests
/// (`tests/proptest*.rs`) into crate-internal parsers. May change or vanish in any release.
#[cfg(any(fuzzing, feature = "__fuzz"))]
#[doc(hidden)]
pub mod __fuzz {
    use crate::error::CredentialError;
    use azure_core::http::{StatusCode, Url};

    /// `jwt::decode` (unverified): the claims, or the description of what is wrong with the
    /// token's shape.
    pub fn decode(token: &str) -> Result<crate::jwt::Claims, String> {
        crate::jwt::decode(token).map(|d| d.claims)
    }

    fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid timestamp")
    }

    /// `entra::parse_success` at a fixed instant; `Ok` holds `(expires_in, refresh_in)` in seconds.
    pub fn parse_success(status: u16, body: &[u8]) -> Result<(i64, Option<i64>), CredentialError> {
        crate::entra::parse_success(StatusCode::from(status), body, now()).map(|t| {
            (
                (t.token.expires_on - now()).whole_seconds(),
                t.refresh_in.map(|d| d.whole_seconds()),
            )
        })
    }

    /// `entra::parse_error` with a fixed context.
    pub fn parse_error(status: u16, retry_after: Option<&str>, body: &[u8]) -> CredentialError {
        let endpoint =
            Url::parse("https://login.microsoftonline.com/t/oauth2/v2.0/token").expect("valid URL");
        let claims = crate::jwt::Claims::default();
        let ctx = crate::entra::ErrorContext {
            client_id: "00000000-0000-0000-0000-000000000000",
            tenant_id: "t",
            endpoint: &endpoint,
            scope: "https://storage.azure.com/.default",
            claims: Some(&claims),
            header: None,
            origin: "/var/run/secrets/azure/tokens/azure-identity-token",
        };
        crate::entra::parse_error(StatusCode::from(status), retry_after, body, &ctx)
    }

    /// The scope check every `get_token` starts with.
    pub fn validate_scopes(scopes: &[&str]) -> Result<(), CredentialError> {
        crate::scope::validate_scopes(scopes)
    }
}

pub use cache::{RefreshHealth, RefreshPolicy};
pub use chain::{
    ChainError, ChainSource, ChainedTokenCredential, ChainedTokenCredentialOptions,
    CredentialUnavailable, DefaultAzureCredential, DefaultAzureCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions,
};
pub use config::Env;
pub use credential::{
    TokenStatus, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions, token_retry_options,
};
pub use error::{CredentialError, ErrorCategory};
pub use problem::{ProblemId, UnknownProblemId};
