//! Unit tests of the token request, its answers and the catalogue.

use super::catalogue::entra_problem;
use super::response::first_line;
use super::*;
use crate::config::AZURE_FEDERATED_TOKEN_AUDIENCE;
use crate::problem::ProblemId;
use azure_core::http::StatusCode;
use azure_core::time::Duration;

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn ctx_with<'a>(claims: &'a Claims, endpoint: &'a Url) -> ErrorContext<'a> {
    ErrorContext {
        client_id: "11111111-0000-0000-0000-000000000001",
        tenant_id: "tenant-a",
        endpoint,
        scope: "https://storage.azure.com/.default",
        claims: Some(claims),
        header: None,
        origin: "/var/run/secrets/azure/tokens/azure-identity-token",
    }
}

#[test]
fn success_accepts_numbers_and_strings() {
    let s = StatusCode::from(200);
    let t = parse_success(
        s,
        br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"abc"}"#,
        now(),
    )
    .unwrap();
    assert_eq!(t.token.expires_on, now() + Duration::seconds(3599));
    assert_eq!(t.refresh_in, None);
    let t = parse_success(
        s,
        br#"{"token_type":"Bearer","expires_in":"7200","refresh_in":"3600","access_token":"abc"}"#,
        now(),
    )
    .unwrap();
    assert_eq!(t.token.expires_on, now() + Duration::seconds(7200));
    assert_eq!(t.refresh_in, Some(Duration::seconds(3600)));
}

