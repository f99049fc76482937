use super::*;
use crate::error::ErrorCategory;
use crate::problem::ProblemId;
use std::collections::HashMap;

fn inputs<'a>(env: &'a Env, paths: &'a [PathBuf]) -> ConfigInputs<'a> {
    ConfigInputs {
        client_id: None,
        tenant_id: None,
        token_file_path: None,
        cloud: None,
        expected_audience: None,
        well_known_token_paths: paths,
        env,
        unused_token: &|_| None,
    }
}

fn full_env() -> Env {
    Env::from_pairs([
        (AZURE_CLIENT_ID, "11111111-2222-3333-4444-555555555555"),
        (AZURE_TENANT_ID, "contoso.onmicrosoft.com"),
        (AZURE_FEDERATED_TOKEN_FILE, "/tmp/token"),
    ])
}

#[test]
fn env_fills_everything_and_defaults_apply() {
    let env = full_env();
    let c = resolve(&inputs(&env, &[])).unwrap();
    assert_eq!(c.client_id.source, ValueSource::EnvVar(AZURE_CLIENT_ID));
    assert_eq!(c.token_file.value, PathBuf::from("/tmp/token"));
    assert_eq!(
        c.authority_host.value.as_str(),
        "https://login.microsoftonline.com/"
    );
    assert_eq!(c.authority_host.source, ValueSource::Default);
    assert_eq!(c.expected_audience.value, AUDIENCE_PUBLIC);
    assert_eq!(
        c.token_endpoint().as_str(),
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
}

#[test]
fn options_win_over_env() {
    let env = full_env();
    let mut i = inputs(&env, &[]);
    i.client_id = Some("from-options");
    let c = resolve(&i).unwrap();
    assert_eq!(c.client_id.value, "from-options");
    assert_eq!(c.client_id.source, ValueSource::Options);
}

#[test]
fn missing_values_are_not_configured_and_name_the_variable() {
    let env = Env::from_pairs::<&str, &str>([]);
    let e = resolve(&inputs(&env, &[])).unwrap_err();
    assert!(e.is_not_configured());
    assert!(e.message().contains("AZURE_CLIENT_ID"), "{e}");
    let env = Env::from_pairs([(AZURE_CLIENT_ID, "x")]);
    let e = resolve(&inputs(&env, &[])).unwrap_err();
    assert!(e.message().contains("AZURE_TENANT_ID"), "{e}");
    let env = Env::from_pairs([(AZURE_CLIENT_ID, "x"), (AZURE_TENANT_ID, "t")]);
    let paths = [PathBuf::from("/definitely/not/here/token")];
    let e = resolve(&inputs(&env, &paths)).unwrap_err();
    assert!(e.is_not_configured());
    assert!(
        e.message().contains("AZURE_FEDERATED_TOKEN_FILE")
            && e.message().contains("/definitely/not/here/token"),
        "{e}"
    );
}

#[test]
fn well_known_path_is_discovered() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("azure-identity-token");
    std::fs::write(&p, "x").unwrap();
    let env = Env::from_pairs([(AZURE_CLIENT_ID, "x"), (AZURE_TENANT_ID, "t")]);
    let paths = [PathBuf::from("/nope/token"), p.clone()];
    let c = resolve(&inputs(&env, &paths)).unwrap();
    assert_eq!(c.token_file.value, p);
    assert_eq!(c.token_file.source, ValueSource::WellKnownPath);
}

