//! Side-by-side comparison of this crate's `WorkloadIdentityCredential` and
//! `azure_identity::WorkloadIdentityCredential` (1.0), in one process, against the emulator.
//!
//! Run: `RUST_BACKTRACE=0 cargo bench --bench compare` (a few minutes: some scenarios measure how
//! long the official credential keeps callers waiting, capped at `CAP`). Results are printed as a
//! table; see docs/performance.md for the numbers of the last run.

mod common;

use azure_core::credentials::{AccessToken, TokenCredential};
use azure_identity_k8s::{
    Env, RefreshPolicy, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use common::{CLIENT, TENANT};
use entra_emulator::{
    AccessTokenOptions, Emulator, Endpoint, Fault, FederatedCredential, ServiceAccountToken,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

// ---- allocation counting -------------------------------------------------------------------

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---- setup -----------------------------------------------------------------------------------

const A: &str = "https://storage.azure.com/.default";
const B: &str = "https://vault.azure.net/.default";
/// Longest we wait for any single caller of the official credential.
const CAP: Duration = Duration::from_secs(40);

struct Setup {
    emu: Emulator,
    issuer: entra_emulator::Issuer,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

async fn setup() -> Setup {
    let emu = Emulator::start().await.expect("emulator");
    let issuer = emu.add_eks_issuer();
    emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(issuer.url(), ServiceAccountToken::default().subject()),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    write_token(&issuer, &path);
    Setup {
        emu,
        issuer,
        _dir: dir,
        path,
    }
}

fn write_token(issuer: &entra_emulator::Issuer, path: &Path) -> String {
    // No trailing newline: azure_identity 1.0 does not trim the file.
    let t = issuer.mint(&ServiceAccountToken::default());
    std::fs::write(path, &t).unwrap();
    t
}

fn ours(s: &Setup) -> Arc<dyn TokenCredential> {
    WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        credential_options: azure_identity::ClientAssertionCredentialOptions {
            client_options: s.emu.client_options(),
        },
        client_id: Some(CLIENT.into()),
        tenant_id: Some(TENANT.into()),
        token_file_path: Some(s.path.clone()),
        env: Env::from_pairs::<&str, &str>([]),
        refresh_policy: RefreshPolicy::default(),
        ..Default::default()
    }))
    .unwrap()
}

fn theirs(s: &Setup) -> Arc<dyn TokenCredential> {
    common::azure_identity_credential(&s.emu, &s.path)
}

type Maker = fn(&Setup) -> Arc<dyn TokenCredential>;
const IMPLS: [(&str, Maker); 2] = [("azure_identity_k8s", ours), ("azure_identity 1.0", theirs)];

fn p(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

/// `n` concurrent callers of `scope`; each caller's latency and whether it failed.
async fn crowd(
    cred: &Arc<dyn TokenCredential>,
    scope: &'static str,
    n: usize,
) -> (Vec<Duration>, usize) {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let c = cred.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = tokio::time::timeout(CAP, c.get_token(&[scope], None)).await;
            (t.elapsed(), !matches!(r, Ok(Ok(_))))
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (d, failed) = t.await.unwrap();
        lat.push(d);
        errors += usize::from(failed);
    }
    (lat, errors)
}

// ---- scenarios -------------------------------------------------------------------------------

