//! Unverified decoding of JWT claims, for local checks and diagnostics only.
//!
//! Nothing here verifies a signature: Entra does that. The crate only reads the claims to catch
//! mistakes early (expired token, wrong audience) and to explain Entra's errors. Error messages
//! describe the token's *shape* (length, number of parts, which part is broken), never its content.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

/// The claims of a Kubernetes service-account token that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// `iss`: the cluster's OIDC issuer URL.
    #[serde(default)]
    pub iss: Option<String>,
    /// `sub`: `system:serviceaccount:<namespace>:<name>` for Kubernetes.
    #[serde(default)]
    pub sub: Option<String>,
    /// `aud`: one or more audiences (a string or an array in the JWT).
    #[serde(default, deserialize_with = "string_or_vec")]
    pub aud: Vec<String>,
    /// `exp` (seconds since the epoch).
    #[serde(default)]
    pub exp: Option<i64>,
    /// `iat` (seconds since the epoch).
    #[serde(default)]
    pub iat: Option<i64>,
    /// `nbf` (seconds since the epoch).
    #[serde(default)]
    pub nbf: Option<i64>,
    /// The `kubernetes.io` claim of a bound service-account token.
    #[serde(default, rename = "kubernetes.io")]
    pub kubernetes: Option<KubernetesClaims>,
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct KubernetesClaims {
    /// The pod's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The service account.
    #[serde(default)]
    pub serviceaccount: Option<NamedObject>,
    /// The pod the token is bound to.
    #[serde(default)]
    pub pod: Option<NamedObject>,
    /// The node the pod runs on.
    #[serde(default)]
    pub node: Option<NamedObject>,
    /// When the kubelet should have replaced the token (seconds since the epoch).
    #[serde(default)]
    pub warnafter: Option<i64>,
}

/// A `{name, uid}` pair inside the `kubernetes.io` claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NamedObject {
    /// The object's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The object's uid.
    #[serde(default)]
    pub uid: Option<String>,
}

/// The JOSE header fields that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Header {
    /// `alg`: Entra accepts only RS256.
    #[serde(default)]
    pub alg: Option<String>,
    /// `kid`: the signing key's id, looked up in the issuer's JWKS.
    #[serde(default)]
    pub kid: Option<String>,
}

/// A decoded (unverified) JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedJwt {
    /// The header.
    pub header: Header,
    /// The claims.
    pub claims: Claims,
}

impl Claims {
    /// `exp` as a time, if present and representable.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.exp
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
    }
    /// `iat` as a time, if present and representable.
    pub fn issued_at(&self) -> Option<OffsetDateTime> {
        self.iat
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
    }
    /// `nbf` as a time, if present and representable.
    pub fn not_before(&self) -> Option<OffsetDateTime> {
        self.nbf
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
    }
    /// The audiences joined for display.
    pub fn audiences_display(&self) -> String {
        if self.aud.is_empty() {
            "(none)".to_string()
        } else {
            self.aud.join(", ")
        }
    }
}

fn string_or_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
        Null(()),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
        OneOrMany::Null(()) => Vec::new(),
    })
}

/// Describe the shape of a string without revealing it: length, parts, whitespace.
pub fn describe_shape(s: &str) -> String {
    let parts = s.split('.').count();
    let ws = if s.chars().any(char::is_whitespace) {
        "contains whitespace"
    } else {
        "no whitespace"
    };
    format!(
        "{} bytes, {} dot-separated part{}, {ws}",
        s.len(),
        parts,
        if parts == 1 { "" } else { "s" }
    )
}

fn decode_part(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .or_else(|| URL_SAFE.decode(part).ok())
}

/// Decode a compact JWS without verifying it. The error says what is wrong with the shape.
pub fn decode(token: &str) -> Result<DecodedJwt, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!(
            "it is not a JWT: expected 3 dot-separated parts ({})",
            describe_shape(token)
        ));
    };
    if h.is_empty() || p.is_empty() || sig.is_empty() {
        return Err(format!(
            "it is not a signed JWT: a part is empty ({})",
            describe_shape(token)
        ));
    }
    let header = decode_part(h).ok_or_else(|| {
        format!(
            "it is not a JWT: the header is not base64url ({})",
            describe_shape(token)
        )
    })?;
    let header: Header = serde_json::from_slice(&header).map_err(|_| {
        format!(
            "it is not a JWT: the header is not a JSON object ({})",
            describe_shape(token)
        )
    })?;
    let payload = decode_part(p).ok_or_else(|| {
        format!(
            "it is not a JWT: the claims part is not base64url ({})",
            describe_shape(token)
        )
    })?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| {
        format!(
            "it is not a JWT: the claims part is not a JSON object of the expected form ({})",
            describe_shape(token)
        )
    })?;
    if decode_part(sig).is_none() {
        return Err(format!(
            "it is not a JWT: the signature is not base64url ({})",
            describe_shape(token)
        ));
    }
    Ok(DecodedJwt { header, claims })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn make(header: &str, claims: &str) -> String {
        format!(
            "{}.{}.c2lnbmF0dXJl",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn decodes_a_bound_kubernetes_token() {
        let t = make(
            r#"{"alg":"RS256","kid":"k1"}"#,
            r#"{"aud":["api://AzureADTokenExchange"],"exp":1700003600,"iat":1700000000,"nbf":1700000000,
               "iss":"https://oidc.eks.us-east-1.amazonaws.com/id/ABC","sub":"system:serviceaccount:ns:sa",
               "kubernetes.io":{"namespace":"ns","pod":{"name":"p","uid":"u"},"serviceaccount":{"name":"sa","uid":"u2"},"warnafter":1700002880}}"#,
        );
        let d = decode(&t).unwrap();
        assert_eq!(d.header.kid.as_deref(), Some("k1"));
        assert_eq!(d.claims.aud, vec!["api://AzureADTokenExchange"]);
        assert_eq!(
            d.claims
                .kubernetes
                .unwrap()
                .serviceaccount
                .unwrap()
                .name
                .as_deref(),
            Some("sa")
        );
    }

    #[test]
    fn audience_may_be_a_string() {
        let d = decode(&make(r#"{"alg":"RS256"}"#, r#"{"aud":"x"}"#)).unwrap();
        assert_eq!(d.claims.aud, vec!["x"]);
    }

    #[test]
    fn bad_shapes_are_described_without_content() {
        let secretish = "supersecretvalue";
        for (input, needle) in [
            (secretish.to_string(), "3 dot-separated parts"),
            (
                format!("{secretish}.{secretish}.{secretish}"),
                "header is not",
            ),
            ("a..b".to_string(), "empty"),
            (make(r#"{"alg":"RS256"}"#, "not json"), "claims part"),
        ] {
            let e = decode(&input).unwrap_err();
            assert!(e.contains(needle), "{e}");
            assert!(!e.contains(secretish), "{e}");
        }
    }
}
