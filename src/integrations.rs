//! Adapters that give a [`TokenCredential`](azure_core::credentials::TokenCredential) (this crate's
//! credentials, the chain, or any other) to the data libraries that reach Azure Storage without the
//! Azure SDK crates, and to clients built on older azure_core lines:
//!
//! - `object_store` (feature `object_store_0_13` or `object_store_0_14`, after the object_store
//!   version): object_store's Azure `CredentialProvider`, for DataFusion, delta-rs, polars and lance.
//! - `opendal` (feature `opendal`): reqsign's `ProvideCredential` for OpenDAL's `azblob` and
//!   `azdls` services.
//! - `azure_core_0_21`, `azure_core_0_31` (features of the same names): the `TokenCredential`
//!   traits of azure_core 0.21 (the legacy SDK crates) and 0.31 (redis 1.x); their clients name
//!   the scopes.
//!
//! The first two ask the credential for [`STORAGE_SCOPE`] unless told otherwise. That scope names
//! the Azure Storage application, which has the same identifier in every cloud (global Azure,
//! Azure Government, Azure operated by 21Vianet); a token can instead be limited to one account
//! with the account's own scope, whose host follows the cloud:
//!
//! | cloud | account-scoped storage scope |
//! |---|---|
//! | global | `https://ACCOUNT.blob.core.windows.net/.default` |
//! | Azure Government | `https://ACCOUNT.blob.core.usgovcloudapi.net/.default` |
//! | Azure operated by 21Vianet (China) | `https://ACCOUNT.blob.core.chinacloudapi.cn/.default` |
//!
//! In a sovereign cloud the credential must also talk to that cloud's Entra authority host
//! (`AZURE_AUTHORITY_HOST`, for example `https://login.chinacloudapi.cn`).

#[cfg(feature = "azure_core_0_21")]
pub mod azure_core_0_21;
#[cfg(feature = "azure_core_0_31")]
pub mod azure_core_0_31;
#[cfg(any(feature = "object_store_0_13", feature = "object_store_0_14"))]
pub mod object_store;
#[cfg(feature = "opendal")]
pub mod opendal;

/// The default scope of both adapters: `https://storage.azure.com/.default` (Azure Storage, every
/// account the identity has a role on, in every cloud).
pub const STORAGE_SCOPE: &str = crate::cloud::STORAGE_SCOPE;
