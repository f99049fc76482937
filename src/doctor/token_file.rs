//! Check 2, `token-file`: the projected token file, its volume layout, and its content; then
//! the token checks of [`super::claims`] on it.

use super::{Check, CheckId, Doctor, Inputs, Status, claims, fmt_duration, fmt_time, with_source};
use crate::assertion::file_read::read_token_file;
use crate::assertion::foreign::foreign_path;
use crate::assertion::token_file::{dedicated_token_fix, token_text};
use crate::config::Sourced;
use crate::jwt::DecodedJwt;
use crate::problem::ProblemId;
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
        Some(path) => check_token_file(d, path, inputs),
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
            *usable &= claims::check_audience(d, jwt, inputs);
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
                        .map(|f| crate::escape::path(Path::new(f)))
                        .unwrap_or_default(),
                    crate::escape::path(&target),
                    crate::escape::path(&ts)
                ),
                true,
            );
        }
    }
    (
        format!("a symlink to {}", crate::escape::path(&target)),
        false,
    )
}

/// Check 2: the credential's own path rule, bounded read and text check
/// ([`foreign_path`], [`read_token_file`], [`token_text`]), with what a report adds: the volume
/// layout, when the file was last written, its size.
fn check_token_file(d: &mut Doctor, path: &Sourced<PathBuf>, inputs: &Inputs) -> Option<String> {
    let p = &path.value;
    let shown = crate::escape::path(p);
    let base = |status, summary: String| {
        Check::new(CheckId::TokenFile, status, summary)
            .detail("path", with_source(&shown, &path.source))
    };
    if let Some(foreign) = foreign_path(p, &inputs.denied_paths) {
        let summary = format!(
            "{shown} is {}, a credential for {}",
            foreign.what,
            foreign.kind.describe()
        );
        if !inputs.allow_foreign_audience {
            d.push(
                base(Status::Fail, format!("refused: {summary}"))
                    .fix(dedicated_token_fix(&inputs.expected_audience))
                    .problem(ProblemId::ForeignAudience),
            );
            return None;
        }
    }
    let content = match read_token_file(p) {
        Ok(c) => c,
        Err(problem) => {
            d.push(
                base(Status::Fail, format!("{shown} {}", problem.what))
                    .fix(problem.fix)
                    .problem(problem.problem),
            );
            return None;
        }
    };
    let (layout, projected) = describe_layout(p);
    let mut check = base(Status::Ok, String::new()).detail("layout", layout);
    if let Some(modified) = content.modified {
        let m = OffsetDateTime::from(modified);
        check = check.detail(
            "last written",
            format!("{} ({} ago)", fmt_time(m), fmt_duration(d.now - m)),
        );
    }
    check = check.detail("size", format!("{} bytes", content.bytes.len()));
    let token = match token_text(&content.bytes) {
        Ok(t) => t,
        Err(problem) => {
            check.status = Status::Fail;
            check.summary = format!("{shown} {}", problem.what);
            d.push(check.fix(problem.fix).problem(problem.problem));
            return None;
        }
    };
    if token.len() != content.bytes.len() {
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
    Some(token.to_string())
}
