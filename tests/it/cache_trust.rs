//! Cache trust: the credential over real HTTPS against the
//! emulator, with **azure_core's default retry configuration** (`ClientOptions::default()` plus
//! the emulator's transport) and the default [`RefreshPolicy`], on a manual clock. Callers come
//! the ways users call: a new runtime per call, `#[tokio::test]`s sharing one credential,
//! runtimes shut down in the middle of a request.

use crate::fault_matrix::support::*;
use azure_core::http::{ClientOptions, RetryOptions};
use azure_identity_k8s::test_util::ManualClock;
use azure_identity_k8s::{
    ErrorCategory, RefreshHealth, RefreshPolicy, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use entra_emulator::{AccessTokenOptions, Endpoint, Fault, Gate, RetryAfter, ServiceAccountToken};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration as StdDuration;

/// The default configuration, pointed at the emulator.
fn default_config(bench: &Bench, file: PathBuf) -> WorkloadIdentityCredentialOptions {
    let mut o = bench.options(file);
    o.credential_options.client_options = ClientOptions {
        transport: Some(bench.emu.transport()),
        ..Default::default()
    };
    o.refresh_policy = RefreshPolicy::default();
    o
}

/// An emulator on a runtime of its own, which outlives the callers' runtimes.
struct Host {
    bench: Bench,
    _rt: tokio::runtime::Runtime,
}

fn host() -> Host {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let bench = rt.block_on(Bench::new());
    Host { bench, _rt: rt }
}

fn new_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One call the way a sync wrapper makes it: a new runtime, `block_on`, runtime dropped.
fn call_on_new_runtime(cred: &WorkloadIdentityCredential) -> Outcome {
    let rt = new_runtime();
    let r = rt.block_on(get(cred));
    drop(rt);
    r
}

fn token_requests(bench: &Bench) -> usize {
    bench.emu.request_count(Endpoint::Token)
}

/// Wait (for real: the attempt talks HTTPS) until the emulator has seen `n` token requests.
async fn until_requests(bench: &Bench, n: usize) {
    for _ in 0..4000 {
        if token_requests(bench) >= n {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    panic!(
        "the emulator saw {} token requests, not {n}",
        token_requests(bench)
    );
}

/// The sequence: `expires_in 12, refresh_in 2`; calls at t = 0 (miss), t = 3 (advisory:
/// a refresh is spawned and its runtime dropped before it is ever polled) and t = 13 (expired),
/// each on a new current-thread runtime. Every call gets a token; nothing wedges.
#[test]
fn a_runtime_per_call_never_wedges_a_scope() {
    let h = host();
    h.bench.emu.set_access_token_options(AccessTokenOptions {
        lifetime: StdDuration::from_secs(12),
        refresh_in: Some(StdDuration::from_secs(2)),
        ..Default::default()
    });
    let file = h.bench.token_file("per-call");
    let (cred, clock) = h.bench.credential(default_config(&h.bench, file));
    let first = call_on_new_runtime(&cred).expect("t = 0: a token");
    clock.advance(secs(3));
    let second = call_on_new_runtime(&cred).expect("t = 3: the cached token");
    assert_eq!(second.token.secret(), first.token.secret());
    // The advisory refresh's task was dropped with its runtime before its first poll.
    assert_eq!(token_requests(&h.bench), 1);
    clock.advance(secs(10));
    let third = call_on_new_runtime(&cred).expect("t = 13: a new token, not a wedged slot");
    assert_ne!(third.token.secret(), first.token.secret());
    for i in 0..5 {
        clock.advance(secs(13));
        call_on_new_runtime(&cred).unwrap_or_else(|e| panic!("call {i} after expiry: {e}"));
    }
    assert_eq!(token_requests(&h.bench), 7, "one request per expired token");
}

/// Hold the next token request at the emulator; start a call on runtime A and drop A (shutting
/// it down) while the request is in flight. The next caller, on runtime B, gets a token.
fn shut_down_mid_request(h: &Host, cred: &WorkloadIdentityCredential) {
    let gate = Gate::new();
    h.bench
        .emu
        .push_fault(Endpoint::Token, Fault::Hold(gate.clone()));
    let rt = new_runtime();
    rt.block_on(async {
        let caller = get(cred);
        tokio::pin!(caller);
        tokio::select! {
            // Advisory: served at once; keep the runtime running until the refresh is on the wire.
            r = &mut caller => { r.expect("a cached token"); gate.wait_for_waiting(1).await }
            () = gate.wait_for_waiting(1) => {}
        }
    });
    drop(rt);
    gate.release();
}

#[test]
fn a_runtime_shut_down_mid_request_in_each_window_leaves_the_scope_usable() {
    let h = host();
    // (name, seconds after the first token; 1 h tokens: advisory from 50 min, mandatory from
    // 59 min, expired after 3599 s)
    for (i, (window, at)) in [
        ("miss", None),
        ("advisory", Some(55 * 60)),
        ("mandatory", Some(3599 - 30)),
        ("expired", Some(3600 + 60)),
    ]
    .into_iter()
    .enumerate()
    {
        let file = h.bench.token_file(&format!("shutdown-{i}"));
        let (cred, clock) = h.bench.credential(default_config(&h.bench, file));
        let first = at.map(|at| {
            let t = call_on_new_runtime(&cred).expect("first token");
            clock.advance(secs(at));
            t
        });
        let before = token_requests(&h.bench);
        shut_down_mid_request(&h, &cred);
        assert_eq!(
            token_requests(&h.bench),
            before + 1,
            "{window}: held request"
        );
        let rt = new_runtime();
        let t = rt.block_on(async {
            let t = get(&cred).await.unwrap_or_else(|e| panic!("{window}: {e}"));
            if window == "advisory" {
                // Served the cached token; a new background refresh replaces the dead one.
                assert_eq!(
                    Some(t.token.secret()),
                    first.as_ref().map(|f| f.token.secret())
                );
                until_requests(&h.bench, before + 2).await;
                for _ in 0..4000 {
                    let now = get(&cred).await.expect("token");
                    if now.token.secret() != t.token.secret() {
                        return now;
                    }
                    tokio::time::sleep(StdDuration::from_millis(5)).await;
                }
                panic!("advisory: the new refresh never completed");
            }
            t
        });
        drop(rt);
        if let Some(f) = first {
            assert_ne!(t.token.secret(), f.token.secret(), "{window}: a new token");
        }
        assert_eq!(
            token_requests(&h.bench),
            before + 2,
            "{window}: one new request"
        );
    }
}

#[test]
fn a_call_in_the_fresh_window_needs_no_runtime_work() {
    let h = host();
    let file = h.bench.token_file("fresh");
    let (cred, clock) = h.bench.credential(default_config(&h.bench, file));
    let first = call_on_new_runtime(&cred).unwrap();
    for _ in 0..5 {
        clock.advance(secs(60));
        let t = get_now(&cred).expect("ready at once").unwrap();
        assert_eq!(t.token.secret(), first.token.secret());
    }
    assert_eq!(token_requests(&h.bench), 1);
}

// ---------------------------------------------------------------------------------------------
// `#[tokio::test]`s sharing one credential: each test has its own runtime, dropped when it ends,
// and the clock moves through every window while they run.

struct Shared {
    host: Host,
    cred: Arc<WorkloadIdentityCredential>,
    clock: Arc<ManualClock>,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        // Built outside the calling test's runtime (block_on cannot nest).
        let host = std::thread::spawn(host).join().unwrap();
        host.bench.emu.set_access_token_options(AccessTokenOptions {
            lifetime: StdDuration::from_secs(12),
            refresh_in: Some(StdDuration::from_secs(2)),
            ..Default::default()
        });
        let file = host.bench.token_file("shared");
        let (cred, clock) = host.bench.credential(default_config(&host.bench, file));
        Shared { host, cred, clock }
    })
}

async fn shared_test_body() {
    let s = shared();
    for step in 0..6 {
        s.clock.advance(secs(4));
        get(&s.cred)
            .await
            .unwrap_or_else(|e| panic!("step {step}: {e}"));
    }
    assert!(token_requests(&s.host.bench) >= 1);
}

#[tokio::test]
async fn shared_credential_test_1() {
    shared_test_body().await;
}
#[tokio::test]
async fn shared_credential_test_2() {
    shared_test_body().await;
}
#[tokio::test]
async fn shared_credential_test_3() {
    shared_test_body().await;
}
#[tokio::test]
async fn shared_credential_test_4() {
    shared_test_body().await;
}

/// A persistent outage with no token: every caller fails clearly; a crowd is answered from the
/// remembered error (for `transient_error_ttl`) instead of each sending a request; the outage's
/// end needs nothing reset: the next attempt gets a token.
#[tokio::test]
async fn a_persistent_outage_fails_every_caller_clearly_and_ends_by_itself() {
    let bench = Bench::new().await;
    let options = bench.options(bench.token_file("outage"));
    let ttl = options.refresh_policy.transient_error_ttl;
    let (cred, clock) = bench.credential(options);
    bench
        .emu
        .set_fault(Endpoint::Token, Some(Fault::Status(503)));
    for attempt in 1..=3 {
        let e = get(&cred).await.expect_err("outage");
        assert!(e.is_transient(), "{e}");
        assert_eq!(e.http_status().map(u16::from), Some(503));
        for _ in 0..5 {
            let again = get_now(&cred).expect("remembered: no wait");
            assert_eq!(again.expect_err("outage").message(), e.message());
        }
        assert_eq!(token_requests(&bench), attempt, "one request per {ttl}");
        clock.advance(ttl);
    }
    bench.emu.set_fault(Endpoint::Token, None);
    get(&cred).await.expect("recovered");
    assert_eq!(token_requests(&bench), 4);
}

// ---------------------------------------------------------------------------------------------
// Throttling under the default retry configuration.

/// (fault, status, the `Retry-After` in seconds the cache honours, the text of the error)
fn throttles() -> Vec<(Fault, u16, i64, &'static str)> {
    vec![
        (
            Fault::Throttle {
                retry_after: RetryAfter::Seconds(45),
            },
            429,
            45,
            "(HTTP 429, retry after 45 s, transient)",
        ),
        (
            Fault::Throttle {
                retry_after: RetryAfter::HttpDate(45),
            },
            429,
            45,
            "(HTTP 429, retry after 4",
        ),
        (
            Fault::Unavailable {
                retry_after: RetryAfter::Seconds(45),
            },
            503,
            45,
            "(HTTP 503, retry after 45 s, transient)",
        ),
        // Absurd: capped at RefreshPolicy::max_backoff (5 min).
        (
            Fault::Throttle {
                retry_after: RetryAfter::Seconds(1_000_000_000),
            },
            429,
            300,
            "(HTTP 429, retry after 1000000000 s, transient)",
        ),
    ]
}

#[tokio::test]
async fn throttling_without_a_token_fails_at_once_and_sends_nothing_before_retry_after() {
    let bench = Bench::new().await;
    for (i, (fault, status, after, text)) in throttles().into_iter().enumerate() {
        let at = format!("{fault:?}");
        let file = bench.token_file(&format!("throttle-cold-{i}"));
        let (cred, clock) = bench.credential(default_config(&bench, file));
        let before = token_requests(&bench);
        bench.emu.set_fault(Endpoint::Token, Some(fault));
        let e = get(&cred).await.expect_err(&at);
        assert_eq!(e.http_status().map(u16::from), Some(status), "{at}: {e}");
        assert!(e.is_transient(), "{at}: {e}");
        assert!(
            e.message().contains("Entra throttled the token request"),
            "{at}: {e}"
        );
        assert!(e.message().contains(text), "{at}: {e}");
        let secs_after = e.retry_after().expect("retry_after").whole_seconds();
        assert!(
            (after.min(45) - 1..=1_000_000_000).contains(&secs_after),
            "{at}: {secs_after}"
        );
        // One request: azure_core's retry policy did not sleep through the Retry-After.
        assert_eq!(token_requests(&bench), before + 1, "{at}");
        // Nothing is sent before Retry-After (capped) has passed.
        for _ in 0..3 {
            clock.advance(secs(after / 4));
            let again = get_now(&cred).expect("remembered error, no wait");
            assert_eq!(again.expect_err(&at).message(), e.message(), "{at}");
        }
        assert_eq!(
            token_requests(&bench),
            before + 1,
            "{at}: no request before Retry-After"
        );
        bench.emu.set_fault(Endpoint::Token, None);
        clock.advance(secs(after - 3 * (after / 4) + 1));
        get(&cred)
            .await
            .unwrap_or_else(|e| panic!("{at}: no recovery: {e}"));
        assert_eq!(token_requests(&bench), before + 2, "{at}");
    }
}

#[tokio::test]
async fn throttling_with_a_valid_token_serves_it_and_sends_nothing_before_retry_after() {
    let attempts = Attempts::default();
    let _guard = attempts.install();
    let bench = Bench::new().await;
    for (i, (fault, _, after, _)) in throttles().into_iter().enumerate() {
        for (window, into) in [("advisory", 52 * 60), ("mandatory", 3599 - 55)] {
            let at = format!("{fault:?} / {window}");
            let file = bench.token_file(&format!("throttle-{window}-{i}"));
            let (cred, clock) = bench.credential(default_config(&bench, file));
            let first = get(&cred).await.unwrap();
            clock.advance(secs(into));
            let before = token_requests(&bench);
            bench.emu.set_fault(Endpoint::Token, Some(fault.clone()));
            let served = get(&cred).await.unwrap_or_else(|e| panic!("{at}: {e}"));
            assert_eq!(served.token.secret(), first.token.secret(), "{at}");
            attempts.settle().await;
            assert_eq!(
                token_requests(&bench),
                before + 1,
                "{at}: one throttled request"
            );
            // Before Retry-After: the cached token while it is valid, and no request.
            let step = after.min(50) / 4;
            for _ in 0..3 {
                clock.advance(secs(step));
                let t = get_now(&cred)
                    .unwrap_or_else(|| panic!("{at}: waited"))
                    .unwrap_or_else(|e| panic!("{at}: {e}"));
                assert_eq!(t.token.secret(), first.token.secret(), "{at}");
            }
            assert_eq!(
                token_requests(&bench),
                before + 1,
                "{at}: nothing before Retry-After"
            );
            bench.emu.set_fault(Endpoint::Token, None);
            clock.advance(secs(after - 3 * step + 1));
            let t = get(&cred).await.unwrap_or_else(|e| panic!("{at}: {e}"));
            attempts.settle().await;
            let t = if t.token.secret() == first.token.secret() {
                get_now(&cred).expect("no wait").expect("token")
            } else {
                t
            };
            assert_ne!(t.token.secret(), first.token.secret(), "{at}: refreshed");
            assert_eq!(token_requests(&bench), before + 2, "{at}");
        }
    }
}

/// Issue 12 item 4: the retry options are used as given; the crate's own default is a value
/// in `WorkloadIdentityCredentialOptions::default()`, not a guess about the options' `Debug` text.
#[tokio::test]
async fn retry_options_are_used_as_given() {
    let bench = Bench::new().await;
    let file = bench.token_file("retry");
    let base = |retry: Option<RetryOptions>| {
        let mut o = WorkloadIdentityCredentialOptions {
            client_id: Some(CLIENT.into()),
            tenant_id: Some(TENANT.into()),
            token_file_path: Some(file.clone()),
            env: azure_identity_k8s::Env::from_pairs([(
                "AZURE_AUTHORITY_HOST",
                bench.emu.authority_host(),
            )]),
            ..Default::default()
        };
        o.credential_options.client_options.transport = Some(bench.emu.transport());
        if let Some(r) = retry {
            o.credential_options.client_options.retry = r;
        }
        o.refresh_policy.attempt_timeout = azure_core::time::Duration::seconds(5);
        o
    };
    bench
        .emu
        .set_fault(Endpoint::Token, Some(Fault::Status(500)));
    // The crate's default: 3 quick retries, then the answer.
    let (cred, _) = bench.credential(base(None));
    let before = token_requests(&bench);
    let e = get(&cred).await.unwrap_err();
    assert_eq!(e.http_status().map(u16::from), Some(500), "{e}");
    assert_eq!(token_requests(&bench) - before, 4);
    // Explicitly none: one request.
    let (cred, _) = bench.credential(base(Some(RetryOptions::none())));
    let before = token_requests(&bench);
    get(&cred).await.unwrap_err();
    assert_eq!(token_requests(&bench) - before, 1);
    // Explicitly azure_core's default: kept (up to 8 retries within a minute), so the attempt
    // bound cuts it short in a retry wait, and the message says so.
    let (cred, _) = bench.credential(base(Some(RetryOptions::default())));
    let before = token_requests(&bench);
    let e = get(&cred).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Timeout, "{e}");
    assert!(e.message().contains("still being retried after 5 s"), "{e}");
    assert_eq!(token_requests(&bench) - before, 4);
    bench.emu.set_fault(Endpoint::Token, None);
}

