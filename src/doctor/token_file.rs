//! Check 2, `token-file`: the projected token file, its volume layout, and its content; then
//! the token checks of [`super::claims`] on it.

use super::{
    Check, CheckId, Doctor, Found, Inputs, Status, claims, fmt_from_now, opt, with_source,
};
use crate::assertion::TokenFileSource;
use crate::assertion::file_read::{FileProblem, read_token_file};
use crate::assertion::token_file::{check_path, read_token, token_text};
use crate::escape;
use std::path::Path;
use std::time::SystemTime;
use time::OffsetDateTime;

/// Checks 2 to 5 on the token file.
pub(super) fn check(d: &mut Doctor, inputs: &Inputs) -> Found {
    const CHECKS: &[CheckId] = &[
        CheckId::TokenFile,
        CheckId::Jwt,
        CheckId::Audience,
        CheckId::Expiry,
    ];
    let Some((source, token, modified)) = check_token_file(d, inputs) else {
        d.skip(
            CHECKS,
            "no token file the credential would read (see `configuration` and `token-file`)",
        );
        return Found::default();
    };
    let Some(jwt) = claims::check_jwt(d, &token) else {
        d.skip(CHECKS, "the token file does not hold a JWT (see `jwt`)");
        return Found::default();
    };
    Found {
        usable: claims::check_audience(d, &jwt, source)
            & claims::check_expiry(d, &jwt, source, modified),
        audience: source
            .verdict(&jwt.claims)
            .credential_audience(&jwt.claims, &source.expected_audience),
        jwt: Some((token, jwt)),
        source: None,
    }
}

/// How the token file is laid out: the kubelet's atomic writer, another symlink, or a plain file;
/// `true` for the atomic writer.
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
    if let (true, Some(dir), Some(name)) = (via_data, path.parent(), path.file_name())
        && let Ok(ts) = std::fs::read_link(dir.join("..data"))
    {
        return (
            format!(
                "projected volume (kubelet atomic writer): {} -> {} -> {}",
                escape::path(Path::new(name)),
                escape::path(&target),
                escape::path(&ts)
            ),
            true,
        );
    }
    (format!("a symlink to {}", escape::path(&target)), false)
}

/// Check 2: the credential's own path rule, bounded read and text check
/// ([`check_path`], [`read_token_file`], [`token_text`]), with what a report adds: the volume
/// layout, when the file was last written, its size.
fn check_token_file<'a>(
    d: &mut Doctor,
    inputs: &'a Inputs,
) -> Option<(&'a TokenFileSource, String, Option<SystemTime>)> {
    let (source, from) = inputs.token_file.as_ref()?;
    let p = source.path();
    let shown = escape::path(p);
    let check = Check::new(
        CheckId::TokenFile,
        Status::Ok,
        format!("{shown} is readable"),
    )
    .detail("path", with_source(&shown, from));
    let (allow, expected) = (source.allow_foreign_audience, &source.expected_audience);
    if let Err(e) = check_path(p, &source.denied, allow, expected) {
        // Read here only to show whose token it is; never sent.
        let mut check = check.refused(&e);
        if let Ok(c) = read_token(p).map(|t| t.claims) {
            check = check
                .detail("its iss", opt(c.iss.as_deref()))
                .detail("its sub", opt(c.sub.as_deref()))
                .detail("its aud", c.audiences_display());
        }
        d.push(check);
        return None;
    }
    let fail = |check: Check, problem: FileProblem| {
        check
            .outcome(Status::Fail, format!("{shown} {}", problem.what))
            .fix(problem.fix)
            .problem(problem.problem)
    };
    let content = match read_token_file(p) {
        Ok(c) => c,
        Err(problem) => {
            d.push(fail(check, problem));
            return None;
        }
    };
    let (layout, projected) = describe_layout(p);
    let mut check = check.detail("layout", layout);
    if let Some(modified) = content.modified {
        check = check.detail(
            "last written",
            fmt_from_now(OffsetDateTime::from(modified), d.now),
        );
    }
    check = check.detail("size", format!("{} bytes", content.bytes.len()));
    let token = match token_text(&content.bytes) {
        Ok(t) => t,
        Err(problem) => {
            d.push(fail(check, problem));
            return None;
        }
    };
    if token.len() != content.bytes.len() {
        check = check.detail("whitespace", "surrounding whitespace (trimmed, harmless)");
    }
    if !projected {
        check = check.detail(
            "note",
            "not a projected volume: nothing rotates this file unless you do. The `expiry` check tells whether it is current.",
        );
    }
    d.push(check);
    Some((source, token.to_string(), content.modified))
}
