//! `azure-identity-k8s`: check, use and set up Entra ID workload identity from a Kubernetes pod.
//!
//! A thin shell over the library (package `azure_identity_k8s`, feature `doctor`): `doctor` is
//! [`azure_identity_k8s::doctor`], `setup` is [`azure_identity_k8s::setup`], `token` is
//! [`WorkloadIdentityCredential`]. Feature `aws` adds `--aws` (the library's feature `aws`).

use azure_core::credentials::TokenCredential as _;
use azure_identity_k8s::config::{
    AZURE_AUTHORITY_HOST, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID,
    WEBHOOK_TOKEN_PATH, WEBHOOK_TOKEN_PATH_PRE_1_6,
};
use azure_identity_k8s::doctor::{self, DoctorOptions};
use azure_identity_k8s::setup::{self, SetupInput, shell_quote};
use azure_identity_k8s::{
    CredentialError, Env, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Entra ID workload identity for Kubernetes on AWS: diagnose, get a token, print the setup.
///
/// Configuration is read like the library reads it: AZURE_CLIENT_ID, AZURE_TENANT_ID,
/// AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST, AZURE_FEDERATED_TOKEN_AUDIENCE; the flags
/// below override them. TLS roots: the system's, or SSL_CERT_FILE / SSL_CERT_DIR when set.
#[derive(Debug, Parser)]
#[command(name = "azure-identity-k8s", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check every step from the token file to Entra ID; print a checklist with fixes. Exits 1 on failure.
    Doctor(DoctorArgs),
    /// Acquire an access token and print it (like `az account get-access-token`).
    Token(TokenArgs),
    /// Print what to create: federated credential (az, Terraform), ServiceAccount and Deployment.
    Setup(SetupArgs),
}

/// Overrides of the credential's configuration.
#[derive(Debug, Args)]
struct CredentialArgs {
    /// Client id of the app registration or user-assigned managed identity [env: AZURE_CLIENT_ID].
    #[arg(long)]
    client_id: Option<String>,
    /// Tenant id [env: AZURE_TENANT_ID].
    #[arg(long)]
    tenant_id: Option<String>,
    /// The projected service-account token [env: AZURE_FEDERATED_TOKEN_FILE].
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Entra authority, e.g. https://login.microsoftonline.us [env: AZURE_AUTHORITY_HOST].
    #[arg(long)]
    authority_host: Option<String>,
    /// The audience the token must carry [env: AZURE_FEDERATED_TOKEN_AUDIENCE].
    #[arg(long)]
    audience: Option<String>,
    /// Use AWS IAM outbound identity federation instead of a token file: the assertion is a JWT
    /// from AWS STS GetWebIdentityToken. AWS credentials, region and STS endpoint come from the
    /// usual variables and chain (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_ENDPOINT_URL_STS, the workload's role).
    #[cfg(feature = "aws")]
    #[arg(long, conflicts_with = "token_file")]
    aws: bool,
}

impl CredentialArgs {
    /// The AWS source's options when `--aws` is given: everything from the environment.
    #[cfg(feature = "aws")]
    fn aws_options(&self) -> Option<azure_identity_k8s::assertion::AwsWebIdentitySourceOptions> {
        self.aws.then(
            || azure_identity_k8s::assertion::AwsWebIdentitySourceOptions {
                env: Env::process(),
                ..Default::default()
            },
        )
    }

    fn options(&self) -> WorkloadIdentityCredentialOptions {
        let env = match &self.authority_host {
            // The library reads the authority from its environment: overlay the flag on it.
            // vars_os: values are kept as they are (`vars` would panic on one that is not
            // Unicode), so the library names such a variable as it does in the process env.
            Some(a) => Env::from_os_pairs(
                std::env::vars_os()
                    .filter(|(k, _)| k != AZURE_AUTHORITY_HOST)
                    .chain([(AZURE_AUTHORITY_HOST.into(), a.into())]),
            ),
            None => Env::process(),
        };
        WorkloadIdentityCredentialOptions {
            client_id: self.client_id.clone(),
            tenant_id: self.tenant_id.clone(),
            token_file_path: self.token_file.clone(),
            expected_audience: self.audience.clone(),
            env,
            ..Default::default()
        }
    }
}

