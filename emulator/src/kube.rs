//! The cluster side: OIDC issuers with rotating RSA keys, and bound service-account tokens.

use crate::faults::Endpoint;
use crate::http::Reply;
use crate::keys::{SigningKey, jwks};
use crate::util::{discovery_document, now, random_hex, stable_uuid, uuid_v4};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

/// The default audience of a token meant for Entra ID.
pub const AZURE_AD_TOKEN_EXCHANGE: &str = "api://AzureADTokenExchange";

/// A Kubernetes OIDC issuer served by the emulator (discovery document + JWKS).
///
/// Cheap to clone; all clones share the keys.
#[derive(Clone)]
pub struct Issuer {
    inner: Arc<IssuerState>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

/// The issuers an emulator serves, found by the paths of their documents.
pub(crate) struct Issuers {
    authority: String,
    list: Mutex<Vec<Arc<IssuerState>>>,
}

impl Issuers {
    pub(crate) fn new(authority: &str) -> Issuers {
        Issuers {
            authority: authority.to_owned(),
            list: Mutex::default(),
        }
    }

    /// Adds the issuer at `path` (a leading `/` added if missing), or returns the one there.
    pub(crate) fn add(&self, path: &str) -> Issuer {
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        let mut list = self.list.lock().unwrap();
        let inner = match list.iter().find(|i| i.path == path) {
            Some(existing) => existing.clone(),
            None => {
                let new = Arc::new(IssuerState::new(&self.authority, path));
                list.push(new.clone());
                new
            }
        };
        Issuer { inner }
    }

    /// Adds an issuer shaped like EKS: `/id/` and 32 uppercase hex characters.
    pub(crate) fn add_eks(&self) -> Issuer {
        self.add(&format!("/id/{}", random_hex::<16>().to_ascii_uppercase()))
    }

    /// The issuer whose URL (`iss`) is `url`, or the first one added when `url` is `None`.
    pub(crate) fn get(&self, url: Option<&str>) -> Option<Issuer> {
        let list = self.list.lock().unwrap();
        let inner = match url {
            Some(url) => list.iter().find(|i| i.url == url),
            None => list.first(),
        };
        inner.map(|inner| Issuer {
            inner: inner.clone(),
        })
    }

    /// The URLs of the issuers, in the order they were added.
    pub(crate) fn urls(&self) -> Vec<String> {
        let list = self.list.lock().unwrap();
        list.iter().map(|i| i.url.clone()).collect()
    }

    /// The issuer serving `path`, and whether `path` is its discovery document or its JWKS.
    pub(crate) fn find(&self, path: &str) -> Option<(Endpoint, Arc<IssuerState>)> {
        let list = self.list.lock().unwrap();
        list.iter().find_map(|i| {
            let endpoint = if discovery_document(&i.path) == path {
                Endpoint::Discovery
            } else if i.jwks_path == path {
                Endpoint::Jwks
            } else {
                return None;
            };
            Some((endpoint, i.clone()))
        })
    }
}

/// What the clones of an [`Issuer`] share.
pub(crate) struct IssuerState {
    /// The exact `iss` value.
    url: String,
    /// The path part of `url` (may end with `/`).
    path: String,
    /// The path of the JWKS, announced by the discovery document.
    jwks_path: String,
    /// `jwks_path` as a URL.
    jwks_url: String,
    keys: Mutex<IssuerKeys>,
    discovery_available: AtomicBool,
}

struct IssuerKeys {
    signing: Arc<SigningKey>,
    published: Vec<Arc<SigningKey>>,
}

impl IssuerState {
    fn new(authority: &str, path: String) -> IssuerState {
        let base = path.trim_end_matches('/');
        // EKS publishes its JWKS at `{issuer}/keys`; kube-apiserver's own endpoint (and what
        // self-managed clusters usually copy to S3) is `openid/v1/jwks`.
        let jwks_path = if base.starts_with("/id/") {
            format!("{base}/keys")
        } else if base.ends_with(".tokens.sts.global.api.aws") {
            // AWS IAM outbound identity federation.
            format!("{base}/.well-known/jwks.json")
        } else {
            format!("{base}/openid/v1/jwks")
        };
        let key = Arc::new(SigningKey::generate());
        IssuerState {
            url: format!("{authority}{path}"),
            jwks_url: format!("{authority}{jwks_path}"),
            path,
            jwks_path,
            keys: Mutex::new(IssuerKeys {
                signing: key.clone(),
                published: vec![key],
            }),
            discovery_available: AtomicBool::new(true),
        }
    }

    fn jwks(&self) -> Value {
        let keys = self.keys.lock().unwrap();
        jwks(keys.published.iter().map(|k| &**k))
    }

    /// Serves the discovery document or the JWKS (`endpoint`); while discovery is unavailable,
    /// both answer S3's `NoSuchKey` 404 (issuer documents are typically hosted on S3).
    pub(crate) fn reply(&self, endpoint: Endpoint) -> Reply {
        if !self.discovery_available.load(Ordering::SeqCst) {
            return Reply::new(
                404,
                "application/xml",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>",
            );
        }
        let document = if endpoint == Endpoint::Discovery {
            json!({
                "issuer": self.url,
                "jwks_uri": self.jwks_url,
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "claims_supported": ["sub", "iss"],
            })
        } else {
            self.jwks()
        };
        Reply::json(200, &document).header("cache-control", "public, max-age=3600")
    }
}

impl Issuer {
    /// The exact `iss` value of the tokens this issuer mints (use it in a
    /// [`FederatedCredential`](crate::FederatedCredential)).
    pub fn url(&self) -> String {
        self.inner.url.clone()
    }

