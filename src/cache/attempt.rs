//! One attempt: the spawned task that fetches a token for a slot and records the outcome.

use super::errors::{panic_error, timed_out};
use super::slot::{Cached, InFlight, Slot, SlotState, add, between};
use super::{CacheInner, Outcome, SharedOutcome, write};
use crate::http::{Phase, Progress};
use azure_core::async_runtime::get_async_runtime;
use azure_core::http::Context;
use azure_core::time::Duration;
use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::{Either, select};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tracing::instrument::{Instrument as _, WithSubscriber as _};

/// Grace past `attempt_timeout` before an attempt that has not ended is treated as dead.
const DEAD_ATTEMPT_GRACE: Duration = Duration::seconds(2);

/// One attempt. Dropping it (completed, panicked, never polled, runtime shut down) clears the
/// slot's in-flight marker *before* its waiters are told, so they start a new attempt.
pub(super) struct AttemptTask {
    cache: Arc<CacheInner>,
    slot: Arc<Slot>,
    id: u64,
    reason: &'static str,
    ctx: Context<'static>,
    progress: Arc<Progress>,
    tx: Option<oneshot::Sender<Outcome>>,
}

impl Drop for AttemptTask {
    fn drop(&mut self) {
        let mut state = write(&self.slot.state);
        if state.attempt.as_ref().is_some_and(|a| a.id == self.id) {
            state.attempt = None;
        }
        drop(state);
        // `tx` is dropped after this: waiters see `Canceled` only once the marker is gone.
    }
}

impl AttemptTask {
    /// Register a new attempt in `state` (whose lock the caller holds); the task to spawn once
    /// the lock is released.
    pub(super) fn prepare(
        this: &Arc<CacheInner>,
        slot: &Arc<Slot>,
        state: &mut SlotState,
        reason: &'static str,
        now: Instant,
        ctx: Context<'static>,
    ) -> (SharedOutcome, Self) {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let outcome = rx.shared();
        let progress = Arc::new(Progress::new());
        state.attempt = Some(InFlight {
            id,
            outcome: outcome.clone(),
            deadline: add(now, this.policy.attempt_timeout + DEAD_ATTEMPT_GRACE),
            progress: Arc::clone(&progress),
        });
        let task = Self {
            cache: Arc::clone(this),
            slot: Arc::clone(slot),
            id,
            reason,
            ctx: ctx.with_value(Arc::clone(&progress)),
            progress,
            tx: Some(tx),
        };
        (outcome, task)
    }

    /// Spawn on azure_core's runtime with the caller's span and subscriber. Spawning panics when
    /// there is no runtime (tokio's, outside a runtime): the task is dropped (which frees the
    /// slot) and the panic continues.
    pub(super) fn spawn(self) {
        let span = tracing::Span::current();
        let future = Box::pin(self.run().instrument(span).with_current_subscriber());
        let handle = get_async_runtime().spawn(future);
        // Detached: dropping the handle does not abort the task.
        drop(handle);
    }

    async fn run(mut self) {
        let cache = Arc::clone(&self.cache);
        let policy = &cache.policy;
        let started = cache.clock.instant();
        self.progress.set(Phase::Request);
        tracing::debug!(scopes = %self.slot.scope, reason = self.reason, "refreshing {}", cache.source.kind());
        let fetch = AssertUnwindSafe(
            cache
                .source
                .fetch(std::slice::from_ref(&self.slot.scope_owned), &self.ctx),
        )
        .catch_unwind();
        let timeout = get_async_runtime().sleep(policy.attempt_timeout.max(Duration::ZERO));
        let result = match select(fetch, timeout).await {
            Either::Left((Ok(result), _)) => result,
            Either::Left((Err(panic), _)) => Err(panic_error(&*cache.source, &self.slot, panic)),
            Either::Right(((), _)) => Err(timed_out(
                &*cache.source,
                policy.attempt_timeout,
                Some(&self.progress),
            )),
        };
        let (now, wall) = (cache.clock.instant(), cache.clock.now());
        let outcome = {
            let mut state = write(&self.slot.state);
            if state.attempt.as_ref().is_some_and(|a| a.id == self.id) {
                state.attempt = None;
            }
            match result {
                Ok(fetched) => {
                    let cached = Cached::new(fetched, started, policy, (cache.random)());
                    tracing::info!(
                        scopes = %self.slot.scope,
                        expires_on = %cached.token.expires_on,
                        refresh_in_secs = between(now, cached.refresh_at).whole_seconds(),
                        duration_ms = between(started, now).whole_milliseconds() as i64,
                        "acquired {}",
                        cache.source.kind()
                    );
                    // A token inserted while this attempt ran may outlive this one.
                    let raced = state.inserted_at.is_some_and(|at| at >= started);
                    state.record_success(cached, wall, raced)
                }
                Err(error) => state.record_failure(
                    error,
                    (now, wall),
                    policy,
                    cache.random,
                    (&*cache.source, &self.slot.scope),
                ),
            }
        };
        // Every waiter gets the same outcome; nobody may be listening any more, which is fine.
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(outcome);
        }
    }
}
