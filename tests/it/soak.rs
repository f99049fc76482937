//! The soak: 24 simulated hours of one credential serving many concurrent callers for several
//! scopes, with service-account token rotation, access-token expiry and about 10 % of token
//! requests failing (a test binary of its own, for its counting allocator; numbers in `docs/reliability.md`).
//!
//! * Time: the credential runs on a `test_util::ManualClock` advanced in
//!   15-second steps; the emulator answers over real HTTPS with 3599-second access tokens (whose
//!   expiry the credential computes with its own clock).
//! * Rotation: the projected volume is rotated every 2880 simulated seconds (80 % of a one-hour
//!   token, the kubelet's rule). The emulator checks the service-account token's `exp`/`nbf`
//!   against real time and the credential against simulated time, so the tokens are minted with
//!   a 26-hour lifetime that both clocks accept; what is tested is that every exchange sends the
//!   token current at that moment.
//! * Failures: before each token request, with probability 0.1 (seeded RNG) a one-shot fault
//!   (500, 502, 503, 429 with either Retry-After form, 503 with Retry-After, reset, truncated,
//!   HTML, empty) is queued.
//! * Wall clock: stepped by +1 h and -1 h twice each ([`WALL_JUMPS`]); nothing may change.
//! * Callers: 16 per step, spread over 3 scopes (whose first callers arrive 0, 17 and 34
//!   simulated minutes in, so their refreshes do not coincide), each polled once to see whether
//!   it would have had to wait.
//! * Memory: live heap bytes, counted by this binary's global allocator, sampled every simulated
//!   hour (the soak is the binary's only test, so no other test's allocations are counted).
//!
//! Run it with the report: `cargo test --all-features --test soak -- --nocapture`. Its source sits in
//! tests/it/ beside the `it` binary's modules, but it is a binary of its own (Cargo.toml).
#![cfg(feature = "test-util")]

// The fault matrix's support module of the `it` binary, the same file: this binary's root sits
// in tests/it/ (Cargo.toml's [[test]] "soak") so that its modules resolve there too.
#[allow(dead_code)] // the soak uses part of it
mod fault_matrix {
    pub mod support;
}

use entra_emulator::{Endpoint, Fault, ProjectedVolume, RetryAfter};
use fault_matrix::support::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

/// Counts live heap bytes (every allocation of this test binary).
struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

static SCOPES: [[&str; 1]; 3] = [
    ["https://storage.azure.com/.default"],
    ["https://vault.azure.net/.default"],
    ["https://graph.microsoft.com/.default"],
];
/// The step at which each scope's first caller arrives (about 17 minutes apart), so the scopes'
/// refreshes do not fall on the same steps.
const SCOPE_START_STEPS: [i64; 3] = [0, 67, 134];
const STEP_SECS: i64 = 15;
const HOURS: i64 = 24;
const CALLERS_PER_STEP: usize = 16;
const ROTATE_EVERY_SECS: i64 = 2880;
const FAILURE_RATE: f64 = 0.10;
const ACCESS_TOKEN_SECS: i64 = 3599;
/// (simulated second, wall-clock step in seconds): ±1 h, alternating, so the wall clock is never
/// behind the real time the service-account tokens were minted at.
const WALL_JUMPS: [(i64, i64); 4] = [
    (3 * 3600, 3600),
    (9 * 3600 + 5 * 60, -3600),
    (15 * 3600 + 10 * 60, 3600),
    (21 * 3600 + 15 * 60, -3600),
];

/// SplitMix64: a seeded, dependency-free RNG (reproducible runs).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn fault(&mut self) -> Fault {
        let faults = [
            Fault::Status(500),
            Fault::Status(502),
            Fault::Status(503),
            Fault::Throttle {
                retry_after: RetryAfter::Seconds(5),
            },
            Fault::Throttle {
                retry_after: RetryAfter::HttpDate(5),
            },
            Fault::Unavailable {
                retry_after: RetryAfter::Seconds(5),
            },
            Fault::Reset,
            Fault::Truncated,
            Fault::Html(502),
            Fault::Empty(503),
        ];
        faults[(self.next_u64() % faults.len() as u64) as usize].clone()
    }
}

/// What the soak saw (printed with `--nocapture`).
#[derive(Debug)]
#[allow(dead_code)] // `calls` is only printed
struct Report {
    calls: u64,
    caller_errors: u64,
    caller_waits: u64,
    successful_requests: usize,
    failed_requests: usize,
    injected: usize,
    ideal_requests: usize,
    rotations: usize,
    stale_assertions: usize,
    live_bytes_per_hour: Vec<i64>,
}

