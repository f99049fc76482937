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

mod common;
use azure_core::credentials::TokenCredential;
use azure_core::http::policies::{Policy, auth::BearerTokenAuthorizationPolicy};
use azure_core::http::{ClientOptions, Context, Method, Pipeline, Request, Url};
use azure_identity_k8s::DefaultAzureCredential;
use common::{CLIENT, LocalPod};
use std::sync::Arc;

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

    let pod = LocalPod::start().await?;
    let client_options = pod.client_options();
    let credential = pod.credential()?;
    let emu = &pod.emu;
    let sp = service_principal(&emu.base_url(), CLIENT, credential, client_options).await?;
    show(&sp);
    Ok(())
}
