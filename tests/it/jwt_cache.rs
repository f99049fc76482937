//! The AWS source's JWT cache over real HTTPS: the emulator's STS (which counts the `GetWebIdentityToken`
//! requests it receives), static credentials of one of its roles, a manual clock. Callers come
//! the ways users call: concurrently, giving up midway, from a new runtime per call.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use azure_identity_k8s::RefreshPolicy;
use azure_identity_k8s::assertion::{
    AssertionSource as _, AwsWebIdentitySource, AwsWebIdentitySourceOptions,
};
use azure_identity_k8s::test_util::ManualClock;
use entra_emulator::{AwsRole, Emulator, Endpoint, Fault, Gate, StsError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use time::OffsetDateTime;

fn secs(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

/// An AWS account and role on `emu`; a source with the default options (300 s JWTs) whose AWS
/// configuration points at the emulator's STS, on a manual clock.
fn source(emu: &Emulator) -> (Arc<AwsWebIdentitySource>, Arc<ManualClock>) {
    source_with(emu, secs(25))
}

/// [`source`] with the JWT cache's attempt bound `attempt_timeout` (25 s by default).
fn source_with(
    emu: &Emulator,
    attempt_timeout: time::Duration,
) -> (Arc<AwsWebIdentitySource>, Arc<ManualClock>) {
    let role: AwsRole = emu.add_aws_account("123456789012").add_role("R");
    let config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(emu.sts_endpoint_url())
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            role.access_key_id,
            role.secret_access_key,
            None,
            None,
            "test",
        )))
        .http_client(crate::common::aws::trusting(emu.ca_pem()))
        .build();
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let options = AwsWebIdentitySourceOptions {
        sdk_config: Some(config),
        ..Default::default()
    };
    let source =
        AwsWebIdentitySource::with_test_clock(options, clock.clone(), attempt_timeout).unwrap();
    (Arc::new(source), clock)
}

fn sts_calls(emu: &Emulator) -> usize {
    emu.request_count(Endpoint::Sts)
}

/// A 300 s JWT is usable for 285 s (15 s are kept for the exchange), refreshed in the background
/// from 240 s (a fifth of its lifetime left), waited for from 255 s.
#[tokio::test]
async fn the_jwt_is_refreshed_at_its_refresh_point_and_kept_on_failure() {
    let emu = Emulator::start().await.unwrap();
    let (source, clock) = source(&emu);
    let first = source.assertion().await.unwrap();
    assert!(first.origin().contains("region eu-west-1"), "{first:?}");
    assert!(first.claims().and_then(|c| c.sub.as_deref()).is_some());
    clock.advance(secs(239));
    let same = source.assertion().await.unwrap();
    assert_eq!(first.secret(), same.secret());
    assert_eq!(sts_calls(&emu), 1, "no STS call before the refresh point");

    // At the refresh point the cached JWT is returned at once, and one refresh starts.
    let gate = Gate::new();
    emu.push_fault(Endpoint::Sts, Fault::Hold(gate.clone()));
    clock.advance(secs(1));
    let at_refresh_point = source.assertion().await.unwrap();
    assert_eq!(at_refresh_point.secret(), first.secret());
    gate.wait_for_waiting(1).await;
    assert_eq!(sts_calls(&emu), 2, "the background refresh is on the wire");
    gate.release();
    // From 255 s callers wait for that refresh (or find its JWT).
    clock.advance(secs(15));
    let second = source.assertion().await.unwrap();
    assert_ne!(second.secret(), first.secret());
    assert_eq!(sts_calls(&emu), 2);

    // The second JWT is anchored at 240 s: at 500 s it is in its last 30 usable seconds. A failed
    // refresh serves it, and the next try backs off instead of calling STS on every call.
    clock.advance(secs(500 - 255));
    emu.push_sts_error(StsError::new(403, "AccessDenied", "no"));
    let kept = source.assertion().await.unwrap();
    assert_eq!(kept.secret(), second.secret());
    assert_eq!(sts_calls(&emu), 3);
    let kept = source.assertion().await.unwrap();
    assert_eq!(kept.secret(), second.secret());
    assert_eq!(sts_calls(&emu), 3, "backing off: no STS call");

    // Less than 15 s left (usable until 525 s): the error surfaces, and is remembered for
    // permanent_error_ttl (5 s) without a new STS call.
    clock.advance(secs(30));
    emu.push_sts_error(StsError::new(403, "AccessDenied", "no"));
    let e = source.assertion().await.unwrap_err();
    assert!(e.message().contains("AccessDenied"), "{e}");
    assert!(e.message().contains("region eu-west-1"), "{e}");
    assert_eq!(sts_calls(&emu), 4);
    let again = source.assertion().await.unwrap_err();
    assert_eq!(again.message(), e.message());
    assert_eq!(sts_calls(&emu), 4, "the error is remembered");
    clock.advance(secs(5));
    let fresh = source.assertion().await.unwrap();
    assert_ne!(fresh.secret(), second.secret());
    assert_eq!(sts_calls(&emu), 5);
}

