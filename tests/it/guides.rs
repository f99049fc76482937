//! What the documentation pages show works as shown: the requests of troubleshooting's AADSTS70003
//! section are sent to the emulator as written, and the YAML of the IRSA, multi-cluster and Helm
//! pages is parsed and its values given to a credential.

use crate::common::{CLIENT, Fixture, STORAGE, TENANT};
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::config::AUDIENCE_PUBLIC;
use azure_identity_k8s::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
use entra_emulator::{FederatedCredential, ServiceAccountToken};
use serde::Deserialize;
use serde_yaml_ng::Value;

fn page(file: &str) -> String {
    let path = format!("{}/docs/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The fenced blocks of `lang` in the section of `page` that starts at `<a id="{anchor}">` and
/// ends at the next anchor.
fn blocks(page: &str, anchor: &str, lang: &str) -> Vec<String> {
    let start = page
        .find(&format!("<a id=\"{anchor}\"></a>"))
        .unwrap_or_else(|| panic!("no section #{anchor}"));
    let section = &page[start + 1..];
    let section = &section[..section.find("<a id=\"").unwrap_or(section.len())];
    section
        .split(&format!("```{lang}\n"))
        .skip(1)
        .map(|rest| rest[..rest.find("```").expect("closed block")].to_owned())
        .collect()
}

/// An HTTP request as the docs write it (`POST <url>`, headers, blank line, a form body split
/// over lines at `&`), with `<placeholders>` replaced: its path and its form fields.
fn request(block: &str, values: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
    let mut block = block.to_owned();
    for (name, value) in values {
        block = block.replace(&format!("<{name}>"), value);
    }
    let (head, body) = block.split_once("\n\n").expect("headers, then the body");
    let url = head.lines().next().unwrap().strip_prefix("POST ").unwrap();
    let path = url
        .strip_prefix("https://login.microsoftonline.com")
        .unwrap();
    assert!(head.contains("Content-Type: application/x-www-form-urlencoded"));
    let form = body
        .split('&')
        .map(|pair| {
            let (k, v) = pair.trim().split_once('=').expect("name=value");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    (path.to_owned(), form)
}

#[tokio::test]
async fn the_token_exchange_request_is_refused_and_the_client_credentials_one_works() {
    let fx = Fixture::new().await;
    let token = fx.issuer.mint(&ServiceAccountToken::default());
    let values = [
        ("tenant id", TENANT),
        ("client id", CLIENT),
        ("service-account token", token.as_str()),
    ];
    let requests = blocks(&page("troubleshooting.md"), "aadsts70003", "http");
    assert_eq!(
        requests.len(),
        2,
        "the refused request, then the accepted one"
    );
    let client = fx.emu.reqwest_client();
    let mut answers = Vec::new();
    for block in &requests {
        let (path, form) = request(block, &values);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish();
        let answer = client
            .post(format!("{}{path}", fx.emu.authority_host()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let body = answer.bytes().await.unwrap();
        answers.push((
            status,
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        ));
    }
    let (status, refused) = &answers[0];
    assert_eq!(*status, 400, "{refused}");
    assert_eq!(refused["error"], "unsupported_grant_type");
    assert_eq!(refused["error_codes"][0], 70003);
    let (status, accepted) = &answers[1];
    assert_eq!(*status, 200, "{accepted}");
    assert!(accepted["access_token"].is_string());
    // The scope both requests name is the one the access token is for.
    assert!(requests.iter().all(|r| r.contains(STORAGE)));
}

/// The ```yaml blocks of a page, each parsed as a stream of documents.
fn yaml_blocks(page: &str) -> Vec<Vec<Value>> {
    page.split("```yaml\n")
        .skip(1)
        .map(|rest| {
            let text = &rest[..rest.find("```").expect("closed block")];
            serde_yaml_ng::Deserializer::from_str(text)
                .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{e}:\n{text}")))
                .collect()
        })
        .collect()
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .fold(value, |v, key| &v[*key])
        .as_str()
        .unwrap_or_else(|| panic!("no string at {path:?} in {value:?}"))
}

/// What a pod's container gets for Entra: the variables, and the projected token they point at.
#[derive(Debug)]
pub(crate) struct Wiring {
    pub(crate) client_id: String,
    pub(crate) tenant_id: String,
    /// The projection's `path`, inside the mount `AZURE_FEDERATED_TOKEN_FILE` is in.
    pub(crate) file_name: String,
    pub(crate) audience: String,
    pub(crate) lifetime_s: u64,
}

/// The wiring of `env`, `volume_mounts` and `volumes` (a container's and its pod's lists):
/// `AZURE_FEDERATED_TOKEN_FILE` must be `<mountPath>/<path>` of a read-only mount of a projected
/// `serviceAccountToken` volume.
fn wiring(env: &Value, volume_mounts: &Value, volumes: &Value) -> Wiring {
    let var = |name: &str| {
        let entries = env.as_sequence().expect("env is a list");
        let found: Vec<&Value> = entries.iter().filter(|e| e["name"] == name).collect();
        assert_eq!(found.len(), 1, "{name} once in {env:?}");
        str_at(found[0], &["value"]).to_owned()
    };
    let token_file = var("AZURE_FEDERATED_TOKEN_FILE");
    let (dir, file_name) = token_file.rsplit_once('/').unwrap();
    let mount = volume_mounts
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == dir)
        .unwrap_or_else(|| panic!("no volume mounted at {dir}"));
    assert_eq!(mount["readOnly"], Value::Bool(true), "{mount:?}");
    let volume = volumes
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume {:?}", mount["name"]));
    let projection = volume["projected"]["sources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| &s["serviceAccountToken"])
        .find(|t| t["path"] == file_name)
        .unwrap_or_else(|| panic!("no serviceAccountToken {file_name} in {volume:?}"));
    Wiring {
        client_id: var("AZURE_CLIENT_ID"),
        tenant_id: var("AZURE_TENANT_ID"),
        file_name: file_name.to_owned(),
        audience: str_at(projection, &["audience"]).to_owned(),
        lifetime_s: projection["expirationSeconds"].as_u64().unwrap(),
    }
}

/// The wiring of the Deployment in a manifest, and its namespace and service account.
pub(crate) fn deployment_wiring(docs: &[Value]) -> (Wiring, String, String) {
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let account = str_at(pod, &["serviceAccountName"]).to_owned();
    // The ServiceAccount the pod runs under is in the manifest too.
    assert!(docs.iter().any(|d| d["kind"] == "ServiceAccount"
        && d["metadata"]["name"] == account.as_str()
        && d["metadata"]["namespace"] == deployment["metadata"]["namespace"]));
    (
        wiring(&c["env"], &c["volumeMounts"], &pod["volumes"]),
        str_at(deployment, &["metadata", "namespace"]).to_owned(),
        account,
    )
}

/// The documented wiring works: a federated credential for the cluster's issuer, the subject of
/// `namespace`/`account` and the documented audience, a token the kubelet would write with the
/// documented audience and lifetime, and a credential configured with the documented values gets
/// a token.
async fn works(wiring: &Wiring, namespace: &str, account: &str) {
    assert_eq!(wiring.audience, AUDIENCE_PUBLIC, "the exchange audience");
    assert!((600..=86_400).contains(&wiring.lifetime_s), "{wiring:?}");
    let fx = Fixture::new().await;
    let sa = ServiceAccountToken {
        audiences: vec![wiring.audience.clone()],
        lifetime: std::time::Duration::from_secs(wiring.lifetime_s),
        ..ServiceAccountToken::new(namespace, account)
    };
    fx.emu.add_federated_credential(
        &wiring.tenant_id,
        &wiring.client_id,
        FederatedCredential::new(fx.issuer.url(), sa.subject()),
    );
    let path = fx.dir.path().join(&wiring.file_name);
    std::fs::write(&path, fx.issuer.mint(&sa)).unwrap();
    let credential = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        client_id: Some(wiring.client_id.clone()),
        tenant_id: Some(wiring.tenant_id.clone()),
        token_file_path: Some(path),
        ..fx.options()
    }))
    .unwrap();
    credential.get_token(&[STORAGE], None).await.unwrap();
}

#[tokio::test]
async fn the_irsa_page_mounts_a_token_of_its_own_for_azure() {
    let blocks = yaml_blocks(&page("irsa.md"));
    assert_eq!(blocks.len(), 1);
    let manifest = &blocks[0];
    let (wiring, namespace, account) = deployment_wiring(manifest);
    // The IRSA annotation is on the ServiceAccount, for AWS; nothing Azure reads names AWS.
    let sa = manifest
        .iter()
        .find(|d| d["kind"] == "ServiceAccount")
        .unwrap();
    assert!(
        str_at(
            sa,
            &["metadata", "annotations", "eks.amazonaws.com/role-arn"]
        )
        .starts_with("arn:aws:iam::")
    );
    let deployment = serde_yaml_ng::to_string(&manifest[1]).unwrap();
    for aws in [
        "sts.amazonaws.com",
        "pods.eks.amazonaws.com",
        "eks.amazonaws.com/serviceaccount",
        "AWS_",
    ] {
        assert!(!deployment.contains(aws), "{aws} in the Deployment");
    }
    works(&wiring, &namespace, &account).await;
}

#[tokio::test]
async fn the_multi_cluster_manifest_names_no_cluster() {
    let blocks = yaml_blocks(&page("multi-cluster.md"));
    assert_eq!(blocks.len(), 1);
    let manifest = &blocks[0];
    let text = serde_yaml_ng::to_string(manifest).unwrap();
    for cluster_specific in ["https://", "oidc.eks", "amazonaws.com", "issuer", "cluster"] {
        assert!(
            !text.contains(cluster_specific),
            "{cluster_specific} in {text}"
        );
    }
    let (wiring, namespace, account) = deployment_wiring(manifest);
    // The same objects work whichever cluster's issuer signs the token (two issuers here).
    works(&wiring, &namespace, &account).await;
    works(&wiring, &namespace, &account).await;
    // The page states Entra's limit.
    assert!(page("multi-cluster.md").contains("at most **20 federated identity credentials"));
}

#[tokio::test]
async fn the_helm_values_wire_the_token_and_the_webhook() {
    let blocks = yaml_blocks(&page("helm.md"));
    assert_eq!(blocks.len(), 2, "without the webhook, with it");
    let manual = &blocks[0][0];
    let account = str_at(manual, &["serviceAccount", "name"]);
    let wiring = wiring(&manual["env"], &manual["volumeMounts"], &manual["volumes"]);
    works(&wiring, "billing", account).await;
    let webhook = &blocks[1][0];
    assert_eq!(str_at(webhook, &["serviceAccount", "name"]), account);
    let client_id = str_at(
        webhook,
        &[
            "serviceAccount",
            "annotations",
            "azure.workload.identity/client-id",
        ],
    );
    assert_eq!(client_id, wiring.client_id);
    // A label value is a string: "true", not the YAML boolean.
    assert_eq!(
        webhook["podLabels"]["azure.workload.identity/use"],
        Value::String("true".into())
    );
    assert!(
        webhook.get("env").is_none() && webhook.get("volumes").is_none(),
        "the webhook adds them"
    );
}

fn doctor_job() -> Value {
    let path = format!("{}/deploy/doctor-job.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    Value::deserialize(serde_yaml_ng::Deserializer::from_str(&text)).unwrap()
}

/// `setup` prints the same Job for the same values: the same run policy, command and wiring.
#[cfg(feature = "doctor")]
#[test]
fn setup_prints_the_doctor_job_of_deploy() {
    use azure_identity_k8s::setup::{SetupInput, plan};
    let job = doctor_job();
    let pod = &job["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let documented = wiring(&c["env"], &c["volumeMounts"], &pod["volumes"]);
    let out = plan(&SetupInput {
        issuer: "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
            .into(),
        namespace: str_at(&job, &["metadata", "namespace"]).into(),
        service_account: str_at(pod, &["serviceAccountName"]).into(),
        client_id: Some(documented.client_id.clone()),
        tenant_id: Some(documented.tenant_id.clone()),
        ..Default::default()
    })
    .unwrap();
    let printed =
        Value::deserialize(serde_yaml_ng::Deserializer::from_str(&out.doctor_job_yaml)).unwrap();
    let printed_pod = &printed["spec"]["template"]["spec"];
    let pc = &printed_pod["containers"][0];
    let printed_wiring = wiring(&pc["env"], &pc["volumeMounts"], &printed_pod["volumes"]);
    assert_eq!(format!("{printed_wiring:?}"), format!("{documented:?}"));
    for path in [
        &["kind"][..],
        &["metadata", "namespace"],
        &["spec", "backoffLimit"],
    ] {
        let at = |v: &Value| path.iter().fold(v.clone(), |v, k| v[*k].clone());
        assert_eq!(at(&printed), at(&job), "{path:?}");
    }
    for key in ["serviceAccountName", "restartPolicy"] {
        assert_eq!(printed_pod[key], pod[key], "{key}");
    }
    assert_eq!(pc["args"], c["args"]);
}

#[tokio::test]
async fn the_doctor_job_runs_doctor_with_the_workloads_token() {
    let job = doctor_job();
    assert_eq!(str_at(&job, &["apiVersion"]), "batch/v1");
    assert_eq!(str_at(&job, &["kind"]), "Job");
    // One run, no retries: the Job's status is doctor's verdict.
    assert_eq!(job["spec"]["backoffLimit"], Value::from(0));
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(str_at(pod, &["restartPolicy"]), "Never");
    // The Kubernetes API token is not mounted: doctor does not need it.
    assert_eq!(pod["automountServiceAccountToken"], Value::Bool(false));
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["args"], Value::Sequence(vec![Value::from("doctor")]));
    let wiring = wiring(&c["env"], &c["volumeMounts"], &pod["volumes"]);
    let namespace = str_at(&job, &["metadata", "namespace"]);
    works(&wiring, namespace, str_at(pod, &["serviceAccountName"])).await;
}
