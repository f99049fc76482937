//! The `azure-identity-k8s` binary, spawned with a clean environment against the emulator. TLS
//! trust comes from `SSL_CERT_FILE` (the emulator's CA), as it would for a private CA in a pod.

use entra_emulator::{Emulator, FederatedCredential, Issuer, ServiceAccountToken};
use std::path::PathBuf;
use std::process::Output;

const BIN: &str = env!("CARGO_BIN_EXE_azure-identity-k8s");
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11";
const STORAGE: &str = "https://storage.azure.com/.default";
const VAULT: &str = "https://vault.azure.net/.default";

/// An emulator with one tenant, one application and one EKS-shaped issuer federated with
/// `system:serviceaccount:default:workload`, and that service account's token in a file.
struct Fixture {
    emu: Emulator,
    issuer: Issuer,
    dir: tempfile::TempDir,
    token_path: PathBuf,
}

impl Fixture {
    async fn new() -> Self {
        let emu = Emulator::start().await.expect("emulator starts");
        let issuer = emu.add_eks_issuer();
        emu.add_tenant(TENANT);
        emu.add_application(TENANT, CLIENT);
        let subject = ServiceAccountToken::default().subject();
        emu.add_federated_credential(
            TENANT,
            CLIENT,
            FederatedCredential::new(issuer.url(), subject),
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let token_path = dir.path().join("azure-identity-token");
        let fx = Self {
            emu,
            issuer,
            dir,
            token_path,
        };
        fx.write_token(&ServiceAccountToken::default());
        fx
    }

    /// Mint a token for `sa` and write it to `token_path`.
    fn write_token(&self, sa: &ServiceAccountToken) {
        let t = self.issuer.mint(sa);
        std::fs::write(&self.token_path, format!("{t}\n")).expect("write token");
    }
}

/// The claims of a JWT (no verification).
fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("3 parts");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("b64");
    serde_json::from_slice(&json).expect("json")
}

struct Cli {
    fx: Fixture,
    ca: std::path::PathBuf,
}

impl Cli {
    async fn new() -> Self {
        let fx = Fixture::new().await;
        let ca = fx.dir.path().join("ca.pem");
        fx.emu.write_ca_pem(&ca).unwrap();
        Self { fx, ca }
    }

    /// The pod's environment: the three variables, the emulator as authority, its CA as roots.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AZURE_CLIENT_ID".into(), CLIENT.into()),
            ("AZURE_TENANT_ID".into(), TENANT.into()),
            (
                "AZURE_FEDERATED_TOKEN_FILE".into(),
                self.fx.token_path.display().to_string(),
            ),
            ("AZURE_AUTHORITY_HOST".into(), self.fx.emu.authority_host()),
            ("SSL_CERT_FILE".into(), self.ca.display().to_string()),
        ]
    }

    async fn run_with(&self, args: &[&str], env: Vec<(String, String)>) -> Output {
        tokio::process::Command::new(BIN)
            .args(args)
            .env_clear()
            .envs(env)
            .output()
            .await
            .expect("the binary runs")
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, self.env()).await
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn doctor_passes_in_a_healthy_pod_and_fails_with_exit_1_otherwise() {
    let cli = Cli::new().await;
    let out = cli.run(&["doctor"]).await;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("[ ok ] exchange") && text.contains("doctor: OK"),
        "{text}"
    );
    assert!(text.contains("(from env AZURE_CLIENT_ID)"), "{text}");

    cli.fx.write_token(&ServiceAccountToken::new("prod", "api"));
    let out = cli.run(&["doctor", "--json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let failed: Vec<&serde_json::Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{v:#}");
    assert_eq!(failed[0]["id"], "exchange");
    assert_eq!(failed[0]["aadsts"][0], 70021);
    assert!(
        failed[0]["details"]["matching credential"]
            .as_str()
            .unwrap()
            .contains("system:serviceaccount:prod:api"),
        "{v:#}"
    );
    assert_eq!(failed[0]["problem_id"], "aadsts70021", "{v:#}");
}

#[tokio::test]
async fn ssl_cert_file_is_what_makes_the_private_ca_trusted() {
    let cli = Cli::new().await;
    let env: Vec<(String, String)> = cli
        .env()
        .into_iter()
        .filter(|(k, _)| k != "SSL_CERT_FILE")
        .collect();
    let out = cli
        .run_with(&["doctor", "--json", "--no-exchange"], env)
        .await;
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "fail")
        .unwrap();
    assert_eq!(first["id"], "discovery", "{v:#}");
}

