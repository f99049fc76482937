//! AWS outbound identity federation end to end, all over HTTPS on 127.0.0.1: static AWS
//! credentials (injected through `Env`, never the process environment) → the emulator's STS
//! `GetWebIdentityToken` → the emulator's Entra → an access token. Nothing reaches AWS or IMDS.

use crate::common::aws::*;
use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::assertion::{
    AssertionSource, AwsStsError, AwsWebIdentitySource, AwsWebIdentitySourceOptions,
};
use azure_identity_k8s::config::Env;
use azure_identity_k8s::{CredentialError, ErrorCategory, WorkloadIdentityCredential};
use entra_emulator::{Endpoint, Fault, FederatedCredential, Gate, StsError};
use std::sync::Arc;
use std::time::Duration;

impl Aws {
    fn credential(&self) -> Arc<WorkloadIdentityCredential> {
        self.credential_with(self.aws_options())
    }

    fn credential_with(&self, aws: AwsWebIdentitySourceOptions) -> Arc<WorkloadIdentityCredential> {
        let mut options = self.fx.options();
        options.token_file_path = None;
        WorkloadIdentityCredential::from_aws(Some(options), aws).expect("constructs")
    }

    fn sts_requests(&self) -> usize {
        self.fx.emu.request_count(Endpoint::Sts)
    }
}

async fn token_err(cred: &WorkloadIdentityCredential) -> CredentialError {
    let err = cred
        .get_token(&[STORAGE], None)
        .await
        .expect_err("must fail");
    assert!(
        matches!(err.kind(), azure_core::error::ErrorKind::Credential),
        "{err:?}"
    );
    err.downcast_ref::<CredentialError>()
        .expect("source is CredentialError")
        .clone()
}

fn sts_error(e: &CredentialError) -> AwsStsError {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<AwsStsError>())
        .expect("source is AwsStsError")
        .clone()
}

#[tokio::test]
async fn aws_credentials_become_an_entra_access_token() {
    let aws = Aws::new().await;
    let cred = aws.credential();
    let token = cred.get_token(&[STORAGE], None).await.unwrap();
    let c = claims(token.token.secret());
    assert_eq!(c["aud"], "https://storage.azure.com");
    assert_eq!(c["appid"], CLIENT);

    // What STS received: the query protocol, signed with SigV4 (the emulator refuses otherwise).
    let sts = aws
        .fx
        .emu
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::Sts)
        .expect("an STS request");
    assert_eq!(sts.status, 200);
    assert_eq!(sts.form["Action"], "GetWebIdentityToken");
    assert_eq!(sts.form["Version"], "2011-06-15");
    assert_eq!(sts.form["Audience.member.1"], "api://AzureADTokenExchange");
    assert_eq!(sts.form["DurationSeconds"], "300");
    assert_eq!(sts.form["SigningAlgorithm"], "RS256");

    // What Entra received: the STS JWT as the client assertion.
    let entra = aws
        .fx
        .emu
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::Token)
        .unwrap();
    let assertion = claims(&entra.form["client_assertion"]);
    assert_eq!(assertion["iss"], aws.account.issuer_url());
    assert!(
        aws.account
            .issuer_url()
            .ends_with(".tokens.sts.global.api.aws")
    );
    assert_eq!(assertion["sub"], aws.role.role_arn);
    assert_eq!(assertion["aud"], "api://AzureADTokenExchange");
    assert_eq!(
        assertion["exp"].as_i64().unwrap() - assertion["iat"].as_i64().unwrap(),
        300
    );
    assert_eq!(
        assertion["https://sts.amazonaws.com/"]["source_region"],
        "us-east-1"
    );
    assert_eq!(aws.fx.emu.sts_tokens_issued(), 1);
}

