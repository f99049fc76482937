//! Unverified JWT decoding (`jwt::decode`) on arbitrary input: never panics, and a successful
//! decode really had three non-empty dot-separated parts.
#![no_main]

use azure_identity_k8s::__fuzz::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if decode(&text).is_ok() {
        let parts: Vec<&str> = text.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| !p.is_empty()));
    }
});
