//! Keyed token cache: refresh-ahead, single-flight, static stability. It knows tokens and time
//! only: what a token is, where it comes from and how a failure reads are its [`TokenSource`]'s.
//!
//! # Semantics
//!
//! One *slot* per key (the credential keys by the one `<resource>/.default` scope it admits per
//! request, validated before it reaches the cache). A cached token has three instants on the
//! monotonic clock, anchored at the start of the attempt that fetched it (a wall-clock step
//! changes none of them; the token handed out keeps its own wall-clock expiry): `refresh_at`,
//! `mandatory_at` and `expires_at`, computed by [`policy::schedule`] as [`RefreshPolicy`]
//! documents. A call then behaves as follows.
//!
//! * **Fresh** (`now < refresh_at`): the cached token is cloned and returned. This path takes two
//!   uncontended read locks, allocates nothing but the clone, logs nothing and never waits.
//! * **Advisory window** (`refresh_at <= now < mandatory_at`): the cached token is returned at
//!   once; if no attempt is in flight and the slot is not backing off, one background refresh is
//!   spawned (after the slot's lock is released) on azure_core's async runtime. Nobody waits.
//! * **Mandatory window** (`mandatory_at <= now < expires_at`): callers join the slot's single
//!   attempt (starting it if there is none) and wait for it at most [`policy::wait_bound`], then
//!   get the cached token. A failed attempt also gives them the cached token. A caller holding a
//!   valid token never gets an error.
//! * **No valid token**: callers join the single attempt and wait at most `attempt_timeout`.
//!
//! # Attempts never wedge a slot
//!
//! An attempt is a spawned task that owns a guard: however the task ends (completed, panicked,
//! dropped before or after its first poll, its runtime shut down), the slot's in-flight marker is
//! cleared before its waiters learn about it, and waiters that see the attempt vanish start a new
//! one. An attempt also has a deadline (`attempt_timeout` plus a grace period): an attempt whose
//! task is never polled again (a runtime kept but no longer driven) is treated as dead after it,
//! and the next caller starts a new attempt. This is what makes a credential safe to call from a
//! new runtime per call (sync wrappers) and from many `#[tokio::test]`s sharing one credential.
//!
//! # Failures
//!
//! A failed refresh never replaces a still-valid token. After a failure the slot records the error
//! and the earliest next attempt: a jittered exponential backoff while a token is valid (never past
//! `mandatory_at` before the mandatory window, short within it), the error TTLs without a valid
//! token, and never before the error's `retry_after` (capped at `max_backoff`). A success clears
//! the failure state. Refreshing is never disabled. The cache's own failures (an attempt that
//! timed out, vanished or panicked) are [`Failure`]s, which the source turns into its error
//! ([`TokenSource::failed`]): the cache has no words of its own.

pub(crate) mod policy;
mod slot;
#[cfg(test)]
mod tests;

pub use policy::RefreshPolicy;
pub use slot::RefreshHealth;
pub(crate) use slot::SlotStatus;

use azure_core::async_runtime::get_async_runtime;
use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::{Either, Shared, select};
use slot::{Cached, InFlight, Slot, SlotState, add, between};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;
use time::{Duration, OffsetDateTime};
use tracing::instrument::{Instrument as _, WithSubscriber as _};

/// A freshly fetched token, as a [`TokenSource`] returns it.
#[derive(Debug)]
pub(crate) struct Fetched<T> {
    pub(crate) token: T,
    /// The token's wall-clock expiry (reported in [`SlotStatus`] and events).
    pub(crate) expires_on: OffsetDateTime,
    /// The lifetime, counted from when the source's request was sent.
    pub(crate) lifetime: Duration,
    /// When to refresh, counted likewise, when the source was told.
    pub(crate) refresh_in: Option<Duration>,
}

/// What the cache needs of the errors it remembers.
pub(crate) trait SourceError: Clone + Send + Sync + 'static {
    /// Remembered for `transient_error_ttl` (else `permanent_error_ttl`) with no valid token.
    fn is_transient(&self) -> bool;
    /// No attempt before this has passed (capped at `max_backoff`).
    fn retry_after(&self) -> Option<Duration>;
}

/// Where the cache gets tokens from, keyed by a string (the credential's scope, an assertion source's
/// audience).
pub(crate) trait TokenSource: Send + Sync + 'static {
    type Token: Clone + Send + Sync + 'static;
    type Error: SourceError;
    /// The caller's context, handed to the attempt the caller starts.
    type Context: Default + Send + 'static;
    /// What an attempt records about how far it got, read when it outlives its bound.
    type Progress: Default + Send + Sync + 'static;

    /// Fetch a new token for `key`. `cold`: no valid token was cached when the attempt started
    /// (reason `expired` or `miss`), so its callers wait for it and get its error.
    fn fetch(
        &self,
        key: &str,
        ctx: Self::Context,
        progress: Arc<Self::Progress>,
        cold: bool,
    ) -> impl Future<Output = Result<Fetched<Self::Token>, Self::Error>> + Send;

    /// The error for the cache's own `failure` of an attempt (or a wait) for `key`: transient,
    /// with no `retry_after`.
    fn failed(&self, key: &str, failure: Failure<Self::Progress>) -> Self::Error;

    /// Told of what happens to `key`'s slot (to log it: the cache has no words of its own).
    fn observe(&self, key: &str, event: Event<'_, Self>);
}