#[tokio::test]
async fn concurrent_callers_on_a_cold_cache_share_one_sts_call() {
    const CALLERS: usize = 16;
    let emu = Emulator::start().await.unwrap();
    let (source, _clock) = source(&emu);
    let gate = Gate::new();
    emu.push_fault(Endpoint::Sts, Fault::Hold(gate.clone()));
    let started = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (source, started) = (source.clone(), started.clone());
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                source.assertion().await
            })
        })
        .collect();
    // Every caller has been polled into its wait (this runtime has one thread) while the one
    // STS call is held.
    while started.load(Ordering::SeqCst) < CALLERS {
        tokio::task::yield_now().await;
    }
    gate.wait_for_waiting(1).await;
    gate.release();
    let mut jwts = Vec::new();
    for c in callers {
        jwts.push(c.await.unwrap().unwrap().secret().to_owned());
    }
    assert!(jwts.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(sts_calls(&emu), 1);
}

#[tokio::test]
async fn a_caller_that_gives_up_mid_call_does_not_cost_another_sts_call() {
    let emu = Emulator::start().await.unwrap();
    let (source, _clock) = source(&emu);
    let gate = Gate::new();
    emu.push_fault(Endpoint::Sts, Fault::Hold(gate.clone()));
    {
        let call = source.assertion();
        tokio::select! {
            r = call => panic!("the STS call is held: {r:?}"),
            () = gate.wait_for_waiting(1) => {}
        }
        // The caller's future is dropped here, mid-call.
    }
    gate.release();
    let a = source.assertion().await.unwrap();
    assert!(a.claims().is_some());
    assert_eq!(
        sts_calls(&emu),
        1,
        "the abandoned call's JWT is the one served"
    );
}

fn new_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A sync wrapper's way: a new current-thread runtime per call, dropped after `block_on`; the
/// emulator runs on a runtime of its own.
#[test]
fn a_runtime_per_call_works_every_time() {
    let host = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let emu = host.block_on(Emulator::start()).unwrap();
    let (source, clock) = source(&emu);
    let call = || {
        let rt = new_runtime();
        let r = rt.block_on(source.assertion());
        drop(rt);
        r
    };
    let first = call().expect("first call");
    let cached = call().expect("the cached JWT on another runtime");
    assert_eq!(cached.secret(), first.secret());
    assert_eq!(sts_calls(&emu), 1);
    for i in 0..4 {
        // Past the usable life of the last JWT: every call asks STS, each on a new runtime.
        clock.advance(secs(300));
        call().unwrap_or_else(|e| panic!("call {i} after expiry: {e}"));
    }
    assert_eq!(sts_calls(&emu), 5);

    // A runtime dropped while its STS call is held: the next call, on a new runtime, works.
    clock.advance(secs(300));
    let gate = Gate::new();
    emu.push_fault(Endpoint::Sts, Fault::Hold(gate.clone()));
    let rt = new_runtime();
    rt.block_on(async {
        tokio::select! {
            r = source.assertion() => panic!("the STS call is held: {r:?}"),
            () = gate.wait_for_waiting(1) => {}
        }
    });
    drop(rt);
    gate.release();
    let after = call().expect("a call after a runtime died mid-call");
    assert_ne!(after.secret(), first.secret());
    assert_eq!(sts_calls(&emu), 7, "the dead call and one new one");
}