#[tokio::test]
async fn the_jwt_is_reused_within_its_lifetime() {
    let aws = Aws::new().await;
    let cred = aws.credential();
    cred.get_token(&[STORAGE], None).await.unwrap();
    cred.get_token(&[VAULT], None).await.unwrap();
    cred.get_token(&["https://graph.microsoft.com/.default"], None)
        .await
        .unwrap();
    assert_eq!(aws.fx.emu.request_count(Endpoint::Token), 3);
    assert_eq!(aws.sts_requests(), 1, "one STS call serves three exchanges");
    let sent: Vec<String> = aws
        .fx
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == Endpoint::Token)
        .map(|r| r.form["client_assertion"].clone())
        .collect();
    assert!(sent.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn concurrent_exchanges_share_one_sts_call() {
    let aws = Aws::new().await;
    let cred = aws.credential();
    let gate = Gate::new();
    aws.fx
        .emu
        .push_fault(Endpoint::Sts, Fault::Hold(gate.clone()));
    let a = tokio::spawn({
        let cred = cred.clone();
        async move { cred.get_token(&[STORAGE], None).await }
    });
    let b = tokio::spawn({
        let cred = cred.clone();
        async move { cred.get_token(&[VAULT], None).await }
    });
    gate.wait_for_waiting(1).await;
    gate.release();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    assert_eq!(aws.sts_requests(), 1);
    assert_eq!(aws.fx.emu.request_count(Endpoint::Token), 2);
}

#[tokio::test]
async fn access_denied_names_the_code_and_the_iam_fix() {
    let aws = Aws::new().await;
    aws.account.set_role_allowed(ROLE, false);
    let e = token_err(&aws.credential()).await;
    let m = e.message();
    for needle in [
        "AccessDenied",
        "HTTP 403",
        "sts:GetWebIdentityToken",
        "identity-based policy",
        "request id ",
    ] {
        assert!(m.contains(needle), "missing {needle}: {m}");
    }
    // A retry of the same fault (another credential: nothing remembered) has the same first
    // line; the request id, new on every call, is further down.
    let again = token_err(&aws.credential()).await;
    let first = |e: &CredentialError| e.to_string().lines().next().unwrap().to_string();
    assert_eq!(first(&e), first(&again));
    let id = sts_error(&e).request_id().unwrap().to_string();
    assert_ne!(sts_error(&again).request_id(), Some(id.as_str()));
    assert!(!first(&e).contains(&id) && m.contains(&id), "{m}");
    let url = format!(
        "https://docs.rs/azure_identity_k8s/{}/azure_identity_k8s/aws_outbound/index.html#access-denied",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(e.documentation_url(), Some(url.as_str()));
    assert!(m.ends_with(&format!("See {url}")), "{m}");
    assert_eq!(
        e.problem_id(),
        Some(azure_identity_k8s::ProblemId::AwsAccessDenied)
    );
    assert!(!e.is_transient());
    assert_eq!(e.category(), ErrorCategory::Assertion);
    let sts = sts_error(&e);
    assert_eq!(sts.code(), Some("AccessDenied"));
    assert_eq!(sts.http_status(), Some(403));
    assert!(sts.request_id().is_some());
    assert_eq!(
        aws.fx.emu.request_count(Endpoint::Token),
        0,
        "Entra not called"
    );
}

#[tokio::test]
async fn disabled_outbound_federation_says_how_to_enable_it() {
    let aws = Aws::new().await;
    aws.account.set_outbound_federation_enabled(false);
    let e = token_err(&aws.credential()).await;
    let m = e.message();
    assert!(
        m.contains("OutboundWebIdentityFederationDisabledException"),
        "{m}"
    );
    assert!(
        m.contains("aws iam enable-outbound-web-identity-federation"),
        "{m}"
    );
    assert!(m.contains("#federation-disabled"), "{m}");
    assert_eq!(
        sts_error(&e).code(),
        Some("OutboundWebIdentityFederationDisabledException")
    );
    assert!(!e.is_transient());
}

#[tokio::test]
async fn a_credential_provider_failure_says_what_failed_without_a_debug_dump() {
    let aws = Aws::new().await;
    let mut opts = aws.aws_options();
    // No keys in the environment; the instance metadata provider is off, so it fails.
    opts.env = Env::from_pairs([
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL_STS", aws.fx.emu.sts_endpoint_url()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ]);
    let e = token_err(&aws.credential_with(opts)).await;
    assert_eq!(
        e.problem_id(),
        Some(azure_identity_k8s::ProblemId::AwsCredentials),
        "{e}"
    );
    let text = e.to_string();
    let (first, _fix) = text.split_once(" Fix: ").expect("facts, then the fix");
    assert!(first.contains("AWS credential"), "{first}");
    assert!(!first.contains(".."), "{first}");
    // The causes by their Display, not the SDK's Debug dump of the error and raw response.
    for dump in [
        "DispatchFailure(",
        "ConnectorError {",
        "Headers {",
        "HeaderValue",
    ] {
        assert!(!first.contains(dump), "{dump} in {first}");
    }
    assert!(first.len() < 400, "{} chars: {first}", first.len());
}

#[tokio::test]
async fn expired_and_unknown_aws_credentials_are_told_apart() {
    let aws = Aws::new().await;
    aws.account.expire_role_credentials(ROLE);
    let e = token_err(&aws.credential()).await;
    assert_eq!(sts_error(&e).code(), Some("ExpiredToken"));
    assert!(e.message().contains("expired"), "{e}");
    assert!(e.message().contains("#aws-credentials"), "{e}");

    let mut opts = aws.aws_options();
    opts.env = Env::from_pairs([
        ("AWS_ACCESS_KEY_ID", "ASIAUNKNOWNKEY000000"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("AWS_REGION", "us-east-1"),
        (
            "AWS_ENDPOINT_URL_STS",
            aws.fx.emu.sts_endpoint_url().as_str(),
        ),
    ]);
    let e = token_err(&aws.credential_with(opts)).await;
    assert_eq!(sts_error(&e).code(), Some("InvalidClientTokenId"));
    assert!(
        e.message().contains("did not accept the credentials"),
        "{e}"
    );
}

#[tokio::test]
async fn throttling_is_transient_and_retried_by_the_sdk() {
    let aws = Aws::new().await;
    // Once: the SDK's standard retry absorbs it.
    aws.fx.emu.push_sts_error(StsError::throttling());
    let retry = aws_config::retry::RetryConfig::standard()
        .with_initial_backoff(Duration::from_millis(5))
        .with_max_backoff(Duration::from_millis(20));
    let mut opts = aws.aws_options();
    let http_hook = opts.configure_loader.clone().unwrap();
    let r = retry.clone();
    opts.configure_loader = Some(Arc::new(move |l| http_hook(l).retry_config(r.clone())));
    aws.credential_with(opts)
        .get_token(&[STORAGE], None)
        .await
        .unwrap();
    assert_eq!(aws.sts_requests(), 2);

    // Every attempt throttled: a transient error naming Throttling.
    for _ in 0..3 {
        aws.fx.emu.push_sts_error(StsError::throttling());
    }
    let mut opts = aws.aws_options();
    let http_hook = opts.configure_loader.clone().unwrap();
    opts.configure_loader = Some(Arc::new(move |l| {
        http_hook(l).retry_config(retry.clone().with_max_attempts(3))
    }));
    let e = token_err(&aws.credential_with(opts)).await;
    assert!(e.is_transient(), "{e:?}");
    assert_eq!(sts_error(&e).code(), Some("Throttling"));
    assert!(e.message().contains("#throttling"), "{e}");
}

#[tokio::test]
async fn entra_70021_names_the_role_arn_the_token_carries() {
    let aws = Aws::new().await;
    aws.fx.emu.remove_federated_credentials(TENANT, CLIENT);
    aws.fx.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(
            aws.account.issuer_url(),
            format!("arn:aws:iam::{ACCOUNT}:role/SomeOtherRole"),
        ),
    );
    let e = token_err(&aws.credential()).await;
    assert_eq!(e.aadsts_codes(), &[70021]);
    let m = e.message();
    assert!(m.contains(&aws.role.role_arn), "{m}");
    assert!(m.contains(&aws.account.issuer_url()), "{m}");
    assert!(
        m.contains("AWS STS GetWebIdentityToken"),
        "origin named: {m}"
    );
}

#[tokio::test]
async fn a_region_is_required_and_nothing_is_probed_for_it() {
    let aws = Aws::new().await;
    // A complete SdkConfig without a region: no loader, no environment, no IMDS.
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let e = token_err(&aws.credential_with(AwsWebIdentitySourceOptions {
        sdk_config: Some(config),
        ..Default::default()
    }))
    .await;
    assert!(e.is_not_configured(), "{e:?}");
    assert!(e.message().contains("AWS_REGION"), "{e}");
    assert!(e.message().contains("regional"), "{e}");
    assert_eq!(aws.sts_requests(), 0);
}

#[tokio::test]
async fn a_custom_audience_and_duration_are_requested() {
    let aws = Aws::new().await;
    aws.fx.emu.remove_federated_credentials(TENANT, CLIENT);
    aws.fx.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(aws.account.issuer_url(), aws.role.role_arn.clone())
            .with_audiences(["api://my-entra-audience"]),
    );
    let cred = aws.credential_with(AwsWebIdentitySourceOptions {
        audience: Some("api://my-entra-audience".into()),
        duration: Duration::from_secs(900),
        ..aws.aws_options()
    });
    cred.get_token(&[STORAGE], None).await.unwrap();
    let sts = aws
        .fx
        .emu
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::Sts)
        .unwrap();
    assert_eq!(sts.form["Audience.member.1"], "api://my-entra-audience");
    assert_eq!(sts.form["DurationSeconds"], "900");
}

#[tokio::test]
async fn probe_reports_what_the_federated_credential_must_say() {
    let aws = Aws::new().await;
    let source = AwsWebIdentitySource::new(aws.aws_options()).unwrap();
    let probe = source.probe().await.unwrap();
    assert_eq!(probe.issuer, aws.account.issuer_url());
    assert_eq!(probe.subject, aws.role.role_arn);
    assert_eq!(probe.audiences, vec!["api://AzureADTokenExchange"]);
    assert_eq!(probe.region, "us-east-1");
    assert!(source.describe().contains("GetWebIdentityToken"));
    let a = source.assertion().await.unwrap();
    assert!(a.origin().contains(&aws.role.role_arn), "{}", a.origin());
    assert!(!format!("{a:?}").contains(a.secret()));
}

/// The `EnvFilter` directives docs/aws-outbound.md recommends (section "Logging").
fn recommended_filter() -> &'static str {
    let doc = include_str!("../../docs/aws-outbound.md");
    let line = doc
        .lines()
        .find(|l| l.contains("EnvFilter::new(\""))
        .expect("the recommendation in docs/aws-outbound.md");
    line.split('"').nth(1).expect("a quoted directive")
}

/// The recommended filter keeps every secret out of logs captured at TRACE through a full
/// exchange (STS, then Entra), while the SDK's other logs still come through; without it, the
/// SDK logs the session token.
#[tokio::test]
async fn no_secret_reaches_the_logs() {
    let aws = Aws::new().await;
    let logs = LogCapture::default();
    let guard = logs.install_filtered(recommended_filter());
    let cred = aws.credential();
    let token = cred.get_token(&[STORAGE], None).await.unwrap();
    aws.account.set_role_allowed(ROLE, false);
    drop(guard);
    let text = logs.text();
    assert!(
        text.contains("aws_smithy_runtime"),
        "the SDK's own logs were captured"
    );
    let jwt = aws
        .fx
        .emu
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::Token)
        .unwrap()
        .form["client_assertion"]
        .clone();
    for (name, secret) in [
        ("web identity token", jwt.as_str()),
        ("access token", token.token.secret()),
        ("secret access key", aws.role.secret_access_key.as_str()),
        ("session token", aws.role.session_token.as_str()),
    ] {
        assert!(!text.contains(secret), "the {name} was logged");
    }
    assert!(!format!("{cred:?}").contains(&aws.role.secret_access_key));

    // The recommendation is what keeps the session token out: at TRACE without it, the SDK
    // logs it (a fresh credential, so STS is called again).
    let unfiltered = LogCapture::default();
    let _guard = unfiltered.install();
    aws.account.set_role_allowed(ROLE, true);
    aws.credential().get_token(&[STORAGE], None).await.unwrap();
    assert!(
        unfiltered.text().contains(aws.role.session_token.as_str()),
        "the SDK no longer logs the session token at TRACE: the recommendation in docs/aws-outbound.md can go"
    );
}

