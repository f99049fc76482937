//! Unit tests of the AWS source.

use super::errors::{credentials_error, credentials_failure, fix_for};
use super::source::refresh_in;
use super::*;
use crate::assertion::AssertionSource as _;
use crate::config::AUDIENCE_PUBLIC;
use crate::error::ErrorCategory;
use aws_credential_types::provider::error::CredentialsError;

#[test]
fn credential_provider_failures_are_classified_by_type() {
    #[derive(Debug)]
    struct Wrapper(CredentialsError);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("failed to resolve identity")
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    for (e, category, transient) in [
        (
            CredentialsError::not_loaded("no providers in chain provided credentials"),
            ErrorCategory::NotConfigured,
            false,
        ),
        // A timed-out Pod Identity agent is transient, not "not configured".
        (
            CredentialsError::provider_timed_out(Duration::from_secs(5)),
            ErrorCategory::Timeout,
            true,
        ),
        (
            CredentialsError::provider_error("connection refused"),
            ErrorCategory::Transport,
            true,
        ),
        (
            CredentialsError::invalid_configuration("bad profile"),
            ErrorCategory::InvalidConfiguration,
            false,
        ),
    ] {
        let wrapped = Wrapper(e);
        let found = credentials_error(&wrapped).expect("found in the chain");
        let mapped = credentials_failure(found, "detail");
        assert_eq!(mapped.category(), category, "{mapped}");
        assert_eq!(mapped.is_transient(), transient, "{mapped}");
    }
    let plain = std::io::Error::other("no credentials here");
    assert!(credentials_error(&plain).is_none());
}

#[test]
fn refresh_point_is_a_fifth_of_the_lifetime_with_bounds() {
    let s = time::Duration::seconds;
    assert_eq!(refresh_in(s(300)), s(240));
    assert_eq!(refresh_in(s(3600)), s(2880));
    assert_eq!(refresh_in(s(60)), s(30));
    assert_eq!(refresh_in(s(200)), s(140));
}

#[test]
fn options_are_validated_without_io() {
    let bad = |o: AwsWebIdentitySourceOptions| AwsWebIdentitySource::new(o).unwrap_err();
    let e = bad(AwsWebIdentitySourceOptions {
        duration: Duration::from_secs(30),
        ..Default::default()
    });
    assert!(e.message().contains("60 to 3600"), "{e}");
    let e = bad(AwsWebIdentitySourceOptions {
        duration: Duration::from_secs(7200),
        ..Default::default()
    });
    assert_eq!(e.category(), ErrorCategory::InvalidConfiguration);
    let e = bad(AwsWebIdentitySourceOptions {
        signing_algorithm: "HS256".into(),
        ..Default::default()
    });
    assert!(e.message().contains("RS256"), "{e}");
    let e = bad(AwsWebIdentitySourceOptions {
        endpoint_url: Some("http://sts.us-east-1.amazonaws.com".into()),
        ..Default::default()
    });
    assert!(e.message().contains("https://"), "{e}");
    let e = bad(AwsWebIdentitySourceOptions {
        audience: Some(String::new()),
        ..Default::default()
    });
    assert!(e.message().contains("audience"), "{e}");
    let ok = AwsWebIdentitySource::new(AwsWebIdentitySourceOptions::default()).unwrap();
    assert_eq!(ok.audience(), AUDIENCE_PUBLIC);
    ok.default_audience("api://AzureADTokenExchangeUSGov");
    assert_eq!(ok.audience(), "api://AzureADTokenExchangeUSGov");
    assert!(ok.describe().contains("RS256"));
}

#[test]
fn every_documented_code_has_a_fix() {
    for code in [
        "AccessDenied",
        "OutboundWebIdentityFederationDisabledException",
        "ExpiredToken",
        "InvalidClientTokenId",
        "Throttling",
    ] {
        let (problem, fix, _) = fix_for(code, "api://AzureADTokenExchange", "us-east-1", 300);
        assert_ne!(problem, crate::ProblemId::AwsSts, "{code}");
        assert!(!fix.is_empty());
    }
    assert!(
        fix_for("AccessDenied", "a", "r", 300)
            .1
            .contains("sts:GetWebIdentityToken")
    );
    assert!(
        fix_for(
            "OutboundWebIdentityFederationDisabledException",
            "a",
            "r",
            300
        )
        .1
        .contains("aws iam enable-outbound-web-identity-federation")
    );
    assert!(fix_for("Throttling", "a", "r", 300).2);
    assert!(fix_for("InternalFailure", "a", "r", 300).2);
    assert!(!fix_for("AccessDenied", "a", "r", 300).2);
}

#[test]
fn debug_shows_no_secrets() {
    let o = AwsWebIdentitySourceOptions {
        env: Env::from_pairs([("AWS_SECRET_ACCESS_KEY", "very-secret-value")]),
        ..Default::default()
    };
    let text = format!("{o:?}");
    assert!(!text.contains("very-secret-value"), "{text}");
    let s = AwsWebIdentitySource::new(o).unwrap();
    assert!(!format!("{s:?}").contains("very-secret-value"));
}

#[tokio::test]
async fn a_missing_or_global_region_is_refused_before_any_call() {
    let probe = |region: Option<&'static str>| {
        let sdk_config = aws_config::SdkConfig::builder()
            .region(region.map(aws_config::Region::from_static))
            .build();
        let options = AwsWebIdentitySourceOptions {
            sdk_config: Some(sdk_config),
            ..Default::default()
        };
        async move { AwsWebIdentitySource::new(options).unwrap().probe().await }
    };
    let e = probe(None).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::NotConfigured, "{e}");
    assert!(!e.is_transient(), "{e}");
    assert!(
        e.message().starts_with(
            "AwsWebIdentitySource: no AWS region found; STS serves GetWebIdentityToken only on regional endpoints."
        ),
        "{e}"
    );
    assert_eq!(
        e.fix(),
        Some(
            "set AWS_REGION (e.g. us-east-1), the region option, or the region of your AWS profile."
        )
    );
    let e = probe(Some("aws-global")).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::InvalidConfiguration, "{e}");
    assert!(
        e.message().starts_with("AwsWebIdentitySource: region aws-global selects the STS global endpoint, which does not serve GetWebIdentityToken; set a regional one (e.g. AWS_REGION=us-east-1)."),
        "{e}"
    );
}
