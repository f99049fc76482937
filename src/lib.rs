#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod assertion;
mod cache;
mod clock;
mod config;
mod credential;
mod entra;
mod error;
mod jwt;

pub use cache::RefreshPolicy;
pub use credential::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
pub use error::{CredentialError, ErrorCategory};
