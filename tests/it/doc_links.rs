//! The documentation pages errors and `doctor` link to work on docs.rs: build.rs's rewrite of
//! docs/*.md and README.md (the copies src/lib.rs renders) leaves no relative link that docs.rs
//! cannot resolve, every intra-doc link names a rendered page, and every `#anchor` exists on its
//! target page.
//! `RUSTDOCFLAGS="-D warnings" cargo doc` checks that each module path resolves; this checks the
//! rest, which rustdoc does not.

mod links {
    include!("../../docs/links.rs");
}

use links::{PAGES, rewrite};

fn source(file: &str) -> String {
    let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The link targets of a Markdown page: what follows each `](` up to the `)`.
fn link_targets(page: &str) -> Vec<&str> {
    page.split("](")
        .skip(1)
        .map(|rest| &rest[..rest.find(')').unwrap_or(rest.len())])
        .collect()
}

/// The anchors a page defines: `<a id="...">`, and each heading's id (rustdoc's and GitHub's
/// rule: lowercase letters, digits, `-` and `_` kept, spaces to `-`, the rest dropped). Lines in
/// code blocks are not headings.
fn anchors(page: &str) -> Vec<String> {
    let mut found: Vec<String> = page
        .split("<a id=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap_or(0)].to_owned())
        .collect();
    let mut in_code = false;
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            let text = line.trim_start_matches('#').trim();
            let slug = text
                .chars()
                .filter_map(|c| match c {
                    c if c.is_alphanumeric() || c == '-' || c == '_' => {
                        Some(c.to_lowercase().next().unwrap_or(c))
                    }
                    c if c.is_whitespace() => Some('-'),
                    _ => None,
                })
                .collect();
            found.push(slug);
        }
    }
    found
}

/// The source of the page an intra-doc target (`crate::module`, `crate`) renders.
fn page_of(module: &str) -> Option<String> {
    if module == "crate" {
        return Some(source("README.md"));
    }
    let module = module.strip_prefix("crate::")?;
    let (file, _) = PAGES.iter().find(|(_, m)| *m == module)?;
    Some(source(&format!("docs/{file}")))
}

#[test]
fn every_page_in_docs_is_rendered() {
    let lib = source("src/lib.rs");
    let dir = format!("{}/docs", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".md"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = PAGES.iter().map(|(file, _)| file.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed, "docs/*.md and build.rs's PAGES differ");
    for (file, module) in PAGES {
        let name = module.rsplit("::").next().unwrap();
        assert!(
            lib.contains(&format!("concat!(env!(\"OUT_DIR\"), \"/{file}\"))]"))
                && lib.contains(&format!("pub mod {name} {{}}")),
            "src/lib.rs does not render docs/{file} as `{module}`"
        );
    }
    assert!(lib.contains("#![doc = include_str!(concat!(env!(\"OUT_DIR\"), \"/README.md\"))]"));
}

#[test]
fn every_link_of_every_rendered_page_resolves_on_docs_rs() {
    let mut checked = 0;
    let pages = PAGES
        .iter()
        .map(|(file, _)| format!("docs/{file}"))
        .chain(["README.md".to_owned()]);
    for file in pages {
        let page = source(&file);
        let rendered = rewrite(&page, file == "README.md");
        for target in link_targets(&rendered) {
            if target.starts_with("https://") || target.starts_with("http://") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let linked = if path.is_empty() {
                page.clone()
            } else if path == "crate" || path.starts_with("crate::") {
                page_of(path).unwrap_or_else(|| {
                    panic!("{file}: `{target}` names no rendered page (build.rs PAGES)")
                })
            } else {
                panic!(
                    "{file}: the link `{target}` is relative and 404 on docs.rs: link a \
                     page of build.rs's PAGES (or add it there and to src/lib.rs), use an \
                     absolute URL, or write plain text"
                )
            };
            assert!(
                anchor.is_empty() || anchors(&linked).iter().any(|a| a == anchor),
                "{file}: `{target}`: the linked page has no anchor #{anchor}"
            );
            checked += 1;
        }
    }
    // troubleshooting ↔ security, self-managed → eks, the README's, ...
    assert!(checked >= 30, "only {checked} links checked");
}

#[test]
fn the_rewrite_turns_links_to_rendered_pages_into_intra_doc_links() {
    assert_eq!(
        rewrite(
            "[a](security.md#foreign-audience), [b](chain.md), [c](../README.md#x), \
             [d](missing.md), [e](#here), [f](https://example.com/y.md), [`g`](../src/g.rs).",
            false
        ),
        "[a](crate::guides::security#foreign-audience), [b](crate::guides::chain), \
         [c](crate#x), [d](missing.md), [e](#here), [f](https://example.com/y.md), `g`."
    );
    assert_eq!(
        rewrite(
            "[a](docs/eks.md#5-check), [b](#here), [c](emulator/README.md), [d](docs/x.md)",
            true
        ),
        "[a](crate::guides::eks#5-check), [b](#here), c, [d](docs/x.md)"
    );
}

#[test]
fn anchors_are_the_explicit_ids_and_the_heading_ids() {
    let page =
        "<a id=\"issuer\"></a>\n## 1. Choose the issuer's `URL`\n```sh\n# not a heading\n```\n";
    assert_eq!(anchors(page), ["issuer", "1-choose-the-issuers-url"]);
}
