//! The integration tests: one binary, one module per area. Each runs the public API as an outside
//! crate would, mostly against the emulator over HTTPS (`common` has the fixture). A module that
//! needs a cargo feature is compiled only with it (`cargo test --all-features` runs them all).
//! `soak.rs` in this directory is not one of them: it is a binary of its own, for its counting
//! allocator (Cargo.toml's [[test]] "soak"), and shares `fault_matrix/support.rs` with this one.

mod common;

#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "azure_core_0_21")]
mod azure_core_0_21;
#[cfg(feature = "azure_core_0_31")]
mod azure_core_0_31;
mod azurite;
#[cfg(feature = "blocking")]
mod blocking;
#[cfg(feature = "test-util")]
mod cache_trust;
mod cancellation;
mod catalogue;
mod chain;
mod credential;
mod doc_links;
#[cfg(feature = "doctor")]
mod doctor;
#[cfg(all(feature = "doctor", feature = "aws"))]
mod doctor_aws;
mod drop_in;
#[cfg(unix)]
mod environment;
#[cfg(feature = "test-util")]
mod fault_matrix;
mod faults;
mod faults_leaks;
mod faults_security;
mod graph;
mod guides;
#[cfg(feature = "doctor")]
mod howto;
#[cfg(all(feature = "aws", feature = "test-util"))]
mod jwt_cache;
mod keyvault;
mod leaks;
#[cfg(any(feature = "object_store_0_13", feature = "object_store_0_14"))]
mod object_store;
#[cfg(feature = "opendal")]
mod opendal;
#[cfg(feature = "__fuzz")]
mod proptest;
#[cfg(feature = "doctor")]
mod setup;
mod transport;
