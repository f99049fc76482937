//! `entra_emulator`: runs the emulator with a demo tenant, application, federated credential
//! and projected token, and prints the environment that points an Azure SDK at it.

use entra_emulator::{
    Emulator, EmulatorOptions, FederatedCredential, ProjectedVolume, ServiceAccountToken,
};
use std::path::PathBuf;
use std::time::Duration;

const USAGE: &str = "\
usage: entra_emulator [--port N] [--dir DIR] [--tenant-id ID] [--client-id ID]
                      [--namespace NS] [--service-account NAME] [--token-lifetime SECONDS]

Serves a local Entra ID token endpoint and an EKS-shaped OIDC issuer over HTTPS on 127.0.0.1,
writes a projected service-account token into DIR (kept fresh), the CA certificate next to it,
and prints `export` lines for AZURE_AUTHORITY_HOST, AZURE_TENANT_ID, AZURE_CLIENT_ID,
AZURE_FEDERATED_TOKEN_FILE and SSL_CERT_FILE. Stops on Ctrl-C.

  --port N                 port (default 0: a free one)
  --dir DIR                token volume directory (default: a new temporary directory)
  --tenant-id ID           default 72f988bf-86f1-41af-91ab-2d7cd011db47
  --client-id ID           default 8c2d3b5f-4a6e-4b1c-9d7e-0f1a2b3c4d5e
  --namespace NS           default default
  --service-account NAME   default workload
  --token-lifetime SECONDS default 3600";

struct Args {
    port: u16,
    dir: Option<PathBuf>,
    tenant_id: String,
    client_id: String,
    namespace: String,
    service_account: String,
    token_lifetime: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        port: 0,
        dir: None,
        tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".to_owned(),
        client_id: "8c2d3b5f-4a6e-4b1c-9d7e-0f1a2b3c4d5e".to_owned(),
        namespace: "default".to_owned(),
        service_account: "workload".to_owned(),
        token_lifetime: 3600,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--port" => a.port = value()?.parse().map_err(|_| "--port: not a port number")?,
            "--dir" => a.dir = Some(PathBuf::from(value()?)),
            "--tenant-id" => a.tenant_id = value()?,
            "--client-id" => a.client_id = value()?,
            "--namespace" => a.namespace = value()?,
            "--service-account" => a.service_account = value()?,
            "--token-lifetime" => {
                a.token_lifetime = value()?
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or("--token-lifetime: a positive number of seconds")?
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}\n");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(2)
            };
        }
    };
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> std::io::Result<()> {
    let (dir, temporary) = match args.dir {
        Some(d) => (d, false),
        None => {
            let d = std::env::temp_dir().join(format!("entra-emulator-{}", std::process::id()));
            (d, true)
        }
    };
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;

    let emu = Emulator::start_with(EmulatorOptions { port: args.port }).await?;
    let issuer = emu.add_eks_issuer();
    let sa = ServiceAccountToken {
        lifetime: Duration::from_secs(args.token_lifetime),
        ..ServiceAccountToken::new(&args.namespace, &args.service_account)
    };
    emu.add_federated_credential(
        &args.tenant_id,
        &args.client_id,
        FederatedCredential::new(issuer.url(), sa.subject()),
    );
    let token_dir = dir.join("token");
    let volume = ProjectedVolume::create(&token_dir, "azure-identity-token", issuer.clone(), sa)?;
    volume.start_rotation();
    let ca_file = dir.join("ca.pem");
    emu.write_ca_pem(&ca_file)?;

    eprintln!(
        "# entra_emulator listening on {} (issuer {})",
        emu.authority_host(),
        issuer.url()
    );
    println!("export AZURE_AUTHORITY_HOST={}", emu.authority_host());
    println!("export AZURE_TENANT_ID={}", args.tenant_id);
    println!("export AZURE_CLIENT_ID={}", args.client_id);
    println!(
        "export AZURE_FEDERATED_TOKEN_FILE={}",
        volume.token_path().display()
    );
    println!("export SSL_CERT_FILE={}", ca_file.display());
    println!("export REQUESTS_CA_BUNDLE={}", ca_file.display());
    eprintln!("# Ctrl-C to stop");

    stop_signal().await?;
    eprintln!("# stopping");
    volume.stop_rotating();
    emu.shutdown().await;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM on unix.
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