#[tokio::test]
async fn token_prints_json_or_raw() {
    let cli = Cli::new().await;
    let out = cli.run(&["token", "--scope", VAULT]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["scope"], VAULT);
    assert_eq!(v["tokenType"], "Bearer");
    assert_eq!(v["tenant"], TENANT);
    assert!(v["expires_on"].as_i64().unwrap() > time::OffsetDateTime::now_utc().unix_timestamp());
    time::OffsetDateTime::parse(
        v["expiresOn"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        claims(v["accessToken"].as_str().unwrap())["aud"],
        "https://vault.azure.net"
    );

    let out = cli
        .run(&["token", "--scope", STORAGE, "--output", "raw"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let raw = stdout(&out);
    assert!(!raw.ends_with('\n'));
    assert_eq!(claims(&raw)["aud"], "https://storage.azure.com");
}

#[tokio::test]
async fn token_failures_go_to_stderr_with_exit_1() {
    let cli = Cli::new().await;
    let out = cli
        .run(&["token", "--scope", "https://storage.azure.com"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("https://storage.azure.com/.default"),
        "{}",
        stderr(&out)
    );

    let out = cli
        .run(&[
            "token",
            "--scope",
            STORAGE,
            "--client-id",
            "11111111-1111-1111-1111-111111111111",
        ])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("AADSTS700016") && stderr(&out).contains("azure-identity-k8s doctor"),
        "{}",
        stderr(&out)
    );
}

/// A delegated Graph permission as the scope: the suggestion is the resource's `/.default`, and
/// the doctor command in the hint is shell-quoted.
#[tokio::test]
async fn a_permission_scope_suggests_the_resource_default_and_a_quoted_command() {
    let cli = Cli::new().await;
    for scope in [
        "https://graph.microsoft.com/User.Read",
        "User.Read",
        "https://graph.microsoft.com/Mail.Send",
    ] {
        let out = cli.run(&["token", "--scope", scope]).await;
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("https://graph.microsoft.com/.default")
                && !err.contains("User.Read/.default")
                && !err.contains("Mail.Send/.default"),
            "{err}"
        );
        // The hint runs doctor with the corrected scope, not the one that just failed.
        assert!(
            err.contains("doctor --scope https://graph.microsoft.com/.default`"),
            "{err}"
        );
    }
    let out = cli.run(&["token", "--scope", "a scope; rm -rf ~"]).await;
    assert!(
        stderr(&out).contains("doctor --scope 'a scope; rm -rf ~'"),
        "{}",
        stderr(&out)
    );
}

/// RUST_LOG reaches the library's logs (on stderr); a variable that is not Unicode does not
/// crash the CLI when it overlays --authority-host on the environment.
#[cfg(unix)]
#[tokio::test]
async fn rust_log_is_honoured_and_non_unicode_variables_are_tolerated() {
    use std::os::unix::ffi::OsStrExt as _;
    let cli = Cli::new().await;
    let authority = cli.fx.emu.authority_host();
    let out = tokio::process::Command::new(BIN)
        .args(["token", "--scope", STORAGE, "--authority-host", &authority])
        .env_clear()
        .envs(cli.env())
        .env("RUST_LOG", "azure_identity_k8s=debug")
        .env(
            "NOT_UNICODE",
            std::ffi::OsStr::from_bytes(&[0x66, 0x6f, 0x80, 0x6f]),
        )
        .output()
        .await
        .expect("the binary runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("DEBUG") && err.contains("azure_identity_k8s"),
        "no debug log on stderr:\n{err}"
    );
    // stderr is a pipe here: no ANSI colour codes in it.
    assert!(
        !err.contains('\x1b'),
        "ANSI escape codes in a pipe:\n{err:?}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON on stdout");
    assert!(!err.contains(v["accessToken"].as_str().unwrap()));
}

#[tokio::test]
async fn setup_from_the_live_token_prints_valid_yaml_json_and_hcl() {
    let cli = Cli::new().await;
    cli.fx
        .write_token(&ServiceAccountToken::new("payments", "billing-api"));
    let out = cli
        .run(&[
            "setup",
            "--identity-name",
            "billing",
            "--resource-group",
            "rg-prod",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let issuer = cli.fx.issuer.url();
    assert!(
        text.contains(&format!(
            "az identity federated-credential create --name k8s-payments-billing-api --identity-name billing --resource-group rg-prod --issuer {issuer} --subject system:serviceaccount:payments:billing-api --audiences api://AzureADTokenExchange"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "az ad app federated-credential create --id {CLIENT} --parameters '{{"
        )),
        "{text}"
    );

    let out = cli.run(&["setup", "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["federated_credential"]["issuer"], issuer);
    assert_eq!(
        plan["federated_credential"]["subject"],
        "system:serviceaccount:payments:billing-api"
    );
    assert_eq!(
        plan["app_parameters"]["audiences"],
        serde_json::json!(["api://AzureADTokenExchange"])
    );

    // The YAML parses as two Kubernetes objects with the right values.
    let docs: Vec<serde_json::Value> =
        serde_yaml_ng::Deserializer::from_str(plan["kubernetes_yaml"].as_str().unwrap())
            .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
            .collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["kind"], "ServiceAccount");
    assert_eq!(docs[0]["metadata"]["namespace"], "payments");
    assert_eq!(
        docs[0]["metadata"]["annotations"]["azure.workload.identity/client-id"],
        CLIENT
    );
    let pod = &docs[1]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "billing-api");
    let proj = &pod["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(proj["audience"], "api://AzureADTokenExchange");
    assert_eq!(proj["expirationSeconds"], 3600);
    let env: std::collections::HashMap<String, String> = pod["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(env["AZURE_CLIENT_ID"], CLIENT);
    assert_eq!(env["AZURE_TENANT_ID"], TENANT);
    let mount = pod["containers"][0]["volumeMounts"][0]["mountPath"]
        .as_str()
        .unwrap();
    assert_eq!(
        env["AZURE_FEDERATED_TOKEN_FILE"],
        format!("{mount}/{}", proj["path"].as_str().unwrap())
    );
}

/// A token with a custom audience and no audience configured is sent as it is: `setup` and
/// `doctor` both name that audience for the federated credential; a foreign (IRSA) audience is
/// never sent, so both keep the default.
#[tokio::test]
async fn setup_and_doctor_agree_on_the_audience_of_a_custom_audience_token() {
    let cli = Cli::new().await;
    for (aud, want) in [
        ("api://my-custom-audience", "api://my-custom-audience"),
        ("sts.amazonaws.com", "api://AzureADTokenExchange"),
    ] {
        cli.fx.write_token(&ServiceAccountToken {
            audiences: vec![aud.into()],
            ..Default::default()
        });
        let out = cli.run(&["setup", "--json"]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            plan["federated_credential"]["audiences"],
            serde_json::json!([want]),
            "{aud}"
        );
        let out = cli.run(&["doctor", "--json"]).await;
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["matching_federated_credential"]["audience"], want,
            "{aud}: {report:#}"
        );
    }
}

#[tokio::test]
async fn setup_from_flags_needs_no_token_and_checks_its_input() {
    let cli = Cli::new().await;
    let issuer = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
    let out = cli
        .run_with(
            &[
                "setup",
                "--issuer",
                issuer,
                "--namespace",
                "default",
                "--service-account",
                "workload",
                "--client-id",
                CLIENT,
            ],
            Vec::new(),
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("issuer         = \"{issuer}\"")),
        "{text}"
    );
    assert!(
        text.contains("resource \"azuread_application_federated_identity_credential\""),
        "{text}"
    );
    assert!(
        text.contains("resource \"azurerm_federated_identity_credential\""),
        "{text}"
    );

    let out = cli
        .run_with(
            &[
                "setup",
                "--issuer",
                "http://insecure",
                "--namespace",
                "a",
                "--service-account",
                "b",
            ],
            Vec::new(),
        )
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("https://"), "{}", stderr(&out));
    let out = cli
        .run_with(&["setup", "--issuer", issuer], Vec::new())
        .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap requires --namespace and --service-account"
    );
}

/// A configuration variable set to bytes that are not UTF-8 is named as such (by doctor and by
/// `token`), instead of "not configured" or, for the authority host, a silent fall-back to the
/// public cloud.
#[cfg(unix)]
#[tokio::test]
async fn a_variable_that_is_not_utf8_is_named_not_taken_as_unset() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let cli = Cli::new().await;
    for (var, bytes) in [
        ("AZURE_CLIENT_ID", b"\xff\xfe".to_vec()),
        ("AZURE_AUTHORITY_HOST", b"https://\xff".to_vec()),
    ] {
        let mut env: Vec<(OsString, OsString)> = cli
            .env()
            .into_iter()
            .filter(|(k, _)| k != var)
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        env.push((var.into(), OsString::from_vec(bytes)));
        for args in [
            &["doctor", "--no-exchange"][..],
            &["token", "--scope", STORAGE][..],
        ] {
            let out = tokio::process::Command::new(BIN)
                .args(args)
                .env_clear()
                .envs(env.clone())
                .output()
                .await
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{var} {args:?}");
            let text = format!("{}{}", stdout(&out), stderr(&out));
            assert!(
                text.contains(&format!(
                    "the environment variable {var} is set, but its value is not valid UTF-8"
                )) && text.contains("#invalid-configuration"),
                "{var} {args:?}: {text}"
            );
            assert!(!text.contains("not configured"), "{var}: {text}");
        }
    }
}

/// `doctor | head`, `token | jq` that exits early: a reader that went away ends the output, not
/// in a panic ("failed printing to stdout: Broken pipe"), and the exit code is the command's.
#[tokio::test]
async fn a_closed_stdout_pipe_is_not_a_panic() {
    let cli = Cli::new().await;
    for args in [
        &["doctor"][..],
        &["doctor", "--json"][..],
        &["token", "--scope", STORAGE, "--output", "raw"][..],
        &["token", "--scope", STORAGE][..],
    ] {
        // The read end is closed before the binary starts: its first write fails with EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        // spawn, not output(): output() would replace stdout with a pipe of its own.
        let out = tokio::process::Command::new(BIN)
            .args(args)
            .env_clear()
            .envs(cli.env())
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
            .wait_with_output()
            .await
            .unwrap();
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
}

/// `AZURE_FEDERATED_TOKEN_FILE` naming a file whose name is not UTF-8 (legal on Linux) is read:
/// `token` prints a token. With `--authority-host` (overlaid on the environment by the CLI), a
/// client id that is not UTF-8 is still named, not taken as unset.
#[cfg(unix)]
#[tokio::test]
async fn a_token_file_path_that_is_not_utf8_is_read_and_the_authority_flag_keeps_the_check() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let cli = Cli::new().await;
    let path = cli
        .fx
        .dir
        .path()
        .join(OsString::from_vec(b"token-\xff".to_vec()));
    std::fs::copy(&cli.fx.token_path, &path).unwrap();
    let out = tokio::process::Command::new(BIN)
        .args(["token", "--scope", STORAGE])
        .env_clear()
        .envs(cli.env())
        .env("AZURE_FEDERATED_TOKEN_FILE", &path)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        claims(v["accessToken"].as_str().unwrap())["aud"],
        "https://storage.azure.com"
    );
    assert_eq!(cli.fx.emu.request_count(entra_emulator::Endpoint::Token), 1);

    let authority = cli.fx.emu.authority_host();
    let out = tokio::process::Command::new(BIN)
        .args(["token", "--scope", STORAGE, "--authority-host", &authority])
        .env_clear()
        .envs(cli.env())
        .env("AZURE_CLIENT_ID", OsString::from_vec(b"\xff\xfe".to_vec()))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains(
            "the environment variable AZURE_CLIENT_ID is set, but its value is not valid UTF-8 (\"\u{fffd}\u{fffd}\""
        ),
        "{text}"
    );
    assert_eq!(cli.fx.emu.request_count(entra_emulator::Endpoint::Token), 1);
}