/// The cache's own reasons for a call to get no token, for [`TokenSource::failed`].
pub(crate) enum Failure<P> {
    /// The attempt, or a caller's wait for one, outlived `bound`; `progress`: the attempt's, when
    /// one was known.
    TimedOut {
        bound: Duration,
        progress: Option<Arc<P>>,
    },
    /// The attempts a caller waited for ended without a result `times` in a row (their task was
    /// dropped: its runtime shut down).
    Vanished { times: usize },
    /// The attempt panicked with this message.
    Panicked(String),
}

/// What happened to a slot, for [`TokenSource::observe`].
pub(crate) enum Event<'a, S: TokenSource + ?Sized> {
    /// An attempt starts; `reason`: `advisory`, `mandatory`, `expired` or `miss`.
    Refreshing { reason: &'static str },
    /// An attempt got a token, after `took`; the next refresh is due in `refresh_in`.
    Acquired {
        expires_on: OffsetDateTime,
        refresh_in: Duration,
        took: Duration,
    },
    /// An attempt failed; no attempt for `retry_in`; `valid_until`: the cached token still
    /// served, if any. `outage`: `(failing_for, expires_in)` once attempts have failed for
    /// `outage_warning_after` while a cached token, which expires in `expires_in`, is served.
    Failed {
        error: &'a S::Error,
        consecutive_failures: u32,
        retry_in: Duration,
        valid_until: Option<OffsetDateTime>,
        outage: Option<(Duration, Duration)>,
    },
    /// A caller's wait ended in `error`, and it is served the still-valid cached token.
    ServedStale { error: &'a S::Error },
}

/// The outcome of one attempt, as every waiter receives it.
type Outcome<S> = Result<<S as TokenSource>::Token, <S as TokenSource>::Error>;
type SharedOutcome<S> = Shared<oneshot::Receiver<Outcome<S>>>;

/// Most slots kept. Past it, slots without a valid token and without an attempt in flight (keys
/// that only ever failed, expired tokens) are evicted first, then the one that expires first.
const MAX_SLOTS: usize = 256;
/// How often one call starts a new attempt after the one it waited for vanished.
const MAX_RESTARTS: usize = 3;

/// The cache. One slot per key.
pub(crate) struct TokenCache<S: TokenSource> {
    inner: Arc<CacheInner<S>>,
}

struct CacheInner<S: TokenSource> {
    source: Arc<S>,
    policy: RefreshPolicy,
    clock: Arc<dyn crate::clock::Clock>,
    /// Hashed with FxHash: a hit hashes one short, caller-chosen string (the slot count is capped).
    slots: RwLock<HashMap<Arc<str>, Arc<Slot<S>>, rustc_hash::FxBuildHasher>>,
    /// Uniform random number in `[0, 1)` for jitter (replaceable in tests).
    random: fn() -> f64,
}

impl<S: TokenSource> fmt::Debug for TokenCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("policy", &self.inner.policy)
            .field("slots", &read(&self.inner.slots).len())
            .finish_non_exhaustive()
    }
}

impl<S: TokenSource> TokenCache<S> {
    pub(crate) fn new(
        source: Arc<S>,
        policy: RefreshPolicy,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Self {
        Self {
            inner: Arc::new(CacheInner {
                source,
                policy,
                clock,
                slots: RwLock::new(HashMap::default()),
                random: rand::random::<f64>,
            }),
        }
    }

    /// The hit path, synchronously: `Some` when the answer is known without waiting (a fresh or
    /// servable cached token, or a remembered error), `None` when the caller must go through
    /// [`get_token`](Self::get_token). Read locks only, nothing allocated but the returned clone.
    pub(crate) fn try_hit(&self, key: &str) -> Option<Outcome<S>> {
        let now = self.inner.clock.instant();
        let slots = read(&self.inner.slots);
        let slot = slots.get(key)?;
        read(&slot.state).serve(now)
    }

    /// A valid token for `key`; `ctx` goes to an attempt this call starts.
    pub(crate) async fn get_token(&self, key: &str, ctx: S::Context) -> Outcome<S> {
        if let Some(hit) = self.try_hit(key) {
            return hit;
        }
        let slot = self.inner.slot_for(key);
        CacheInner::get_slow(&self.inner, &slot, ctx).await
    }

    /// A snapshot of every slot's state.
    pub(crate) fn status(&self) -> Vec<SlotStatus<S>> {
        let (now, wall) = (self.inner.clock.instant(), self.inner.clock.now());
        read(&self.inner.slots)
            .values()
            .map(|slot| slot.status(now, wall))
            .collect()
    }
}

impl<S: TokenSource> CacheInner<S> {
    /// The slot for `key`, created on first use (evicting dead slots past [`MAX_SLOTS`]).
    fn slot_for(&self, key: &str) -> Arc<Slot<S>> {
        if let Some(slot) = read(&self.slots).get(key) {
            return Arc::clone(slot);
        }
        let mut slots = write(&self.slots);
        if slots.len() >= MAX_SLOTS && !slots.contains_key(key) {
            let now = self.clock.instant();
            slots.retain(|_, s| {
                let state = read(&s.state);
                state.valid(now).is_some() || state.live_attempt(now).is_some()
            });
            if slots.len() >= MAX_SLOTS {
                let first_to_expire = slots
                    .iter()
                    .filter(|(_, s)| read(&s.state).live_attempt(now).is_none())
                    .min_by_key(|(_, s)| read(&s.state).valid(now).map(|(_, at)| at))
                    .map(|(k, _)| k.clone());
                if let Some(k) = first_to_expire {
                    slots.remove(&k);
                }
            }
        }
        let slot = slots
            .entry(Arc::from(key))
            .or_insert_with(|| Arc::new(Slot::new(key)));
        Arc::clone(slot)
    }

