//! [`WorkloadIdentityCredential`]: configuration + assertion source + exchange + cache.

use crate::assertion::foreign::denied_paths;
use crate::assertion::token_file::unused_credentials;
use crate::assertion::{AssertionSource, ClientAssertionSource, TokenFileSource};
use crate::cache::{RefreshHealth, RefreshPolicy, SlotStatus, TokenCache};
use crate::clock::{Clock, SystemClock};
use crate::config::{
    self, ConfigInputs, Env, ResolvedConfig, WEBHOOK_TOKEN_PATH, WEBHOOK_TOKEN_PATH_PRE_1_6,
};
use crate::entra::Exchange;
use crate::error::{CredentialError, ErrorCategory};
use crate::problem::ProblemId;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions};
use azure_identity::ClientAssertionCredentialOptions;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use time::OffsetDateTime;

/// Options for [`WorkloadIdentityCredential`].
///
/// The first four fields are those of `azure_identity::WorkloadIdentityCredentialOptions`, with
/// the same names and types, so code written for azure_identity compiles unchanged. The others
/// are additions with defaults.
pub struct WorkloadIdentityCredentialOptions {
    /// Options for the HTTP pipeline (transport, retry, cloud, user agent).
    ///
    /// Retries: the value in `client_options.retry` is used as it is; nothing is guessed.
    /// [`WorkloadIdentityCredentialOptions::default()`] puts [`token_retry_options()`] there (at
    /// most 3 retries within 10 s: the cache retries later, in the background, while it keeps
    /// serving a valid token). Options built from `ClientOptions::default()` carry azure_core's
    /// default (up to 8 retries within a minute), which the cache bounds by
    /// [`RefreshPolicy::attempt_timeout`]. Whatever the retry options, a 429 or 503 whose
    /// `Retry-After` passes within the first half of `attempt_timeout` is waited out and the
    /// request sent once more; a longer one ends the attempt at once, and the cache sends nothing
    /// before it has passed (capped at [`RefreshPolicy::max_backoff`]), serving a valid token
    /// meanwhile.
    pub credential_options: ClientAssertionCredentialOptions,
    /// Client id of the Entra application or user-assigned managed identity (a GUID, e.g.
    /// `3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11`). Defaults to `AZURE_CLIENT_ID`.
    pub client_id: Option<String>,
    /// Tenant (directory) id: a GUID or a domain such as `contoso.onmicrosoft.com`. Defaults to
    /// `AZURE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// Path of the projected service-account token. Defaults to `AZURE_FEDERATED_TOKEN_FILE`,
    /// then the first existing path of [`well_known_token_paths`](Self::well_known_token_paths).
    pub token_file_path: Option<PathBuf>,
    /// The audience of the federated identity credential. When set here or by
    /// `AZURE_FEDERATED_TOKEN_AUDIENCE`, a token without it is refused locally; otherwise the
    /// cloud's recommended audience (`api://AzureADTokenExchange` in the public cloud) is
    /// expected, and a token with another (non-foreign) audience is sent with a warning, as
    /// azure_identity sends it.
    pub expected_audience: Option<String>,
    /// Send tokens that are credentials for something else: an audience of AWS STS
    /// (`sts.amazonaws.com` and its variants), the EKS Pod Identity agent, the Kubernetes API
    /// server or the token's own issuer, or a path that is the default service-account token,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` or the EKS Pod Identity token ([security](crate::guides::security)). Off by
    /// default: such a token handed to Entra is a privilege leak. When on, a warning is logged and
    /// the token must still carry the expected audience. `AZURE_FEDERATED_TOKEN_ALLOW_FOREIGN_AUDIENCE=true`
    /// in `env` turns it on too.
    pub allow_foreign_audience: bool,
    /// When and how cached tokens are refreshed, and how long a caller may wait.
    pub refresh_policy: RefreshPolicy,
    /// Paths tried, in order, when no token file is configured: by default the Azure Workload
    /// Identity webhook's current (`/var/run/secrets/azure/wi/token/azure-identity-token`) and
    /// pre-1.6 (`/var/run/secrets/azure/tokens/azure-identity-token`) paths.
    pub well_known_token_paths: Vec<PathBuf>,
    /// The environment read for unset options (default: the process environment).
    pub env: Env,
}