#[test]
fn success_without_token_or_truncated_is_an_error() {
    let s = StatusCode::from(200);
    let e = parse_success(
        s,
        br#"{"token_type":"Bearer","expires_in":3599,"access_token":""}"#,
        now(),
    )
    .unwrap_err();
    assert!(e.message().contains("without an access_token"), "{e}");
    let e = parse_success(s, br#"{"token_type":"Bearer","expires_in":35"#, now()).unwrap_err();
    assert!(e.message().contains("truncated"), "{e}");
    assert!(e.is_transient());
    let e = parse_success(s, b"", now()).unwrap_err();
    assert!(e.message().contains("empty body"), "{e}");
    let e = parse_success(s, br#"{"access_token":"x"}"#, now()).unwrap_err();
    assert!(e.message().contains("expires_in"), "{e}");
}

#[test]
fn absurd_expires_in_is_an_error_not_a_panic() {
    let s = StatusCode::from(200);
    for body in [
        r#"{"token_type":"Bearer","expires_in":9223372036854775807,"access_token":"abc"}"#,
        r#"{"token_type":"Bearer","expires_in":1e300,"access_token":"abc"}"#,
        r#"{"token_type":"Bearer","expires_in":"999999999999999","access_token":"abc"}"#,
    ] {
        let e = parse_success(s, body.as_bytes(), now()).unwrap_err();
        assert!(e.message().contains("beyond any representable date"), "{e}");
        assert_eq!(e.http_status(), Some(s));
    }
}

#[test]
fn retry_after_seconds_and_http_dates() {
    let n = now();
    assert_eq!(retry_after_delay("60", n), Some(Duration::seconds(60)));
    let date = (n + Duration::seconds(90))
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap();
    // RFC 7231's IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
    let imf = azure_core::time::to_rfc7231(&(n + Duration::seconds(90)));
    assert_eq!(
        retry_after_delay(&imf, n),
        Some(Duration::seconds(90)),
        "{date} / {imf}"
    );
    assert_eq!(retry_after_delay("garbage", n), None);
    let past = azure_core::time::to_rfc7231(&(n - Duration::seconds(90)));
    assert_eq!(retry_after_delay(&past, n), Some(Duration::ZERO));
}

#[test]
fn fic_mismatch_echoes_local_claims() {
    let claims = Claims {
        iss: Some("https://oidc.eks.us-east-1.amazonaws.com/id/ABC".into()),
        sub: Some("system:serviceaccount:prod:api".into()),
        aud: vec!["api://AzureADTokenExchange".into()],
        ..Default::default()
    };
    let ep = Url::parse("https://login.microsoftonline.com/tenant-a/oauth2/v2.0/token").unwrap();
    let body = br#"{"error":"invalid_client","error_description":"AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: 'x'.\r\nTrace ID: t1\r\nCorrelation ID: c1\r\nTimestamp: 2026-01-01 00:00:00Z","error_codes":[70021],"trace_id":"t1","correlation_id":"c1"}"#;
    let e = parse_error(StatusCode::from(400), None, body, &ctx_with(&claims, &ep));
    let m = e.message();
    assert_eq!(e.aadsts_codes(), &[70021]);
    assert!(!e.is_transient());
    for needle in [
        "AADSTS70021",
        "https://oidc.eks.us-east-1.amazonaws.com/id/ABC",
        "system:serviceaccount:prod:api",
        "api://AzureADTokenExchange",
        "#aadsts70021",
        "Correlation ID: c1",
    ] {
        assert!(m.contains(needle), "missing {needle}: {m}");
    }
}

/// The chain azure_identity users walk: `ErrorKind::HttpResponse { status, error_code, .. }`.
fn http_kind(e: &CredentialError) -> Option<(u16, Option<String>, usize)> {
    let az: azure_core::Error = e.clone().into();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&az);
    while let Some(err) = cur {
        if let Some(a) = err.downcast_ref::<azure_core::Error>()
            && let azure_core::error::ErrorKind::HttpResponse {
                status,
                error_code,
                raw_response,
            } = a.kind()
        {
            let len = raw_response.as_ref().map_or(0, |r| r.body().len());
            return Some((u16::from(*status), error_code.clone(), len));
        }
        cur = err.source();
    }
    None
}

#[test]
fn entra_errors_keep_azure_cores_http_response_kind_in_the_chain() {
    let claims = Claims::default();
    let ep = Url::parse("https://login.microsoftonline.com/t/oauth2/v2.0/token").unwrap();
    let body = br#"{"error":"invalid_client","error_description":"AADSTS700016: Application not found.\r\nTrace ID: t","error_codes":[700016,50000]}"#;
    let e = parse_error(StatusCode::from(400), None, body, &ctx_with(&claims, &ep));
    assert_eq!(
        http_kind(&e),
        Some((400, Some("700016,50000".into()), body.len()))
    );
    // Our own data stays next to it.
    assert_eq!(e.aadsts_codes(), &[700016, 50000]);
    let src = std::error::Error::source(&e).unwrap().to_string();
    assert!(
        src.contains("AADSTS700016: Application not found."),
        "{src}"
    );
    // A gateway's HTML page: the status, no code.
    let e = parse_error(
        StatusCode::from(503),
        Some("7"),
        b"<html>",
        &ctx_with(&claims, &ep),
    );
    assert_eq!(http_kind(&e), Some((503, None, 6)));
}

#[test]
fn fic_mismatch_with_a_custom_audience_names_it_and_the_fix() {
    let ep = Url::parse("https://login.microsoftonline.com/t/oauth2/v2.0/token").unwrap();
    let body = br#"{"error":"invalid_client","error_codes":[700212]}"#;
    let with_aud = |aud: &str| Claims {
        iss: Some("https://oidc.eks.us-east-1.amazonaws.com/id/ABC".into()),
        sub: Some("system:serviceaccount:prod:api".into()),
        aud: vec![aud.into()],
        ..Default::default()
    };
    let claims = with_aud("api://my-custom-audience");
    let m = parse_error(StatusCode::from(400), None, body, &ctx_with(&claims, &ep))
        .message()
        .to_string();
    assert!(
        m.contains("the token's audience is api://my-custom-audience, not the recommended api://AzureADTokenExchange")
            && m.contains("add api://my-custom-audience to the federated credential's audiences")
            && m.contains("serviceAccountToken.audience to api://AzureADTokenExchange"),
        "{m}"
    );
    // A foreign audience (sent only with allow_foreign_audience) is never suggested.
    for aud in [
        "sts.amazonaws.com",
        "https://oidc.eks.us-east-1.amazonaws.com/id/ABC",
    ] {
        let claims = with_aud(aud);
        let m = parse_error(StatusCode::from(400), None, body, &ctx_with(&claims, &ep))
            .message()
            .to_string();
        assert!(
            m.contains("must not be this token's") && !m.contains(&format!("add {aud}")),
            "{m}"
        );
    }
}

#[test]
fn non_json_error_bodies_keep_the_status() {
    let claims = Claims::default();
    let ep = Url::parse("https://login.microsoftonline.com/t/oauth2/v2.0/token").unwrap();
    let ctx = ctx_with(&claims, &ep);
    let e = parse_error(
        StatusCode::from(502),
        None,
        b"<html><body>Bad Gateway</body></html>",
        &ctx,
    );
    assert!(
        e.is_transient() && e.message().contains("HTML") && e.message().contains("502"),
        "{e}"
    );
    let e = parse_error(StatusCode::from(429), Some("60"), b"", &ctx);
    assert!(
        e.is_transient()
            && e.message().contains("Retry-After: 60")
            && e.message().contains("empty body"),
        "{e}"
    );
    let e = parse_error(StatusCode::from(400), None, b"{\"error\":", &ctx);
    assert_eq!(e.http_status(), Some(StatusCode::from(400)));
    assert!(!e.is_transient());
}

#[test]
fn the_first_line_is_the_same_across_retries_and_the_ids_are_fields() {
    let claims = Claims::default();
    let ep = Url::parse("https://login.microsoftonline.com/t/oauth2/v2.0/token").unwrap();
    let answer = |trace: &str, corr: &str, ts: &str| {
        format!(
            r#"{{"error":"invalid_client","error_description":"AADSTS700016: Application not found.\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}","error_codes":[700016],"trace_id":"{trace}","correlation_id":"{corr}","timestamp":"{ts}"}}"#
        )
    };
    let a = parse_error(
        StatusCode::from(400),
        None,
        answer("t-1", "c-1", "2026-01-01 00:00:00Z").as_bytes(),
        &ctx_with(&claims, &ep),
    );
    let b = parse_error(
        StatusCode::from(400),
        None,
        answer("t-2", "c-2", "2026-01-01 00:00:07Z").as_bytes(),
        &ctx_with(&claims, &ep),
    );
    assert_eq!(first_line(a.message()), first_line(b.message()));
    assert_ne!(a.message(), b.message(), "the ids are further down");
    for line in [first_line(a.message()), first_line(&a.to_string())] {
        assert!(!line.contains("t-1") && !line.contains("c-1") && !line.contains("2026"));
    }
    assert_eq!(a.problem_id(), Some(ProblemId::Aadsts(700016)));
    assert_eq!(a.problem_id(), b.problem_id());
    assert_eq!(a.fix(), b.fix());
    assert_eq!(a.documentation_url(), b.documentation_url());
    assert!(
        a.documentation_url()
            .unwrap()
            .ends_with("/troubleshooting/index.html#aadsts700016")
    );
    assert_eq!(
        (a.trace_id(), a.correlation_id()),
        (Some("t-1"), Some("c-1"))
    );
    assert_eq!(
        (b.trace_id(), b.correlation_id()),
        (Some("t-2"), Some("c-2"))
    );
    assert_eq!(a.entra_error(), Some("invalid_client"));
    assert_eq!(
        a.entra_description(),
        Some("AADSTS700016: Application not found.")
    );
    assert_eq!(a.http_status(), Some(StatusCode::from(400)));
    // A code without a section of its own keeps its own id and links the general section.
    let c = parse_error(
        StatusCode::from(400),
        None,
        br#"{"error":"invalid_request","error_codes":[123456]}"#,
        &ctx_with(&claims, &ep),
    );
    assert_eq!(c.problem_id(), Some(ProblemId::Aadsts(123456)));
    assert!(c.documentation_url().unwrap().ends_with("#entra-errors"));
}

#[test]
fn every_documented_code_has_a_specific_entry() {
    let claims = Claims {
        iss: Some("https://issuer.example".into()),
        ..Default::default()
    };
    let ep = Url::parse("https://login.microsoftonline.com/t/oauth2/v2.0/token").unwrap();
    let ctx = ctx_with(&claims, &ep);
    assert!(
        entra_problem(1, &ctx).is_none(),
        "a generic line for a code without an entry"
    );
    for code in ProblemId::all().filter_map(|p| match p {
        ProblemId::Aadsts(code) => Some(code),
        _ => None,
    }) {
        let p = entra_problem(code, &ctx).expect("a specific entry");
        assert!(!p.headline.contains('\n'), "code {code}: {}", p.headline);
    }
    assert!(
        entra_problem(90061, &ctx)
            .unwrap()
            .headline
            .contains("https://issuer.example/.well-known/openid-configuration")
    );
}

/// Entra's answer with one AADSTS code, explained for `claims` against `authority`.
fn explain(code: u32, claims: &Claims, authority: &str) -> CredentialError {
    let ep = Url::parse(&format!("{authority}/tenant-a/oauth2/v2.0/token")).unwrap();
    let body = format!(
        r#"{{"error":"invalid_client","error_description":"AADSTS{code}: x","error_codes":[{code}]}}"#
    );
    parse_error(
        StatusCode::from(400),
        None,
        body.as_bytes(),
        &ctx_with(claims, &ep),
    )
}

#[test]
fn concrete_fixes_for_the_misconfigurations_users_meet() {
    let eks = |aud: &str, lifetime: i64| Claims {
        iss: Some("https://oidc.eks.us-east-1.amazonaws.com/id/ABC".into()),
        sub: Some("system:serviceaccount:prod:api".into()),
        aud: vec![aud.into()],
        iat: Some(1_800_000_000),
        exp: Some(1_800_000_000 + lifetime),
        ..Default::default()
    };
    let public = "https://login.microsoftonline.com";
    let claims = eks("api://AzureADTokenExchange", 3600);
    let cases: [(u32, &Claims, &str, &[&str]); 6] = [
        (
            90002,
            &claims,
            public,
            &["AZURE_TENANT_ID", "az account show --query tenantId -o tsv"],
        ),
        (
            700016,
            &claims,
            public,
            &[
                "AZURE_CLIENT_ID",
                "--query clientId -o tsv",
                "--query '[].appId' -o tsv",
            ],
        ),
        (
            7000272,
            &claims,
            public,
            &["republish the JWKS", "kubectl get --raw /openid/v1/jwks"],
        ),
        (
            70023,
            &eks("api://AzureADTokenExchange", 172_800),
            public,
            &["expirationSeconds to at most 86400"],
        ),
        (
            5002738,
            &claims,
            public,
            &[
                "RSA service-account signing key",
                "--service-account-signing-key-file",
            ],
        ),
        (
            70021,
            &eks("api://AzureADTokenExchangeUSGov", 3600),
            public,
            &["AZURE_AUTHORITY_HOST=https://login.microsoftonline.us"],
        ),
    ];
    for (code, claims, authority, needles) in cases {
        let e = explain(code, claims, authority);
        let fix = e.fix().expect("a fix");
        for needle in needles {
            assert!(
                fix.contains(needle),
                "AADSTS{code}: {needle:?} not in {fix:?}"
            );
        }
        assert!(e.message().contains(&format!("Fix: {fix}")), "{e}");
        assert_eq!(e.problem_id(), Some(ProblemId::Aadsts(code)));
        assert!(
            e.documentation_url()
                .unwrap()
                .ends_with(&format!("#aadsts{code}")),
            "{e:?}"
        );
    }
    // An AWS STS web-identity token: request RS256 from STS.
    let aws = Claims {
        sub: Some("arn:aws:iam::123456789012:role/app".into()),
        ..eks("https://sts.amazonaws.com", 3600)
    };
    let e = explain(5002738, &aws, public);
    assert!(e.fix().unwrap().contains("SigningAlgorithm=RS256"), "{e}");
    // The US Government token: the audience is right, the authority is not.
    let e = explain(70021, &eks("api://AzureADTokenExchangeUSGov", 3600), public);
    assert!(
        !e.fix().unwrap().contains(AZURE_FEDERATED_TOKEN_AUDIENCE),
        "{e}"
    );
    // Against its own cloud it is an ordinary federated-credential mismatch.
    let e = explain(
        70021,
        &eks("api://AzureADTokenExchangeUSGov", 3600),
        "https://login.microsoftonline.us",
    );
    assert!(!e.fix().unwrap().contains("AZURE_AUTHORITY_HOST="), "{e}");
    assert!(e.fix().unwrap().contains("create or correct"), "{e}");
}

#[test]
fn the_first_line_carries_each_entrys_key_fact_with_its_values() {
    let claims = Claims {
        iss: Some("https://oidc.eks.us-east-1.amazonaws.com/id/ABC".into()),
        sub: Some("system:serviceaccount:prod:workload".into()),
        aud: vec!["api://AzureADTokenExchange".into()],
        iat: Some(1_800_000_000),
        exp: Some(1_800_000_000 + 172_800),
        ..Default::default()
    };
    let header = crate::jwt::Header {
        alg: Some("ES256".into()),
        kid: Some("key-7".into()),
    };
    let first_of = |code: u32, claims: &Claims, authority: &str| {
        let ep = Url::parse(&format!("{authority}/tenant-a/oauth2/v2.0/token")).unwrap();
        let ctx = ErrorContext {
            header: Some(&header),
            ..ctx_with(claims, &ep)
        };
        let body = format!(
            r#"{{"error":"invalid_client","error_description":"AADSTS{code}: x\r\nTrace ID: t\r\nTimestamp: 2026-01-01","error_codes":[{code}],"trace_id":"t","correlation_id":"c"}}"#
        );
        let e = parse_error(StatusCode::from(400), Some("7"), body.as_bytes(), &ctx);
        first_line(e.message()).to_owned()
    };
    let public = "https://login.microsoftonline.com";
    let prefix = "WorkloadIdentityCredential: Entra ID rejected the token request: ";
    let cases: [(u32, &str); 9] = [
        (
            90002,
            "tenant tenant-a was not found at https://login.microsoftonline.com",
        ),
        (
            700016,
            "no application with client id 11111111-0000-0000-0000-000000000001 in tenant tenant-a at https://login.microsoftonline.com",
        ),
        (
            70021,
            "no federated identity credential on application 11111111-0000-0000-0000-000000000001 matches issuer \
             https://oidc.eks.us-east-1.amazonaws.com/id/ABC, subject system:serviceaccount:prod:workload, audience api://AzureADTokenExchange",
        ),
        (
            700213,
            "no federated identity credential on application 11111111-0000-0000-0000-000000000001 has the token's subject \
             system:serviceaccount:prod:workload",
        ),
        (
            70023,
            "the token lives 172800 s (exp - iat); Entra accepts at most 86400 s",
        ),
        (
            5002738,
            "the token is signed with ES256; Entra accepts only RS256, RS384 or RS512",
        ),
        (
            7000272,
            "the token's signing key (kid key-7) is not in the JWKS of its issuer https://oidc.eks.us-east-1.amazonaws.com/id/ABC",
        ),
        (
            90061,
            "Entra could not fetch the issuer's discovery document https://oidc.eks.us-east-1.amazonaws.com/id/ABC/.well-known/openid-configuration",
        ),
        (
            1002012,
            "the scope \"https://storage.azure.com/.default\" is not one resource with the /.default suffix",
        ),
    ];
    for (code, fact) in cases {
        let line = first_of(code, &claims, public);
        assert!(
            line.starts_with(&format!("{prefix}{fact}")),
            "AADSTS{code}: {line}"
        );
        assert!(line.ends_with(&format!("(AADSTS{code}).")), "{line}");
        // Nothing that changes between retries: no trace id, time or Retry-After.
        assert!(
            !line.contains("2026") && !line.contains("Retry-After"),
            "{line}"
        );
        assert!(
            !line.contains("Trace") && !line.contains("HTTP 400"),
            "{line}"
        );
        // Readable: short, but for the three values of a federated credential (with a real
        // EKS issuer about 300 characters).
        let limit = if code == 70021 || code == 700213 {
            320
        } else {
            250
        };
        assert!(line.len() < limit, "{} chars: {line}", line.len());
    }
    // Another cloud's token: the first line says so (AADSTS70021).
    let us_gov = Claims {
        aud: vec!["api://AzureADTokenExchangeUSGov".into()],
        ..claims.clone()
    };
    assert_eq!(
        first_of(70021, &us_gov, public),
        format!(
            "{prefix}the token's audience api://AzureADTokenExchangeUSGov is for the cloud at https://login.microsoftonline.us, \
             but the authority is https://login.microsoftonline.com (AADSTS70021)."
        )
    );
    // A token without iss or aud (sent, as azure_identity does): the first line names the
    // missing claims, the fix is a proper projected token.
    let bare = Claims {
        iss: None,
        aud: Vec::new(),
        ..claims.clone()
    };
    assert_eq!(
        first_of(70021, &bare, public),
        format!(
            "{prefix}the token has no usable iss, aud, so no federated identity credential on application \
             11111111-0000-0000-0000-000000000001 can match it (AADSTS70021)."
        )
    );
    // A code without an entry keeps the generic line.
    assert_eq!(
        first_of(123456, &claims, public),
        "WorkloadIdentityCredential: Entra ID rejected the token request for scope https://storage.azure.com/.default \
         (HTTP 400, AADSTS123456, error \"invalid_client\")."
    );
}

#[test]
fn an_aws_sts_token_gets_aws_advice_not_kubernetes_advice() {
    let aws = Claims {
        iss: Some("https://a1b2c3d4-0000-0000-0000-000000000000.tokens.sts.global.api.aws".into()),
        sub: Some("arn:aws:iam::123456789012:role/app".into()),
        aud: vec!["api://AzureADTokenExchange".into()],
        iat: Some(1_800_000_000),
        exp: Some(1_800_000_300),
        ..Default::default()
    };
    let no_exp = Claims {
        exp: None,
        ..aws.clone()
    };
    let issuer_command = "aws iam get-outbound-web-identity-federation-info";
    let cases: [(u32, &Claims, &[&str]); 7] = [
        (
            700024,
            &aws,
            &[
                "this machine's clock",
                "duration in AwsWebIdentitySourceOptions",
            ],
        ),
        (
            700027,
            &aws,
            &["exactly as AWS STS returned it", issuer_command],
        ),
        (
            900384,
            &aws,
            &["exactly as AWS STS returned it", issuer_command],
        ),
        (
            7000272,
            &aws,
            &["exactly as AWS STS returned it", issuer_command],
        ),
        (
            90061,
            &aws,
            &[
                issuer_command,
                "aws iam enable-outbound-web-identity-federation",
            ],
        ),
        (
            50027,
            &no_exp,
            &[
                "AWS STS GetWebIdentityToken",
                "AwsWebIdentitySource::probe()",
            ],
        ),
        (
            70023,
            &aws,
            &["duration in AwsWebIdentitySourceOptions", "3600"],
        ),
    ];
    for (code, claims, needles) in cases {
        let e = explain(code, claims, "https://login.microsoftonline.com");
        let fix = e.fix().expect("a fix");
        for word in ["kubectl", "kubelet", "serviceAccountToken", "API server"] {
            assert!(!fix.contains(word), "AADSTS{code}: {word:?} in {fix:?}");
        }
        for needle in needles {
            assert!(
                fix.contains(needle),
                "AADSTS{code}: {needle:?} not in {fix:?}"
            );
        }
    }
    // A GovCloud role ARN: the same origin.
    let gov = Claims {
        sub: Some("arn:aws-us-gov:iam::123456789012:role/app".into()),
        ..aws.clone()
    };
    let fix = explain(7000272, &gov, "https://login.microsoftonline.com");
    assert!(fix.fix().unwrap().contains(issuer_command), "{fix}");
    // The service-account token keeps its Kubernetes advice.
    let eks = Claims {
        iss: Some("https://oidc.eks.us-east-1.amazonaws.com/id/ABC".into()),
        sub: Some("system:serviceaccount:prod:api".into()),
        ..aws
    };
    for (code, needle) in [
        (700024, "kubelet"),
        (700027, "kubectl get --raw /openid/v1/jwks"),
        (7000272, "kubectl get --raw /openid/v1/jwks"),
        (90061, "EKS issuers are public"),
    ] {
        let e = explain(code, &eks, "https://login.microsoftonline.com");
        assert!(e.fix().unwrap().contains(needle), "AADSTS{code}: {e}");
    }
}

#[test]
fn a_malformed_field_of_a_token_response_is_named() {
    let s = StatusCode::from(200);
    for (body, needle) in [
        (
            &br#"{"access_token":"x","expires_in":"soon"}"#[..],
            r#"expires_in is "soon", not a number"#,
        ),
        (
            br#"{"access_token":"x","expires_in":[3600]}"#,
            "expires_in is an array, not a number",
        ),
        (
            br#"{"access_token":"x","expires_in":3600,"refresh_in":true}"#,
            "refresh_in is a boolean, not a number",
        ),
        (
            br#"{"access_token":7,"expires_in":3600}"#,
            "access_token is a number, not a string",
        ),
    ] {
        let e = parse_success(s, body, now()).unwrap_err();
        assert!(e.message().contains(needle), "{e}");
        assert_eq!(e.problem_id(), Some(ProblemId::InvalidResponse));
    }
}

// How the exchange words a token cache's own failures (from cache/tests.rs, whose test source
// now has an error type of its own).

const CACHED_SCOPE: &str = "https://vault.azure.net/.default";

/// The cache's time-out after `secs` while the token request was on the wire.
fn timed_out_in_request(secs: i64) -> CredentialError {
    let progress = Arc::new(Progress::default());
    progress.set(Phase::Request);
    let bound = Duration::seconds(secs);
    let progress = Some(progress);
    failure_error(
        CACHED_SCOPE,
        cache::Failure::TimedOut { bound, progress },
        None,
    )
}

#[test]
fn a_hung_endpoint_times_out_with_an_actionable_transient_error() {
    let e = timed_out_in_request(30);
    assert_eq!(e.category(), crate::ErrorCategory::Timeout);
    assert!(e.is_transient());
    assert!(
        e.message().contains("did not answer within 30 s"),
        "{}",
        e.message()
    );
    assert!(
        e.message().contains("RefreshPolicy::attempt_timeout"),
        "{}",
        e.message()
    );
    let e = timed_out_in_request(3);
    assert!(e.message().contains("within 3 s"), "{}", e.message());
}

#[test]
fn a_panicking_attempt_names_the_panic() {
    let panicked = cache::Failure::Panicked("test source panics on fetch 1".into());
    let e = failure_error(CACHED_SCOPE, panicked, None);
    assert!(e.is_transient());
    assert!(
        e.message()
            .contains("panicked: test source panics on fetch 1"),
        "{}",
        e.message()
    );
}
