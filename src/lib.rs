#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod assertion;
mod cache;
pub mod chain;
mod clock;
pub mod config;
mod credential;
pub mod doctor;
mod entra;
mod error;
pub mod jwt;
pub mod setup;

pub use cache::RefreshPolicy;
pub use chain::{
    Attempt, AttemptOutcome, ChainError, ChainSource, ChainedTokenCredential,
    ChainedTokenCredentialOptions, CredentialUnavailable, DefaultAzureCredential,
    DefaultAzureCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
};
pub use config::Env;
pub use credential::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
pub use error::{CredentialError, ErrorCategory};
