//! object_store 0.13 and 0.14 against Azurite (HTTPS, `--oauth basic`, a certificate from the
//! emulator's CA) with `integrations::object_store::TokenCredentialProvider` over this crate's
//! credential: every request carries a token our credential got from the emulator's Entra.
//!
//! One suite (`tests/it/object_store/suite.rs`) runs once per object_store version, each version
//! imported as `object_store`. If Node or Azurite is missing these tests FAIL, saying how to
//! install it.

#[cfg(feature = "object_store_0_13")]
mod v0_13 {
    use ::object_store_0_13 as object_store;
    include!("object_store/suite.rs");
}

#[cfg(feature = "object_store_0_14")]
mod v0_14 {
    use ::object_store_0_14 as object_store;
    include!("object_store/suite.rs");
}
