//! What to request instead of a scope the client-credentials flow cannot take: one function for
//! the credential's error and `doctor`.
//!
//! A workload identity gets app-only tokens, so its one scope is `<resource>/.default` (the
//! resource's application permissions). A delegated permission (`User.Read`,
//! `https://graph.microsoft.com/Mail.Send`) names a permission, not a resource: the fix is the
//! resource's `/.default`, never `<permission>/.default`.

use crate::error::CredentialError;
use crate::escape::escape;
use crate::problem::ProblemId;

/// Microsoft Graph, the resource of a bare delegated permission such as `User.Read`.
const GRAPH: &str = "https://graph.microsoft.com";

/// Whether `segment`, the last path segment of a scope, names a permission rather than part of a
/// resource's identifier: `User.Read`, `Mail.Send`, `user_impersonation`, `access_as_user`.
fn is_permission(segment: &str) -> bool {
    segment.contains('.') || segment == "user_impersonation" || segment.starts_with("access_as")
}

/// The `<resource>/.default` scope to request instead of `scope`, when one can be told:
///
/// - `https://graph.microsoft.com/User.Read` → `https://graph.microsoft.com/.default`;
/// - `User.Read`, `Mail.Send` (bare Graph permissions) → `https://graph.microsoft.com/.default`;
/// - `https://storage.azure.com`, `https://vault.azure.net/` → `https://storage.azure.com/.default`,
///   `https://vault.azure.net/.default`;
/// - `api://<app id>/access_as_user` → `api://<app id>/.default`.
///
/// - `" https://storage.azure.com/.default\n"` (surrounding whitespace, e.g. from a file or
///   `echo`) → `https://storage.azure.com/.default`.
///
/// `None` for a scope that is already `<resource>/.default`, and for one no resource can be read
/// from (empty, whitespace inside or control characters, a bare word).
pub fn suggested_scope(scope: &str) -> Option<String> {
    let trimmed = scope.trim();
    if trimmed != scope {
        return suggested_scope(trimmed)
            .or_else(|| is_default_scope(trimmed).then(|| trimmed.to_string()));
    }
    if scope.is_empty()
        || scope.ends_with("/.default")
        || scope.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let Some((scheme, rest)) = scope.split_once("://") else {
        // A bare delegated permission: Graph's (`User.Read`, `Mail.Send`, `offline_access`).
        return (scope.contains('.') || scope == "offline_access")
            .then(|| format!("{GRAPH}/.default"));
    };
    let rest = rest.trim_end_matches('/');
    if scheme.is_empty() || rest.is_empty() {
        return None;
    }
    let resource = match rest.rsplit_once('/') {
        Some((resource, last)) if is_permission(last) => resource,
        _ => rest,
    };
    Some(format!("{scheme}://{resource}/.default"))
}

/// Whether `scope` is `<resource>/.default` with a non-empty resource and nothing to trim.
fn is_default_scope(scope: &str) -> bool {
    scope
        .strip_suffix("/.default")
        .is_some_and(|r| !r.is_empty() && !r.chars().any(|c| c.is_whitespace() || c.is_control()))
}

/// The fix of an invalid scope (the credential's `invalid-scope` error, Entra's AADSTS1002012 and
/// 70011, `doctor`'s `scope` check): the scope to request instead of `scope`, else the form.
pub(crate) fn scope_fix(scope: Option<&str>) -> String {
    // The caller's scopes are written escaped (see `crate::escape`): one value, one line.
    let several: Vec<&str> = scope
        .map(|s| s.split_whitespace().collect())
        .unwrap_or_default();
    if several.len() > 1 {
        // OAuth's space-separated list in one string: one scope per call.
        let first = suggested_scope(several[0])
            .or_else(|| is_default_scope(several[0]).then(|| several[0].to_string()));
        return format!(
            "request one scope per call: this string holds {} space-separated scopes ({}){}.",
            several.len(),
            escape(&several.join(", ")),
            first
                .map(|s| format!(", e.g. {}", escape(&s)))
                .unwrap_or_default()
        );
    }
    match scope.and_then(suggested_scope) {
        Some(s) if scope.is_some_and(|raw| raw.trim() != raw) => {
            format!("request {}, without the surrounding whitespace.", escape(&s))
        }
        Some(s) => format!("request {}.", escape(&s)),
        None => "request exactly one scope of the form <resource>/.default, e.g. https://storage.azure.com/.default.".to_string(),
    }
}

