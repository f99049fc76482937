//! The Kubernetes and Terraform text of a [`super::SetupOutput`].

use super::{FederatedCredentialSpec, SetupInput};
use crate::config::{AUDIENCE_PUBLIC, WEBHOOK_TOKEN_PATH_PRE_1_6};

/// A double-quoted string, valid in YAML and HCL.
fn dq(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

pub(super) fn hcl(s: &str) -> String {
    dq(s).replace("${", "$${").replace("%{", "%%{")
}

/// The authority host of a sovereign cloud whose exchange audience is `audience`.
fn authority_for(audience: &str) -> Option<&'static str> {
    crate::cloud::Cloud::of_audience(audience)
        .filter(|c| c.authority_host != crate::cloud::PUBLIC.authority_host)
        .map(|c| c.authority_host)
}

/// The ServiceAccount and the Deployment with the projected token volume and the variables.
pub(super) fn kubernetes_yaml(input: &SetupInput, audience: &str) -> String {
    let (ns, sa) = (input.namespace.as_str(), input.service_account.as_str());
    let client = input
        .client_id
        .clone()
        .unwrap_or_else(|| "REPLACE-WITH-CLIENT-ID".into());
    let tenant = input
        .tenant_id
        .clone()
        .unwrap_or_else(|| "REPLACE-WITH-TENANT-ID".into());
    let authority_env = authority_for(audience)
        .map(|a| {
            format!(
                "            - name: AZURE_AUTHORITY_HOST\n              value: {}\n",
                dq(a)
            )
        })
        .unwrap_or_default();
    let audience_env = if audience != AUDIENCE_PUBLIC && authority_for(audience).is_none() {
        format!(
            "            - name: AZURE_FEDERATED_TOKEN_AUDIENCE\n              value: {}\n",
            dq(audience)
        )
    } else {
        String::new()
    };
    // The webhook's long-standing path, which the credential also finds on its own.
    let (mount, file) = WEBHOOK_TOKEN_PATH_PRE_1_6
        .rsplit_once('/')
        .unwrap_or_default();
    format!(
        r#"# Without the Azure Workload Identity webhook: the projected token and the variables are spelled out.
# With the webhook, keep the ServiceAccount, drop `env` and `volumes`/`volumeMounts`, and add the pod
# label azure.workload.identity/use: "true".
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {sa_q}
  namespace: {ns_q}
  annotations:
    azure.workload.identity/client-id: {client_q}
    azure.workload.identity/tenant-id: {tenant_q}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {sa_q}
  namespace: {ns_q}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {sa_q}
  template:
    metadata:
      labels:
        app: {sa_q}
    spec:
      serviceAccountName: {sa_q}
      containers:
        - name: app
          image: REPLACE-WITH-YOUR-IMAGE
          env:
            - name: AZURE_CLIENT_ID
              value: {client_q}
            - name: AZURE_TENANT_ID
              value: {tenant_q}
            - name: AZURE_FEDERATED_TOKEN_FILE
              value: {path_q}
{authority_env}{audience_env}          volumeMounts:
            - name: azure-identity-token
              mountPath: {mount_q}
              readOnly: true
      volumes:
        - name: azure-identity-token
          projected:
            sources:
              - serviceAccountToken:
                  audience: {aud_q}
                  expirationSeconds: 3600
                  path: {file_q}
"#,
        sa_q = dq(sa),
        ns_q = dq(ns),
        client_q = dq(&client),
        tenant_q = dq(&tenant),
        path_q = dq(WEBHOOK_TOKEN_PATH_PRE_1_6),
        mount_q = dq(mount),
        aud_q = dq(audience),
        file_q = dq(file),
    )
}

/// A Terraform resource name (letters, digits and '_') from a federated credential's name,
/// which [`super::plan`] allows only letters, digits, '-' and '_'.
fn terraform_name(fic: &FederatedCredentialSpec) -> String {
    fic.name.replace('-', "_")
}

/// `azuread_application_federated_identity_credential` (app registration).
pub(super) fn terraform_azuread(input: &SetupInput, fic: &FederatedCredentialSpec) -> String {
    let tf_name = terraform_name(fic);
    let audiences: Vec<String> = fic.audiences.iter().map(|a| hcl(a)).collect();
    let (app_data, app_ref) = match (&input.app_object_id, &input.client_id) {
        (Some(oid), _) => (String::new(), hcl(&format!("/applications/{oid}"))),
        (None, client) => (
            format!(
                "data \"azuread_application\" \"workload\" {{\n  client_id = {}\n}}\n\n",
                hcl(client.as_deref().unwrap_or("REPLACE-WITH-CLIENT-ID"))
            ),
            "data.azuread_application.workload.id".to_string(),
        ),
    };
    format!(
        "# azuread provider 3.x (application_id is the application's resource id, /applications/<object id>).\n\
         {app_data}resource \"azuread_application_federated_identity_credential\" {tf} {{\n  \
         application_id = {app_ref}\n  \
         display_name   = {name_h}\n  \
         description    = {desc_h}\n  \
         audiences      = [{aud_h}]\n  \
         issuer         = {iss_h}\n  \
         subject        = {sub_h}\n}}\n",
        tf = dq(&tf_name),
        name_h = hcl(&fic.name),
        desc_h = hcl(&fic.description),
        aud_h = audiences.join(", "),
        iss_h = hcl(&fic.issuer),
        sub_h = hcl(&fic.subject),
    )
}

/// `azurerm_federated_identity_credential` (user-assigned managed identity).
pub(super) fn terraform_azurerm(input: &SetupInput, fic: &FederatedCredentialSpec) -> String {
    let tf_name = terraform_name(fic);
    let audiences: Vec<String> = fic.audiences.iter().map(|a| hcl(a)).collect();
    format!(
        "data \"azurerm_user_assigned_identity\" \"workload\" {{\n  \
         name                = {id_name}\n  \
         resource_group_name = {rg}\n}}\n\n\
         resource \"azurerm_federated_identity_credential\" {tf} {{\n  \
         name                = {name_h}\n  \
         resource_group_name = data.azurerm_user_assigned_identity.workload.resource_group_name\n  \
         parent_id           = data.azurerm_user_assigned_identity.workload.id\n  \
         audience            = [{aud_h}]\n  \
         issuer              = {iss_h}\n  \
         subject             = {sub_h}\n}}\n",
        id_name = hcl(input
            .identity_name
            .as_deref()
            .unwrap_or("REPLACE-WITH-IDENTITY-NAME")),
        rg = hcl(input
            .resource_group
            .as_deref()
            .unwrap_or("REPLACE-WITH-RESOURCE-GROUP")),
        tf = dq(&tf_name),
        name_h = hcl(&fic.name),
        aud_h = audiences.join(", "),
        iss_h = hcl(&fic.issuer),
        sub_h = hcl(&fic.subject),
    )
}
