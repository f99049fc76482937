// The docs/ pages rendered as docs-only modules, and how their relative links are rewritten for
// rustdoc (docs.rs). Included by build.rs, which writes the rewritten copies to OUT_DIR, and by
// tests/it/doc_links.rs, which checks them. No dependencies; plain comments only (`include!`
// takes no inner attributes).

/// Each docs/ page and its docs-only module. Released error messages link `troubleshooting` and
/// `aws_outbound` (`ProblemId::documentation_url`), `doctor` links `guides::self_managed` and the
/// custom-transport WARN `guides::security` (`Page::url`): never move a module.
pub const PAGES: &[(&str, &str)] = &[
    ("troubleshooting.md", "troubleshooting"),
    ("aws-outbound.md", "aws_outbound"),
    ("security.md", "guides::security"),
    ("self-managed.md", "guides::self_managed"),
    ("eks.md", "guides::eks"),
    ("chain.md", "guides::chain"),
    ("reliability.md", "guides::reliability"),
    ("performance.md", "guides::performance"),
    ("recipes.md", "guides::recipes"),
    ("irsa.md", "guides::irsa"),
    ("multi-cluster.md", "guides::multi_cluster"),
    ("helm.md", "guides::helm"),
    ("architecture.md", "guides::architecture"),
];

/// `page` (Markdown; README.md if `readme`, else a page of docs/) with its relative links
/// rewritten for rustdoc as the module docs say. A link to a docs/ file that is not in [`PAGES`]
/// is kept as it is (and tests/it/doc_links.rs fails on it); so are URLs and `#anchor` links.
pub fn rewrite(page: &str, readme: bool) -> String {
    let mut out = String::with_capacity(page.len());
    let mut rest = page;
    while let Some(i) = rest.find("](") {
        let (before, after) = rest.split_at(i + 2);
        let end = after.find(')').unwrap_or(after.len());
        let target = &after[..end];
        match rustdoc_target(target, readme) {
            Target::Keep => {
                out.push_str(before);
                out.push_str(target);
                rest = &after[end..];
            }
            Target::Link(rewritten) => {
                out.push_str(before);
                out.push_str(&rewritten);
                rest = &after[end..];
            }
            Target::Text => {
                // `[text](path)` to `text`: drop the `[` that opens the text, `](path)`.
                let text = &before[..before.len() - 2];
                match text.rfind('[') {
                    Some(open) => {
                        out.push_str(&text[..open]);
                        out.push_str(&text[open + 1..]);
                    }
                    None => out.push_str(text),
                }
                rest = after.get(end + 1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

/// What a link target becomes on docs.rs.
enum Target {
    /// Unchanged: a URL, an anchor on the same page, or a docs/ file without a module.
    Keep,
    /// This intra-doc link.
    Link(String),
    /// Plain text: a file docs.rs does not have.
    Text,
}

fn rustdoc_target(target: &str, readme: bool) -> Target {
    if target.is_empty() || target.starts_with('#') || target.contains("://") {
        return Target::Keep;
    }
    let (file, anchor) = match target.split_once('#') {
        Some((file, anchor)) => (file, Some(anchor)),
        None => (target, None),
    };
    // The path from the repository's root.
    let from_root = match file.strip_prefix("../") {
        _ if readme => file.to_owned(),
        Some(outside) => outside.to_owned(),
        None => format!("docs/{file}"),
    };
    let module = if from_root == "README.md" {
        "crate".to_owned()
    } else if let Some(name) = from_root.strip_prefix("docs/") {
        match PAGES.iter().find(|(page, _)| *page == name) {
            Some((_, module)) => format!("crate::{module}"),
            None => return Target::Keep,
        }
    } else {
        return Target::Text;
    };
    Target::Link(match anchor {
        Some(anchor) => format!("{module}#{anchor}"),
        None => module,
    })
}
