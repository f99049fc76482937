//! Keyed token cache: refresh-ahead, single-flight, static stability. It knows tokens and time
//! only: what a token is, where it comes from and how a failure reads are its [`TokenSource`]'s.
//!
//! One *slot* per key (the credential's one validated `<resource>/.default` scope, an assertion
//! source's audience). A cached token's `refresh_at`, `mandatory_at` and `expires_at` are
//! instants on the monotonic clock, anchored at the start of the attempt that fetched it (a
//! wall-clock step changes none of them; the token handed out keeps its own wall-clock expiry);
//! [`RefreshPolicy`] documents the windows they open and how long callers wait. A fresh token is
//! answered by [`TokenCache::try_hit`]: two uncontended read locks, nothing allocated but the
//! clone, no log, no wait.
//!
//! # Attempts never wedge a slot
//!
//! An attempt is a spawned task that holds its own liveness: however the task ends (completed,
//! panicked, dropped before or after its first poll, its runtime shut down), the attempt counts as
//! dead before its waiters learn about it, and waiters that see the attempt vanish start a new
//! one. An attempt also has a deadline (`attempt_timeout` plus a grace period): an attempt whose
//! task is never polled again (a runtime kept but no longer driven) is treated as dead after it,
//! and the next caller starts a new attempt. This is what makes a credential safe to call from a
//! new runtime per call (sync wrappers) and from many `#[tokio::test]`s sharing one credential.
//!
//! # Failures
//!
//! A failed refresh never replaces a still-valid token; the slot remembers the error and the
//! earliest next attempt ([`RefreshPolicy`] says when), and a success clears both. The cache's
//! own failures (an attempt that timed out, vanished or panicked) are [`Failure`]s, which the
//! source turns into its error ([`TokenSource::failed`]): the cache has no words of its own.

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
use slot::{InFlight, Slot, add};
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;
use time::ext::InstantExt as _;
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
    /// (the reason is `expired` or `miss`), so its callers wait for it and get its error.
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
    /// An attempt starts because the cached token is in the `advisory` or `mandatory` window,
    /// has `expired`, or there is none (`miss`).
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
/// A slot, as the cache's map and an attempt's task hold it.
type SlotLock<S> = Arc<RwLock<Slot<S>>>;

/// Most slots kept. Past it, a slot without a valid token and without an attempt in flight (a
/// key that only ever failed, an expired token) is evicted first, else the one that expires first.
const MAX_SLOTS: usize = 256;
/// How often one call starts a new attempt after the one it waited for vanished.
const MAX_RESTARTS: usize = 3;
/// Grace past `attempt_timeout` before an attempt that has not ended is treated as dead.
const DEAD_ATTEMPT_GRACE: Duration = Duration::seconds(2);

/// The cache. One slot per key.
pub(crate) struct TokenCache<S: TokenSource> {
    inner: Arc<CacheInner<S>>,
}

struct CacheInner<S: TokenSource> {
    source: Arc<S>,
    policy: RefreshPolicy,
    clock: Arc<dyn crate::clock::Clock>,
    /// Hashed with FxHash: a hit hashes one short, caller-chosen string (the slot count is capped).
    slots: RwLock<HashMap<Arc<str>, SlotLock<S>, rustc_hash::FxBuildHasher>>,
    /// Uniform random number in `[0, 1)` for jitter (replaceable in tests).
    random: fn() -> f64,
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
        read(slots.get(key)?).serve(now)
    }

    /// A valid token for `key`; `ctx` goes to an attempt this call starts.
    pub(crate) async fn get_token(&self, key: &str, ctx: S::Context) -> Outcome<S> {
        match self.try_hit(key) {
            Some(hit) => hit,
            None => self.inner.get_slow(key, ctx).await,
        }
    }

    /// A snapshot of every slot's state.
    pub(crate) fn status(&self) -> Vec<SlotStatus<S>> {
        let (now, wall) = (self.inner.clock.instant(), self.inner.clock.now());
        let slots = read(&self.inner.slots);
        (slots.iter())
            .map(|(key, slot)| read(slot).status(key, now, wall))
            .collect()
    }
}

impl<S: TokenSource> CacheInner<S> {
    /// The slot for `key`, created on first use (evicting one past [`MAX_SLOTS`]).
    fn slot_for(&self, key: &str) -> (Arc<str>, SlotLock<S>) {
        if let Some((key, slot)) = read(&self.slots).get_key_value(key) {
            return (key.clone(), slot.clone());
        }
        let mut slots = write(&self.slots);
        if slots.len() >= MAX_SLOTS && !slots.contains_key(key) {
            let now = self.clock.instant();
            // `None` (no valid token) sorts first.
            let evict = (slots.iter())
                .filter(|(_, s)| read(s).live_attempt(now).is_none())
                .min_by_key(|(_, s)| read(s).valid(now).map(|c| c.expires_at))
                .map(|(k, _)| k.clone());
            if let Some(k) = evict {
                slots.remove(&k);
            }
        }
        let key: Arc<str> = Arc::from(key);
        let slot = slots.entry(key.clone()).or_default().clone();
        (key, slot)
    }