async fn soak() -> Report {
    let attempts = Attempts::default();
    let _guard = attempts.install();
    let bench = Bench::new().await;
    let vol = ProjectedVolume::create(
        &bench.dir.path().join("volume"),
        "azure-identity-token",
        bench.issuer.clone(),
        entra_emulator::ServiceAccountToken {
            lifetime: std::time::Duration::from_secs(26 * 3600),
            ..Default::default()
        },
    )
    .expect("projected volume");
    let mut options = bench.options(vol.token_path());
    options.refresh_policy.attempt_timeout = azure_core::time::Duration::seconds(5);
    let (cred, clock) = bench.credential(options);

    let mut rng = Rng(0x5eed_50a6);
    let mut fault_queued = false;
    let mut injected = 0usize;
    let mut requests_seen = 0usize;
    let mut stale = 0usize;
    let mut current_sa = vol.current_token();
    let (mut calls, mut errors, mut waits) = (0u64, 0u64, 0u64);
    let mut live = Vec::with_capacity(HOURS as usize + 1);

    let steps = HOURS * 3600 / STEP_SECS;
    for step in 0..steps {
        let t = step * STEP_SECS;
        if step > 0 {
            clock.advance(secs(STEP_SECS));
        }
        // Wall-clock steps (NTP corrections): the cache's deadlines must not move.
        if let Some(jump) = WALL_JUMPS.iter().find(|(at, _)| *at == t).map(|(_, j)| *j) {
            clock.jump_wall(secs(jump));
        }
        if t > 0 && t % ROTATE_EVERY_SECS == 0 {
            current_sa = vol.rotate_now().expect("rotation");
        }
        // A scope's first callers have nothing cached: no fault may hit that cold start.
        let cold_start = SCOPE_START_STEPS.contains(&step);
        if cold_start && fault_queued {
            bench.emu.clear_faults();
            fault_queued = false;
        }
        // The callers: polled once (a caller served from the cache is ready at once), then
        // awaited together.
        let mut pending = Vec::new();
        for c in 0..CALLERS_PER_STEP {
            let k = c % SCOPES.len();
            if step < SCOPE_START_STEPS[k] {
                continue;
            }
            let scopes: &'static [&str] = &SCOPES[k];
            let mut f = Box::pin(azure_core::credentials::TokenCredential::get_token(
                &*cred, scopes, None,
            ));
            calls += 1;
            match futures::poll!(&mut f) {
                std::task::Poll::Ready(r) => errors += u64::from(r.is_err()),
                std::task::Poll::Pending => {
                    // The first callers of each scope have nothing cached yet.
                    if step != SCOPE_START_STEPS[k] {
                        waits += 1;
                    }
                    pending.push(f);
                }
            }
        }
        for r in futures::future::join_all(pending).await {
            errors += u64::from(r.is_err());
        }
        attempts.settle().await;

        // Account for the requests of this step, check what they sent, and draw whether the
        // next token request fails.
        let records = bench.emu.requests();
        if !records.is_empty() {
            bench.emu.reset_counters();
        }
        let new: Vec<_> = records
            .iter()
            .filter(|r| r.endpoint == Endpoint::Token)
            .collect();
        if !new.is_empty() {
            requests_seen += new.len();
            stale += new
                .iter()
                .filter(|r| r.form.get("client_assertion") != Some(&current_sa))
                .count();
            if fault_queued {
                injected += 1;
                fault_queued = false;
            }
            if rng.unit() < FAILURE_RATE {
                bench.emu.push_fault(Endpoint::Token, rng.fault());
                fault_queued = true;
            }
        }
        if t % 3600 == 0 {
            live.push(LIVE_BYTES.load(Ordering::Relaxed));
        }
    }
    // The last fault may still be queued (nothing consumed it).
    bench.emu.clear_faults();
    // Ideal: one token per scope at the start, then one per refresh period (10 minutes before
    // the expiry of a 3599-second token).
    let period = ACCESS_TOKEN_SECS - 600;
    let ideal = SCOPE_START_STEPS
        .iter()
        .map(|start| 1 + ((HOURS * 3600 - start * STEP_SECS) / period) as usize)
        .sum();
    Report {
        calls,
        caller_errors: errors,
        caller_waits: waits,
        successful_requests: attempts.succeeded(),
        failed_requests: attempts.failed(),
        injected,
        ideal_requests: ideal,
        rotations: vol.rotations(),
        stale_assertions: stale,
        live_bytes_per_hour: live,
    }
    .checked(requests_seen)
}

impl Report {
    fn checked(self, requests_seen: usize) -> Self {
        assert_eq!(
            self.successful_requests + self.failed_requests,
            requests_seen,
            "every token request is an attempt of the cache: {self:?}"
        );
        self
    }
}

#[tokio::test]
async fn soak_24h_simulated() {
    let r = soak().await;
    let line = format!("{r:?}");
    eprintln!("SOAK-REPORT {line}");

    assert_eq!(r.caller_errors, 0, "{line}");
    assert_eq!(r.caller_waits, 0, "{line}");
    assert_eq!(r.stale_assertions, 0, "{line}");
    let ideal = r.ideal_requests as f64;
    let ok = r.successful_requests as f64;
    assert!(
        (ok - ideal).abs() <= ideal * 0.05,
        "successful token requests {ok} not within 5 % of the ideal {ideal}: {line}"
    );
    // Every failed request was an injected fault: no wasted requests.
    assert_eq!(r.failed_requests, r.injected, "{line}");
    let injected = r.injected as f64;
    let total = ok + injected;
    assert!(
        injected / total > 0.05,
        "the soak must really inject failures: {line}"
    );
    assert!(r.rotations >= 29, "{line}");
    // Memory: flat from the second hour on (warm-up done), within 256 KiB.
    let live = &r.live_bytes_per_hour;
    assert_eq!(live.len(), HOURS as usize, "{line}");
    let steady = &live[2..];
    let (lo, hi) = (
        steady.iter().min().copied().unwrap_or_default(),
        steady.iter().max().copied().unwrap_or_default(),
    );
    assert!(hi - lo < 256 * 1024, "live heap not flat: {live:?}");
}
