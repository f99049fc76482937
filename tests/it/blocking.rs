//! `BlockingTokenCredential` from every place sync code calls it: plain threads, a fresh runtime
//! per call, a task on a multi-thread runtime's worker (which must keep running), a
//! current-thread runtime (refused). The emulator runs on its own runtime; the first token request
//! is held on a [`Gate`] where concurrency matters, and every test counts token requests.
//!
//! The tests take one lock, so the thread counts of one are not disturbed by another; the thread
//! count is of the threads these tests start (named), not of the whole test binary, whose other
//! tests run alongside.

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_core::http::RetryOptions;
use azure_core::time::Duration;
use azure_identity_k8s::blocking::{BlockingTokenCredential, BlockingTokenCredentialOptions};
use azure_identity_k8s::{CredentialError, ErrorCategory, WorkloadIdentityCredential};
use entra_emulator::{Endpoint, Fault, Gate};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use tokio::runtime::Runtime;

static SERIAL: Mutex<()> = Mutex::new(());

/// Thread names of the emulator's runtime and of the caller runtime in `threads_do_not_grow_with_calls`
/// (at most 15 bytes: Linux truncates longer names).
const SERVER_THREADS: &str = "blocking-server";
const CALLER_THREADS: &str = "blocking-caller";

/// The emulator on a runtime of its own, and the wrapper under test.
/// Dropped in field order: the wrapper, the emulator, its runtime, then the lock.
struct Setup {
    credential: Arc<BlockingTokenCredential>,
    fx: Fixture,
    server: Runtime,
    _serial: MutexGuard<'static, ()>,
}

impl Setup {
    fn new(options: Option<BlockingTokenCredentialOptions>) -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let server = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(SERVER_THREADS)
            .enable_all()
            .build()
            .expect("server runtime");
        let fx = server.block_on(Fixture::new());
        let mut wi = fx.options();
        // What users run: azure_core's default retry policy.
        wi.credential_options.client_options.retry = RetryOptions::default();
        let inner: Arc<dyn TokenCredential> = WorkloadIdentityCredential::new(Some(wi)).unwrap();
        let credential = Arc::new(BlockingTokenCredential::new(inner, options).unwrap());
        Self {
            credential,
            fx,
            server,
            _serial: serial,
        }
    }

    /// Hold the next token request until the returned gate opens.
    fn hold_next_token_request(&self) -> Gate {
        let gate = Gate::new();
        self.fx
            .emu
            .push_fault(Endpoint::Token, Fault::Hold(gate.clone()));
        gate
    }

    fn wait_until_held(&self, gate: &Gate) {
        self.server.block_on(gate.wait_for_waiting(1));
    }

    fn token_requests(&self) -> usize {
        self.fx.emu.request_count(Endpoint::Token)
    }
}

fn category(error: &azure_core::Error) -> ErrorCategory {
    error
        .downcast_ref::<CredentialError>()
        .unwrap_or_else(|| panic!("not a CredentialError: {error}"))
        .category()
}