impl Default for WorkloadIdentityCredentialOptions {
    fn default() -> Self {
        Self {
            credential_options: ClientAssertionCredentialOptions {
                client_options: ClientOptions {
                    retry: token_retry_options(),
                    ..Default::default()
                },
            },
            client_id: None,
            tenant_id: None,
            token_file_path: None,
            expected_audience: None,
            allow_foreign_audience: false,
            refresh_policy: RefreshPolicy::default(),
            well_known_token_paths: vec![
                PathBuf::from(WEBHOOK_TOKEN_PATH),
                PathBuf::from(WEBHOOK_TOKEN_PATH_PRE_1_6),
            ],
            env: Env::process(),
        }
    }
}

impl WorkloadIdentityCredentialOptions {
    /// The configuration these options and their environment resolve to ([`config::resolve`]);
    /// `assertion` stands in for the token file when the assertion comes from another source.
    pub(crate) fn resolve(
        &self,
        assertion: Option<&Path>,
    ) -> Result<ResolvedConfig, CredentialError> {
        config::resolve(&ConfigInputs {
            client_id: self.client_id.as_deref(),
            tenant_id: self.tenant_id.as_deref(),
            token_file_path: assertion.or(self.token_file_path.as_deref()),
            cloud: self.credential_options.client_options.cloud.as_deref(),
            expected_audience: self.expected_audience.as_deref(),
            well_known_token_paths: &self.well_known_token_paths,
            env: &self.env,
            unused_token: &|aud| unused_credentials(&denied_paths(&self.env), aud),
        })
    }
}

impl fmt::Debug for WorkloadIdentityCredentialOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadIdentityCredentialOptions")
            .field("client_id", &self.client_id)
            .field("tenant_id", &self.tenant_id)
            .field("token_file_path", &self.token_file_path)
            .field("expected_audience", &self.expected_audience)
            .field("allow_foreign_audience", &self.allow_foreign_audience)
            .field("refresh_policy", &self.refresh_policy)
            .finish_non_exhaustive()
    }
}

/// Authenticates a Kubernetes workload to Entra ID with its projected service-account token.
///
/// A drop-in for `azure_identity::WorkloadIdentityCredential`: same constructor, same options,
/// same environment variables; plus local checks with precise errors, and a cache that never
/// makes a caller wait while a valid token exists.
pub struct WorkloadIdentityCredential {
    config: ResolvedConfig,
    cache: TokenCache<Exchange>,
}

impl fmt::Debug for WorkloadIdentityCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadIdentityCredential")
            .field("client_id", &self.config.client_id.value)
            .field("tenant_id", &self.config.tenant_id.value)
            .field("token_file", &self.config.token_file.value)
            .field("authority_host", &self.config.authority_host.value.as_str())
            .finish_non_exhaustive()
    }
}

impl WorkloadIdentityCredential {
    /// Create the credential. Reads configuration (options, then environment, then well-known
    /// paths) and validates it; does no network I/O and spawns nothing.
    ///
    /// A credential that is simply not configured (no client id, tenant id or token file) fails
    /// with an error whose [`CredentialError::is_not_configured`] is true. Like azure_identity,
    /// it also fails (category [`ErrorCategory::TokenFile`](crate::ErrorCategory::TokenFile)) when the token file does not exist,
    /// cannot be opened or is not a regular file, and (category [`ErrorCategory::Assertion`](crate::ErrorCategory::Assertion))
    /// when the path is a credential for something else (see [security](crate::guides::security)); the file's
    /// content is read and checked on every exchange.
    pub fn new(
        options: Option<WorkloadIdentityCredentialOptions>,
    ) -> azure_core::Result<Arc<Self>> {
        Self::build(options.unwrap_or_default(), None, Arc::new(SystemClock)).map_err(Into::into)
    }

