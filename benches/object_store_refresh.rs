//! Criterion benchmark: a stream of object_store 0.13 GETs against Azurite (HTTPS, `--oauth
//! basic`) across token refreshes, through `integrations::object_store::TokenCredentialProvider`
//! over this crate's `WorkloadIdentityCredential` and over azure_identity 1.0's, side by side.
//!
//! The emulator issues tokens of 305 s with `refresh_in` 10 s and answers token requests after
//! 200 ms, like a distant Entra. Both credentials run with their default settings and refresh
//! several times during the stream: azure_identity when less than 300 s are left (every 5 s), ours
//! at `refresh_in` less a random jitter of up to 5 % of the lifetime (within 10 s of each fetch).
//! Criterion reports the mean time per GET; each GET's latency is also recorded, and the table
//! printed at the end gives the stream's length, the p50, p99 and maximum, how many GETs took
//! longer than 150 ms (a GET to Azurite takes about a millisecond; only a GET waiting for a token
//! exchange takes that long) and how many token
//! requests were made. A second group, `adapter_hit`, measures what the adapter adds to a cache
//! hit (`get_credential` against the credential's own `get_token`).
//!
//! Run: `cargo bench --bench object_store_refresh --features object_store_0_13` (Azurite must be
//! installed: `npm ci --prefix tests/azurite`). About two minutes. Results: docs/performance.md.

#[path = "../tests/it/common/azurite.rs"]
mod azurite;

mod common;

use azure_core::credentials::TokenCredential;
use azure_identity_k8s::integrations::STORAGE_SCOPE;
use azure_identity_k8s::integrations::object_store::TokenCredentialProvider;
use azure_identity_k8s::{Env, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
use common::{CLIENT, TENANT};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use entra_emulator::{
    AccessTokenOptions, Emulator, Endpoint, Fault, FederatedCredential, ServiceAccountToken,
};
use object_store::azure::{AzureCredential, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path;
use object_store::{Certificate, ClientOptions, CredentialProvider, ObjectStoreExt, PutPayload};
use object_store_0_13 as object_store;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Token exchanges answered after this long.
const ENTRA_LATENCY: Duration = Duration::from_millis(200);
/// A GET taking longer than this waited for a token exchange.
const SLOW: Duration = Duration::from_millis(150);
/// How long criterion measures each implementation (after 3 s of warm-up): several refreshes
/// of each credential.
const MEASURE: Duration = Duration::from_secs(40);

struct Setup {
    emu: Emulator,
    token_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn setup(emu: Emulator) -> Setup {
    let issuer = emu.add_eks_issuer();
    emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(issuer.url(), ServiceAccountToken::default().subject()),
    );
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    // No trailing newline: azure_identity 1.0 does not trim the file.
    std::fs::write(&token_file, issuer.mint(&ServiceAccountToken::default())).unwrap();
    Setup {
        emu,
        token_file,
        _dir: dir,
    }
}

fn ours(s: &Setup) -> Arc<dyn TokenCredential> {
    WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        credential_options: azure_identity::ClientAssertionCredentialOptions {
            client_options: s.emu.client_options(),
        },
        client_id: Some(CLIENT.into()),
        tenant_id: Some(TENANT.into()),
        token_file_path: Some(s.token_file.clone()),
        env: Env::from_pairs::<&str, &str>([]),
        ..Default::default()
    }))
    .unwrap()
}

fn theirs(s: &Setup) -> Arc<dyn TokenCredential> {
    common::azure_identity_credential(&s.emu, &s.token_file)
}

type Maker = fn(&Setup) -> Arc<dyn TokenCredential>;

/// A fresh emulator (tokens every credential wants to refresh within seconds), Azurite with a
/// container, and a store whose adapter wraps `make`'s credential, with one 4 KiB object.
async fn store(make: Maker, path: &Path) -> (Setup, azurite::Azurite, MicrosoftAzure) {
    let s = setup(Emulator::start().await.expect("emulator"));
    s.emu.set_access_token_options(AccessTokenOptions {
        lifetime: Duration::from_secs(305),
        refresh_in: Some(Duration::from_secs(10)),
        ..Default::default()
    });
    let credential = make(&s);
    let azurite = azurite::Azurite::start_with_container(&s.emu, "bench", credential.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ca = Certificate::from_pem(s.emu.ca_pem().as_bytes()).unwrap();
    let store = MicrosoftAzureBuilder::new()
        .with_account(azurite::ACCOUNT)
        .with_container_name("bench")
        .with_endpoint(azurite.account_url())
        .with_client_options(ClientOptions::new().with_root_certificate(ca))
        .with_credentials(Arc::new(TokenCredentialProvider::new(credential)))
        .build()
        .unwrap();
    store
        .put(path, PutPayload::from(vec![7u8; 4096]))
        .await
        .expect("put");
    (s, azurite, store)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let path = Path::from("object");
    let mut rows = Vec::new();
    let mut g = c.benchmark_group("object_store_get_across_refresh");
    g.sample_size(10)
        .measurement_time(MEASURE)
        .sampling_mode(SamplingMode::Flat);
    for (name, make) in [
        ("azure_identity_k8s", ours as Maker),
        ("azure_identity 1.0", theirs as Maker),
    ] {
        let (s, _azurite, store) = rt.block_on(store(make, &path));
        // From now on every token exchange takes ENTRA_LATENCY.
        s.emu
            .set_fault(Endpoint::Token, Some(Fault::Delay(ENTRA_LATENCY)));
        let before = s.emu.request_count(Endpoint::Token);
        let latencies = Mutex::new(Vec::new());
        g.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (store, path, latencies) = (&store, &path, &latencies);
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let t = Instant::now();
                        let bytes = store.get(path).await.expect("get").bytes().await;
                        let d = t.elapsed();
                        assert_eq!(bytes.expect("body").len(), 4096);
                        latencies.lock().unwrap().push(d);
                        total += d;
                    }
                    total
                }
            })
        });
        let mut lat = latencies.into_inner().unwrap();
        if lat.is_empty() {
            continue; // filtered out on the command line
        }
        lat.sort();
        let slow = lat.iter().filter(|d| **d > SLOW).count();
        let length: Duration = lat.iter().sum();
        rows.push(format!(
            "| {name} | {} in {:.0} s | {} | {} | {} | {slow} | {} |",
            lat.len(),
            length.as_secs_f64(),
            ms(quantile(&lat, 0.5)),
            ms(quantile(&lat, 0.99)),
            ms(*lat.last().unwrap()),
            s.emu.request_count(Endpoint::Token) - before
        ));
    }
    g.finish();

    // What the adapter adds to a cache hit: object_store's `get_credential` against the
    // credential's own `get_token`, same credential, same token.
    let (s, _azurite, _store) = rt.block_on(store(ours, &path));
    let credential = ours(&s);
    let provider = TokenCredentialProvider::<AzureCredential>::new(credential.clone());
    rt.block_on(provider.get_credential()).unwrap();
    let mut g = c.benchmark_group("adapter_hit");
    g.bench_function("get_token (azure_identity_k8s)", |b| {
        b.to_async(&rt)
            .iter(|| credential.get_token(&[STORAGE_SCOPE], None))
    });
    g.bench_function("get_credential (adapter over it)", |b| {
        b.to_async(&rt).iter(|| provider.get_credential())
    });
    g.finish();

    println!(
        "\n| credential behind the adapter | GETs | p50 | p99 | max | GETs > {} ms | token requests |\n|---|---|---|---|---|---|---|",
        SLOW.as_millis()
    );
    for row in rows {
        println!("{row}");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
