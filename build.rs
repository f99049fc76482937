//! Renders the docs/ pages that errors and `doctor` link to as docs-only modules (src/lib.rs) with
//! links that work on docs.rs as they do on GitHub: a copy of each page goes to `OUT_DIR` with its
//! relative links to other rendered pages (`](security.md#anchor)`) rewritten as intra-doc links to
//! their modules (`](crate::guides::security#anchor)`), which rustdoc checks and resolves. The
//! sources keep their relative links for GitHub. tests/doc_links.rs checks the rewritten pages
//! with these same functions. No dependencies.

use std::path::Path;

/// Each rendered docs/ page and its docs-only module. Released error messages link
/// `troubleshooting` and `aws_outbound` (`ProblemId::documentation_url`) and `doctor` links
/// `guides::self_managed`: never move a module. Every page a rendered page links to is rendered.
pub const PAGES: &[(&str, &str)] = &[
    ("troubleshooting.md", "troubleshooting"),
    ("aws-outbound.md", "aws_outbound"),
    ("security.md", "guides::security"),
    ("self-managed.md", "guides::self_managed"),
    ("eks.md", "guides::eks"),
    ("chain.md", "guides::chain"),
];

/// `page` (Markdown) with each link to a rendered page, `](name.md)` or `](name.md#anchor)`, as an
/// intra-doc link to its module (`](crate::module)`, `](crate::module#anchor)`), and each link to
/// the README (`](../README.md#anchor)`, rendered as the crate root) as `](crate#anchor)`. Every
/// other link is kept as it is.
pub fn rewrite(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    let mut rest = page;
    while let Some(i) = rest.find("](") {
        let (before, after) = rest.split_at(i + 2);
        out.push_str(before);
        let end = after.find(')').unwrap_or(after.len());
        let target = &after[..end];
        match rustdoc_target(target) {
            Some(rewritten) => out.push_str(&rewritten),
            None => out.push_str(target),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The intra-doc target of a link to a rendered page or the README, else `None`.
fn rustdoc_target(target: &str) -> Option<String> {
    let (file, anchor) = match target.split_once('#') {
        Some((file, anchor)) => (file, Some(anchor)),
        None => (target, None),
    };
    let module = if file == "../README.md" {
        "crate".to_owned()
    } else {
        let (_, module) = PAGES.iter().find(|(name, _)| *name == file)?;
        format!("crate::{module}")
    };
    Some(match anchor {
        Some(anchor) => format!("{module}#{anchor}"),
        None => module,
    })
}

#[allow(dead_code)] // tests/doc_links.rs includes this file for `PAGES` and `rewrite`.
fn main() {
    let out = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    for (file, _) in PAGES {
        let source = Path::new("docs").join(file);
        println!("cargo::rerun-if-changed={}", source.display());
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
        let copy = Path::new(&out).join(file);
        std::fs::write(&copy, rewrite(&text))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", copy.display()));
    }
}
