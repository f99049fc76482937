//! Criterion benchmark of the cache-hit path: this crate, azure_identity 1.0, and the floor
//! (load an Arc'd token, check its expiry, clone it). Run: `cargo bench --bench hit_path`.

mod common;

use azure_core::credentials::{AccessToken, TokenCredential};
use azure_identity_k8s::{Env, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
use common::{CLIENT, TENANT};
use criterion::{Criterion, criterion_group, criterion_main};
use entra_emulator::{Emulator, FederatedCredential, ServiceAccountToken};
use std::sync::{Arc, RwLock};

const SCOPE: &str = "https://storage.azure.com/.default";

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let (emu, ours, theirs) = rt.block_on(async {
        let emu = Emulator::start().await.unwrap();
        let issuer = emu.add_eks_issuer();
        emu.add_federated_credential(
            TENANT,
            CLIENT,
            FederatedCredential::new(issuer.url(), ServiceAccountToken::default().subject()),
        );
        std::fs::write(&path, issuer.mint(&ServiceAccountToken::default())).unwrap();
        let ours: Arc<dyn TokenCredential> =
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: azure_identity::ClientAssertionCredentialOptions {
                    client_options: emu.client_options(),
                },
                client_id: Some(CLIENT.into()),
                tenant_id: Some(TENANT.into()),
                token_file_path: Some(path.clone()),
                env: Env::from_pairs::<&str, &str>([]),
                ..Default::default()
            }))
            .unwrap();
        #[allow(clippy::needless_update)] // needless on azure_identity 1.0 only
        let theirs = common::azure_identity_credential(&emu, &path);
        ours.get_token(&[SCOPE], None).await.unwrap();
        theirs.get_token(&[SCOPE], None).await.unwrap();
        (emu, ours, theirs)
    });
    let slot: RwLock<Arc<AccessToken>> = RwLock::new(Arc::new(
        rt.block_on(ours.get_token(&[SCOPE], None)).unwrap(),
    ));

    let mut g = c.benchmark_group("cache_hit");
    g.bench_function("floor", |b| {
        b.iter(|| {
            let tok = Arc::clone(&slot.read().unwrap());
            assert!(tok.expires_on > time::OffsetDateTime::now_utc());
            AccessToken::clone(&tok)
        })
    });
    g.bench_function("azure_identity_k8s", |b| {
        b.to_async(&rt).iter(|| ours.get_token(&[SCOPE], None))
    });
    g.bench_function("azure_identity", |b| {
        b.to_async(&rt).iter(|| theirs.get_token(&[SCOPE], None))
    });
    g.finish();
    drop(emu);
}

criterion_group!(benches, bench);
criterion_main!(benches);
