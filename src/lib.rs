#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod assertion;
mod cache;
mod clock;
pub mod config;
mod credential;
pub mod doctor;
mod entra;
mod error;
pub mod jwt;
pub mod setup;

pub use cache::RefreshPolicy;
pub use config::Env;
pub use credential::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
pub use error::{CredentialError, ErrorCategory};
