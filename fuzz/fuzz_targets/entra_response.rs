//! The token endpoint's answer (`entra::parse_success`, `entra::parse_error`) on arbitrary
//! bodies, statuses and Retry-After values: never panics, and every error keeps the HTTP status.
//!
//! Input layout: byte 0 picks the parser, bytes 1..3 the status, byte 3 the Retry-After length
//! (0 = no header), then the Retry-After value, then the body.
#![no_main]

use azure_identity_k8s::__fuzz::{parse_error, parse_success};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let raw_status = u16::from_le_bytes([data[1], data[2]]);
    let rest = &data[4..];
    let ra_len = usize::from(data[3]).min(rest.len());
    let (retry_after, body) = rest.split_at(ra_len);
    if data[0] % 2 == 0 {
        let status = 200 + raw_status % 100;
        match parse_success(status, body) {
            Ok((expires_in, refresh_in)) => {
                assert!(expires_in > 0);
                if let Some(r) = refresh_in {
                    assert!(r > 0 && r < expires_in);
                }
            }
            Err(e) => assert_eq!(e.http_status().map(u16::from), Some(status)),
        }
    } else {
        let status = 100 + raw_status % 500;
        let retry_after = (ra_len > 0).then(|| String::from_utf8_lossy(retry_after));
        let e = parse_error(status, retry_after.as_deref(), body);
        assert_eq!(e.http_status().map(u16::from), Some(status));
        assert!(!e.message().is_empty());
    }
});