    /// Everything but a plain hit: maybe start an attempt, maybe wait for one (at most the
    /// token's [`policy::wait_bound`] or `attempt_timeout`), then fall back on a valid token.
    async fn get_slow(this: &Arc<Self>, slot: &Arc<Slot<S>>, ctx: S::Context) -> Outcome<S> {
        let mut ctx = Some(ctx);
        // A vanished attempt (its task dropped) is replaced, up to MAX_RESTARTS times.
        for _ in 0..=MAX_RESTARTS {
            let now = this.clock.instant();
            let (attempt, bound) = {
                let mut state = write(&slot.state);
                // Re-check: another caller may have changed the state since the read lock.
                if let Some(outcome) = state.serve(now) {
                    return outcome;
                }
                let timeout = this.policy.attempt_timeout;
                let bound = state.valid(now).map_or(timeout, |(_, expires_at)| {
                    policy::wait_bound(between(now, expires_at), timeout)
                });
                match state.live_attempt(now) {
                    Some(a) => (a.outcome.clone(), bound),
                    None => {
                        let advisory = state
                            .cached
                            .as_ref()
                            .filter(|c| now < c.mandatory_at)
                            .map(|c| c.token.clone());
                        let reason = match (&advisory, state.valid(now), &state.cached) {
                            (Some(_), _, _) => "advisory",
                            (None, Some(_), _) => "mandatory",
                            (None, None, Some(_)) => "expired",
                            (None, None, None) => "miss",
                        };
                        let ctx = ctx.take().unwrap_or_default();
                        let (outcome, task) =
                            AttemptTask::prepare(this, slot, &mut state, reason, now, ctx);
                        drop(state);
                        // Spawned after the lock is released: a runtime that polls on spawn
                        // cannot deadlock on it.
                        task.spawn();
                        if let Some(token) = advisory {
                            return Ok(token);
                        }
                        (outcome, bound)
                    }
                }
            };
            let timeout = get_async_runtime().sleep(bound.max(Duration::ZERO));
            match select(attempt, timeout).await {
                Either::Left((Ok(outcome), _)) => return outcome,
                Either::Left((Err(oneshot::Canceled), _)) => continue,
                Either::Right(((), _)) => {
                    let state = read(&slot.state);
                    let progress = state.attempt.as_ref().map(|a| Arc::clone(&a.progress));
                    drop(state);
                    let bound = this.policy.attempt_timeout;
                    return this.fallback(slot, Failure::TimedOut { bound, progress });
                }
            }
        }
        let times = MAX_RESTARTS;
        this.fallback(slot, Failure::Vanished { times })
    }

    /// A still-valid cached token, else the source's error for `failure`.
    fn fallback(&self, slot: &Slot<S>, failure: Failure<S::Progress>) -> Outcome<S> {
        let error = self.source.failed(&slot.key, failure);
        let now = self.clock.instant();
        let token = read(&slot.state).valid(now).map(|(token, _)| token.clone());
        match token {
            Some(token) => {
                let event = Event::ServedStale { error: &error };
                self.source.observe(&slot.key, event);
                Ok(token)
            }
            None => Err(error),
        }
    }
}

/// Grace past `attempt_timeout` before an attempt that has not ended is treated as dead.
const DEAD_ATTEMPT_GRACE: Duration = Duration::seconds(2);

/// One attempt. Dropping it (completed, panicked, never polled, runtime shut down) clears the
/// slot's in-flight marker *before* its waiters are told, so they start a new attempt.
struct AttemptTask<S: TokenSource> {
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
    fn prepare(
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
    fn spawn(self) {
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
        let cold = matches!(self.reason, "expired" | "miss");
        let fetch = AssertUnwindSafe(source.fetch(key, ctx, Arc::clone(&self.progress), cold));
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

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
