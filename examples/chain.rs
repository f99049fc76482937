//! `DefaultAzureCredential`: which source it picks, and why.
//!
//! Local (default): the embedded emulator plays Entra ID and the cluster's OIDC issuer, and a tiny
//! server on 127.0.0.1 answers like AWS's instance metadata service. Three situations are shown:
//! nothing configured on an EC2 node, a pod on EKS with workload identity, and an invalid
//! `AZURE_TOKEN_CREDENTIALS`. Nothing leaves 127.0.0.1 and no developer tool is run.
//!
//! ```sh
//! cargo run --example chain
//! ```
//!
//! Real: when `AZURE_CLIENT_ID` or `AZURE_TOKEN_CREDENTIALS` is set in the environment, the chain
//! is built from the process environment exactly as an application would (`new(None)`), and asks
//! for a token for the scope given as the first argument (default Azure Resource Manager):
//!
//! ```sh
//! AZURE_TOKEN_CREDENTIALS=dev cargo run --example chain -- https://storage.azure.com/.default
//! ```

use azure_core::credentials::TokenCredential;
use azure_core::http::Url;
use azure_identity::Executor;
use azure_identity_k8s::{
    ChainError, DefaultAzureCredential, DefaultAzureCredentialOptions, Env,
    ManagedIdentityCredentialOptions,
};
use entra_emulator::{Emulator, FederatedCredential, ServiceAccountToken};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11";
const SCOPE: &str = "https://storage.azure.com/.default";

/// The chain error's list of sources, each with why it was skipped, failed or not tried.
fn print_attempts(err: &azure_core::Error) {
    match err.downcast_ref::<ChainError>() {
        Some(chain) => {
            for line in chain.to_string().lines().filter(|l| l.starts_with("- ")) {
                println!("    {line}");
            }
        }
        None => println!("    {err}"),
    }
}

/// Answers every request like AWS IMDSv2 does without a session token: 401, `Server: EC2ws`.
async fn fake_aws_imds() -> std::io::Result<Url> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = Url::parse(&format!("http://{}", listener.local_addr()?)).expect("valid URL");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 2048];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nServer: EC2ws\r\nConnection: close\r\n\r\n")
                .await;
        }
    });
    Ok(url)
}

/// No `az`, no `azd`: the example never runs a tool on your machine in local mode.
#[derive(Debug)]
struct NoTools;

#[async_trait::async_trait]
impl Executor for NoTools {
    async fn run(
        &self,
        program: &std::ffi::OsStr,
        _: &[&std::ffi::OsStr],
    ) -> std::io::Result<std::process::Output> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{program:?} is not run by this example"),
        ))
    }
}

async fn real() -> Result<(), Box<dyn std::error::Error>> {
    let scope = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "https://management.azure.com/.default".into());
    let credential = DefaultAzureCredential::new(None)?;
    println!("sources: {}", credential.source_names().join(" → "));
    println!("because: {}", credential.selection_reason());
    match credential.get_token(&[scope.as_str()], None).await {
        Ok(token) => {
            println!(
                "picked {} (token for {scope} expires at {})",
                credential.selected_source().unwrap_or("?"),
                token.expires_on
            );
        }
        Err(e) => {
            println!("no token:");
            print_attempts(&e);
            return Err(e.into());
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("AZURE_CLIENT_ID").is_some()
        || std::env::var_os("AZURE_TOKEN_CREDENTIALS").is_some()
    {
        return real().await;
    }

    let emu = Emulator::start().await?;
    let issuer = emu.add_eks_issuer();
    emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(issuer.url(), ServiceAccountToken::default().subject()),
    );
    let dir = tempfile::tempdir()?;
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, issuer.mint(&ServiceAccountToken::default()))?;
    let imds = fake_aws_imds().await?;

    let options = |pairs: Vec<(&str, String)>| {
        let env = Env::from_pairs(pairs);
        DefaultAzureCredentialOptions {
            client_options: emu.client_options(),
            managed_identity: Some(ManagedIdentityCredentialOptions {
                imds_endpoint: imds.clone(),
                env: env.clone(),
                ..Default::default()
            }),
            developer_tools_executor: Some(Arc::new(NoTools)),
            env,
            ..Default::default()
        }
    };

    println!("\n[1] An EC2 node with nothing configured (the metadata address belongs to AWS):");
    let credential = DefaultAzureCredential::new(Some(options(Vec::new())))?;
    let started = std::time::Instant::now();
    let err = credential
        .get_token(&[SCOPE], None)
        .await
        .expect_err("nothing is configured");
    println!(
        "    no source available ({} ms, IMDS probe included):",
        started.elapsed().as_millis()
    );
    print_attempts(&err);

    println!(
        "\n[2] A pod on EKS with the workload identity webhook's variables (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE):"
    );
    let credential = DefaultAzureCredential::new(Some(options(vec![
        ("AZURE_CLIENT_ID", CLIENT.into()),
        ("AZURE_TENANT_ID", TENANT.into()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST", emu.authority_host()),
    ])))?;
    let token = credential.get_token(&[SCOPE], None).await?;
    println!(
        "    picked {} (token expires at {}); the chain logs why each earlier source was skipped (DEBUG, span credential_attempt).",
        credential.selected_source().unwrap_or("?"),
        token.expires_on
    );
    println!("    later calls go straight to the selected source.");

    println!("\n[3] AZURE_TOKEN_CREDENTIALS=production (a typo) fails at construction:");
    let err = DefaultAzureCredential::new(Some(options(vec![(
        "AZURE_TOKEN_CREDENTIALS",
        "production".into(),
    )])))
    .expect_err("invalid value");
    println!("    {err}");
    Ok(())
}
