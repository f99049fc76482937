//! Faults through the public API with the real clock (the full matrix against the cache's
//! windows is crate-internal: `src/fault_matrix.rs`; a persistent outage and its end, on the
//! manual clock, is in `src/cache/trust.rs`): a token file rotated while it is being read, and the
//! attempt bound with azure_core's default HTTP retry policy (which would otherwise wait out a
//! long Retry-After).

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_core::http::RetryOptions;
use azure_identity_k8s::assertion::{AssertionSource, TokenFileSource};
use azure_identity_k8s::{CredentialError, ErrorCategory, WorkloadIdentityCredential};
use entra_emulator::{Endpoint, Fault, ProjectedVolume, RetryAfter, ServiceAccountToken};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_rotated_while_being_read_is_never_torn() {
    let fx = Fixture::new().await;
    let vol = Arc::new(
        ProjectedVolume::create(
            &fx.dir.path().join("volume"),
            "azure-identity-token",
            fx.issuer.clone(),
            ServiceAccountToken::default(),
        )
        .unwrap(),
    );
    let written = Arc::new(Mutex::new(HashSet::from([vol.current_token()])));
    let stop = Arc::new(AtomicBool::new(false));
    // The kubelet's atomic writer, as fast as it can go.
    let rotator = {
        let (vol, written, stop) = (vol.clone(), written.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                // Record first: a reader may see the new token before rotate_now returns.
                let next = vol.rotate_now().unwrap();
                written.lock().unwrap().insert(next);
            }
        })
    };
    let source = TokenFileSource::new(vol.token_path(), "api://AzureADTokenExchange", false);
    let mut seen = HashSet::new();
    let mut reads = 0;
    while vol.rotations() < 20 {
        reads += 1;
        assert!(reads < 1_000_000, "the rotator is stuck");
        let a = source
            .assertion()
            .await
            .expect("every read sees one whole token");
        seen.insert(a.secret().to_string());
    }
    stop.store(true, Ordering::SeqCst);
    rotator.join().unwrap();
    let written = written.lock().unwrap();
    assert!(
        seen.iter().all(|t| written.contains(t)),
        "a read returned a token never written"
    );
    assert!(
        vol.rotations() > 10,
        "the file really rotated ({})",
        vol.rotations()
    );
    assert!(seen.len() > 1, "reads spanned rotations");
}

#[tokio::test]
async fn the_attempt_bound_holds_with_the_default_http_retry_policy() {
    let fx = Fixture::new().await;
    for fault in [
        Fault::Throttle {
            retry_after: RetryAfter::Seconds(3600),
        },
        Fault::Throttle {
            retry_after: RetryAfter::HttpDate(3600),
        },
        Fault::Status(503),
    ] {
        let mut o = fx.options();
        o.credential_options.client_options.retry = RetryOptions::default();
        o.refresh_policy.attempt_timeout = azure_core::time::Duration::milliseconds(500);
        let cred = WorkloadIdentityCredential::new(Some(o)).unwrap();
        fx.emu.set_fault(Endpoint::Token, Some(fault.clone()));
        let e = cred.get_token(&[STORAGE], None).await.unwrap_err();
        let e = e.downcast_ref::<CredentialError>().unwrap();
        // Either the retries ran out or the bound cut them short; never a wait of an hour.
        assert!(e.is_transient(), "{fault:?}: {e}");
        assert!(
            matches!(
                e.category(),
                ErrorCategory::Timeout | ErrorCategory::InvalidResponse
            ),
            "{fault:?}: {e}"
        );
        fx.emu.set_fault(Endpoint::Token, None);
    }
}

/// The token requests' arrival times, in order.
fn token_times(fx: &Fixture) -> Vec<time::OffsetDateTime> {
    let requests = fx.emu.requests().into_iter();
    requests
        .filter(|r| r.endpoint == Endpoint::Token)
        .map(|r| r.at)
        .collect()
}

