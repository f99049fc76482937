//! Entra's data: the directory (tenants → applications → federated identity credentials), the
//! token endpoint's settings, and the key that signs access tokens.

use crate::keys::{SigningKey, jwks};
use crate::kube::AZURE_AD_TOKEN_EXCHANGE;
use crate::util::{b64, now, random_bytes, stable_uuid};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;

/// A federated identity credential on an application or user-assigned managed identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederatedCredential {
    /// Display name (unused in matching).
    pub name: String,
    /// Exact `iss` to match (case-sensitive, trailing slash significant).
    pub issuer: String,
    /// Exact `sub` to match.
    pub subject: String,
    /// Accepted audiences (Entra allows one; any of them matches any `aud` of the token).
    pub audiences: Vec<String>,
    /// How long after it is added the credential starts to match (a credential Entra has not
    /// propagated yet): until then a matching assertion is refused with AADSTS700213, as Entra
    /// does. Measured on the emulator's clock ([`Emulator::advance_clock`](crate::Emulator::advance_clock)).
    /// Zero by default.
    pub valid_after: Duration,
}

impl FederatedCredential {
    /// A credential for `issuer` and `subject` with the audience `api://AzureADTokenExchange`.
    pub fn new(issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        let subject = subject.into();
        FederatedCredential {
            name: format!("fic-{}", subject.replace(':', "-")),
            issuer: issuer.into(),
            subject,
            audiences: vec![AZURE_AD_TOKEN_EXCHANGE.to_owned()],
            valid_after: Duration::ZERO,
        }
    }

    /// Replaces [`valid_after`](Self::valid_after).
    pub fn with_valid_after(mut self, valid_after: Duration) -> Self {
        self.valid_after = valid_after;
        self
    }

    /// Replaces the audiences.
    pub fn with_audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }
}

/// The shape of successful token responses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessTokenOptions {
    /// `expires_in` and `exp - now` (default 3599 s).
    pub lifetime: Duration,
    /// `ext_expires_in`; `None` means the same as `lifetime`.
    pub ext_expires_in: Option<Duration>,
    /// `refresh_in`, omitted when `None` (the default).
    pub refresh_in: Option<Duration>,
    /// Send `expires_in`, `ext_expires_in` and `refresh_in` as JSON strings.
    pub numbers_as_strings: bool,
}

impl Default for AccessTokenOptions {
    fn default() -> Self {
        AccessTokenOptions {
            lifetime: Duration::from_secs(3599),
            ext_expires_in: None,
            refresh_in: None,
            numbers_as_strings: false,
        }
    }
}

/// Entra's side of an emulator, shared by the token endpoint, Entra's discovery, the resource
/// APIs and the [`Emulator`](crate::Emulator) handle.
pub(crate) struct Directory {
    /// `https://127.0.0.1:PORT`.
    pub(crate) authority: String,
    /// Signs every access token. Like Entra's, it is shared by every tenant; it is also shared
    /// by every emulator of the process (saves an RSA key generation per start).
    key: Arc<SigningKey>,
    /// How Entra fetches issuers' discovery documents and JWKS.
    pub(crate) oidc_client: reqwest::Client,
    pub(crate) registry: Mutex<Registry>,
    pub(crate) token_options: Mutex<AccessTokenOptions>,
    /// Longest assertion lifetime (`exp - iat`) accepted; longer is AADSTS70023. `None`: no limit.
    pub(crate) max_assertion_lifetime: Mutex<Option<Duration>>,
}

impl Directory {
    pub(crate) fn new(authority: &str, oidc_client: reqwest::Client) -> Directory {
        static KEY: OnceLock<Arc<SigningKey>> = OnceLock::new();
        Directory {
            authority: authority.to_owned(),
            key: KEY.get_or_init(|| Arc::new(SigningKey::generate())).clone(),
            oidc_client,
            registry: Mutex::default(),
            token_options: Mutex::default(),
            max_assertion_lifetime: Mutex::default(),
        }
    }

    /// The access-token signing key as a JWKS.
    pub(crate) fn jwks(&self) -> Value {
        jwks([&*self.key])
    }