#[test]
fn bad_values_are_rejected_with_the_reason() {
    // (variable, value, in the message, in the fix: the value or command that corrects it)
    for (var, value, needle, fix) in [
        (
            AZURE_TENANT_ID,
            "bad/tenant",
            "tenant id",
            "`az account show --query tenantId -o tsv`",
        ),
        (
            AZURE_TENANT_ID,
            "tenant\n",
            "whitespace",
            "set the environment variable AZURE_TENANT_ID to \"tenant\"",
        ),
        (
            AZURE_CLIENT_ID,
            "client id",
            "whitespace inside",
            // Not "clientid": removing inner spaces would only guess; the command prints it.
            "set AZURE_CLIENT_ID (or the option client_id) to the application's",
        ),
        (
            AZURE_TENANT_ID,
            "my tenant",
            "whitespace inside",
            "`az account show --query tenantId -o tsv`",
        ),
        (
            AZURE_AUTHORITY_HOST,
            "http://login.microsoftonline.com",
            "HTTPS",
            "set AZURE_AUTHORITY_HOST to https://login.microsoftonline.com, the tenant's cloud",
        ),
        (
            AZURE_AUTHORITY_HOST,
            "not a url",
            "whitespace inside",
            "set AZURE_AUTHORITY_HOST to the tenant's cloud: https://login.microsoftonline.com",
        ),
        (
            AZURE_AUTHORITY_HOST,
            "login.microsoftonline.com",
            "not a URL",
            "set AZURE_AUTHORITY_HOST to the tenant's cloud: https://login.microsoftonline.com (public cloud)",
        ),
        (
            AZURE_AUTHORITY_HOST,
            "https://login.microsoftonline.us/?x=1",
            "plain https://host[:port]",
            "set AZURE_AUTHORITY_HOST to https://login.microsoftonline.us, the tenant's cloud",
        ),
        (
            AZURE_FEDERATED_TOKEN_AUDIENCE,
            " api://AzureADTokenExchange",
            "whitespace",
            "set the environment variable AZURE_FEDERATED_TOKEN_AUDIENCE to \"api://AzureADTokenExchange\"",
        ),
    ] {
        let mut pairs: HashMap<&str, &str> = [
            (AZURE_CLIENT_ID, "c"),
            (AZURE_TENANT_ID, "t"),
            (AZURE_FEDERATED_TOKEN_FILE, "/tmp/x"),
        ]
        .into_iter()
        .collect();
        pairs.insert(var, value);
        let env = Env::from_pairs(pairs);
        let e = resolve(&inputs(&env, &[])).unwrap_err();
        assert_eq!(
            e.category(),
            ErrorCategory::InvalidConfiguration,
            "{var}={value:?}"
        );
        assert!(e.message().contains(needle), "{var}={value:?}: {e}");
        assert_eq!(e.problem_id(), Some(ProblemId::InvalidConfiguration));
        let got = e
            .fix()
            .unwrap_or_else(|| panic!("{var}={value:?}: no fix: {e}"));
        assert!(got.contains(fix), "{var}={value:?}: {got}");
        assert!(e.message().contains(&format!("Fix: {got}")), "{e}");
    }
}

#[test]
fn empty_options_are_invalid_with_the_command_that_prints_the_value() {
    let env = full_env();
    let mut i = inputs(&env, &[]);
    i.client_id = Some("");
    let e = resolve(&i).unwrap_err();
    assert_eq!(e.problem_id(), Some(ProblemId::InvalidConfiguration));
    assert!(e.fix().unwrap().contains("--query clientId -o tsv"), "{e}");
    let mut i = inputs(&env, &[]);
    let empty = PathBuf::new();
    i.token_file_path = Some(&empty);
    let e = resolve(&i).unwrap_err();
    assert!(
        e.fix()
            .unwrap()
            .starts_with("set AZURE_FEDERATED_TOKEN_FILE (or the option token_file_path) to the file of the pod's projected serviceAccountToken volume"),
        "{e}"
    );
}

#[test]
fn every_missing_value_is_named_with_the_command_that_prints_it() {
    let env = Env::from_pairs::<&str, &str>([]);
    let e = resolve(&inputs(&env, &[])).unwrap_err();
    assert_eq!(e.problem_id(), Some(ProblemId::NotConfigured));
    assert!(
        e.message()
            .starts_with("WorkloadIdentityCredential is not configured: no client id, no tenant id, no token file."),
        "{e}"
    );
    let fix = e.fix().unwrap();
    assert!(
        fix.starts_with("set AZURE_CLIENT_ID (or the option client_id) to ") && fix.ends_with('.'),
        "{fix}"
    );
    for needle in [
        "--query clientId -o tsv",
        "set AZURE_TENANT_ID (or the option tenant_id)",
        "`az account show --query tenantId -o tsv`",
        "set AZURE_FEDERATED_TOKEN_FILE (or the option token_file_path)",
        "azure.workload.identity/use",
    ] {
        assert!(fix.contains(needle), "{needle:?} not in {fix}");
    }
}