#[tokio::test]
async fn default_azure_credential_uses_aws_outbound_federation_only_when_opted_in() {
    use azure_identity_k8s::chain::{DefaultAzureCredential, DefaultAzureCredentialOptions};
    let aws = Aws::new().await;
    // A pod-less AWS workload: client and tenant ids, no token file anywhere.
    let env = Env::from_pairs([
        ("AZURE_CLIENT_ID", CLIENT.to_string()),
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_AUTHORITY_HOST", aws.fx.emu.authority_host()),
    ]);
    let options = |aws_outbound| DefaultAzureCredentialOptions {
        client_options: aws.fx.client_options(),
        env: env.clone(),
        // Only the workload slot (and the AWS source that follows it when opted in): no IMDS
        // probe, no developer tools.
        token_credentials: Some("WorkloadIdentityCredential".into()),
        aws_outbound,
        ..Default::default()
    };

    let without = DefaultAzureCredential::new(Some(options(None))).unwrap();
    assert_eq!(without.source_names(), vec!["WorkloadIdentityCredential"]);
    let e = without.get_token(&[STORAGE], None).await.unwrap_err();
    assert!(e.to_string().contains("WorkloadIdentityCredential"), "{e}");
    assert_eq!(aws.sts_requests(), 0);

    let with = DefaultAzureCredential::new(Some(options(Some(aws.aws_options())))).unwrap();
    assert_eq!(
        with.source_names(),
        vec!["WorkloadIdentityCredential", "AwsWebIdentityCredential"]
    );
    let token = with.get_token(&[STORAGE], None).await.unwrap();
    assert_eq!(claims(token.token.secret())["appid"], CLIENT);
    assert_eq!(with.selected_source(), Some("AwsWebIdentityCredential"));
    assert_eq!(aws.sts_requests(), 1);
}

