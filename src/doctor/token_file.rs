//! Check 2, `token-file`: the projected token file, its volume layout, and its content; then
//! the token checks of [`super::claims`] on it.

use super::{Check, CheckId, Doctor, Inputs, Status, claims, fmt_duration, fmt_time, with_source};
use crate::config::{AZURE_FEDERATED_TOKEN_FILE, Sourced};
use crate::jwt::DecodedJwt;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Checks 2 to 5 on the token file: its JWT and decoded form when it can be used.
pub(super) fn file_assertion(
    d: &mut Doctor,
    inputs: &Inputs,
    usable: &mut bool,
) -> (Option<String>, Option<DecodedJwt>) {
    // 2. token file
    let token = match &inputs.token_file {
        Some(path) => check_token_file(d, path),
        None => {
            d.skip(
                CheckId::TokenFile,
                "no token file is configured (see `configuration`)",
            );
            None
        }
    };

    // 3. JWT
    let decoded = match &token {
        Some(t) => claims::check_jwt(d, t),
        None => {
            d.skip(CheckId::Jwt, "the token file could not be read");
            None
        }
    };

    // 4, 5. audience, expiry
    match &decoded {
        Some(jwt) => {
            *usable &= claims::check_audience(d, jwt, inputs) != Status::Fail;
            *usable &= claims::check_expiry(d, jwt);
        }
        None => {
            *usable = false;
            d.skip(CheckId::Audience, "no token");
            d.skip(CheckId::Expiry, "no token");
        }
    }
    (token, decoded)
}

/// How the token file is laid out: the kubelet's atomic writer, another symlink, or a plain file.
pub(super) fn describe_layout(path: &Path) -> (String, bool) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return ("(cannot stat)".into(), false);
    };
    if !meta.file_type().is_symlink() {
        return (
            "a regular file (not the kubelet's ..data layout of a projected volume)".into(),
            false,
        );
    }
    let target = std::fs::read_link(path).unwrap_or_default();
    let via_data = target
        .components()
        .next()
        .is_some_and(|c| c.as_os_str() == "..data");
    if via_data && let Some(dir) = path.parent() {
        let data = dir.join("..data");
        if let Ok(ts) = std::fs::read_link(&data) {
            return (
                format!(
                    "projected volume (kubelet atomic writer): {} -> {} -> {}",
                    path.file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    target.display(),
                    ts.display()
                ),
                true,
            );
        }
    }
    (format!("a symlink to {}", target.display()), false)
}

fn check_token_file(d: &mut Doctor, path: &Sourced<PathBuf>) -> Option<String> {
    let p = &path.value;
    let shown = p.display().to_string();
    let base = |status, summary: String| {
        Check::new(CheckId::TokenFile, status, summary)
            .detail("path", with_source(&shown, &path.source))
    };
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) => {
            let (summary, fix, anchor) = match e.kind() {
                std::io::ErrorKind::NotFound => (
                    format!("{shown} does not exist"),
                    format!(
                        "Mount a projected serviceAccountToken volume (audience api://AzureADTokenExchange, expirationSeconds: 3600) and point {AZURE_FEDERATED_TOKEN_FILE} at <mountPath>/<path>; `azure-identity-k8s setup` prints the pod spec. With the Azure Workload Identity webhook, label the pod azure.workload.identity/use: \"true\"."
                    ),
                    "token-file-missing",
                ),
                std::io::ErrorKind::PermissionDenied => (
                    format!("{shown} cannot be read: permission denied"),
                    "Set the projected volume's defaultMode: 0444, or the pod's securityContext.fsGroup to a group of the container user.".to_string(),
                    "token-file-unreadable",
                ),
                _ => (format!("{shown} cannot be read ({e})"), "Check the volume mount.".to_string(), "token-file-unreadable"),
            };
            d.push(base(Status::Fail, summary).fix(fix).docs(anchor));
            return None;
        }
    };
    if meta.is_dir() {
        d.push(
            base(Status::Fail, format!("{shown} is a directory"))
                .fix("Point the token file at <mountPath>/<path> of the serviceAccountToken projection, not at the mount directory.")
                .docs("token-file-is-a-directory"),
        );
        return None;
    }
    let (layout, projected) = describe_layout(p);
    let mut check = base(Status::Ok, String::new()).detail("layout", layout);
    if let Ok(modified) = meta.modified() {
        let m = OffsetDateTime::from(modified);
        check = check.detail(
            "last written",
            format!("{} ({} ago)", fmt_time(m), fmt_duration(d.now - m)),
        );
    }
    check = check.detail("size", format!("{} bytes", meta.len()));
    let bytes = match std::fs::read(p) {
        Ok(b) => b,
        Err(e) => {
            let fix = if e.kind() == std::io::ErrorKind::PermissionDenied {
                "Set the projected volume's defaultMode: 0444, or the pod's securityContext.fsGroup to a group of the container user."
            } else {
                "Check the volume mount."
            };
            check.status = Status::Fail;
            check.summary = format!("{shown} cannot be read ({e})");
            d.push(check.fix(fix).docs("token-file-unreadable"));
            return None;
        }
    };
    let Ok(text) = String::from_utf8(bytes) else {
        check.status = Status::Fail;
        check.summary = format!("{shown} is not text (not UTF-8)");
        d.push(check.fix("Point the token file at the JWT written by the kubelet for a serviceAccountToken projection.").docs("token-file-not-a-jwt"));
        return None;
    };
    let token = text.trim().to_string();
    if token.is_empty() {
        check.status = Status::Fail;
        check.summary = format!("{shown} is empty");
        d.push(
            check
                .fix("Use a projected serviceAccountToken volume; never copy the token into a Secret or ConfigMap.")
                .docs("token-file-empty"),
        );
        return None;
    }
    if token.len() != text.len() {
        check = check.detail("whitespace", "surrounding whitespace (trimmed, harmless)");
    }
    check.summary = format!("{shown} is readable");
    if !projected {
        check = check.detail(
            "note",
            "not a projected volume: nothing rotates this file unless you do. The `expiry` check tells whether it is current.",
        );
    }
    d.push(check);
    Some(token)
}
