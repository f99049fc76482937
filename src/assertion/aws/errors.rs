//! What AWS STS and the AWS SDK report, mapped to [`CredentialError`]s with their fixes: service
//! errors by their code, SDK failures by their type.

use crate::error::{CredentialError, ErrorCategory};
use crate::problem::ProblemId;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::RequestId;
use aws_sdk_sts::operation::get_web_identity_token::GetWebIdentityTokenError;
use std::error::Error as StdError;
use std::fmt;

/// What AWS STS answered when `GetWebIdentityToken` failed; the [`std::error::Error::source`]
/// of the [`CredentialError`].
///
/// ```
/// # fn inspect(err: &azure_identity_k8s::CredentialError) {
/// use azure_identity_k8s::assertion::AwsStsError;
/// if let Some(sts) = std::error::Error::source(err).and_then(|s| s.downcast_ref::<AwsStsError>()) {
///     println!("STS said {:?} (request id {:?})", sts.code(), sts.request_id());
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsStsError {
    code: Option<String>,
    message: Option<String>,
    request_id: Option<String>,
    status: Option<u16>,
}

impl AwsStsError {
    /// The AWS error code, e.g. `AccessDenied`, `OutboundWebIdentityFederationDisabledException`.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
    /// AWS's message.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
    /// The request id (`x-amzn-RequestId`), for AWS support.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
    /// The HTTP status of STS's answer.
    pub fn http_status(&self) -> Option<u16> {
        self.status
    }
}

impl fmt::Display for AwsStsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AWS STS error {}: {}",
            self.code.as_deref().unwrap_or("(no code)"),
            self.message.as_deref().unwrap_or("(no message)")
        )
    }
}

impl StdError for AwsStsError {}

/// The fix of an STS request that did not complete.
const STS_NETWORK_FIX: &str = "allow egress to the regional STS endpoint (sts.<region>.amazonaws.com, port 443), or set AWS_ENDPOINT_URL_STS to an STS VPC endpoint; \
     behind a proxy set HTTPS_PROXY.";

/// The fix when the AWS credential provider (EKS Pod Identity agent, IRSA, ...) fails.
pub(super) const PROVIDER_FIX: &str = "check the AWS credential provider: on EKS the Pod Identity agent (`kubectl -n kube-system logs ds/eks-pod-identity-agent`) or the IRSA token; \
     `aws sts get-caller-identity` in the same environment must succeed. It is retried.";

/// The fix of an answer from the STS endpoint that is not AWS STS's.
pub(crate) const STS_ANSWER_FIX: &str = "check that the STS endpoint (AWS_ENDPOINT_URL_STS, endpoint_url) is AWS STS and that no proxy answers in its place; it is retried.";

/// The fix when no AWS credentials or region are found.
const NO_CREDENTIALS_FIX: &str = "run where AWS credentials and a region can be found: set AWS_REGION (e.g. us-east-1), and give the workload an IAM role \
     (EKS Pod Identity, IRSA, ECS task role, EC2 instance profile) or set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.";

/// The name the source's own errors start with.
pub(super) const NAME: Option<&str> = Some("AwsWebIdentitySource");

pub(super) fn invalid(message: impl fmt::Display) -> CredentialError {
    CredentialError::new(ProblemId::AwsLimits, format!("{message}.")).named(NAME)
}