/// A hung STS call outlives the credential's attempt bound (shorter than the JWT cache's own):
/// the first caller's error is STS's time-out with the AWS fix, not the token file's.
#[tokio::test]
async fn a_hung_sts_call_is_reported_as_an_sts_time_out() {
    let aws = Aws::new().await;
    aws.fx.emu.set_fault(Endpoint::Sts, Some(Fault::Hang));
    let mut options = aws.fx.options();
    options.token_file_path = None;
    options.refresh_policy.attempt_timeout = azure_core::time::Duration::seconds(1);
    let cred = WorkloadIdentityCredential::from_aws(Some(options), aws.aws_options()).unwrap();
    let e = token_err(&cred).await;
    assert_eq!(e.category(), ErrorCategory::Timeout, "{e}");
    assert!(e.is_transient(), "{e}");
    assert!(
        e.message()
            .contains("from AWS STS did not finish within 1 s"),
        "{e}"
    );
    let fix = e.fix().expect("a fix");
    assert!(fix.contains("Pod Identity"), "{fix}");
    assert!(!fix.contains("token file"), "{fix}");
    assert!(!e.message().contains("token file"), "{e}");
    assert_eq!(aws.sts_requests(), 1);
}

/// One STS failure with no JWT cached is one WARN record (the credential's, naming the scope);
/// the JWT cache under it logs the same failure at DEBUG, keyed by the audience.
#[tokio::test]
async fn one_sts_failure_is_one_warn_record() {
    let aws = Aws::new().await;
    aws.account.set_role_allowed(ROLE, false);
    let logs = LogCapture::default();
    let _guard = logs.install();
    token_err(&aws.credential()).await;
    let text = logs.text();
    // The once-per-process WARN about the custom transport, if this test builds the first one,
    // is not about the failure.
    let warns: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") && !l.contains("custom HTTP transport"))
        .collect();
    assert_eq!(warns.len(), 1, "{warns:#?}");
    assert!(warns[0].contains("token refresh failed"), "{}", warns[0]);
    assert!(
        warns[0].contains(&format!("scopes={STORAGE}")),
        "{}",
        warns[0]
    );
    let inner: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("AWS web identity token refresh failed"))
        .collect();
    assert_eq!(inner.len(), 1, "{inner:#?}");
    assert!(inner[0].contains(" DEBUG "), "{}", inner[0]);
    assert!(
        inner[0].contains("audience=api://AzureADTokenExchange"),
        "{}",
        inner[0]
    );
}