async fn hit_path(rows: &mut Vec<[String; 4]>) {
    const N: u32 = 200_000;
    let s = setup().await;
    // The floor: load an Arc'd token, check its expiry, clone it.
    let slot: RwLock<Arc<AccessToken>> =
        RwLock::new(Arc::new(ours(&s).get_token(&[A], None).await.unwrap()));
    let floor = {
        let (a0, t) = (ALLOCS.load(Ordering::Relaxed), Instant::now());
        for _ in 0..N {
            let tok = Arc::clone(&slot.read().unwrap());
            assert!(tok.expires_on > time::OffsetDateTime::now_utc());
            std::hint::black_box(AccessToken::clone(&tok));
        }
        (
            t.elapsed() / N,
            (ALLOCS.load(Ordering::Relaxed) - a0) as f64 / N as f64,
        )
    };
    rows.push([
        "cache hit: floor (load Arc + expiry check + clone)".into(),
        format!("{} ns, {:.1} allocs", floor.0.as_nanos(), floor.1),
        String::new(),
        String::new(),
    ]);
    let mut res = Vec::new();
    for (_, make) in IMPLS {
        let cred = make(&s);
        cred.get_token(&[A], None).await.unwrap();
        let (a0, b0, t) = (
            ALLOCS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
            Instant::now(),
        );
        for _ in 0..N {
            std::hint::black_box(cred.get_token(&[A], None).await.unwrap());
        }
        let per = t.elapsed() / N;
        let allocs = (ALLOCS.load(Ordering::Relaxed) - a0) as f64 / N as f64;
        let bytes = (BYTES.load(Ordering::Relaxed) - b0) as f64 / N as f64;
        res.push((per, allocs, bytes));
    }
    rows.push([
        "cache hit: time, allocations per hit".into(),
        format!(
            "{} ns ({:.2}x floor), {:.1} allocs / {:.0} B",
            res[0].0.as_nanos(),
            res[0].0.as_secs_f64() / floor.0.as_secs_f64(),
            res[0].1,
            res[0].2
        ),
        format!(
            "{} ns ({:.2}x floor), {:.1} allocs / {:.0} B",
            res[1].0.as_nanos(),
            res[1].0.as_secs_f64() / floor.0.as_secs_f64(),
            res[1].1,
            res[1].2
        ),
        format!(
            "{:.2}x faster",
            res[1].0.as_secs_f64() / res[0].0.as_secs_f64()
        ),
    ]);
}

async fn cold_crowd(rows: &mut Vec<[String; 4]>) {
    let mut cells = Vec::new();
    for (_, make) in IMPLS {
        let s = setup().await;
        let cred = make(&s);
        let (mut lat, errors) = crowd(&cred, A, 1000).await;
        cells.push(format!(
            "{} request(s), {errors} errors, p99 {}",
            s.emu.request_count(Endpoint::Token),
            ms(p(&mut lat, 0.99))
        ));
    }
    rows.push([
        "1000 concurrent cold callers".into(),
        cells[0].clone(),
        cells[1].clone(),
        String::new(),
    ]);
}

/// A token in its refresh window for both credentials: lifetime 305 s (azure_identity refreshes
/// with 300 s left) and refresh_in 1 s (ours honours it), after waiting 6 s.
async fn in_refresh_window(make: Maker) -> (Setup, Arc<dyn TokenCredential>) {
    let s = setup().await;
    s.emu.set_access_token_options(AccessTokenOptions {
        lifetime: Duration::from_secs(305),
        refresh_in: Some(Duration::from_secs(1)),
        ..Default::default()
    });
    let cred = make(&s);
    cred.get_token(&[A], None).await.unwrap();
    (s, cred)
}

async fn refresh_under_load(rows: &mut Vec<[String; 4]>) {
    let mut cells = Vec::new();
    let mut fail_cells = Vec::new();
    for (_, make) in IMPLS {
        // Slow endpoint while the token is valid.
        let (s, cred) = in_refresh_window(make).await;
        let (mut steady, _) = crowd(&cred, A, 64).await;
        let steady_p99 = p(&mut steady, 0.99);
        tokio::time::sleep(Duration::from_secs(6)).await;
        s.emu.set_fault(
            Endpoint::Token,
            Some(Fault::Delay(Duration::from_millis(200))),
        );
        let before = s.emu.request_count(Endpoint::Token);
        let (mut lat, errors) = crowd(&cred, A, 64).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        cells.push(format!(
            "p99 {} vs steady {} ({:.0}x), max {}, {errors} errors, {} request(s)",
            ms(p(&mut lat, 0.99)),
            ms(steady_p99),
            p(&mut lat, 0.99).as_secs_f64() / steady_p99.as_secs_f64().max(1e-9),
            ms(p(&mut lat, 1.0)),
            s.emu.request_count(Endpoint::Token) - before
        ));

        // Failing endpoint while the token is valid.
        let (s, cred) = in_refresh_window(make).await;
        tokio::time::sleep(Duration::from_secs(6)).await;
        s.emu.set_fault(Endpoint::Token, Some(Fault::Status(500)));
        let (mut lat, errors) = crowd(&cred, A, 3).await;
        fail_cells.push(format!(
            "{errors} of 3 callers failed, max latency {}",
            ms(p(&mut lat, 1.0))
        ));
    }
    rows.push([
        "64 callers, refresh in flight (endpoint +200 ms, token valid)".into(),
        cells[0].clone(),
        cells[1].clone(),
        String::new(),
    ]);
    rows.push([
        "endpoint answering 500 while the token is valid".into(),
        fail_cells[0].clone(),
        fail_cells[1].clone(),
        String::new(),
    ]);
}

