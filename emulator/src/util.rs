//! Small helpers: base64url, hexadecimal, random identifiers, hashing, time formatting.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use time::macros::format_description;

/// base64url without padding.
pub(crate) fn b64(data: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Decodes base64url without padding (padding tolerated).
pub(crate) fn b64_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// `n` random bytes from the system CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    aws_lc_rs::rand::fill(&mut buf).expect("system random generator failed");
    buf
}

/// Lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `N` random bytes as lowercase hexadecimal (`2 * N` characters).
pub(crate) fn random_hex<const N: usize>() -> String {
    hex(&random_bytes::<N>())
}

fn format_uuid(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A random version-4 UUID in its usual textual form.
pub(crate) fn uuid_v4() -> String {
    format_uuid(random_bytes::<16>())
}

/// A UUID-shaped identifier derived deterministically from `input` (stable across runs).
pub(crate) fn stable_uuid(input: &str) -> String {
    let d = sha256(input.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    format_uuid(b)
}

/// The OIDC discovery document of the issuer `iss` (a URL or a path):
/// `{iss without a trailing /}/.well-known/openid-configuration`.
pub(crate) fn discovery_document(iss: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        iss.trim_end_matches('/')
    )
}

/// SHA-256 digest.
pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// Current UTC time.
pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// `2026-11-28 15:04:05Z`, the format of Entra's error timestamps.
pub(crate) fn entra_timestamp(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]Z"
    ))
    .expect("formatting a UTC time cannot fail")
}

/// RFC 3339, e.g. `2026-11-28T15:04:05Z`.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// RFC 7231 IMF-fixdate, e.g. `Sat, 28 Nov 2026 15:04:05 GMT`.
pub(crate) fn http_date(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ))
        .expect("formatting a UTC time cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'4');
        assert_eq!(stable_uuid("a"), stable_uuid("a"));
        assert_ne!(stable_uuid("a"), stable_uuid("b"));
    }

    #[test]
    fn dates() {
        let t = time::macros::datetime!(2026-11-28 15:04:05 UTC);
        assert_eq!(entra_timestamp(t), "2026-11-28 15:04:05Z");
        assert_eq!(http_date(t), "Sat, 28 Nov 2026 15:04:05 GMT");
    }
}