    /// Create a credential that takes its client assertions from `source` instead of the token
    /// file (AWS outbound federation, your own source). `token_file_path` and the audience
    /// options are then unused.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new) for the client id, tenant id, authority host and refresh policy
    /// (not configured, or invalid); the source itself is first asked on the first `get_token`.
    pub fn with_assertion_source(
        source: Arc<dyn AssertionSource>,
        options: Option<WorkloadIdentityCredentialOptions>,
    ) -> azure_core::Result<Arc<Self>> {
        let options = options.unwrap_or_default();
        Self::build(options, Some(source), Arc::new(SystemClock)).map_err(Into::into)
    }

    /// Create a credential whose client assertions come from any
    /// [`azure_identity::ClientAssertion`], with this crate's cache, checks and diagnostics (see
    /// [`ClientAssertionSource`]). `token_file_path` and `expected_audience` are then unused;
    /// `allow_foreign_audience` applies to the assertions.
    ///
    /// # Errors
    ///
    /// As [`with_assertion_source`](Self::with_assertion_source).
    pub fn with_client_assertion<C: azure_identity::ClientAssertion + 'static>(
        assertion: C,
        options: Option<WorkloadIdentityCredentialOptions>,
    ) -> azure_core::Result<Arc<Self>> {
        let options = options.unwrap_or_default();
        let allow_foreign = options
            .env
            .allow_foreign_audience(options.allow_foreign_audience);
        let source = Arc::new(ClientAssertionSource::new(assertion, allow_foreign));
        Self::with_assertion_source(source, Some(options))
    }

    pub(crate) fn build(
        options: WorkloadIdentityCredentialOptions,
        source: Option<Arc<dyn AssertionSource>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, CredentialError> {
        options.refresh_policy.validate()?;
        // A custom source needs no token file: give resolution a placeholder path.
        let placeholder = source
            .is_some()
            .then_some(Path::new("(custom assertion source)"));
        let config = options.resolve(placeholder)?;
        let assertion: Arc<dyn AssertionSource> = match source {
            Some(s) => s,
            None => {
                let allow = options
                    .env
                    .allow_foreign_audience(options.allow_foreign_audience);
                let file = TokenFileSource::configured(
                    config.token_file.value.clone(),
                    &config.expected_audience,
                    allow,
                    Some(config.authority_host.value.clone()),
                    &options.env,
                    clock.clone(),
                );
                // As azure_identity: fail now when the file is missing or unreadable (no content
                // is kept; the file is read again for every exchange).
                file.check_now()?;
                Arc::new(file)
            }
        };
        let exchange = Arc::new(Exchange {
            pipeline: crate::entra::pipeline(options.credential_options.client_options),
            endpoint: config.token_endpoint(),
            client_id: config.client_id.value.clone(),
            tenant_id: config.tenant_id.value.clone(),
            assertion,
            clock: clock.clone(),
            attempt_timeout: options.refresh_policy.attempt_timeout,
        });
        let cache = TokenCache::new(exchange, options.refresh_policy, clock);
        Ok(Arc::new(Self { config, cache }))
    }

    /// [`new`](Self::new) on `clock` instead of the system clock (cargo feature `test-util`): the
    /// cache's refresh windows, expiry and wall-clock steps are reached by moving the clock.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    #[cfg(feature = "test-util")]
    pub fn with_clock(
        options: Option<WorkloadIdentityCredentialOptions>,
        clock: Arc<crate::clock::ManualClock>,
    ) -> azure_core::Result<Arc<Self>> {
        Self::build(options.unwrap_or_default(), None, clock).map_err(Into::into)
    }

    /// The state of every scope this credential has been asked for: health, expiry, next refresh,
    /// last success, consecutive failures and the last error's category, HTTP status and AADSTS
    /// code; never a token. Cheap (a few read locks, one small allocation per scope), never waits
    /// for a request and sends nothing: call it from a health or readiness endpoint. See
    /// [reliability](crate::guides::reliability#a-health-endpoint) for an example handler.
    pub fn token_status(&self) -> Vec<TokenStatus> {
        let status = |s: SlotStatus<Exchange>| {
            let error = s.last_error;
            TokenStatus {
                scope: s.key.to_string(),
                health: s.health,
                expires_on: s.expires_on,
                next_refresh: s.next_refresh,
                last_success: s.last_success,
                consecutive_failures: s.consecutive_failures,
                failing_since: s.failing_since,
                last_error_category: error.as_ref().map(CredentialError::category),
                last_error_status: error.as_ref().and_then(|e| e.http_status()).map(u16::from),
                last_error_aadsts: error.and_then(|e| e.aadsts_codes().first().copied()),
            }
        };
        self.cache.status().into_iter().map(status).collect()
    }
}

