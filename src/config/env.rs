//! [`Env`], the environment the credential reads (the process environment or a fixed map).

use super::invalid;
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

    /// Whether foreign audiences are allowed: the option `allow_foreign_audience`, or
    /// [`AZURE_FEDERATED_TOKEN_ALLOW_FOREIGN_AUDIENCE`](super::AZURE_FEDERATED_TOKEN_ALLOW_FOREIGN_AUDIENCE)
    /// set to `true` or `1`.
    pub(crate) fn allow_foreign_audience(&self, option: bool) -> bool {
        let var = self.var(super::AZURE_FEDERATED_TOKEN_ALLOW_FOREIGN_AUDIENCE);
        option || var.is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1")
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
            let problem = format!(
                "the environment variable {name} is set, but its value is not valid UTF-8 \
                 ({shown}); it is not used"
            );
            invalid(name, &problem, fix()).named(Some(credential))
        })
    }
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
