//! One attempt: the spawned task that fetches a token for a slot and records the outcome.

use super::slot::{Cached, InFlight, Slot, SlotState, add, between};
use super::{CacheInner, Event, Failure, Outcome, SharedOutcome, TokenSource, write};
use azure_core::async_runtime::get_async_runtime;
use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::{Either, select};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use time::Duration;
use tracing::instrument::{Instrument as _, WithSubscriber as _};

/// Grace past `attempt_timeout` before an attempt that has not ended is treated as dead.
const DEAD_ATTEMPT_GRACE: Duration = Duration::seconds(2);

/// One attempt. Dropping it (completed, panicked, never polled, runtime shut down) clears the
/// slot's in-flight marker *before* its waiters are told, so they start a new attempt.
pub(super) struct AttemptTask<S: TokenSource> {
    cache: Arc<CacheInner<S>>,
    slot: Arc<Slot<S>>,
    id: u64,
    reason: &'static str,
    ctx: Option<S::Context>,
    progress: Arc<S::Progress>,
    tx: Option<oneshot::Sender<Outcome<S>>>,
}

impl<S: TokenSource> Drop for AttemptTask<S> {
    fn drop(&mut self) {
        write(&self.slot.state).end_attempt(self.id);
        // `tx` is dropped after this: waiters see `Canceled` only once the marker is gone.
    }
}

impl<S: TokenSource> AttemptTask<S> {
    /// Register a new attempt in `state` (whose lock the caller holds); the task to spawn once
    /// the lock is released.
    pub(super) fn prepare(
        this: &Arc<CacheInner<S>>,
        slot: &Arc<Slot<S>>,
        state: &mut SlotState<S>,
        reason: &'static str,
        now: Instant,
        ctx: S::Context,
    ) -> (SharedOutcome<S>, Self) {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let outcome = rx.shared();
        let progress = Arc::default();
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
            ctx: Some(ctx),
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
        // Detached: dropping the handle does not abort the task.
        drop(get_async_runtime().spawn(future));
    }

    async fn run(mut self) {
        let cache = Arc::clone(&self.cache);
        let (source, policy, key) = (&cache.source, &cache.policy, &self.slot.key);
        let started = cache.clock.instant();
        source.observe(
            key,
            Event::Refreshing {
                reason: self.reason,
            },
        );
        let ctx = self.ctx.take().unwrap_or_default();
        let fetch = AssertUnwindSafe(source.fetch(key, ctx, Arc::clone(&self.progress)));
        let fetch = std::pin::pin!(fetch.catch_unwind());
        let timeout = get_async_runtime().sleep(policy.attempt_timeout.max(Duration::ZERO));
        let failure = match select(fetch, timeout).await {
            Either::Left((Ok(result), _)) => Ok(result),
            Either::Left((Err(panic), _)) => Err(Failure::Panicked(panic_message(&*panic))),
            Either::Right(((), _)) => Err(Failure::TimedOut {
                bound: policy.attempt_timeout,
                progress: Some(Arc::clone(&self.progress)),
            }),
        };
        let result = failure.unwrap_or_else(|failure| Err(source.failed(key, failure)));
        let (now, wall) = (cache.clock.instant(), cache.clock.now());
        let outcome = {
            let mut state = write(&self.slot.state);
            state.end_attempt(self.id);
            match result {
                Ok(fetched) => {
                    let cached = Cached::new(fetched, started, policy, (cache.random)());
                    source.observe(
                        key,
                        Event::Acquired {
                            expires_on: cached.expires_on,
                            refresh_in: between(now, cached.refresh_at),
                            took: between(started, now),
                        },
                    );
                    state.record_success(cached, wall)
                }
                Err(error) => state.record_failure(error, (now, wall), &cache, key),
            }
        };
        // Every waiter gets the same outcome; nobody may be listening any more, which is fine.
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(outcome);
        }
    }
}

/// The text of a panic's payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}