/// A snapshot of one cached scope, from
/// [`WorkloadIdentityCredential::token_status`](crate::WorkloadIdentityCredential::token_status).
/// Never contains a token. Times are UTC wall-clock estimates (the cache itself runs on a
/// monotonic clock).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenStatus {
    /// The scope, as requested (`<resource>/.default`).
    pub scope: String,
    /// Summary, for a readiness or health endpoint.
    pub health: RefreshHealth,
    /// When the cached token expires (`None`: no token cached).
    pub expires_on: Option<OffsetDateTime>,
    /// When the next refresh is due: the start of the advisory window, or after a failure the
    /// end of the backoff / `Retry-After` (`None`: no token and nothing scheduled).
    pub next_refresh: Option<OffsetDateTime>,
    /// When a refresh last succeeded (`None`: never, since the credential was built).
    pub last_success: Option<OffsetDateTime>,
    /// Refreshes failed in a row since the last success.
    pub consecutive_failures: u32,
    /// When the current run of failures began (`None`: the last attempt succeeded).
    pub failing_since: Option<OffsetDateTime>,
    /// Category of the last failure, while failing.
    pub last_error_category: Option<ErrorCategory>,
    /// HTTP status of the last failure, when Entra answered.
    pub last_error_status: Option<u16>,
    /// First AADSTS code of the last failure, when Entra sent one (e.g. `70021`).
    pub last_error_aadsts: Option<u32>,
}
impl RefreshPolicy {
    /// Check the policy: `attempt_timeout`, `failure_backoff` and the two error TTLs positive (a
    /// zero TTL would remember no error, so every call during an outage would send a request);
    /// `mandatory_margin`, `max_jitter` and `outage_warning_after` not negative; `max_backoff` at
    /// least `failure_backoff`. The credential's constructor calls this; the error
    /// ([`ErrorCategory::InvalidConfiguration`](crate::ErrorCategory::InvalidConfiguration)) names the field, its value, the rule and the
    /// default.
    pub fn validate(&self) -> Result<(), CredentialError> {
        const POSITIVE: &str = "must be positive";
        const REMEMBERED: &str = "must be positive: with no valid token cached, a zero TTL \
             remembers no error, so every call during an outage sends a request to Entra";
        const NOT_NEGATIVE: &str = "must not be negative";
        let backoff = self.failure_backoff.as_seconds_f64();
        let not_below = format!("must be at least failure_backoff ({backoff} s)");
        #[rustfmt::skip]
        let rules: [(_, fn(&Self) -> _, _); 8] = [
            ("attempt_timeout", |p| p.attempt_timeout, POSITIVE),
            ("failure_backoff", |p| p.failure_backoff, POSITIVE),
            ("permanent_error_ttl", |p| p.permanent_error_ttl, REMEMBERED),
            ("transient_error_ttl", |p| p.transient_error_ttl, REMEMBERED),
            ("mandatory_margin", |p| p.mandatory_margin, NOT_NEGATIVE),
            ("max_jitter", |p| p.max_jitter, NOT_NEGATIVE),
            ("outage_warning_after", |p| p.outage_warning_after, NOT_NEGATIVE),
            ("max_backoff", |p| p.max_backoff, not_below.as_str()),
        ];
        let broken = rules.into_iter().find(|&(_, field, rule)| match rule {
            NOT_NEGATIVE => field(self).is_negative(),
            POSITIVE | REMEMBERED => !field(self).is_positive(),
            _ => self.max_backoff < self.failure_backoff,
        });
        let Some((name, field, rule)) = broken else {
            return Ok(());
        };
        let value = field(self).as_seconds_f64();
        let default = field(&Self::default()).as_seconds_f64();
        Err(CredentialError::new(
            ProblemId::InvalidConfiguration,
            format!("RefreshPolicy::{name} is {value} s but {rule} (default {default} s)."),
        )
        .with_fix(format!(
            "set WorkloadIdentityCredentialOptions::refresh_policy.{name} to its default {default} s, or leave it out with `..RefreshPolicy::default()`."
        )))
    }
}