    /// Signs an access token for `resource`: RS256, header `typ` `JWT`; claims `aud` = resource,
    /// `iss` `https://sts.windows.net/{tenant}/`, `tid`, `appid`, `azp`, `oid` = `sub` (stable
    /// per client), `idtyp` `app`, `ver` `1.0`, `iat` = `nbf` = now − 5 min, `exp` = now +
    /// `lifetime`, random `aio` and `uti`.
    pub(crate) fn issue_access_token(
        &self,
        tenant: &str,
        client_id: &str,
        resource: &str,
        lifetime: Duration,
    ) -> String {
        let now = now().unix_timestamp();
        let oid = stable_uuid(&format!(
            "oid/{}/{}",
            tenant,
            client_id.to_ascii_lowercase()
        ));
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 4);
        let sts = format!("https://sts.windows.net/{tenant}/");
        let claims = json!({
            "aud": resource,
            "iss": sts,
            "iat": now - 300,
            "nbf": now - 300,
            "exp": now.saturating_add(lifetime),
            "aio": b64(random_bytes::<24>()),
            "appid": client_id,
            "appidacr": "2",
            "azp": client_id,
            "azpacr": "2",
            "idp": sts,
            "idtyp": "app",
            "oid": oid,
            "rh": "0.emulator.",
            "sub": oid,
            "tid": tenant,
            "uti": b64(random_bytes::<16>()),
            "ver": "1.0",
        });
        self.key.sign_jwt(&claims, Some("JWT"))
    }
}

/// A federated credential and the time from which it matches.
pub(crate) type Registered = (FederatedCredential, OffsetDateTime);

/// Tenants → applications → federated credentials. Tenant and client ids are GUIDs (or domain
/// names): Entra compares them case-insensitively.
#[derive(Default, Debug)]
pub(crate) struct Registry {
    tenants: BTreeMap<String, BTreeMap<String, Vec<Registered>>>,
    /// The first tenant added: the tenant of Key Vault challenges.
    pub(crate) default_tenant: Option<String>,
    /// How far this emulator's clock for federated credentials' validity is ahead of the real one.
    pub(crate) clock_offset: Duration,
}

fn key(id: &str) -> String {
    id.to_ascii_lowercase()
}

impl Registry {
    pub(crate) fn add_tenant(&mut self, tenant: &str) {
        self.tenants.entry(key(tenant)).or_default();
        self.default_tenant.get_or_insert_with(|| tenant.to_owned());
    }

    pub(crate) fn add_application(
        &mut self,
        tenant: &str,
        client_id: &str,
    ) -> &mut Vec<Registered> {
        self.add_tenant(tenant);
        self.tenants
            .entry(key(tenant))
            .or_default()
            .entry(key(client_id))
            .or_default()
    }

    /// The emulator's clock for federated credentials' validity: the real one plus `clock_offset`.
    pub(crate) fn now(&self) -> OffsetDateTime {
        now() + self.clock_offset
    }

    /// Adds `fic`, replacing one with the same issuer and subject (unique per application).
    pub(crate) fn add_fic(&mut self, tenant: &str, client_id: &str, fic: FederatedCredential) {
        let valid_from = self.now() + fic.valid_after;
        let fics = self.add_application(tenant, client_id);
        fics.retain(|(f, _)| !(f.issuer == fic.issuer && f.subject == fic.subject));
        fics.push((fic, valid_from));
    }

    pub(crate) fn remove_fics(&mut self, tenant: &str, client_id: &str) {
        if let Some(fics) = self
            .tenants
            .get_mut(&key(tenant))
            .and_then(|apps| apps.get_mut(&key(client_id)))
        {
            fics.clear();
        }
    }

    pub(crate) fn has_tenant(&self, tenant: &str) -> bool {
        self.tenants.contains_key(&key(tenant))
    }

    /// The application's federated credentials; `None` if it is not registered.
    pub(crate) fn fics(&self, tenant: &str, client_id: &str) -> Option<&[Registered]> {
        Some(self.tenants.get(&key(tenant))?.get(&key(client_id))?)
    }
}
