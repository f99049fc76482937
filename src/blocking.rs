//! Tokens for synchronous code (feature `blocking`): [`BlockingTokenCredential`].
//!
//! librdkafka's OAUTHBEARER refresh callback, r2d2's `ManageConnection::connect` and plain
//! command-line programs run outside any async runtime, yet every [`TokenCredential`] is async.
//! The usual fix, a fresh tokio runtime per call (`Runtime::new()?.block_on(cred.get_token(..))`),
//! starts and stops threads on every call, loses the HTTP connection pool with the runtime, and
//! leaves the credential's in-flight refresh on a runtime that is about to be dropped.
//!
//! [`BlockingTokenCredential`] owns one small tokio runtime (one worker thread, at most two
//! blocking-pool threads for DNS lookups, all named `azure-identity-k8s-blocking`), started on the
//! first call and stopped when the wrapper is dropped. Each call drives the wrapped credential on
//! the calling thread inside that runtime's context, so the cache's refresh task, the connection
//! pool and hyper's connection tasks all live on the wrapper's runtime, which outlives every call.
//! Threads do not grow with the number of calls.
//!
//! Where the call is made from:
//!
//! | caller | behaviour |
//! |---|---|
//! | a plain thread (no runtime) | waits on the calling thread |
//! | `spawn_blocking` / a multi-thread runtime's `block_on` | waits on the calling thread |
//! | a task on a multi-thread tokio runtime's worker | [`tokio::task::block_in_place`] first: the worker's other tasks move to another thread, so the runtime keeps running |
//! | anything on a current-thread tokio runtime (`#[tokio::main(flavor = "current_thread")]`, `#[tokio::test]`) | refused with an error of category [`ErrorCategory::InvalidConfiguration`](crate::ErrorCategory::InvalidConfiguration): waiting there would stall every task of that runtime. Await [`TokenCredential::get_token`] instead |
//!
//! Every call is bounded by [`BlockingTokenCredentialOptions::timeout`] (60 s by default, above
//! the credential's own 30 s attempt bound); a call that gives up leaves the refresh running on the
//! wrapper's runtime, so the next call is served its result.

use crate::error::CredentialError;
use crate::problem::ProblemId;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::time::Duration;
use std::fmt;
use std::sync::{Arc, OnceLock};
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// The name its errors start with.
const NAME: &str = "BlockingTokenCredential";

/// Options for [`BlockingTokenCredential`]; `None` or `Default` gives the defaults.
#[derive(Clone, Debug)]
pub struct BlockingTokenCredentialOptions {
    /// The longest one [`BlockingTokenCredential::get_token`] call waits, in whole or fractional
    /// seconds. Default 60 s. A call that runs out returns an error of category
    /// [`ErrorCategory::Timeout`](crate::ErrorCategory::Timeout); the credential's refresh keeps running on the wrapper's
    /// runtime. Must be positive.
    pub timeout: Duration,
}

impl Default for BlockingTokenCredentialOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::seconds(60),
        }
    }
}

/// A synchronous front for any [`TokenCredential`]: `get_token` blocks the calling thread, never
/// a tokio worker, and runs the credential on a runtime the wrapper owns (see the [module
/// docs](self)).
///
/// Build one per credential and keep it (in the Kafka client's context, the connection manager,
/// a `static`): the runtime starts on the first call and stops when the wrapper is dropped.
/// Example: the [crate docs](crate), section "Synchronous callers".
pub struct BlockingTokenCredential {
    credential: Arc<dyn TokenCredential>,
    timeout: Duration,
    runtime: OnceLock<Runtime>,
}

impl BlockingTokenCredential {
    /// Wrap `credential` (this crate's, a chain, or any other `TokenCredential`). Starts no thread
    /// and does no I/O.
    ///
    /// # Errors
    /// [`ErrorCategory::InvalidConfiguration`](crate::ErrorCategory::InvalidConfiguration) when `options.timeout` is zero or negative.
    pub fn new(
        credential: Arc<dyn TokenCredential>,
        options: Option<BlockingTokenCredentialOptions>,
    ) -> azure_core::Result<Self> {
        let options = options.unwrap_or_default();
        if !options.timeout.is_positive() {
            return Err(CredentialError::new(
                ProblemId::InvalidConfiguration,
                format!(
                    "BlockingTokenCredentialOptions::timeout is {} s; it must be positive",
                    options.timeout.as_seconds_f64()
                ),
            )
            .named(None)
            .with_fix("leave BlockingTokenCredentialOptions::timeout at its default (60 s) or set e.g. Duration::seconds(30).")
            .into());
        }
        Ok(Self {
            credential,
            timeout: options.timeout,
            runtime: OnceLock::new(),
        })
    }

