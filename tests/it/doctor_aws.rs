//! `doctor` with AWS outbound identity federation as the assertion source, all over HTTPS on
//! 127.0.0.1: static AWS credentials through `Env` (never the process environment) → the
//! emulator's STS → its AWS-style issuer → its Entra. Nothing reaches AWS or IMDS.

use crate::common::aws::*;
use crate::common::*;
use azure_identity_k8s::ProblemId;
use azure_identity_k8s::assertion::AwsWebIdentitySourceOptions;
use azure_identity_k8s::doctor::{self, CheckId, DoctorOptions, Report, Status};
use entra_emulator::{Endpoint, FederatedCredential};

impl Aws {
    async fn doctor(&self) -> Report {
        let mut credential = self.fx.options();
        // No token file: the assertion comes from STS.
        credential.token_file_path = None;
        doctor::run(DoctorOptions {
            credential,
            scope: STORAGE.into(),
            aws: Some(self.aws_options()),
            ..Default::default()
        })
        .await
    }
}

fn detail(report: &Report, id: CheckId, label: &str) -> String {
    report
        .check(id)
        .unwrap_or_else(|| panic!("no {id} check:\n{report}"))
        .details
        .iter()
        .find(|(k, _)| k == label)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{id} has no {label:?}:\n{report}"))
}

#[track_caller]
fn first_failure(report: &Report, id: CheckId) -> &doctor::Check {
    let first = report
        .first_failure()
        .unwrap_or_else(|| panic!("no failure:\n{report}"));
    assert_eq!(
        first.id, id,
        "first failure is {} not {id}:\n{report}",
        first.id
    );
    assert!(!report.ok);
    first
}

#[tokio::test]
async fn a_healthy_aws_setup_passes_every_check() {
    let aws = Aws::new().await;
    let report = aws.doctor().await;
    assert!(report.ok, "{report}");
    for c in &report.checks {
        assert_eq!(c.status, Status::Ok, "{}:\n{report}", c.id);
    }
    let order: Vec<&str> = report.checks.iter().map(|c| c.id.name()).collect();
    assert_eq!(
        order,
        [
            "configuration",
            "aws-sts",
            "issuer",
            "discovery",
            "jwks",
            "signature",
            "scope",
            "exchange"
        ]
    );
    assert_eq!(
        detail(&report, CheckId::AwsSts, "issuer"),
        aws.account.issuer_url()
    );
    assert_eq!(
        detail(&report, CheckId::AwsSts, "subject"),
        aws.role.role_arn
    );
    assert_eq!(
        detail(&report, CheckId::AwsSts, "audience"),
        "api://AzureADTokenExchange"
    );
    assert_eq!(detail(&report, CheckId::AwsSts, "region"), "us-east-1");
    assert!(detail(&report, CheckId::AwsSts, "expires").contains("(in "));
    assert_eq!(
        detail(&report, CheckId::Issuer, "iss"),
        format!("{:?}", aws.account.issuer_url())
    );
    assert_eq!(detail(&report, CheckId::Exchange, "token appid"), CLIENT);
    let m = report.matching_federated_credential.as_ref().unwrap();
    assert_eq!(m.issuer, aws.account.issuer_url());
    assert_eq!(m.subject, aws.role.role_arn);
    assert_eq!(m.audience, "api://AzureADTokenExchange");

    // One STS call: the exchange presents the JWT the checks examined.
    assert_eq!(aws.fx.emu.request_count(Endpoint::Sts), 1);
    let sent = aws
        .fx
        .emu
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::Token)
        .expect("an exchange")
        .form["client_assertion"]
        .clone();
    assert_eq!(claims(&sent)["sub"], aws.role.role_arn);
    let text = report.to_string();
    assert!(!text.contains(&sent) && !report.to_json().contains(&sent));
    assert!(!text.contains(&aws.role.secret_access_key));
    assert!(text.contains("[ ok ] aws-sts"), "{text}");
    assert!(text.contains("doctor: OK"), "{text}");
}

#[tokio::test]
async fn sts_access_denied_fails_at_aws_sts_with_the_iam_fix() {
    let aws = Aws::new().await;
    aws.account.set_role_allowed(ROLE, false);
    let report = aws.doctor().await;
    let first = first_failure(&report, CheckId::AwsSts);
    assert!(first.summary.contains("AccessDenied"), "{report}");
    assert_eq!(
        detail(&report, CheckId::AwsSts, "aws error code"),
        "AccessDenied"
    );
    assert_eq!(detail(&report, CheckId::AwsSts, "http status"), "403");
    let fix = first.fix.as_deref().unwrap();
    assert!(fix.contains("sts:GetWebIdentityToken"), "{report}");
    assert!(fix.contains("identity-based policy"), "{report}");
    assert_eq!(first.problem_id, Some(ProblemId::AwsAccessDenied));
    assert!(
        first
            .url
            .as_deref()
            .is_some_and(|u| u.ends_with("/aws_outbound/index.html#access-denied")),
        "{report}"
    );
    // The issuer side has nothing to examine, and Entra is not called.
    for id in [
        CheckId::Issuer,
        CheckId::Discovery,
        CheckId::Jwks,
        CheckId::Signature,
        CheckId::Exchange,
    ] {
        assert_eq!(report.check(id).unwrap().status, Status::Skip, "{report}");
    }
    assert_eq!(aws.fx.emu.request_count(Endpoint::Token), 0);
    assert!(report.matching_federated_credential.is_none());
}

#[tokio::test]
async fn a_federated_credential_for_another_role_fails_at_exchange_naming_the_role_arn() {
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
    let report = aws.doctor().await;
    let first = first_failure(&report, CheckId::Exchange);
    assert_eq!(first.aadsts, vec![70021], "{report}");
    assert_eq!(first.problem_id, Some(ProblemId::Aadsts(70021)));
    // The credential's fix; the matching credential and its commands are a detail.
    let fix = detail(&report, CheckId::Exchange, "matching credential");
    for needle in [
        format!("subject:  {}", aws.role.role_arn),
        format!("issuer:   {}", aws.account.issuer_url()),
        "audience: api://AzureADTokenExchange".to_string(),
        "az identity federated-credential create --name aws-WorkloadRole".to_string(),
        // Shell-quoted: an ARN needs no quotes; the JSON parameters do.
        format!("--subject {}", aws.role.role_arn),
        "--parameters '{\"".to_string(),
    ] {
        assert!(fix.contains(&needle), "the fix lacks {needle:?}:\n{report}");
    }
    assert!(!fix.contains("namespace"), "no Kubernetes advice: {fix}");
    assert_eq!(
        report.check(CheckId::AwsSts).unwrap().status,
        Status::Ok,
        "{report}"
    );
}

#[tokio::test]
async fn invalid_aws_options_fail_at_aws_sts_without_io() {
    let aws = Aws::new().await;
    let mut credential = aws.fx.options();
    credential.token_file_path = None;
    let report = doctor::run(DoctorOptions {
        credential,
        scope: STORAGE.into(),
        aws: Some(AwsWebIdentitySourceOptions {
            duration: std::time::Duration::from_secs(30),
            ..aws.aws_options()
        }),
        ..Default::default()
    })
    .await;
    let first = first_failure(&report, CheckId::AwsSts);
    assert!(
        detail(&report, CheckId::AwsSts, "error").contains("60 to 3600"),
        "{report}"
    );
    assert_eq!(first.problem_id, Some(ProblemId::AwsLimits));
    assert_eq!(aws.fx.emu.request_count(Endpoint::Sts), 0);
}