/// The retry options [`WorkloadIdentityCredentialOptions::default()`] uses: at most 3 retries
/// within 10 s (200 ms doubling up to 2 s). azure_core's default keeps retrying a failing endpoint
/// for up to a minute, and azure_identity's credential holds every caller for that long; this
/// crate's cache already retries in the background (with backoff) while it keeps serving a valid
/// token, so one attempt only needs a few quick retries. Use it when you build
/// `ClientOptions` yourself and want the same behaviour:
/// `ClientOptions { retry: token_retry_options(), ..Default::default() }`.
pub fn token_retry_options() -> RetryOptions {
    RetryOptions::exponential(ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(200),
        max_retries: 3,
        max_total_elapsed: azure_core::time::Duration::seconds(10),
        max_delay: azure_core::time::Duration::seconds(2),
    })
}

#[cfg(feature = "aws")]
impl WorkloadIdentityCredential {
    /// A credential whose client assertion is a JWT from AWS STS `GetWebIdentityToken` (IAM
    /// outbound identity federation) instead of a Kubernetes token file. Client id, tenant id,
    /// authority and refresh policy come from `options` and the environment as for
    /// [`new`](Self::new); when `aws.audience` is unset the credential's expected audience is
    /// requested. Validates and does no network I/O.
    pub fn from_aws(
        options: Option<WorkloadIdentityCredentialOptions>,
        aws: crate::assertion::AwsWebIdentitySourceOptions,
    ) -> azure_core::Result<Arc<Self>> {
        let source = Arc::new(crate::assertion::AwsWebIdentitySource::new(aws)?);
        let options = options.unwrap_or_default();
        let credential = Self::build(options, Some(source.clone()), Arc::new(SystemClock))?;
        source.default_audience(&credential.config.expected_audience.value);
        Ok(credential)
    }
}

// Written out instead of `#[async_trait]` (whose expansion this signature is) so that a cache hit
// is answered before any future is built: the boxed future the trait forces is then a small
// `Ready` holding the result, not the slow path's whole state machine.
impl TokenCredential for WorkloadIdentityCredential {
    fn get_token<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        scopes: &'life1 [&'life2 str],
        options: Option<TokenRequestOptions<'life3>>,
    ) -> Pin<Box<dyn Future<Output = azure_core::Result<AccessToken>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
    {
        // The cache holds one slot per validated scope: a request for one scope that is cached
        // needs no validation; anything else is validated first, whatever is cached.
        if let [scope] = scopes
            && let Some(hit) = self.cache.try_hit(scope)
        {
            let hit = hit.map_err(Into::into);
            return Box::pin(std::future::ready(hit));
        }
        let scope = match crate::scope::validate_scopes(scopes) {
            Ok(()) => scopes[0],
            Err(e) => return Box::pin(std::future::ready(Err(e.into()))),
        };
        Box::pin(async move {
            let ctx = options.map(|o| o.method_options.context.into_owned());
            let outcome = self.cache.get_token(scope, ctx.unwrap_or_default()).await;
            outcome.map_err(Into::into)
        })
    }
}
