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
