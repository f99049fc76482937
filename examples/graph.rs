//! Microsoft Graph from Rust: an azure_core `Pipeline` with `BearerTokenAuthorizationPolicy`
//! and this crate's credential, reading the application's own service principal.
//!
//! Local (default): the embedded emulator plays Entra ID, the cluster's OIDC issuer and a
//! Graph-like API.
//!
//! ```sh
//! cargo run --example graph
//! ```
//!
//! Azure: when `AZURE_CLIENT_ID` is set, the credential is `DefaultAzureCredential::new(None)` (in a
//! pod: the workload identity) and the request goes to `https://graph.microsoft.com`. Reading a
//! service principal needs the Graph application permission `Application.Read.All`.

use azure_core::credentials::TokenCredential;
use azure_core::http::policies::{Policy, auth::BearerTokenAuthorizationPolicy};
use azure_core::http::{ClientOptions, Context, Method, Pipeline, Request, Url};
use azure_identity::ClientAssertionCredentialOptions;
use azure_identity_k8s::{
    DefaultAzureCredential, Env, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use entra_emulator::{Emulator, FederatedCredential, ServiceAccountToken};
use std::sync::Arc;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11";
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// `GET {graph}/v1.0/servicePrincipals(appId='{app_id}')`.
async fn service_principal(
    graph: &Url,
    app_id: &str,
    credential: Arc<dyn TokenCredential>,
    client_options: ClientOptions,
) -> azure_core::Result<serde_json::Value> {
    let auth: Arc<dyn Policy> = Arc::new(BearerTokenAuthorizationPolicy::new(
        credential,
        [GRAPH_SCOPE],
    ));
    let pipeline = Pipeline::new(
        Some(env!("CARGO_PKG_NAME")),
        Some(env!("CARGO_PKG_VERSION")),
        client_options,
        Vec::new(),
        vec![auth],
        None,
    );
    let url = graph.join(&format!("v1.0/servicePrincipals(appId='{app_id}')"))?;
    let mut request = Request::new(url, Method::Get);
    let response = pipeline.send(&Context::new(), &mut request, None).await?;
    Ok(serde_json::from_slice(response.body().as_ref())?)
}

fn show(sp: &serde_json::Value) {
    println!(
        "service principal {} (appId {}, type {}, tenant {})",
        sp["displayName"], sp["appId"], sp["servicePrincipalType"], sp["appOwnerOrganizationId"]
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(client_id) = std::env::var("AZURE_CLIENT_ID") {
        let credential = DefaultAzureCredential::new(None)?;
        let graph = Url::parse("https://graph.microsoft.com/")?;
        let sp = service_principal(
            &graph,
            &client_id,
            credential.clone(),
            ClientOptions::default(),
        )
        .await?;
        show(&sp);
        println!(
            "authenticated with {}",
            credential.selected_source().unwrap_or("?")
        );
        return Ok(());
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
    let client_options = ClientOptions {
        transport: Some(emu.transport()),
        ..Default::default()
    };
    let credential = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            client_options: client_options.clone(),
        },
        env: Env::from_pairs([
            ("AZURE_CLIENT_ID", CLIENT.to_string()),
            ("AZURE_TENANT_ID", TENANT.to_string()),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            ("AZURE_AUTHORITY_HOST", emu.authority_host()),
        ]),
        ..Default::default()
    }))?;
    let sp = service_principal(&emu.base_url(), CLIENT, credential, client_options).await?;
    show(&sp);
    Ok(())
}
