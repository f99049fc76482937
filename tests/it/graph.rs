//! An azure_core `Pipeline` with `BearerTokenAuthorizationPolicy`, as any Microsoft Graph call
//! from Rust would be built, against the emulator's Graph-like API.

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_core::http::policies::{Policy, auth::BearerTokenAuthorizationPolicy};
use azure_core::http::{Context, Method, Pipeline, Request, Url};
use azure_identity_k8s::WorkloadIdentityCredential;
use entra_emulator::Endpoint;
use std::sync::Arc;

const GRAPH: &str = "https://graph.microsoft.com/.default";

fn graph_pipeline(fx: &Fixture, credential: Arc<dyn TokenCredential>, scope: &str) -> Pipeline {
    let auth: Arc<dyn Policy> = Arc::new(BearerTokenAuthorizationPolicy::new(credential, [scope]));
    Pipeline::new(
        Some("graph-test"),
        Some("0.0.0"),
        fx.client_options(),
        Vec::new(),
        vec![auth],
        None,
    )
}

async fn get(pipeline: &Pipeline, url: Url) -> azure_core::Result<serde_json::Value> {
    let mut request = Request::new(url, Method::Get);
    let response = pipeline.send(&Context::new(), &mut request, None).await?;
    Ok(serde_json::from_slice(response.body().as_ref())?)
}

fn error_code(err: &azure_core::Error) -> Option<&str> {
    match err.kind() {
        azure_core::error::ErrorKind::HttpResponse { error_code, .. } => error_code.as_deref(),
        _ => None,
    }
}

fn service_principal_url(fx: &Fixture, app_id: &str) -> Url {
    fx.emu
        .base_url()
        .join(&format!("v1.0/servicePrincipals(appId='{app_id}')"))
        .unwrap()
}

#[tokio::test]
async fn reads_the_applications_own_service_principal() {
    let fx = Fixture::new().await;
    let credential = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let pipeline = graph_pipeline(&fx, credential, GRAPH);
    let sp = get(&pipeline, service_principal_url(&fx, CLIENT))
        .await
        .expect("service principal");
    assert_eq!(sp["appId"], CLIENT);
    assert_eq!(sp["servicePrincipalType"], "Application");
    assert_eq!(sp["appOwnerOrganizationId"], TENANT);
    let app = get(
        &pipeline,
        fx.emu
            .base_url()
            .join(&format!("v1.0/applications(appId='{CLIENT}')"))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(app["appId"], CLIENT);
    // The policy kept its token: one exchange, for Graph.
    assert_eq!(fx.emu.token_request_count_for_scope(GRAPH), 1);
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);
}

#[tokio::test]
async fn a_storage_token_is_refused_by_graph_with_the_reason() {
    let fx = Fixture::new().await;
    let credential = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let pipeline = graph_pipeline(&fx, credential, STORAGE);
    let err = get(&pipeline, service_principal_url(&fx, CLIENT))
        .await
        .expect_err("wrong audience");
    assert_eq!(err.http_status().map(u16::from), Some(401), "{err:?}");
    assert_eq!(error_code(&err), Some("InvalidAuthenticationToken"));
    assert_eq!(
        err.to_string(),
        "Invalid audience. Expected https://graph.microsoft.com, found: https://storage.azure.com."
    );
}

#[tokio::test]
async fn an_unknown_application_is_graphs_404() {
    let fx = Fixture::new().await;
    let credential = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let pipeline = graph_pipeline(&fx, credential, GRAPH);
    let err = get(
        &pipeline,
        service_principal_url(&fx, "00000000-0000-0000-0000-000000000000"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(404), "{err:?}");
    assert_eq!(error_code(&err), Some("Request_ResourceNotFound"));
    assert!(err.to_string().contains("does not exist"), "{err}");
}