async fn scope_isolation(rows: &mut Vec<[String; 4]>) {
    let mut cells = Vec::new();
    for (_, make) in IMPLS {
        let (s, cred) = in_refresh_window(make).await;
        // B is fresh (long lifetime); A is in its refresh window.
        s.emu
            .set_access_token_options(AccessTokenOptions::default());
        cred.get_token(&[B], None).await.unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
        s.emu
            .set_fault(Endpoint::Token, Some(Fault::Delay(Duration::from_secs(2))));
        let a = {
            let c = cred.clone();
            tokio::spawn(async move { c.get_token(&[A], None).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        cred.get_token(&[B], None).await.unwrap();
        let b = t.elapsed();
        let _ = a.await;
        cells.push(format!("B served in {}", ms(b)));
    }
    rows.push([
        "scope B while scope A refreshes (endpoint +2 s)".into(),
        cells[0].clone(),
        cells[1].clone(),
        String::new(),
    ]);
}

async fn no_valid_token(rows: &mut Vec<[String; 4]>) {
    let mut cells = Vec::new();
    for (_, make) in IMPLS {
        let s = setup().await;
        s.emu.set_fault(Endpoint::Token, Some(Fault::Status(503)));
        let cred = make(&s);
        let (mut lat, errors) = crowd(&cred, A, 8).await;
        let first = p(&mut lat, 0.0);
        let last = p(&mut lat, 1.0);
        cells.push(format!(
            "{errors}/8 errors, first {} last {} (cap {} s), {} request(s)",
            ms(first),
            ms(last),
            CAP.as_secs(),
            s.emu.request_count(Endpoint::Token)
        ));
    }
    rows.push([
        "no valid token, endpoint 503, 8 callers".into(),
        cells[0].clone(),
        cells[1].clone(),
        String::new(),
    ]);
}

async fn rotation(rows: &mut Vec<[String; 4]>) {
    let mut cells = Vec::new();
    for (_, make) in IMPLS {
        let s = setup().await;
        let cred = make(&s);
        cred.get_token(&[A], None).await.unwrap();
        let new = write_token(&s.issuer, &s.path);
        cred.get_token(&[B], None).await.unwrap();
        let sent = s
            .emu
            .requests()
            .into_iter()
            .rfind(|r| r.endpoint == Endpoint::Token)
            .map(|r| r.form["client_assertion"].clone());
        cells.push(if sent.as_deref() == Some(new.as_str()) {
            "new token sent".to_string()
        } else {
            "OLD token sent".to_string()
        });
    }
    rows.push([
        "token file rotated, next exchange".into(),
        cells[0].clone(),
        cells[1].clone(),
        String::new(),
    ]);
}

fn main() {
    // `cargo bench` passes `--bench`; any filter argument is ignored.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut rows: Vec<[String; 4]> = Vec::new();
        hit_path(&mut rows).await;
        cold_crowd(&mut rows).await;
        rotation(&mut rows).await;
        scope_isolation(&mut rows).await;
        refresh_under_load(&mut rows).await;
        no_valid_token(&mut rows).await;
        println!(
            "\n| measure | azure_identity_k8s | azure_identity 1.0 | ratio |\n|---|---|---|---|"
        );
        for r in rows {
            println!("| {} | {} | {} | {} |", r[0], r[1], r[2], r[3]);
        }
    });
}
