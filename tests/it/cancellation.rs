//! Callers that give up mid-refresh (a timeout, a `select!`, an aborted task) never poison the
//! single-flight slot: the attempt keeps running in its own task, the next caller joins it (no
//! second request) and gets the token. The token endpoint is held on a [`Gate`], so "mid-refresh"
//! is a fact, not a timing guess.

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::WorkloadIdentityCredential;
use entra_emulator::{Endpoint, Fault, Gate};
use std::sync::Arc;

/// A credential whose first token request is held until the returned gate is released.
async fn held(fx: &Fixture) -> (Arc<WorkloadIdentityCredential>, Gate) {
    let cred = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let gate = Gate::new();
    fx.emu
        .push_fault(Endpoint::Token, Fault::Hold(gate.clone()));
    (cred, gate)
}

#[derive(Debug, Clone, Copy)]
enum Cancel {
    /// `tokio::time::timeout` expires while the request is held.
    Timeout,
    /// A `select!` branch wins while the request is held.
    Select,
    /// The caller's task is aborted while the request is held.
    Abort,
}

async fn cancel_one_caller(
    fx: &Fixture,
    cred: &Arc<WorkloadIdentityCredential>,
    gate: &Gate,
    how: Cancel,
) {
    match how {
        Cancel::Timeout => {
            // Long enough for the request to reach the held endpoint on a loaded machine (the
            // other tests of the binary run alongside); it cannot answer while held.
            let waited = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                cred.get_token(&[STORAGE], None),
            )
            .await;
            assert!(waited.is_err(), "the held request cannot have answered");
            assert_eq!(gate.waiting(), 1);
        }
        Cancel::Select => {
            tokio::select! {
                _ = cred.get_token(&[STORAGE], None) => panic!("the held request cannot have answered"),
                _ = gate.wait_for_waiting(1) => {}
            }
        }
        Cancel::Abort => {
            let c = cred.clone();
            let task = tokio::spawn(async move { c.get_token(&[STORAGE], None).await });
            gate.wait_for_waiting(1).await;
            task.abort();
            assert!(task.await.unwrap_err().is_cancelled());
        }
    }
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1, "{how:?}");
}

async fn next_caller_joins_the_attempt(how: Cancel) {
    let fx = Fixture::new().await;
    let (cred, gate) = held(&fx).await;
    cancel_one_caller(&fx, &cred, &gate, how).await;
    // The next caller joins the attempt still in flight instead of starting another.
    let c = cred.clone();
    let next = tokio::spawn(async move { c.get_token(&[STORAGE], None).await });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!next.is_finished());
    assert_eq!(gate.waiting(), 1, "{how:?}: still the one held request");
    gate.release();
    let token = next.await.unwrap().expect("the next caller gets a token");
    assert_eq!(
        fx.emu.request_count(Endpoint::Token),
        1,
        "{how:?}: exactly one request"
    );
    let again = cred.get_token(&[STORAGE], None).await.unwrap();
    assert_eq!(
        again.token.secret(),
        token.token.secret(),
        "{how:?}: cached"
    );
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);
}

#[tokio::test]
async fn a_caller_timed_out_mid_refresh_does_not_poison_the_slot() {
    next_caller_joins_the_attempt(Cancel::Timeout).await;
}

#[tokio::test]
async fn a_caller_dropped_by_select_mid_refresh_does_not_poison_the_slot() {
    next_caller_joins_the_attempt(Cancel::Select).await;
}

#[tokio::test]
async fn an_aborted_caller_mid_refresh_does_not_poison_the_slot() {
    next_caller_joins_the_attempt(Cancel::Abort).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_callers_on_a_multi_threaded_runtime() {
    next_caller_joins_the_attempt(Cancel::Abort).await;
}

#[tokio::test]
async fn an_abandoned_attempt_still_completes_and_is_cached() {
    let fx = Fixture::new().await;
    let (cred, gate) = held(&fx).await;
    cancel_one_caller(&fx, &cred, &gate, Cancel::Select).await;
    // Nobody is waiting any more; the attempt finishes on its own.
    gate.release();
    while fx
        .emu
        .requests()
        .iter()
        .any(|r| r.endpoint == Endpoint::Token && r.status == 0)
    {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    cred.get_token(&[STORAGE], None).await.expect("a token");
    assert_eq!(
        fx.emu.request_count(Endpoint::Token),
        1,
        "no second request"
    );
}

#[tokio::test]
async fn half_of_a_crowd_aborted_the_rest_get_one_token() {
    let fx = Fixture::new().await;
    let (cred, gate) = held(&fx).await;
    let callers: Vec<_> = (0..40)
        .map(|_| {
            let c = cred.clone();
            tokio::spawn(async move { c.get_token(&[STORAGE], None).await })
        })
        .collect();
    gate.wait_for_waiting(1).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let (aborted, kept): (Vec<_>, Vec<_>) = callers
        .into_iter()
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    for (_, task) in &aborted {
        task.abort();
    }
    gate.release();
    let mut tokens = Vec::new();
    for (_, task) in kept {
        tokens.push(
            task.await
                .unwrap()
                .expect("token")
                .token
                .secret()
                .to_string(),
        );
    }
    for (_, task) in aborted {
        // Aborted before or after finishing: either way, no error reached anyone.
        if let Ok(r) = task.await {
            r.expect("token");
        }
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "every caller got the same token");
    assert_eq!(
        fx.emu.request_count(Endpoint::Token),
        1,
        "exactly one request"
    );
}

#[tokio::test]
async fn a_cancelled_caller_for_one_scope_never_blocks_another_scope() {
    let fx = Fixture::new().await;
    let (cred, gate) = held(&fx).await;
    cancel_one_caller(&fx, &cred, &gate, Cancel::Select).await;
    // Storage's request is still held; vault is served meanwhile.
    let vault = cred.get_token(&[VAULT], None).await.expect("vault token");
    assert_eq!(
        claims(vault.token.secret())["aud"],
        "https://vault.azure.net"
    );
    assert_eq!(gate.waiting(), 1);
    gate.release();
    cred.get_token(&[STORAGE], None)
        .await
        .expect("storage token");
    assert_eq!(fx.emu.token_request_count_for_scope(STORAGE), 1);
    assert_eq!(fx.emu.token_request_count_for_scope(VAULT), 1);
}
