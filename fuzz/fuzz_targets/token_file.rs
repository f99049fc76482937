//! Reading the projected token file (`TokenFileSource`'s `AssertionSource::assertion`) with
//! arbitrary contents: never panics, an accepted token is the trimmed file content, and a rejected
//! one is described without its content.
#![no_main]

use azure_identity_k8s::assertion::{AssertionSource, TokenFileSource};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn path() -> &'static PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
            .path()
            .join("azure-identity-token")
    })
}

fuzz_target!(|data: &[u8]| {
    std::fs::write(path(), data).expect("write the token file");
    let source = TokenFileSource::new(path(), "api://AzureADTokenExchange", false);
    // No tokio runtime: the source reads the file with std::fs.
    match futures::executor::block_on(source.assertion()) {
        Ok(assertion) => {
            let text = std::str::from_utf8(data).expect("accepted tokens are UTF-8");
            assert_eq!(assertion.secret(), text.trim());
            assert!(!format!("{assertion:?}").contains(assertion.secret()));
        }
        Err(e) => {
            // A long, distinctive content must not be echoed (short inputs can collide with
            // ordinary words of the message).
            if let Ok(text) = std::str::from_utf8(data) {
                let t = text.trim();
                if t.len() >= 24 && t.chars().all(|c| c.is_ascii_alphanumeric()) {
                    assert!(!e.message().contains(t), "content echoed: {e}");
                }
            }
        }
    }
});