    /// The URL of the discovery document.
    pub fn discovery_url(&self) -> String {
        discovery_document(&self.inner.url)
    }

    /// The `kid` of the current signing key.
    pub fn signing_kid(&self) -> String {
        self.inner.keys.lock().unwrap().signing.kid.clone()
    }

    /// Mints a bound service-account token: RS256, header `{alg, kid}` (no `typ`, like
    /// kube-apiserver), claims `aud` (array), `exp`, `iat`, `iss`, `jti`, `kubernetes.io`,
    /// `nbf`, `sub`.
    pub fn mint(&self, sa: &ServiceAccountToken) -> String {
        self.mint_claiming(sa, &self.inner.url)
    }

    /// As [`mint`](Self::mint), with `iss` claiming another issuer (signed with this one's key).
    pub(crate) fn mint_claiming(&self, sa: &ServiceAccountToken, iss: &str) -> String {
        let key = self.inner.keys.lock().unwrap().signing.clone();
        key.sign_jwt(&sa.claims(iss), None)
    }

    /// Signs an arbitrary claim set with the current signing key (RS256, header `{alg, kid, typ: JWT}`).
    pub fn sign_claims(&self, claims: &Value) -> String {
        let key = self.inner.keys.lock().unwrap().signing.clone();
        key.sign_jwt(claims, Some("JWT"))
    }

    /// Adds a signing key, which becomes the one [`mint`](Self::mint) uses; earlier keys stay in
    /// the JWKS. Returns the new `kid`.
    pub fn add_key(&self) -> String {
        let key = Arc::new(SigningKey::generate());
        let kid = key.kid.clone();
        let mut keys = self.inner.keys.lock().unwrap();
        keys.published.push(key.clone());
        keys.signing = key;
        kid
    }

    /// Removes a key from the JWKS. Tokens signed with it then fail at Entra with AADSTS7000272.
    /// Retiring the current signing key does not change the signing key.
    pub fn retire_key(&self, kid: &str) {
        self.inner
            .keys
            .lock()
            .unwrap()
            .published
            .retain(|k| k.kid != kid);
    }

    /// The `kid`s currently published in the JWKS.
    pub fn published_kids(&self) -> Vec<String> {
        let keys = self.inner.keys.lock().unwrap();
        keys.published.iter().map(|k| k.kid.clone()).collect()
    }

    /// When `false`, the discovery document and the JWKS answer 404 (Entra then fails with
    /// AADSTS90061).
    pub fn set_discovery_available(&self, available: bool) {
        self.inner
            .discovery_available
            .store(available, Ordering::SeqCst);
    }

    /// The JWKS document currently published.
    pub fn jwks(&self) -> Value {
        self.inner.jwks()
    }
}

/// The parameters of a projected service-account token.
#[derive(Clone, Debug)]
pub struct ServiceAccountToken {
    /// Namespace of the service account.
    pub namespace: String,
    /// Name of the service account.
    pub service_account: String,
    /// `aud` values (serialized as an array, as Kubernetes does).
    pub audiences: Vec<String>,
    /// `exp - iat`.
    pub lifetime: Duration,
    /// `iat` (and `nbf`); `None` means now.
    pub issued_at: Option<OffsetDateTime>,
    /// The bound pod's name.
    pub pod_name: String,
    /// The pod's node name.
    pub node_name: String,
}

impl Default for ServiceAccountToken {
    fn default() -> Self {
        ServiceAccountToken {
            namespace: "default".to_owned(),
            service_account: "workload".to_owned(),
            audiences: vec![AZURE_AD_TOKEN_EXCHANGE.to_owned()],
            lifetime: Duration::from_secs(3600),
            issued_at: None,
            pod_name: "workload-7d4b9c".to_owned(),
            node_name: "ip-10-0-1-23.ec2.internal".to_owned(),
        }
    }
}

impl ServiceAccountToken {
    /// A token for `namespace`/`service_account` with the other defaults.
    pub fn new(namespace: impl Into<String>, service_account: impl Into<String>) -> Self {
        ServiceAccountToken {
            namespace: namespace.into(),
            service_account: service_account.into(),
            ..Default::default()
        }
    }

    /// `system:serviceaccount:<namespace>:<name>`.
    pub fn subject(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }

    /// The claim set for issuer `iss`.
    pub fn claims(&self, iss: &str) -> Value {
        let iat = self.issued_at.unwrap_or_else(now).unix_timestamp();
        let lifetime = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX / 4);
        let exp = iat.saturating_add(lifetime);
        let sa_uid = stable_uuid(&format!(
            "sa/{}/{}/{}",
            iss, self.namespace, self.service_account
        ));
        let pod_uid = stable_uuid(&format!("pod/{}/{}/{}", iss, self.namespace, self.pod_name));
        let node_uid = stable_uuid(&format!("node/{}/{}", iss, self.node_name));
        json!({
            "aud": self.audiences,
            "exp": exp,
            "iat": iat,
            "iss": iss,
            "jti": uuid_v4(),
            "kubernetes.io": {
                "namespace": self.namespace,
                "node": {"name": self.node_name, "uid": node_uid},
                "pod": {"name": self.pod_name, "uid": pod_uid},
                "serviceaccount": {"name": self.service_account, "uid": sa_uid},
                "warnafter": exp,
            },
            "nbf": iat,
            "sub": self.subject(),
        })
    }
}