/// Check scopes before anything else: Entra's client-credentials flow takes exactly one
/// `<resource>/.default` scope.
pub(crate) fn validate_scopes(scopes: &[&str]) -> Result<(), CredentialError> {
    let invalid = |facts: String, scope: Option<&str>| {
        CredentialError::new(ProblemId::InvalidScope, facts).with_fix(scope_fix(scope))
    };
    match scopes {
        [] => Err(invalid("no scope was requested.".into(), None)),
        [scope] if is_default_scope(scope) => Ok(()),
        [scope] => Err(invalid(
            format!(
                "scope {scope:?} cannot be requested with a workload identity; the client-credentials flow takes one scope of the form <resource>/.default."
            ),
            Some(scope),
        )),
        many => Err(invalid(
            format!(
                "{} scopes were requested ({}) but Entra issues a token for one resource at a time; request one <resource>/.default scope per call.",
                many.len(),
                escape(&many.join(", "))
            ),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCategory;

    #[test]
    fn the_resource_default_scope_is_suggested() {
        for (scope, want) in [
            (
                "https://graph.microsoft.com/User.Read",
                Some("https://graph.microsoft.com/.default"),
            ),
            ("User.Read", Some("https://graph.microsoft.com/.default")),
            (
                "https://graph.microsoft.com/Mail.Send",
                Some("https://graph.microsoft.com/.default"),
            ),
            (
                "https://storage.azure.com",
                Some("https://storage.azure.com/.default"),
            ),
            (
                "https://vault.azure.net/",
                Some("https://vault.azure.net/.default"),
            ),
            (
                "api://3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11/access_as_user",
                Some("api://3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11/.default"),
            ),
            (
                "https://management.azure.com/user_impersonation",
                Some("https://management.azure.com/.default"),
            ),
            (
                "https://contoso.com/api",
                Some("https://contoso.com/api/.default"),
            ),
            ("https://storage.azure.com/.default", None),
            ("", None),
            ("storage", None),
            ("https://a b/.default", None),
            ("https://", None),
            (
                " https://storage.azure.com/.default\n",
                Some("https://storage.azure.com/.default"),
            ),
            (
                "https://graph.microsoft.com/User.Read ",
                Some("https://graph.microsoft.com/.default"),
            ),
            (" ", None),
        ] {
            assert_eq!(suggested_scope(scope).as_deref(), want, "{scope:?}");
        }
    }

    #[test]
    fn a_scope_with_whitespace_gets_the_trimmed_scope_or_one_scope_per_call() {
        assert_eq!(
            scope_fix(Some(" https://storage.azure.com/.default ")),
            "request https://storage.azure.com/.default, without the surrounding whitespace."
        );
        // OAuth's space-separated list, as `az` and other SDKs take it.
        assert_eq!(
            scope_fix(Some(
                "https://storage.azure.com/.default https://vault.azure.net/.default"
            )),
            "request one scope per call: this string holds 2 space-separated scopes \
             (https://storage.azure.com/.default, https://vault.azure.net/.default), \
             e.g. https://storage.azure.com/.default."
        );
        assert_eq!(
            scope_fix(Some("User.Read Mail.Send")),
            "request one scope per call: this string holds 2 space-separated scopes \
             (User.Read, Mail.Send), e.g. https://graph.microsoft.com/.default."
        );
        assert_eq!(
            scope_fix(Some(" ")),
            "request exactly one scope of the form <resource>/.default, e.g. https://storage.azure.com/.default."
        );
    }

    #[test]
    fn the_callers_scopes_are_escaped_in_the_message() {
        let fix = scope_fix(Some(
            "https://a.example/.default\u{1b}[31m https://b.example/.default\n",
        ));
        assert!(!fix.chars().any(char::is_control), "{fix:?}");
        assert!(
            fix.contains(r"https://a.example/.default\u{1b}[31m"),
            "{fix}"
        );
        // The credential's error: the facts and the fix share the first line.
        for scopes in [
            &["https://a.example/.default\u{1b}[31m", "b\nc"][..],
            &["https://a.example/.default\u{1b}[31m\n"][..],
        ] {
            let e = validate_scopes(scopes).unwrap_err();
            let first = e.message().lines().next().unwrap();
            assert!(!first.chars().any(char::is_control), "{first:?}");
        }
    }

    #[test]
    fn scope_rules() {
        assert!(validate_scopes(&["https://storage.azure.com/.default"]).is_ok());
        assert!(validate_scopes(&["api://my-app/.default"]).is_ok());
        let e = validate_scopes(&[]).unwrap_err();
        assert!(e.message().contains("no scope"), "{e}");
        let e = validate_scopes(&["https://storage.azure.com"]).unwrap_err();
        assert!(
            e.message().contains("https://storage.azure.com/.default"),
            "{e}"
        );
        let e = validate_scopes(&["https://graph.microsoft.com/User.Read"]).unwrap_err();
        assert!(e.message().contains("<resource>/.default"), "{e}");
        let e = validate_scopes(&["a/.default", "b/.default"]).unwrap_err();
        assert!(e.message().contains("2 scopes"), "{e}");
        let e = validate_scopes(&["/.default"]).unwrap_err();
        assert_eq!(e.category(), ErrorCategory::InvalidScope);
    }
}