/// Issue 20: `setup` refuses a foreign audience (exit 1) unless `--allow-foreign-audience`, which
/// prints it with the risk; `token` reports a failure once (no WARN promising a retry).
#[tokio::test]
async fn setup_refuses_a_foreign_audience_and_token_reports_a_failure_once() {
    let cli = Cli::new().await;
    let issuer = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
    let setup = [
        "setup",
        "--issuer",
        issuer,
        "--namespace",
        "billing",
        "--service-account",
        "billing-api",
    ];
    for audience in ["sts.amazonaws.com", issuer] {
        let out = cli
            .run_with(
                &[&setup[..], &["--audience", audience]].concat(),
                Vec::new(),
            )
            .await;
        assert_eq!(out.status.code(), Some(1), "{audience}: {}", stdout(&out));
        assert!(out.stdout.is_empty());
        assert!(
            stderr(&out).contains("--allow-foreign-audience"),
            "{}",
            stderr(&out)
        );
    }
    let allowed = [
        &setup[..],
        &[
            "--audience",
            "sts.amazonaws.com",
            "--allow-foreign-audience",
        ],
    ]
    .concat();
    let out = cli.run_with(&allowed, Vec::new()).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("# Note: RISK"), "{}", stdout(&out));

    let out = cli
        .run(&[
            "token",
            "--scope",
            STORAGE,
            "--client-id",
            "11111111-1111-1111-1111-111111111111",
        ])
        .await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let errors = err.lines().filter(|l| l.starts_with("error: ")).count();
    assert!(errors == 1 && err.contains("AADSTS700016"), "{err}");
    assert!(
        !err.contains("retry_in_secs") && !err.contains("WARN"),
        "{err}"
    );
}
