//! The Kubernetes and Terraform text of a [`super::SetupOutput`].

use super::{FederatedCredentialSpec, SetupInput};
use crate::cloud::Cloud;
use crate::config::{AUDIENCE_PUBLIC, PUBLIC_AUTHORITY_HOST, WEBHOOK_TOKEN_PATH_PRE_1_6};

/// A double-quoted string, valid in YAML and HCL.
fn dq(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

pub(super) fn hcl(s: &str) -> String {
    dq(s).replace("${", "$${").replace("%{", "%%{")
}

/// The client and tenant ids, or the placeholders to replace.
fn ids(input: &SetupInput) -> (&str, &str) {
    let client = input.client_id.as_deref();
    let tenant = input.tenant_id.as_deref();
    (
        client.unwrap_or("REPLACE-WITH-CLIENT-ID"),
        tenant.unwrap_or("REPLACE-WITH-TENANT-ID"),
    )
}

/// A pod's service account, one container (`name`, `image`, `args`) with the variables and the
/// projected token volume: the `spec` of a pod template, indented for it.
fn pod_spec(input: &SetupInput, audience: &str, container: &str) -> String {
    let (client, tenant) = ids(input);
    let var = |name: &str, value: &str| {
        format!(
            "            - name: {name}\n              value: {}\n",
            dq(value)
        )
    };
    let mut env = var("AZURE_CLIENT_ID", client) + &var("AZURE_TENANT_ID", tenant);
    env += &var("AZURE_FEDERATED_TOKEN_FILE", WEBHOOK_TOKEN_PATH_PRE_1_6);
    // The input's authority host, else that of the sovereign cloud whose exchange audience is
    // `audience`; none for the public cloud's.
    let cloud = Cloud::of_audience(audience).map(|c| c.authority_host.to_string());
    if let Some(a) = (input.authority_host.clone().or(cloud))
        .filter(|a| a.trim_end_matches('/') != PUBLIC_AUTHORITY_HOST)
    {
        env += &var("AZURE_AUTHORITY_HOST", &a);
    }
    if audience != AUDIENCE_PUBLIC && Cloud::of_audience(audience).is_none() {
        env += &var("AZURE_FEDERATED_TOKEN_AUDIENCE", audience);
    }
    if input.allow_foreign_audience {
        env += &var("AZURE_FEDERATED_TOKEN_ALLOW_FOREIGN_AUDIENCE", "true");
    }
    // The webhook's long-standing path, which the credential also finds on its own.
    let (mount, file) = WEBHOOK_TOKEN_PATH_PRE_1_6
        .rsplit_once('/')
        .unwrap_or_default();
    format!(
        r#"      serviceAccountName: {sa}
      containers:
        - {container}
          env:
{env}          volumeMounts:
            - name: azure-identity-token
              mountPath: {mount}
              readOnly: true
      volumes:
        - name: azure-identity-token
          projected:
            sources:
              - serviceAccountToken:
                  audience: {aud}
                  expirationSeconds: 3600
                  path: {file}
"#,
        sa = dq(&input.service_account),
        mount = dq(mount),
        aud = dq(audience),
        file = dq(file),
    )
}

/// The ServiceAccount and the Deployment with the projected token volume and the variables; and a
/// Job that runs `azure-identity-k8s doctor` once as the workload: its service account, token
/// volume and variables, so with the pod's token, network and clock.
pub(super) fn kubernetes(input: &SetupInput, audience: &str) -> (String, String) {
    let (ns, sa) = (dq(&input.namespace), dq(&input.service_account));
    let (client, tenant) = ids(input);
    let (client, tenant) = (dq(client), dq(tenant));
    let app = "name: app\n          image: REPLACE-WITH-YOUR-IMAGE";
    let doctor =
        "name: doctor\n          image: REPLACE-WITH-DOCTOR-IMAGE\n          args: [\"doctor\"]";
    let workload = format!(
        r#"# Without the Azure Workload Identity webhook: the projected token and the variables are spelled out.
# With the webhook, keep the ServiceAccount, drop `env` and `volumes`/`volumeMounts`, and add the pod
# label azure.workload.identity/use: "true".
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {sa}
  namespace: {ns}
  annotations:
    azure.workload.identity/client-id: {client}
    azure.workload.identity/tenant-id: {tenant}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {sa}
  namespace: {ns}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {sa}
  template:
    metadata:
      labels:
        app: {sa}
    spec:
{pod}"#,
        pod = pod_spec(input, audience, app),
    );
    let job = format!(
        r#"# Runs doctor with the workload's service account; set the image to the azure-identity-k8s CLI's.
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  namespace: {ns}
spec:
  backoffLimit: 0
  ttlSecondsAfterFinished: 3600
  template:
    spec:
      restartPolicy: Never
{pod}"#,
        name = dq(&format!("{}-doctor", input.service_account)),
        pod = pod_spec(input, audience, doctor),
    );
    (workload, job)
}

/// `azuread_application_federated_identity_credential` (app registration) and
/// `azurerm_federated_identity_credential` (user-assigned managed identity).
pub(super) fn terraform(input: &SetupInput, fic: &FederatedCredentialSpec) -> (String, String) {
    // A resource name of letters, digits and '_' from the credential's name, which
    // `super::plan` allows only letters, digits, '-' and '_'.
    let tf = dq(&fic.name.replace('-', "_"));
    let audiences: Vec<String> = fic.audiences.iter().map(|a| hcl(a)).collect();
    let aud_h = audiences.join(", ");
    let (name_h, iss_h, sub_h) = (hcl(&fic.name), hcl(&fic.issuer), hcl(&fic.subject));
    let (app_data, app_ref) = match &input.app_object_id {
        Some(oid) => (String::new(), hcl(&format!("/applications/{oid}"))),
        None => (
            format!(
                "data \"azuread_application\" \"workload\" {{\n  client_id = {}\n}}\n\n",
                hcl(ids(input).0)
            ),
            "data.azuread_application.workload.id".to_string(),
        ),
    };
    let azuread = format!(
        "# azuread provider 3.x (application_id is the application's resource id, /applications/<object id>).\n\
         {app_data}resource \"azuread_application_federated_identity_credential\" {tf} {{\n  \
         application_id = {app_ref}\n  \
         display_name   = {name_h}\n  \
         description    = {desc_h}\n  \
         audiences      = [{aud_h}]\n  \
         issuer         = {iss_h}\n  \
         subject        = {sub_h}\n}}\n",
        desc_h = hcl(&fic.description),
    );
    let azurerm = format!(
        "# azurerm provider 3.x or 4.x (5.x names the identity user_assigned_identity_id and has no resource_group_name).\n\
         data \"azurerm_user_assigned_identity\" \"workload\" {{\n  \
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
    );
    (azuread, azurerm)
}