#[test]
fn cloud_selects_authority_and_audience() {
    let env = full_env();
    let mut i = inputs(&env, &[]);
    let cloud = CloudConfiguration::AzureGovernment;
    i.cloud = Some(&cloud);
    let c = resolve(&i).unwrap();
    assert_eq!(
        c.authority_host.value.host_str(),
        Some("login.microsoftonline.us")
    );
    assert_eq!(c.expected_audience.value, AUDIENCE_US_GOV);
    let cloud = CloudConfiguration::AzureChina;
    i.cloud = Some(&cloud);
    assert_eq!(resolve(&i).unwrap().expected_audience.value, AUDIENCE_CHINA);
    // China's partner host (thanos-io/thanos #8728) is China too.
    let env = env_with_authority("https://login.partner.microsoftonline.cn");
    let c = resolve(&inputs(&env, &[])).unwrap();
    assert_eq!(c.expected_audience.value, AUDIENCE_CHINA);
}

#[test]
fn debug_of_env_shows_names_only() {
    let env = Env::from_pairs([("AZURE_CLIENT_SECRET", "hunter2")]);
    let s = format!("{env:?}");
    assert!(
        s.contains("AZURE_CLIENT_SECRET") && !s.contains("hunter2"),
        "{s}"
    );
}

fn env_with_authority(host: &str) -> Env {
    Env::from_pairs([
        (AZURE_CLIENT_ID, "11111111-2222-3333-4444-555555555555"),
        (AZURE_TENANT_ID, "contoso.onmicrosoft.com"),
        (AZURE_FEDERATED_TOKEN_FILE, "/tmp/token"),
        (AZURE_AUTHORITY_HOST, host),
    ])
}

#[test]
fn an_authority_host_with_the_tenant_or_endpoint_in_its_path_is_refused() {
    for host in [
        "https://login.microsoftonline.com/contoso.onmicrosoft.com",
        "https://login.microsoftonline.com/CONTOSO.onmicrosoft.com/",
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
        "https://login.microsoftonline.com/organizations",
    ] {
        let e = resolve(&inputs(&env_with_authority(host), &[])).unwrap_err();
        assert_eq!(
            e.problem_id(),
            Some(ProblemId::InvalidConfiguration),
            "{host}"
        );
        assert!(
            e.message().contains(host) && e.message().contains("has the path"),
            "{e}"
        );
        assert!(
            e.fix()
                .unwrap()
                .starts_with("set AZURE_AUTHORITY_HOST to https://login.microsoftonline.com,"),
            "{e}"
        );
    }
    // A gateway's own prefix is not second-guessed.
    let c = resolve(&inputs(
        &env_with_authority("https://gw.example/entra"),
        &[],
    ))
    .unwrap();
    assert_eq!(
        c.token_endpoint().as_str(),
        "https://gw.example/entra/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
}

#[test]
fn a_multi_tenant_alias_is_not_a_tenant_id() {
    for alias in ["common", "organizations", "Consumers"] {
        let env = Env::from_pairs([
            (AZURE_CLIENT_ID, "11111111-2222-3333-4444-555555555555"),
            (AZURE_TENANT_ID, alias),
            (AZURE_FEDERATED_TOKEN_FILE, "/tmp/token"),
        ]);
        let e = resolve(&inputs(&env, &[])).unwrap_err();
        assert_eq!(
            e.problem_id(),
            Some(ProblemId::InvalidConfiguration),
            "{alias}"
        );
        assert!(
            e.message().contains(&format!(
                "{alias:?} (from the environment variable AZURE_TENANT_ID) is a multi-tenant alias"
            )),
            "{e}"
        );
        assert!(
            e.fix()
                .unwrap()
                .contains("`az account show --query tenantId -o tsv`"),
            "{e}"
        );
    }
}