/// A 429 or 503 with a short `Retry-After` (seconds or an HTTP date) is waited out inside the
/// attempt, and the request sent once more, never before it: the first caller gets the token.
/// Under no HTTP retries, azure_core's default retry policy and the crate's default.
#[tokio::test]
async fn a_short_retry_after_is_waited_out_and_the_first_call_gets_the_token() {
    let fx = Fixture::new().await;
    let retries = [
        ("none", RetryOptions::none()),
        ("azure_core default", RetryOptions::default()),
        ("crate default", azure_identity_k8s::token_retry_options()),
    ];
    let throttles = [
        Fault::Throttle {
            retry_after: RetryAfter::Seconds(1),
        },
        Fault::Throttle {
            retry_after: RetryAfter::HttpDate(1),
        },
        Fault::Unavailable {
            retry_after: RetryAfter::Seconds(1),
        },
    ];
    for (name, retry) in retries {
        for fault in throttles.clone() {
            let mut o = fx.options();
            o.credential_options.client_options.retry = retry.clone();
            let cred = WorkloadIdentityCredential::new(Some(o)).unwrap();
            fx.emu.reset_counters();
            fx.emu.push_fault(Endpoint::Token, fault.clone());
            let token = cred.get_token(&[STORAGE], None).await;
            assert!(token.is_ok(), "{name}, {fault:?}: {token:?}");
            let at = token_times(&fx);
            assert_eq!(at.len(), 2, "{name}, {fault:?}");
            assert!(
                at[1] - at[0] >= time::Duration::seconds(1),
                "{name}, {fault:?}: the second request {} after the first",
                at[1] - at[0]
            );
        }
    }
}

/// The same from a fresh runtime per call, as sync wrappers call a credential (azure_core's default
/// retry policy): the first call waits the short throttle out and gets the token; possibly
/// transient AADSTS700213 on a cold start is sent once more; a later call on another fresh runtime
/// is served the cached token without a request.
#[test]
fn from_a_fresh_runtime_per_call_a_short_throttle_and_a_transient_code_are_absorbed() {
    let setup = tokio::runtime::Runtime::new().unwrap();
    let fx = setup.block_on(Fixture::new());
    let call = |cred: &WorkloadIdentityCredential| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(cred.get_token(&[STORAGE], None))
    };
    for fault in [
        Fault::Throttle {
            retry_after: RetryAfter::Seconds(1),
        },
        entra_fault(400, 700213),
    ] {
        let mut o = fx.options();
        o.credential_options.client_options.retry = RetryOptions::default();
        let cred = WorkloadIdentityCredential::new(Some(o)).unwrap();
        fx.emu.reset_counters();
        fx.emu.push_fault(Endpoint::Token, fault.clone());
        let first = call(&cred);
        assert!(first.is_ok(), "{fault:?}: {first:?}");
        assert_eq!(token_times(&fx).len(), 2, "{fault:?}");
        let again = call(&cred).unwrap();
        assert_eq!(again.token.secret(), first.unwrap().token.secret());
        assert_eq!(
            token_times(&fx).len(),
            2,
            "{fault:?}: the second call is a cache hit"
        );
    }
}

/// A `Retry-After` longer than half the attempt bound still ends the attempt at once with the
/// throttled error, after one request, under azure_core's default retry policy too.
#[tokio::test]
async fn a_long_retry_after_fails_at_once_after_one_request() {
    let fx = Fixture::new().await;
    for retry in [RetryOptions::none(), RetryOptions::default()] {
        let mut o = fx.options();
        o.credential_options.client_options.retry = retry;
        let cred = WorkloadIdentityCredential::new(Some(o)).unwrap();
        fx.emu.reset_counters();
        fx.emu.push_fault(
            Endpoint::Token,
            Fault::Throttle {
                retry_after: RetryAfter::Seconds(45),
            },
        );
        let e = cred.get_token(&[STORAGE], None).await.unwrap_err();
        let e = credential_error(&e);
        assert!(
            e.message()
                .contains("Entra throttled the token request (HTTP 429, retry after 45 s"),
            "{e}"
        );
        assert_eq!(token_times(&fx).len(), 1);
    }
}

fn entra_fault(status: u16, code: u32) -> Fault {
    Fault::Entra {
        status,
        error: "invalid_client".into(),
        code,
        message: "Injected.".into(),
    }
}

/// 1,000 cold credentials, each started against `fault` on the token endpoint; the caller-visible
/// errors, and the number of requests the emulator saw.
async fn thousand_cold_callers(fx: &Fixture) -> (Vec<azure_core::Error>, usize) {
    use futures::StreamExt as _;
    let errors = futures::stream::iter(0..1000)
        .map(|_| async {
            let mut o = fx.options();
            // What users run: azure_core's default retry policy (it does not retry a 400) and
            // the default bound, whose first half a second request fits in on a loaded runner.
            o.credential_options.client_options.retry = RetryOptions::default();
            o.refresh_policy.attempt_timeout = azure_core::time::Duration::seconds(30);
            let cred = WorkloadIdentityCredential::new(Some(o)).unwrap();
            cred.get_token(&[STORAGE], None).await.err()
        })
        .buffer_unordered(50)
        .filter_map(|e| async move { e })
        .collect::<Vec<_>>()
        .await;
    (errors, token_times(fx).len())
}