    /// The wrapped credential, for async code that shares it.
    pub fn credential(&self) -> &Arc<dyn TokenCredential> {
        &self.credential
    }

    /// An access token for `scopes`, waiting on the calling thread.
    ///
    /// The same scopes and options as [`TokenCredential::get_token`]; the wrapped credential's
    /// cache decides whether a request is made.
    ///
    /// # Errors
    /// The wrapped credential's error, unchanged; [`ErrorCategory::Timeout`](crate::ErrorCategory::Timeout) when the call took
    /// longer than [`BlockingTokenCredentialOptions::timeout`];
    /// [`ErrorCategory::InvalidConfiguration`](crate::ErrorCategory::InvalidConfiguration) when called on a current-thread tokio runtime;
    /// [`ErrorCategory::Transport`](crate::ErrorCategory::Transport) when the wrapper's runtime cannot start its thread.
    pub fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let call = || {
            let runtime = self.runtime()?;
            // Positive (checked by `new`), so the conversion is exact.
            let timeout = self.timeout.unsigned_abs();
            let fetch = self.credential.get_token(scopes, options);
            (runtime.block_on(async { tokio::time::timeout(timeout, fetch).await }))
                .unwrap_or_else(|_elapsed| Err(self.timeout_error(scopes)))
        };
        match Handle::try_current().map(|handle| handle.runtime_flavor()) {
            Err(_) => call(),
            Ok(RuntimeFlavor::CurrentThread) => Err(current_thread_error()),
            // Multi-thread: moves this worker's other tasks away (a no-op off the workers).
            Ok(_) => tokio::task::block_in_place(call),
        }
    }

    /// The wrapper's runtime, started on first use.
    fn runtime(&self) -> azure_core::Result<&Runtime> {
        if let Some(runtime) = self.runtime.get() {
            return Ok(runtime);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .thread_name("azure-identity-k8s-blocking")
            .enable_all()
            .build()
            .map_err(|e| {
                CredentialError::new(
                    ProblemId::Transport,
                    format!(
                        "could not start its runtime thread ({e}); the \
                         process may be at its thread limit"
                    ),
                )
                .named(Some(NAME))
                .with_fix("raise the thread limit (ulimit -u, the container's pids limit) or reduce the process's other threads.")
                .with_source(e)
            })?;
        // Another thread may have won the race: its runtime is kept and this one, which ran
        // nothing, is stopped without blocking.
        if let Err(unused) = self.runtime.set(runtime) {
            unused.shutdown_background();
        }
        self.runtime()
    }

    fn timeout_error(&self, scopes: &[&str]) -> azure_core::Error {
        CredentialError::new(
            ProblemId::Timeout,
            format!(
                "no token for scope {} within {} s \
                 (BlockingTokenCredentialOptions::timeout). The request keeps running in the \
                 background and the next call is served its result",
                scopes.join(" "),
                self.timeout.as_seconds_f64()
            ),
        )
        .named(Some(NAME))
        .with_fix(
            "if the token endpoint is just slow, raise BlockingTokenCredentialOptions::timeout.",
        )
        .into()
    }
}

fn current_thread_error() -> azure_core::Error {
    CredentialError::new(
        ProblemId::InvalidConfiguration,
        "BlockingTokenCredential::get_token was called on a current-thread tokio runtime \
         (#[tokio::main(flavor = \"current_thread\")], #[tokio::test], or a task or \
         spawn_blocking closure of one); waiting there would stall every task of that runtime",
    )
    .named(None)
    .with_fix("in async code await the wrapped credential instead: `credential.credential().get_token(scopes, None).await`; or call from a plain std::thread, or use a multi-thread runtime.")
    .into()
}

impl fmt::Debug for BlockingTokenCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingTokenCredential")
            .field("credential", &self.credential)
            .field("timeout", &self.timeout)
            .field("started", &self.runtime.get().is_some())
            .finish()
    }
}

impl Drop for BlockingTokenCredential {
    fn drop(&mut self) {
        // Never blocks, so the wrapper may be dropped anywhere, async code included.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