#[test]
fn many_plain_threads_share_one_token_request() {
    let s = Setup::new(None);
    let gate = s.hold_next_token_request();
    const THREADS: usize = 16;
    let start = Arc::new(Barrier::new(THREADS + 1));
    let callers: Vec<_> = (0..THREADS)
        .map(|_| {
            let credential = Arc::clone(&s.credential);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                (0..5)
                    .map(|_| credential.get_token(&[STORAGE], None).map(|t| t.token))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    start.wait();
    s.wait_until_held(&gate);
    gate.release();
    let tokens: Vec<_> = callers
        .into_iter()
        .flat_map(|c| c.join().expect("caller thread"))
        .map(|r| r.expect("token"))
        .collect();
    assert_eq!(tokens.len(), THREADS * 5);
    assert!(tokens.iter().all(|t| t.secret() == tokens[0].secret()));
    assert_eq!(s.token_requests(), 1);
}

#[test]
fn a_fresh_runtime_per_call_shares_one_token_request() {
    let s = Setup::new(None);
    for i in 0..10 {
        let caller = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let credential = Arc::clone(&s.credential);
        // Half from the runtime's block_on, half from a task on its worker.
        let token = if i % 2 == 0 {
            caller.block_on(async { credential.get_token(&[VAULT], None) })
        } else {
            caller
                .block_on(caller.spawn(async move { credential.get_token(&[VAULT], None) }))
                .unwrap()
        };
        token.expect("token");
        // The first call's refresh task and connection live on the wrapper's runtime, not here.
        drop(caller);
    }
    assert_eq!(s.token_requests(), 1);
}

#[test]
fn spawn_blocking_on_a_multi_thread_runtime_gets_a_token() {
    let s = Setup::new(None);
    let caller = Runtime::new().unwrap();
    let credential = Arc::clone(&s.credential);
    let token = caller
        .block_on(caller.spawn_blocking(move || credential.get_token(&[STORAGE], None)))
        .unwrap();
    token.expect("token");
    assert_eq!(s.token_requests(), 1);
}

#[test]
fn a_task_waiting_for_a_token_does_not_block_its_worker() {
    // One worker: if the waiting task held it, the task that opens the gate could never run, and
    // the call would end with the wrapper's time-out instead of a token.
    let s = Setup::new(Some(BlockingTokenCredentialOptions {
        timeout: Duration::seconds(20),
    }));
    let gate = s.hold_next_token_request();
    let caller = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let credential = Arc::clone(&s.credential);
    let waiting = caller.spawn(async move { credential.get_token(&[STORAGE], None) });
    s.wait_until_held(&gate);
    let opener = caller.spawn({
        let gate = gate.clone();
        async move { gate.release() }
    });
    caller.block_on(opener).unwrap();
    caller
        .block_on(waiting)
        .unwrap()
        .expect("token while the other task ran");
    assert_eq!(s.token_requests(), 1);
}

#[test]
fn a_current_thread_runtime_is_refused_without_a_request() {
    let s = Setup::new(None);
    let caller = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = caller
        .block_on(async { s.credential.get_token(&[STORAGE], None) })
        .expect_err("refused");
    assert_eq!(category(&error), ErrorCategory::InvalidConfiguration);
    let text = error.to_string();
    assert!(text.contains("current-thread tokio runtime"), "{text}");
    assert!(text.contains(".get_token(scopes, None).await"), "{text}");
    assert_eq!(s.token_requests(), 0);
    // The same wrapper still serves plain threads.
    s.credential.get_token(&[STORAGE], None).expect("token");
    assert_eq!(s.token_requests(), 1);
}

#[test]
fn a_call_that_gives_up_leaves_the_refresh_running_for_the_next() {
    let s = Setup::new(Some(BlockingTokenCredentialOptions {
        timeout: Duration::milliseconds(200),
    }));
    let gate = s.hold_next_token_request();
    let error = s
        .credential
        .get_token(&[STORAGE], None)
        .expect_err("times out while held");
    assert_eq!(category(&error), ErrorCategory::Timeout);
    assert!(
        error
            .to_string()
            .contains("BlockingTokenCredentialOptions::timeout"),
        "{error}"
    );
    s.wait_until_held(&gate);
    gate.release();
    // Neither wedged nor repeated: the abandoned attempt's result serves this call (it may still
    // be in flight; the wrapper then joins it).
    s.credential.get_token(&[STORAGE], None).expect("token");
    assert_eq!(s.token_requests(), 1);
}

/// Names of the threads of this test in this process: the wrapper's (`azure-identity-k8s-blocking`,
/// truncated by Linux to 15 bytes), the emulator's runtime and the caller runtime. The library
/// starts no other thread here: its only other one, the token file's reader, runs per refresh,
/// and the test asserts a single token request.
#[cfg(target_os = "linux")]
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .filter(|name| {
            ["azure-identity-", SERVER_THREADS, CALLER_THREADS]
                .iter()
                .any(|prefix| name.starts_with(prefix))
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn threads_do_not_grow_with_calls() {
    let wrapper_threads = || {
        thread_names()
            .iter()
            .filter(|n| n.starts_with("azure-identity-"))
            .count()
    };
    let s = Setup::new(None);
    // Plain thread: the wrapper's runtime is started once, then nothing more.
    s.credential.get_token(&[STORAGE], None).unwrap();
    let before = thread_names().len();
    for _ in 0..200 {
        s.credential.get_token(&[STORAGE], None).unwrap();
    }
    let after = thread_names().len();
    assert!(after <= before, "threads grew from {before} to {after}");

    // A task on a worker: block_in_place hands the worker to a thread of the caller runtime's
    // blocking pool, which tokio reuses and bounds by max_blocking_threads.
    const CALLER_BLOCKING: usize = 2;
    let caller = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(CALLER_BLOCKING)
        .thread_name(CALLER_THREADS)
        .enable_all()
        .build()
        .unwrap();
    // Its worker has run (and so carries its name) before the count.
    caller.block_on(caller.spawn(async {})).unwrap();
    let before = thread_names().len();
    for _ in 0..200 {
        let credential = Arc::clone(&s.credential);
        caller
            .block_on(caller.spawn(async move { credential.get_token(&[STORAGE], None) }))
            .unwrap()
            .unwrap();
    }
    let after = thread_names().len();
    assert!(
        after <= before + CALLER_BLOCKING,
        "threads grew from {before} to {after}: {:?}",
        thread_names()
    );
    // One worker and at most two blocking threads, whatever the number of calls.
    assert!(wrapper_threads() <= 3, "{:?}", thread_names());
    assert_eq!(s.token_requests(), 1);
}

#[test]
fn options_are_checked_and_debug_shows_no_token() {
    let s = Setup::new(None);
    let inner = Arc::clone(s.credential.credential());
    let error = BlockingTokenCredential::new(
        inner,
        Some(BlockingTokenCredentialOptions {
            timeout: Duration::ZERO,
        }),
    )
    .expect_err("zero time-out refused");
    assert_eq!(category(&error), ErrorCategory::InvalidConfiguration);
    assert!(error.to_string().contains("timeout is 0 s"), "{error}");

    let token = s.credential.get_token(&[STORAGE], None).unwrap();
    let debug = format!("{:?}", s.credential);
    assert!(!debug.contains(token.token.secret()), "{debug}");
    assert!(debug.contains("started: true"), "{debug}");
}

#[test]
fn dropping_the_wrapper_inside_async_code_does_not_panic() {
    let s = Setup::new(None);
    s.credential.get_token(&[STORAGE], None).unwrap();
    let Setup {
        server, credential, ..
    } = s;
    let credential = Arc::try_unwrap(credential).expect("sole owner");
    // Dropping a tokio runtime in async code panics; the wrapper stops its own without blocking.
    server.block_on(async move { drop(credential) });
}
