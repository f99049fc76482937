//! What the benchmarks share: the emulator's tenant and client, and azure_identity's
//! credential over the same token file, built the way a user of azure_identity 1.0 builds it.

use azure_core::credentials::TokenCredential;
use entra_emulator::Emulator;
use std::path::Path;
use std::sync::Arc;

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT: &str = "3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11";

/// `azure_identity::WorkloadIdentityCredential` against `emu`, reading `token_file`.
#[allow(clippy::needless_update)] // needless on azure_identity 1.0 only
pub fn azure_identity_credential(emu: &Emulator, token_file: &Path) -> Arc<dyn TokenCredential> {
    azure_identity::WorkloadIdentityCredential::new(Some(
        azure_identity::WorkloadIdentityCredentialOptions {
            credential_options: azure_identity::ClientAssertionCredentialOptions {
                client_options: emu.client_options(),
            },
            client_id: Some(CLIENT.into()),
            tenant_id: Some(TENANT.into()),
            token_file_path: Some(token_file.to_path_buf()),
            // azure_identity 1.1 adds fields (enable_proxy, proxy_client).
            ..Default::default()
        },
    ))
    .unwrap()
}