#[derive(Debug, Args)]
struct DoctorArgs {
    /// Scope of the test exchange.
    #[arg(long, default_value = doctor::DEFAULT_SCOPE)]
    scope: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Run the local and issuer checks only; send nothing to Entra ID.
    #[arg(long)]
    no_exchange: bool,
    #[command(flatten)]
    credential: CredentialArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    /// `{"accessToken", "expiresOn", "expires_on", "scope", "tenant", "tokenType"}`.
    Json,
    /// The access token alone, with no newline.
    Raw,
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The scope, `<resource>/.default`, e.g. https://storage.azure.com/.default.
    #[arg(long)]
    scope: String,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Json)]
    output: Output,
    #[command(flatten)]
    credential: CredentialArgs,
}

#[derive(Debug, Args)]
struct SetupArgs {
    /// The cluster's OIDC issuer (EKS: `aws eks describe-cluster --name <cluster> --query cluster.identity.oidc.issuer --output text`).
    /// Without it, issuer, namespace and service account are read from the token file.
    #[arg(long, requires_all = ["namespace", "service_account"])]
    issuer: Option<String>,
    /// The pod's namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// The pod's service account.
    #[arg(long)]
    service_account: Option<String>,
    /// Token and credential audience [default: api://AzureADTokenExchange, or the token's].
    #[arg(long)]
    audience: Option<String>,
    /// Client id of the app registration or managed identity [env: AZURE_CLIENT_ID].
    #[arg(long)]
    client_id: Option<String>,
    /// Tenant id [env: AZURE_TENANT_ID].
    #[arg(long)]
    tenant_id: Option<String>,
    /// Name of the user-assigned managed identity.
    #[arg(long)]
    identity_name: Option<String>,
    /// Resource group of the managed identity.
    #[arg(long)]
    resource_group: Option<String>,
    /// Object id of the app registration.
    #[arg(long)]
    app_object_id: Option<String>,
    /// Name of the federated credential [default: k8s-<namespace>-<service account>].
    #[arg(long)]
    name: Option<String>,
    /// The token to read issuer, namespace and service account from [env: AZURE_FEDERATED_TOKEN_FILE].
    #[arg(long, conflicts_with = "issuer")]
    token_file: Option<PathBuf>,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

/// Logs to stderr, filtered by RUST_LOG (e.g. `RUST_LOG=azure_identity_k8s=debug`); warnings
/// only when it is unset.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: not in pipes, files or log collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Write `text` to stdout. A reader that went away (`| head`, a `| jq` that exits early) drops
/// the rest of the output instead of a panic ("failed printing to stdout: Broken pipe"); any
/// other write error (a full disk behind `>`) is reported and fails the command (`false`).
fn emit(text: &str) -> bool {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => true,
        Err(e) => {
            eprintln!("error: cannot write the output to stdout: {e}");
            false
        }
    }
}

fn print_error(e: &azure_core::Error) {
    match e.downcast_ref::<CredentialError>() {
        Some(c) => eprintln!("error: {}", c.message()),
        None => eprintln!("error: {e}"),
    }
}