/// 1,000 cold credentials against an endpoint where 2 % of the exchanges fail with AADSTS700213
/// (Entra's intermittent federation error), never twice for one caller: no caller sees an error,
/// and each failure costs exactly one more request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intermittent_federation_errors_never_reach_a_cold_caller() {
    let fx = Fixture::new().await;
    for _ in 0..20 {
        fx.emu.push_fault(Endpoint::Token, entra_fault(400, 700213));
    }
    let (errors, requests) = thousand_cold_callers(&fx).await;
    assert!(
        errors.is_empty(),
        "{} errors: {:?}",
        errors.len(),
        errors.first()
    );
    assert_eq!(requests, 1020);
}

/// The same with 2 % of all requests failing, drawn independently (seeded): a caller sees an error
/// only when both of its requests drew the fault (2 % of 2 %: about 0.4 callers in 1,000, so the
/// count is not asserted to be zero), and every request is accounted for: one per caller, one more
/// per caller whose first request failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_federation_errors_reach_only_callers_hit_twice() {
    let fx = Fixture::new().await;
    fx.emu
        .set_fault_rate(Endpoint::Token, entra_fault(400, 700213), 20, 2026);
    let (errors, requests) = thousand_cold_callers(&fx).await;
    let injected = fx.emu.rate_faults_injected(Endpoint::Token);
    assert!((5..=40).contains(&injected), "{injected} faults injected");
    for e in &errors {
        assert_eq!(credential_error(e).aadsts_codes(), &[700213], "{e}");
        assert!(credential_error(e).message().contains("Sent twice"), "{e}");
    }
    // injected = first-request failures + second-request failures (= the errors).
    assert_eq!(requests, 1000 + injected - errors.len());
    assert!(errors.len() * 2 <= injected, "{} errors", errors.len());
}

/// A persistent possibly-transient error reaches the caller with its diagnosis after exactly two
/// requests, within 2 s more than one; a misconfiguration (unknown client) after exactly one.
#[tokio::test]
async fn a_persistent_error_reaches_the_caller_after_two_requests_or_one() {
    let fx = Fixture::new().await;
    for (code, requests) in [(700213, 2), (700016, 1)] {
        fx.emu.reset_counters();
        fx.emu
            .set_fault(Endpoint::Token, Some(entra_fault(400, code)));
        let cred = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
        let started = std::time::Instant::now();
        let e = cred.get_token(&[STORAGE], None).await.unwrap_err();
        let e = credential_error(&e);
        assert_eq!(e.aadsts_codes(), &[code], "{e}");
        assert_eq!(
            e.problem_id(),
            Some(azure_identity_k8s::ProblemId::Aadsts(code))
        );
        assert_eq!(token_times(&fx).len(), requests, "AADSTS{code}");
        assert_eq!(e.message().contains("Sent twice"), requests == 2, "{e}");
        assert_eq!(e.is_transient(), requests == 2, "{e}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "AADSTS{code}"
        );
    }
    fx.emu.set_fault(Endpoint::Token, None);
}

/// A possibly transient code gets its second request only when no valid token is held (the
/// caller waits for the error): 2 requests on a cold start; 1 for a refresh in the token's
/// mandatory window, whose caller is then served the cached token (the cache retries with backoff).
#[cfg(feature = "test-util")]
#[tokio::test]
async fn a_possibly_transient_code_is_sent_twice_only_when_no_valid_token_is_held() {
    let fx = Fixture::new().await;
    let start = time::OffsetDateTime::now_utc();
    let clock = Arc::new(azure_identity_k8s::test_util::ManualClock::new(start));
    let cred = WorkloadIdentityCredential::with_clock(Some(fx.options()), clock.clone()).unwrap();
    fx.emu
        .set_fault(Endpoint::Token, Some(entra_fault(400, 700213)));
    let e = cred.get_token(&[STORAGE], None).await.unwrap_err();
    assert!(credential_error(&e).message().contains("Sent twice"), "{e}");
    assert_eq!(token_times(&fx).len(), 2, "cold");
    fx.emu.set_fault(Endpoint::Token, None);
    // Past the error's transient_error_ttl.
    clock.advance(time::Duration::seconds(2));
    let token = cred.get_token(&[STORAGE], None).await.unwrap();
    assert_eq!(token_times(&fx).len(), 3);
    fx.emu
        .set_fault(Endpoint::Token, Some(entra_fault(400, 700213)));
    // 30 s before expiry: inside the mandatory window (60 s), so the caller waits for the refresh.
    let now = start + time::Duration::seconds(2);
    clock.advance(token.expires_on - now - time::Duration::seconds(30));
    let served = cred.get_token(&[STORAGE], None).await.unwrap();
    assert_eq!(served.token.secret(), token.token.secret());
    assert_eq!(token_times(&fx).len(), 4, "warm: one request");
    fx.emu.set_fault(Endpoint::Token, None);
}