/// STS error codes and what to do about them: the problem, the fix with the request's values,
/// and whether the code is transient (throttling, STS's own failures).
pub(super) fn fix_for(
    code: &str,
    audience: &str,
    region: &str,
    duration: i32,
) -> (ProblemId, String, bool) {
    // In the fix, `{audience}`, `{duration}` and `{region}` stand for the request's values.
    let (problem, fix) = match code {
        "AccessDenied" | "AccessDeniedException" => (
            ProblemId::AwsAccessDenied,
            "The calling IAM role is not allowed to call sts:GetWebIdentityToken. Attach an identity-based policy that allows \"sts:GetWebIdentityToken\" \
             (if it has conditions: sts:IdentityTokenAudience must allow {audience} and sts:DurationSeconds at least {duration}); check SCPs and permission boundaries too.",
        ),
        "OutboundWebIdentityFederationDisabledException"
        | "OutboundWebIdentityFederationDisabled" => (
            ProblemId::AwsFederationDisabled,
            "Outbound identity federation is not enabled for this AWS account. Enable it once per account with \
             `aws iam enable-outbound-web-identity-federation`, then use the issuer URL it prints (also: `aws iam get-outbound-web-identity-federation-info`) \
             as the issuer of the federated identity credential.",
        ),
        "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => (
            ProblemId::AwsCredentials,
            "The AWS credentials have expired. Temporary credentials must be refreshed by their provider (the EKS Pod Identity agent, IRSA, the instance profile); \
             static keys in the environment must be replaced; a `RequestExpired` also points at this machine's clock.",
        ),
        "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "InvalidAccessKeyId"
        | "AuthFailure" => (
            ProblemId::AwsCredentials,
            "AWS did not accept the credentials: the access key is unknown or deleted, the secret or session token does not belong to it, \
             or no credentials were sent. Check which credentials aws-config found (AWS_ACCESS_KEY_ID / AWS_PROFILE / the workload's role).",
        ),
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException" => (
            ProblemId::AwsThrottling,
            "STS is throttling this account's requests; this is transient and is retried. The JWT is cached, so steady-state load is one call per token lifetime.",
        ),
        "RegionDisabledException" => (
            ProblemId::AwsRegion,
            "STS is not activated in region {region}: activate it in the IAM account settings, or use another region.",
        ),
        "SessionDurationEscalationException" => (
            ProblemId::AwsLimits,
            "The requested token lifetime ({duration} s) exceeds what the calling session allows; lower the duration option.",
        ),
        "JWTPayloadSizeExceededException" => (
            ProblemId::AwsLimits,
            "The token's claims (principal and request tags) are too large; remove tags from the role or session.",
        ),
        "ValidationError" | "InvalidParameterValue" => (
            ProblemId::AwsLimits,
            "STS rejected the request parameters: audience 1 to 10 values of 1 to 1000 characters, duration 60 to 3600 s, signing algorithm RS256 or ES384.",
        ),
        _ => (
            ProblemId::AwsSts,
            "look the AWS error code above up in the AWS STS API reference (GetWebIdentityToken, Errors); the request id identifies the call to AWS support.",
        ),
    };
    let fix = fix
        .replace("{duration}", &duration.to_string())
        .replace("{region}", region)
        .replace("{audience}", &format!("{audience:?}"));
    let internal = [
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "IDPCommunicationError",
    ];
    let transient = problem == ProblemId::AwsThrottling || internal.contains(&code);
    (problem, fix, transient)
}