async fn doctor(args: DoctorArgs) -> ExitCode {
    let report = doctor::run(DoctorOptions {
        credential: args.credential.options(),
        scope: args.scope,
        skip_exchange: args.no_exchange,
        #[cfg(feature = "aws")]
        aws: args.credential.aws_options(),
    })
    .await;
    let written = if args.json {
        emit(&format!("{}\n", report.to_json()))
    } else {
        emit(&report.to_string())
    };
    if report.ok && written {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn token(args: TokenArgs) -> ExitCode {
    let options = args.credential.options();
    // The tenant the credential resolved, by its rule: the option, else AZURE_TENANT_ID.
    let tenant = options
        .tenant_id
        .clone()
        .or_else(|| options.env.var(AZURE_TENANT_ID));
    let options = Some(options);
    #[cfg(feature = "aws")]
    let credential = match args.credential.aws_options() {
        Some(aws) => WorkloadIdentityCredential::from_aws(options, aws),
        None => WorkloadIdentityCredential::new(options),
    };
    #[cfg(not(feature = "aws"))]
    let credential = WorkloadIdentityCredential::new(options);
    let credential = match credential {
        Ok(c) => c,
        Err(e) => {
            print_error(&e);
            return ExitCode::FAILURE;
        }
    };
    let token = match credential.get_token(&[args.scope.as_str()], None).await {
        Ok(t) => t,
        Err(e) => {
            print_error(&e);
            // The corrected scope when one can be told: doctor with the invalid one fails at `scope`.
            let scope = doctor::suggested_scope(&args.scope).unwrap_or(args.scope.clone());
            eprintln!(
                "hint: `azure-identity-k8s doctor --scope {}` checks every step; RUST_LOG=azure_identity_k8s=debug shows each request",
                shell_quote(&scope)
            );
            return ExitCode::FAILURE;
        }
    };
    match args.output {
        Output::Raw => {
            if !emit(token.token.secret()) {
                return ExitCode::FAILURE;
            }
        }
        Output::Json => {
            let expires = token
                .expires_on
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let out = serde_json::json!({
                "accessToken": token.token.secret(),
                "expiresOn": expires,
                "expires_on": token.expires_on.unix_timestamp(),
                "scope": args.scope,
                "tenant": tenant,
                "tokenType": "Bearer",
            });
            if !emit(&format!(
                "{}\n",
                serde_json::to_string_pretty(&out).unwrap_or_default()
            )) {
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn setup(args: SetupArgs) -> ExitCode {
    let env = Env::process();
    let from_token = args.issuer.is_none();
    let base = match &args.issuer {
        Some(issuer) => SetupInput {
            issuer: issuer.clone(),
            namespace: args.namespace.clone().unwrap_or_default(),
            service_account: args.service_account.clone().unwrap_or_default(),
            ..Default::default()
        },
        None => {
            let path = args
                .token_file
                .clone()
                .or_else(|| {
                    std::env::var_os(AZURE_FEDERATED_TOKEN_FILE)
                        .filter(|p| !p.is_empty())
                        .map(PathBuf::from)
                })
                .or_else(|| {
                    [WEBHOOK_TOKEN_PATH, WEBHOOK_TOKEN_PATH_PRE_1_6]
                        .into_iter()
                        .map(PathBuf::from)
                        .find(|p| p.exists())
                });
            let Some(path) = path else {
                eprintln!(
                    "error: no token file to read (tried {AZURE_FEDERATED_TOKEN_FILE}, {WEBHOOK_TOKEN_PATH}, {WEBHOOK_TOKEN_PATH_PRE_1_6}). \
                     Outside a pod pass --issuer, --namespace and --service-account."
                );
                return ExitCode::from(2);
            };
            match SetupInput::from_token_file(&path) {
                Ok(mut i) => {
                    // Flags win over the token's values.
                    if let Some(ns) = &args.namespace {
                        i.namespace = ns.clone();
                    }
                    if let Some(sa) = &args.service_account {
                        i.service_account = sa.clone();
                    }
                    i
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let input = SetupInput {
        audience: args.audience.clone().unwrap_or(base.audience.clone()),
        client_id: args.client_id.clone().or_else(|| env.var(AZURE_CLIENT_ID)),
        tenant_id: args.tenant_id.clone().or_else(|| env.var(AZURE_TENANT_ID)),
        identity_name: args.identity_name.clone(),
        resource_group: args.resource_group.clone(),
        app_object_id: args.app_object_id.clone(),
        credential_name: args.name.clone(),
        ..base
    };
    match setup::plan(&input) {
        Ok(out) => {
            let text = if args.json {
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&out).unwrap_or_default()
                )
            } else if from_token {
                format!("# From the service-account token in this pod.\n{out}")
            } else {
                out.to_string()
            };
            if emit(&text) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Doctor(a) => doctor(a).await,
        Command::Token(a) => token(a).await,
        Command::Setup(a) => setup(a),
    }
}