// ---------------------------------------------------------------------------------------------
// A caller that held a valid token gets a token.

#[tokio::test]
async fn black_holed_endpoint_in_the_mandatory_window_serves_the_token_before_it_expires() {
    let bench = Bench::new().await;
    let file = bench.token_file("black-hole");
    let (cred, clock) = bench.credential(default_config(&bench, file));
    let first = get(&cred).await.unwrap();
    // 3 s of validity left: the caller waits at most 1.5 s (not attempt_timeout's 30 s).
    clock.advance(secs(3599 - 3));
    bench.emu.set_fault(Endpoint::Token, Some(Fault::Hang));
    let before = token_requests(&bench);
    let t = get(&cred).await.expect("the held token, not an error");
    assert_eq!(t.token.secret(), first.token.secret());
    assert_eq!(token_requests(&bench), before + 1);
    bench.emu.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Wall-clock steps of ±1 h in each window: no expired token is served, no valid token dropped.

#[tokio::test]
async fn wall_clock_jumps_change_nothing_in_any_window() {
    let attempts = Attempts::default();
    let _guard = attempts.install();
    let bench = Bench::new().await;
    // A service-account token valid from 2 h ago to 3 h from now, whatever the wall clock says.
    let sa = ServiceAccountToken {
        issued_at: Some(real_now() - secs(2 * 3600)),
        lifetime: StdDuration::from_secs(5 * 3600),
        ..Default::default()
    };
    for jump in [3600, -3600] {
        for (window, into) in [
            ("fresh", 10 * 60),
            ("advisory", 55 * 60),
            ("mandatory", 3599 - 30),
            ("expired", 3600 + 60),
        ] {
            let at = format!("{window}, wall clock {jump:+} s");
            let file = bench.dir.path().join(format!("jump-{window}-{jump}"));
            std::fs::write(&file, bench.issuer.mint(&sa)).unwrap();
            let (cred, clock) = bench.credential(default_config(&bench, file));
            let first = get(&cred).await.unwrap();
            attempts.settle().await;
            clock.advance(secs(into));
            clock.jump_wall(secs(jump));
            let before = token_requests(&bench);
            let t = get(&cred).await.unwrap_or_else(|e| panic!("{at}: {e}"));
            attempts.settle().await;
            let (same, requests) = match window {
                "fresh" => (true, 0),
                "advisory" => (true, 1),
                _ => (false, 1),
            };
            assert_eq!(t.token.secret() == first.token.secret(), same, "{at}");
            assert_eq!(token_requests(&bench) - before, requests, "{at}");
            if window == "advisory" {
                let next = get_now(&cred).expect("no wait").unwrap();
                assert_ne!(next.token.secret(), first.token.secret(), "{at}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Operators' view: healthy -> failing but serving -> healthy.

#[tokio::test]
async fn status_goes_healthy_failing_but_serving_healthy_and_warns_during_an_outage() {
    let attempts = Attempts::default();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let _guard = {
        use tracing_subscriber::layer::SubscriberExt as _;
        let logs = logs.clone();
        let writer = move || LineWriter(logs.clone());
        tracing::subscriber::set_default(
            tracing_subscriber::registry().with(attempts.clone()).with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(writer),
            ),
        )
    };
    let bench = Bench::new().await;
    let file = bench.token_file("status");
    let mut o = default_config(&bench, file);
    // One request per attempt: this test is about the status, not about HTTP retries.
    o.credential_options.client_options.retry = RetryOptions::none();
    o.refresh_policy.outage_warning_after = azure_core::time::Duration::seconds(60);
    let (cred, clock) = bench.credential(o);
    assert!(cred.token_status().is_empty());
    get(&cred).await.unwrap();
    let s = &cred.token_status()[0];
    assert_eq!(s.health, RefreshHealth::Healthy);
    assert_eq!(s.scope, STORAGE);
    assert!(s.last_success.is_some() && s.expires_on.is_some() && s.next_refresh.is_some());
    assert_eq!(s.consecutive_failures, 0);
    // The outage: every refresh fails while the token is still served.
    bench
        .emu
        .set_fault(Endpoint::Token, Some(Fault::Status(503)));
    clock.advance(secs(51 * 60));
    for _ in 0..4 {
        get_now(&cred).expect("no wait").expect("served");
        attempts.settle().await;
        clock.advance(secs(30));
    }
    let s = &cred.token_status()[0];
    assert_eq!(s.health, RefreshHealth::FailingButServing, "{s:?}");
    assert!(s.consecutive_failures >= 2, "{s:?}");
    assert_eq!(s.last_error_category, Some(ErrorCategory::InvalidResponse));
    assert_eq!(s.last_error_status, Some(503));
    assert!(s.failing_since.is_some());
    assert!(!format!("{s:?}").contains("eyJ"), "never a token");
    let text = logs.lock().unwrap().concat();
    assert!(
        text.contains("token refreshes have been failing for"),
        "{text}"
    );
    // The outage ends: the next refresh succeeds and the status is healthy again. (The backoff
    // is random but never extends into the mandatory window, where the caller waits for it.)
    bench.emu.set_fault(Endpoint::Token, None);
    clock.advance(secs(6 * 60));
    get(&cred).await.unwrap();
    attempts.settle().await;
    let s = &cred.token_status()[0];
    assert_eq!(s.health, RefreshHealth::Healthy, "{s:?}");
    assert_eq!((s.consecutive_failures, s.last_error_category), (0, None));
}

#[derive(Clone)]
struct LineWriter(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl std::io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The caller's `TokenRequestOptions` context reaches the token request (here: its client
/// request id, which Entra echoes as the correlation id).
#[tokio::test]
async fn the_callers_context_reaches_the_token_request() {
    use azure_core::credentials::{TokenCredential as _, TokenRequestOptions};
    use azure_core::http::request::options::ClientRequestId;
    let bench = Bench::new().await;
    let file = bench.token_file("context");
    let mut o = default_config(&bench, file);
    // An application the tenant does not know: Entra answers AADSTS700016 with the ids.
    o.client_id = Some("00000000-0000-0000-0000-0000000000aa".into());
    let (cred, _) = bench.credential(o);
    let mut options = TokenRequestOptions::default();
    options
        .method_options
        .context
        .insert(ClientRequestId::new("trace-me-42".to_string()));
    let e = cred.get_token(&[STORAGE], Some(options)).await.unwrap_err();
    assert!(e.to_string().contains("Correlation ID: trace-me-42"), "{e}");
}