pub(super) fn map_sdk_error(
    err: SdkError<GetWebIdentityTokenError, HttpResponse>,
    audience: &str,
    region: &str,
    duration: i32,
) -> CredentialError {
    let detail = causes(&err);
    if let Some(e) = credentials_error(&err) {
        return credentials_failure(e, &detail);
    }
    let (category, what, fix) = match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let sts = AwsStsError {
                code: e.code().map(str::to_string),
                message: e.message().map(str::to_string),
                request_id: err.request_id().map(str::to_string),
                status: Some(service.raw().status().as_u16()),
            };
            let code = sts.code.as_deref().unwrap_or_default();
            let (problem, fix, transient) = fix_for(code, audience, region, duration);
            return CredentialError::new(
                problem,
                format!(
                    // The request id differs on every try: below the first line, which stays the
                    // same for every retry of one fault.
                    "AWS STS GetWebIdentityToken (region {region}) failed with {} (HTTP {}): {}\n  AWS request id {} (for AWS support).",
                    if code.is_empty() { "an error without a code" } else { code },
                    service.raw().status().as_u16(),
                    sts.message.as_deref().unwrap_or("(no message)"),
                    sts.request_id.as_deref().unwrap_or("none"),
                ),
            )
            .named(None)
            .with_category(ErrorCategory::Assertion)
            .with_transient(transient || sts.status.is_some_and(|s| s >= 500 || s == 429))
            .with_fix(fix)
            .with_source(sts);
        }
        SdkError::TimeoutError(_) => (
            ErrorCategory::Timeout,
            "did not complete in time",
            STS_NETWORK_FIX,
        ),
        SdkError::DispatchFailure(_) => (
            ErrorCategory::Transport,
            "could not be reached",
            STS_NETWORK_FIX,
        ),
        SdkError::ResponseError(_) => (
            ErrorCategory::InvalidResponse,
            "answered something that is not an STS response",
            STS_ANSWER_FIX,
        ),
        // Not sent: a request parameter (the entry's fix names the values STS accepts).
        _ => return sdk_failure(ProblemId::AwsLimits, region, "could not be sent", &detail),
    };
    // Not reached, or not answered by STS: retried (a proxy or route may recover).
    sdk_failure(ProblemId::AwsSts, region, what, &detail)
        .with_category(category)
        .with_transient(true)
        .with_fix(fix)
}

/// An STS call that got no answer of STS's: `what` happened, with the causes in `detail`.
fn sdk_failure(problem: ProblemId, region: &str, what: &str, detail: &str) -> CredentialError {
    let facts = format!("AWS STS GetWebIdentityToken (region {region}) {what}: {detail}.");
    CredentialError::new(problem, facts).named(None)
}

/// `err` and its causes, by their `Display`, joined by ": " (a text already said is not
/// repeated): what `DisplayErrorContext` says without the `Debug` dump of the whole error it
/// appends (raw HTTP responses and their headers included), which would fill a log line.
fn causes(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for text in std::iter::successors(Some(err), |&e| e.source()).map(ToString::to_string) {
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    // The messages that embed it end their own sentence.
    parts.join(": ").trim_end_matches('.').to_string()
}

/// The AWS credential provider's error in `err`'s chain of causes, if that is what failed.
pub(super) fn credentials_error<'a>(
    err: &'a (dyn StdError + 'static),
) -> Option<&'a CredentialsError> {
    std::iter::successors(Some(err), |&e| e.source()).find_map(|e| e.downcast_ref())
}

/// A failure to get AWS credentials, by its kind: none found (not configured), the provider did
/// not answer in time or failed (transient: e.g. the EKS Pod Identity agent is restarting), or
/// its configuration is invalid.
pub(super) fn credentials_failure(e: &CredentialsError, detail: &str) -> CredentialError {
    let (category, what, fix) = match e {
        CredentialsError::CredentialsNotLoaded(_) => (
            ErrorCategory::NotConfigured,
            "no usable AWS credentials".to_string(),
            NO_CREDENTIALS_FIX,
        ),
        CredentialsError::ProviderTimedOut(t) => (
            ErrorCategory::Timeout,
            format!(
                "the AWS credential provider did not answer within {} ms",
                t.timeout_duration().as_millis()
            ),
            PROVIDER_FIX,
        ),
        CredentialsError::ProviderError(_) => (
            ErrorCategory::Transport,
            "the AWS credential provider failed".to_string(),
            PROVIDER_FIX,
        ),
        _ => (
            ErrorCategory::InvalidConfiguration,
            "the AWS credential configuration is invalid".to_string(),
            "correct the AWS configuration named above (AWS_PROFILE, ~/.aws/config, the AWS_* variables); \
             `aws sts get-caller-identity` in the same environment must succeed.",
        ),
    };
    CredentialError::new(ProblemId::AwsCredentials, format!("{what}: {detail}."))
        .named(NAME)
        .with_category(category)
        .with_fix(fix)
}
