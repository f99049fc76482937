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
use azure_identity_k8s::{Env, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use time::format_description::well_known::Rfc3339;

/// Entra ID workload identity for Kubernetes on AWS: diagnose, get a token, print the setup.
///
/// Configuration is read like the library reads it: AZURE_CLIENT_ID, AZURE_TENANT_ID,
/// AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST, AZURE_FEDERATED_TOKEN_AUDIENCE,
/// AZURE_FEDERATED_TOKEN_ALLOW_FOREIGN_AUDIENCE; the flags below override them. TLS roots: the system's, or SSL_CERT_FILE / SSL_CERT_DIR when set.
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
        self.aws.then(Default::default)
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
    /// Print a foreign audience (sts.amazonaws.com, the issuer's own, ...) with its risk instead
    /// of refusing it.
    #[arg(long)]
    allow_foreign_audience: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

/// Warnings, except the token caches' "refresh failed" records: a one-shot command never retries
/// and prints the failure itself.
const DEFAULT_LOG: &str =
    "warn,azure_identity_k8s::entra=error,azure_identity_k8s::assertion::aws::source=error";

/// Logs to stderr, filtered by RUST_LOG (e.g. `RUST_LOG=azure_identity_k8s=debug`), else
/// [`DEFAULT_LOG`]. When RUST_LOG asks for TRACE, the AWS SDK's request dumps, which carry
/// session tokens, stay at DEBUG (docs/aws-outbound.md, "Logging").
fn init_tracing() {
    let mut directives = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_LOG.into());
    if directives.to_ascii_lowercase().contains("trace") {
        directives.push_str(",aws_sigv4=debug,aws_smithy_runtime::client::orchestrator=debug");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
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
            fail(format!("cannot write the output to stdout: {e}"));
            false
        }
    }
}

/// What a command prints on stdout and whether it succeeded, or the exit code of a failure it
/// has already reported on stderr.
type Outcome = Result<(String, bool), ExitCode>;

/// Report `error` on stderr; exit code 1.
fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::FAILURE
}

fn json(value: &impl serde::Serialize) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value).unwrap_or_default()
    )
}

async fn doctor(args: DoctorArgs) -> Outcome {
    let report = doctor::run(DoctorOptions {
        credential: args.credential.options(),
        scope: args.scope,
        skip_exchange: args.no_exchange,
        #[cfg(feature = "aws")]
        aws: args.credential.aws_options(),
    })
    .await;
    let text = if args.json {
        json(&report)
    } else {
        report.to_string()
    };
    Ok((text, report.ok))
}

async fn token(args: TokenArgs) -> Outcome {
    let options = args.credential.options();
    // The tenant the credential resolved, by its rule: the option, else AZURE_TENANT_ID.
    let tenant = (options.tenant_id.clone()).or_else(|| options.env.var(AZURE_TENANT_ID));
    #[cfg(feature = "aws")]
    let credential = match args.credential.aws_options() {
        Some(aws) => WorkloadIdentityCredential::from_aws(Some(options), aws),
        None => WorkloadIdentityCredential::new(Some(options)),
    };
    #[cfg(not(feature = "aws"))]
    let credential = WorkloadIdentityCredential::new(Some(options));
    // The credential's error converts with its message: printed as it is.
    let credential = credential.map_err(fail)?;
    let token = credential
        .get_token(&[args.scope.as_str()], None)
        .await
        .map_err(|e| {
            // The corrected scope when one can be told: doctor with the invalid one fails at `scope`.
            let scope = doctor::suggested_scope(&args.scope).unwrap_or(args.scope.clone());
            let code = fail(e);
            eprintln!(
                "hint: `azure-identity-k8s doctor --scope {}` checks every step; RUST_LOG=azure_identity_k8s=debug shows each request",
                shell_quote(&scope)
            );
            code
        })?;
    let text = match args.output {
        Output::Raw => token.token.secret().to_owned(),
        Output::Json => json(&serde_json::json!({
            "accessToken": token.token.secret(),
            "expiresOn": token.expires_on.format(&Rfc3339).unwrap_or_default(),
            "expires_on": token.expires_on.unix_timestamp(),
            "scope": args.scope,
            "tenant": tenant,
            "tokenType": "Bearer",
        })),
    };
    Ok((text, true))
}

/// The token file `setup` reads without `--issuer`: the flag, else AZURE_FEDERATED_TOKEN_FILE,
/// else the first of the webhook's paths that exists.
fn setup_token_file(flag: Option<&PathBuf>) -> Result<PathBuf, ExitCode> {
    let var = std::env::var_os(AZURE_FEDERATED_TOKEN_FILE).filter(|p| !p.is_empty());
    let webhook = [WEBHOOK_TOKEN_PATH, WEBHOOK_TOKEN_PATH_PRE_1_6].map(PathBuf::from);
    let found = flag.cloned().or(var.map(PathBuf::from));
    found.or_else(|| webhook.into_iter().find(|p| p.exists())).ok_or_else(|| {
        fail(format!(
            "no token file to read (tried {AZURE_FEDERATED_TOKEN_FILE}, {WEBHOOK_TOKEN_PATH}, {WEBHOOK_TOKEN_PATH_PRE_1_6}). \
             Outside a pod pass --issuer, --namespace and --service-account."
        ));
        ExitCode::from(2)
    })
}

fn setup(args: SetupArgs) -> Outcome {
    let env = Env::process();
    let from_token = args.issuer.is_none();
    let base = match args.issuer {
        Some(issuer) => SetupInput {
            issuer,
            ..Default::default()
        },
        None => SetupInput::from_token_file(&setup_token_file(args.token_file.as_ref())?)
            .map_err(fail)?,
    };
    // Flags win over the token's values.
    let input = SetupInput {
        namespace: args.namespace.unwrap_or(base.namespace),
        service_account: args.service_account.unwrap_or(base.service_account),
        audience: args.audience.unwrap_or(base.audience),
        client_id: args.client_id.or_else(|| env.var(AZURE_CLIENT_ID)),
        tenant_id: args.tenant_id.or_else(|| env.var(AZURE_TENANT_ID)),
        identity_name: args.identity_name,
        resource_group: args.resource_group,
        app_object_id: args.app_object_id,
        credential_name: args.name,
        authority_host: env.var(AZURE_AUTHORITY_HOST),
        allow_foreign_audience: args.allow_foreign_audience,
        issuer: base.issuer,
    };
    let out = setup::plan(&input).map_err(fail)?;
    let text = if args.json {
        json(&out)
    } else if from_token {
        format!("# From the service-account token in this pod.\n{out}")
    } else {
        out.to_string()
    };
    Ok((text, true))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let outcome = match cli.command {
        Command::Doctor(a) => doctor(a).await,
        Command::Token(a) => token(a).await,
        Command::Setup(a) => setup(a),
    };
    match outcome {
        Ok((text, ok)) if emit(&text) && ok => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(code) => code,
    }
}
