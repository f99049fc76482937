//! Renders docs/*.md as docs-only modules and README.md as the crate root (src/lib.rs) with links
//! that work on docs.rs as they do on GitHub: a copy of each page goes to `OUT_DIR` with its
//! relative links rewritten for rustdoc. A link to another page (`](security.md#anchor)`, from the
//! README `](docs/security.md#anchor)`) becomes an intra-doc link to its module
//! (`](crate::guides::security#anchor)`), which rustdoc checks and resolves; a link to the README
//! becomes one to the crate root (`](crate#anchor)`); a link to any other file of the repository
//! (a source file, emulator/README.md), which docs.rs does not have, becomes plain text. The
//! sources keep their relative links for GitHub. The page list and the rewrite are in
//! docs/links.rs, which tests/it/doc_links.rs includes too and checks the rewritten pages with.
//! No dependencies.

use std::path::Path;

include!("docs/links.rs");

fn main() {
    let out = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    let pages = PAGES
        .iter()
        .map(|(file, _)| (format!("docs/{file}"), *file, false))
        .chain([("README.md".to_owned(), "README.md", true)]);
    for (source, copy, readme) in pages {
        println!("cargo::rerun-if-changed={source}");
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("cannot read {source}: {e}"));
        let copy = Path::new(&out).join(copy);
        std::fs::write(&copy, rewrite(&text, readme))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", copy.display()));
    }
}
