//! [`Env`], the environment the credential reads (the process environment or a fixed map), and
//! the refusal of a configuration variable whose value is not Unicode.

use super::errors::{authority_fix, client_id_fix, invalid_in, tenant_id_fix};
use super::{
    AUDIENCE_PUBLIC, AZURE_AUTHORITY_HOST, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_AUDIENCE,
    AZURE_TENANT_ID, ConfigInputs, Sourced, ValueSource,
};
use crate::error::CredentialError;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::sync::Arc;

/// The environment seen by the credential: the process environment (default) or a fixed map.
#[derive(Clone, Default)]
pub struct Env(Option<Arc<HashMap<OsString, OsString>>>);

impl Env {
    /// The process environment (the default).
    pub fn process() -> Self {
        Self(None)
    }

    /// A fixed environment holding exactly these variables.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self::from_os_pairs(pairs.into_iter().map(|(k, v)| (k.into(), v.into())))
    }

    /// A fixed environment holding exactly these variables, whose values may be any bytes the
    /// operating system allows (as [`std::env::vars_os`] gives them), e.g. a path that is not
    /// UTF-8, or a value to check that the credential refuses one that is not.
    pub fn from_os_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        Self(Some(Arc::new(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )))
    }

    /// The value of `name`, if set: from the fixed map, or from the process environment (a value
    /// that is not Unicode counts as unset, as does an empty value; the credential's own
    /// variables set to such a value are refused when the credential is built, except
    /// `AZURE_FEDERATED_TOKEN_FILE`, which is a path and may be any bytes).
    pub fn var(&self, name: &str) -> Option<String> {
        self.var_os(name).and_then(|v| v.into_string().ok())
    }

    /// The value of `name` as the operating system holds it, if set and not empty.
    pub(crate) fn var_os(&self, name: &str) -> Option<OsString> {
        let value = match &self.0 {
            Some(map) => map.get(OsStr::new(name)).cloned(),
            None => std::env::var_os(name),
        };
        value.filter(|v| !v.is_empty())
    }

    /// [`Env::var`], except that a value that is set but is not Unicode (which `var` counts as
    /// unset) is an invalid-configuration error of `credential` naming `name`, showing the value
    /// lossily (U+FFFD for each byte sequence that is not UTF-8; not shown when it is a `secret`),
    /// with `fix`.
    pub(crate) fn var_checked(
        &self,
        credential: &'static str,
        name: &str,
        secret: bool,
        fix: impl FnOnce() -> String,
    ) -> Result<Option<String>, CredentialError> {
        let Some(raw) = self.var_os(name) else {
            return Ok(None);
        };
        raw.into_string().map(Some).map_err(|raw| {
            let shown = if secret {
                "not shown: it is a secret".to_owned()
            } else {
                format!(
                    "{:?}, U+FFFD marks the bytes that are not",
                    raw.to_string_lossy()
                )
            };
            invalid_in(
                credential,
                name,
                &format!(
                    "the environment variable {name} is set, but its value is not valid UTF-8 \
                     ({shown}); it is not used"
                ),
                fix(),
            )
        })
    }
}

/// Refuse a configuration variable the credential would read that is set to a value that is not
/// Unicode: [`Env::var`] counts it as unset, which would say "not configured" for a variable that
/// is set, or silently fall back to the public cloud for `AZURE_AUTHORITY_HOST`.
/// `AZURE_FEDERATED_TOKEN_FILE` is not refused: it is a path, which on Linux may be any bytes,
/// and is used as the operating system gives it (like the `token_file_path` option's `PathBuf`).
pub(super) fn check_unicode(inputs: &ConfigInputs<'_>) -> Result<(), CredentialError> {
    let authority = || {
        let source = ValueSource::EnvVar(AZURE_AUTHORITY_HOST);
        authority_fix(&Sourced::new(String::new(), source), None)
    };
    let audience = || {
        format!(
            "set {AZURE_FEDERATED_TOKEN_AUDIENCE} to the token's audience, e.g. {AUDIENCE_PUBLIC}, or unset it"
        )
    };
    // Each variable, whether the credential reads it (no option given), and its fix.
    let read: [(_, _, &dyn Fn() -> String); 4] = [
        (AZURE_CLIENT_ID, inputs.client_id.is_none(), &client_id_fix),
        (AZURE_TENANT_ID, inputs.tenant_id.is_none(), &tenant_id_fix),
        (AZURE_AUTHORITY_HOST, inputs.cloud.is_none(), &authority),
        (
            AZURE_FEDERATED_TOKEN_AUDIENCE,
            inputs.expected_audience.is_none(),
            &audience,
        ),
    ];
    for (var, used, fix) in read {
        if used {
            inputs
                .env
                .var_checked("WorkloadIdentityCredential", var, false, fix)?;
        }
    }
    Ok(())
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: values may be anything, including secrets of other credentials.
        match &self.0 {
            None => f.write_str("Env::process()"),
            Some(map) => {
                let mut names: Vec<&OsString> = map.keys().collect();
                names.sort();
                f.debug_tuple("Env::from_pairs").field(&names).finish()
            }
        }
    }
}