    /// Everything but a plain hit: maybe start an attempt, maybe wait for one (at most the
    /// token's [`policy::wait_bound`] or `attempt_timeout`), then fall back on a valid token, else
    /// the source's error for the cache's failure.
    async fn get_slow(self: &Arc<Self>, key: &str, ctx: S::Context) -> Outcome<S> {
        let (key, slot) = self.slot_for(key);
        let mut ctx = Some(ctx);
        let timeout = self.policy.attempt_timeout.max(Duration::ZERO);
        let failure = 'wait: {
            // A vanished attempt (its task dropped) is replaced, up to MAX_RESTARTS times.
            for _ in 0..=MAX_RESTARTS {
                let now = self.clock.instant();
                let (attempt, bound) = {
                    let state = write(&slot);
                    // Re-check: another caller may have changed the state since the read lock.
                    if let Some(outcome) = state.serve(now) {
                        return outcome;
                    }
                    let bound = state.valid(now).map_or(timeout, |c| {
                        policy::wait_bound(c.expires_at.signed_duration_since(now), timeout)
                    });
                    if let Some(a) = state.live_attempt(now) {
                        (a.outcome.clone(), bound)
                    } else {
                        let ctx = ctx.take().unwrap_or_default();
                        match self.attempt(&key, &slot, state, now, ctx) {
                            Either::Left(advisory) => return Ok(advisory),
                            Either::Right(outcome) => (outcome, bound),
                        }
                    }
                };
                match select(attempt, get_async_runtime().sleep(bound)).await {
                    Either::Left((Ok(outcome), _)) => return outcome,
                    Either::Left((Err(oneshot::Canceled), _)) => continue,
                    Either::Right(((), _)) => {
                        let progress = read(&slot).attempt.as_ref().map(|a| a.progress.clone());
                        let bound = timeout;
                        break 'wait Failure::TimedOut { bound, progress };
                    }
                }
            }
            Failure::Vanished {
                times: MAX_RESTARTS,
            }
        };
        let error = self.source.failed(&key, failure);
        let token = read(&slot)
            .valid(self.clock.instant())
            .map(|c| c.token.clone());
        if token.is_some() {
            self.source
                .observe(&key, Event::ServedStale { error: &error });
        }
        token.ok_or(error)
    }

    /// Start an attempt on `slot` (locked by the caller as `state`): registered under the lock,
    /// spawned with the caller's span and subscriber once it is released (a runtime that polls on
    /// spawn cannot deadlock on it; with no runtime, spawning panics and the dropped task is
    /// dead). In the advisory window the cached token to return at once, else the outcome.
    fn attempt(
        self: &Arc<Self>,
        key: &Arc<str>,
        slot: &SlotLock<S>,
        mut state: RwLockWriteGuard<'_, Slot<S>>,
        now: Instant,
        ctx: S::Context,
    ) -> Either<S::Token, SharedOutcome<S>> {
        let advisory = (state.cached.as_ref())
            .filter(|c| now < c.mandatory_at)
            .map(|c| c.token.clone());
        let (reason, cold) = match (&advisory, state.valid(now), &state.cached) {
            (Some(_), _, _) => ("advisory", false),
            (None, Some(_), _) => ("mandatory", false),
            (None, None, Some(_)) => ("expired", true),
            (None, None, None) => ("miss", true),
        };
        let (tx, rx) = oneshot::channel();
        let outcome = rx.shared();
        let (progress, alive) = (Arc::<S::Progress>::default(), Arc::new(()));
        let bound = self.policy.attempt_timeout.max(Duration::ZERO);
        state.attempt = Some(InFlight {
            outcome: outcome.clone(),
            alive: Arc::downgrade(&alive),
            deadline: add(now, bound + DEAD_ATTEMPT_GRACE),
            progress: progress.clone(),
        });
        // However the task ends, `alive` is dropped before `tx` (a tuple drops in order): waiters
        // that see `Canceled` find the attempt dead and start a new one.
        let ends = (alive, tx);
        let (cache, key, slot) = (self.clone(), key.clone(), slot.clone());
        let run = async move {
            let (source, started) = (&cache.source, cache.clock.instant());
            source.observe(&key, Event::Refreshing { reason });
            let fetch = source.fetch(&key, ctx, progress.clone(), cold);
            let fetch = std::pin::pin!(AssertUnwindSafe(fetch).catch_unwind());
            let failure = match select(fetch, get_async_runtime().sleep(bound)).await {
                Either::Left((Ok(result), _)) => Ok(result),
                Either::Left((Err(panic), _)) => Err(Failure::Panicked(panic_message(&*panic))),
                Either::Right(((), _)) => Err(Failure::TimedOut {
                    bound: cache.policy.attempt_timeout,
                    progress: Some(progress),
                }),
            };
            let result = failure.unwrap_or_else(|failure| Err(source.failed(&key, failure)));
            let outcome = write(&slot).record(result, started, &cache, &key);
            drop(ends.0);
            // Every waiter gets the same outcome; nobody may be listening any more, which is fine.
            let _ = ends.1.send(outcome);
        };
        drop(state);
        let run = run.instrument(tracing::Span::current());
        // Detached: dropping the handle does not abort the task.
        drop(get_async_runtime().spawn(Box::pin(run.with_current_subscriber())));
        advisory.map_or(Either::Right(outcome), Either::Left)
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