/// A plain probe bypasses the cache both ways: it neither serves nor replaces the cached JWT.
/// (The doctor's probe goes through the cache, so the exchange presents the JWT it examined:
/// `doctor_aws` asserts its one STS call.)
#[tokio::test]
async fn a_plain_probe_bypasses_the_cache() {
    let emu = Emulator::start().await.unwrap();
    let (source, clock) = source(&emu);
    let kept = source.assertion().await.unwrap();
    clock.advance(secs(239));
    assert_eq!(source.assertion().await.unwrap().secret(), kept.secret());
    assert_eq!(sts_calls(&emu), 1);
    let probe = source.probe().await.unwrap();
    assert_eq!(probe.region, "eu-west-1");
    assert_eq!(
        probe.audiences,
        vec![azure_identity_k8s::config::AUDIENCE_PUBLIC]
    );
    assert_eq!(source.assertion().await.unwrap().secret(), kept.secret());
    assert_eq!(sts_calls(&emu), 2);
}

/// A hung STS call is abandoned at the attempt bound (here 300 ms instead of 25 s) with an error
/// about STS, and does not wedge the next call.
#[tokio::test]
async fn a_hung_sts_call_is_bounded_and_the_next_call_works() {
    let emu = Emulator::start().await.unwrap();
    let (source, clock) = source_with(&emu, time::Duration::milliseconds(300));
    emu.push_fault(Endpoint::Sts, Fault::Hang);
    let e = source.assertion().await.unwrap_err();
    assert_eq!(
        e.category(),
        azure_identity_k8s::ErrorCategory::Timeout,
        "{e}"
    );
    assert!(
        e.message()
            .contains("from AWS STS did not finish within 0.3 s"),
        "{e}"
    );
    assert!(e.message().contains("region eu-west-1"), "{e}");
    assert_eq!(sts_calls(&emu), 1);
    // The caller's wait and the attempt end at the same bound: let the attempt record its failure
    // before the clock moves on.
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while source.jwt_failures() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the abandoned attempt records its failure");
    clock.advance(RefreshPolicy::default().transient_error_ttl);
    source.assertion().await.expect("the next call gets a JWT");
    assert_eq!(sts_calls(&emu), 2);
}

/// The time-out error names STS, the bound, the audience and where to look.
#[test]
fn a_hung_attempt_names_sts() {
    let source = AwsWebIdentitySource::new(AwsWebIdentitySourceOptions::default()).unwrap();
    let e = source
        .timed_out(secs(35))
        .expect("STS's own time-out error");
    assert_eq!(e.category(), azure_identity_k8s::ErrorCategory::Timeout);
    assert!(e.is_transient(), "{e}");
    for needle in [
        "AWS STS",
        "within 35 s",
        "api://AzureADTokenExchange",
        "Pod Identity",
    ] {
        assert!(e.message().contains(needle), "missing {needle}: {e}");
    }
}

/// Log lines at every level, for the tests below.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A failed refresh while a valid JWT is served is a WARN of its own (the credential above sees
/// a success, so nothing else reports it); one with no JWT to serve is a DEBUG (the credential
/// logs the error its caller gets).
#[tokio::test]
async fn a_failed_refresh_is_a_warn_only_while_a_cached_jwt_is_served() {
    let logs = Logs::default();
    let writer = logs.clone();
    crate::common::keep_callsites_live();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );
    let emu = Emulator::start().await.unwrap();
    let (source, clock) = source(&emu);
    let first = source.assertion().await.unwrap();
    // In its last 30 usable seconds: the failed refresh serves the cached JWT.
    clock.advance(secs(260));
    emu.push_sts_error(StsError::new(403, "AccessDenied", "no"));
    assert_eq!(source.assertion().await.unwrap().secret(), first.secret());
    // Past its usable life: the error reaches the caller.
    clock.advance(secs(30));
    emu.push_sts_error(StsError::new(403, "AccessDenied", "no"));
    source.assertion().await.unwrap_err();
    assert_eq!(sts_calls(&emu), 3);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("AWS web identity token refresh failed"))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert!(
        failed[0].contains(" WARN ") && failed[0].contains("serving the cached token"),
        "{}",
        failed[0]
    );
    assert!(failed[1].contains(" DEBUG "), "{}", failed[1]);
    for line in failed {
        assert!(
            line.contains("audience=api://AzureADTokenExchange") && !line.contains("scopes="),
            "{line}"
        );
    }
}
