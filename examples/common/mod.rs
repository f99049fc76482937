//! Shared by the examples: a local "pod" whose workload identity is served by the emulator.
#![allow(dead_code)]

use azure_core::http::ClientOptions;
use azure_identity::ClientAssertionCredentialOptions;
use azure_identity_k8s::{Env, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
use entra_emulator::{Emulator, FederatedCredential, ServiceAccountToken};
use std::path::PathBuf;
use std::sync::Arc;

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT: &str = "3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11";

/// The emulator with an EKS-shaped issuer, an application with a federated credential for
/// `system:serviceaccount:default:workload`, and the projected token the kubelet would write.
pub struct LocalPod {
    pub emu: Emulator,
    pub token_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl LocalPod {
    pub async fn start() -> std::io::Result<Self> {
        let emu = Emulator::start().await?;
        let issuer = emu.add_eks_issuer();
        emu.add_federated_credential(
            TENANT,
            CLIENT,
            FederatedCredential::new(issuer.url(), ServiceAccountToken::default().subject()),
        );
        let dir = tempfile::tempdir()?;
        let token_file = dir.path().join("azure-identity-token");
        std::fs::write(&token_file, issuer.mint(&ServiceAccountToken::default()))?;
        Ok(Self {
            emu,
            token_file,
            _dir: dir,
        })
    }

    /// The pod's environment, as the Azure Workload Identity webhook would set it.
    pub fn env(&self) -> Env {
        Env::from_pairs([
            ("AZURE_CLIENT_ID", CLIENT.to_string()),
            ("AZURE_TENANT_ID", TENANT.to_string()),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                self.token_file.display().to_string(),
            ),
            ("AZURE_AUTHORITY_HOST", self.emu.authority_host()),
        ])
    }

    /// HTTP options whose transport trusts the emulator's CA.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            transport: Some(self.emu.transport()),
            ..Default::default()
        }
    }

    /// `WorkloadIdentityCredential::new` as in the pod.
    pub fn credential(&self) -> azure_core::Result<Arc<WorkloadIdentityCredential>> {
        WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: self.client_options(),
            },
            env: self.env(),
            ..Default::default()
        }))
    }
}