/// A 200 whose body is Entra's error answer is that AADSTS error, with its catalogue entry.
#[tokio::test]
async fn an_entra_error_in_a_200_is_that_error() {
    let fx = Fixture::new().await;
    fx.emu.push_fault(Endpoint::Token, entra_fault(200, 700016));
    let cred = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let e = cred.get_token(&[STORAGE], None).await.unwrap_err();
    let e = credential_error(&e);
    assert_eq!(e.aadsts_codes(), &[700016], "{e}");
    assert_eq!(
        e.problem_id(),
        Some(azure_identity_k8s::ProblemId::Aadsts(700016))
    );
    assert!(
        e.fix().is_some_and(|f| f.contains("AZURE_CLIENT_ID")),
        "{e}"
    );
    assert!(e.message().contains("no application with client id"), "{e}");
}

/// A 307 or 308 is reported as a redirect showing its Location, and never followed: also through
/// the private-CA transport docs/security.md recommends (reqwest with the CA added and redirects
/// off).
#[tokio::test]
async fn a_redirect_is_reported_with_its_location_and_never_followed() {
    let fx = Fixture::new().await;
    let elsewhere = format!("{}/elsewhere/oauth2/v2.0/token", fx.emu.authority_host());
    let ca = reqwest::Certificate::from_pem(fx.emu.ca_pem().as_bytes()).unwrap();
    let private_ca = reqwest::Client::builder()
        .add_root_certificate(ca)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    for (status, transport) in [
        (307, fx.emu.transport()),
        (308, azure_core::http::Transport::new(Arc::new(private_ca))),
    ] {
        let mut o = fx.options();
        o.credential_options.client_options.transport = Some(transport);
        let cred = WorkloadIdentityCredential::new(Some(o)).unwrap();
        fx.emu.reset_counters();
        fx.emu
            .push_fault(Endpoint::Token, Fault::Redirect(status, elsewhere.clone()));
        let e = cred.get_token(&[STORAGE], None).await.unwrap_err();
        let e = credential_error(&e);
        assert!(
            e.message()
                .contains(&format!("HTTP {status} with a redirect to {elsewhere}")),
            "{e}"
        );
        assert_eq!(e.category(), ErrorCategory::InvalidResponse);
        assert_eq!(
            fx.emu.requests().len(),
            1,
            "the Location is never requested"
        );
    }
}

/// A relative token path is resolved once, at construction, against the working directory: the
/// source keeps the absolute path, and an error names it.
#[tokio::test]
async fn a_relative_token_path_is_resolved_at_construction() {
    let cwd = std::env::current_dir().unwrap();
    let source = TokenFileSource::new("sa/token", "api://AzureADTokenExchange", false);
    assert_eq!(source.path(), cwd.join("sa/token"));
    let fx = Fixture::new().await;
    let mut o = fx.options();
    o.token_file_path = Some("no-such-dir/azure-identity-token".into());
    let e = WorkloadIdentityCredential::new(Some(o)).unwrap_err();
    let e = credential_error(&e);
    let absolute = cwd.join("no-such-dir/azure-identity-token");
    assert!(e.message().contains(&absolute.display().to_string()), "{e}");
}

/// A federated identity credential that Entra accepts only some seconds after the pod starts
/// (AADSTS700213 until it has propagated; the emulator's and the credential's clocks advanced, no
/// sleep): the first call fails with that diagnosis, and a call 12 s later gets a token from the same credential (the error is remembered only briefly).
#[cfg(feature = "test-util")]
#[tokio::test]
async fn a_federated_credential_that_propagates_late_is_used_seconds_later() {
    let fx = Fixture::new().await;
    let clock = Arc::new(azure_identity_k8s::test_util::ManualClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    let cred = WorkloadIdentityCredential::with_clock(Some(fx.options()), clock.clone()).unwrap();
    // Created as the pod starts (replacing the fixture's), it matches 10 s later.
    let subject = ServiceAccountToken::default().subject();
    let fic = entra_emulator::FederatedCredential::new(fx.issuer.url(), subject);
    fx.emu.add_federated_credential(
        TENANT,
        CLIENT,
        fic.with_valid_after(std::time::Duration::from_secs(10)),
    );
    let e = cred.get_token(&[STORAGE], None).await.unwrap_err();
    assert_eq!(credential_error(&e).aadsts_codes(), &[700213], "{e}");
    fx.emu.advance_clock(std::time::Duration::from_secs(12));
    clock.advance(time::Duration::seconds(12));
    cred.get_token(&[STORAGE], None)
        .await
        .expect("the same credential gets a token once Entra accepts it");
    assert_eq!(token_times(&fx).len(), 3);
}
