//! The claims of a client assertion, as the crate reads them: [`Claims`].
//!
//! [`Assertion::new`](crate::assertion::Assertion::new) takes them and
//! [`Assertion::claims`](crate::assertion::Assertion::claims) returns them; a custom
//! [`AssertionSource`](crate::assertion::AssertionSource) builds them with a struct literal or
//! deserializes its JWT's payload (the base64url-decoded middle part) with serde, e.g.
//! `serde_json::from_slice::<Claims>(&payload)`.
//!
//! Nothing here verifies a signature: Entra does that. The crate only reads the claims to catch
//! mistakes early (expired token, wrong audience) and to explain Entra's errors. Error messages
//! describe the token's *shape* (length, number of parts, which part is broken), never its content.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use time::OffsetDateTime;

/// The claims of a Kubernetes service-account token that matter here.
///
/// Decoding is lenient wherever a value only serves diagnostics: a claim of an unexpected type
/// (an object as `iss`, a string as `iat`, any shape under `kubernetes.io`) is read as absent, and
/// a NumericDate may be fractional (RFC 7519) or a numeric string. Only the claims a local check
/// uses can make decoding fail: `aud` (a string or an array of strings) and `exp` / `nbf` (a
/// NumericDate).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Claims {
    /// `iss`: the cluster's OIDC issuer URL.
    #[serde(deserialize_with = "lenient")]
    pub iss: Option<String>,
    /// `sub`: `system:serviceaccount:<namespace>:<name>` for Kubernetes.
    #[serde(deserialize_with = "lenient")]
    pub sub: Option<String>,
    /// `aud`: one or more audiences (a string or an array in the JWT).
    #[serde(deserialize_with = "audiences")]
    pub aud: Vec<String>,
    /// `exp` (seconds since the epoch; a fractional value is rounded down).
    #[serde(deserialize_with = "exp")]
    pub exp: Option<i64>,
    /// `iat` (seconds since the epoch; a fractional value is rounded down).
    #[serde(deserialize_with = "lenient_date")]
    pub iat: Option<i64>,
    /// `nbf` (seconds since the epoch; a fractional value is rounded down).
    #[serde(deserialize_with = "nbf")]
    pub nbf: Option<i64>,
    /// The `kubernetes.io` claim of a bound service-account token.
    #[serde(rename = "kubernetes.io", deserialize_with = "lenient")]
    pub kubernetes: Option<KubernetesClaims>,
}

/// The `kubernetes.io` claim (diagnostics only: every field is read leniently).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct KubernetesClaims {
    /// The pod's namespace.
    #[serde(deserialize_with = "lenient")]
    pub namespace: Option<String>,
    /// The service account.
    #[serde(deserialize_with = "lenient")]
    pub serviceaccount: Option<NamedObject>,
    /// The pod the token is bound to.
    #[serde(deserialize_with = "lenient")]
    pub pod: Option<NamedObject>,
    /// The node the pod runs on.
    #[serde(deserialize_with = "lenient")]
    pub node: Option<NamedObject>,
    /// When the kubelet should have replaced the token (seconds since the epoch).
    #[serde(deserialize_with = "lenient_date")]
    pub warnafter: Option<i64>,
}

/// A `{name, uid}` pair inside the `kubernetes.io` claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct NamedObject {
    /// The object's name.
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    /// The object's uid.
    #[serde(deserialize_with = "lenient")]
    pub uid: Option<String>,
}

/// The JOSE header fields that matter here (read leniently: a field of another type is absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub(crate) struct Header {
    /// `alg`: Entra accepts only RS256.
    #[serde(deserialize_with = "lenient")]
    pub alg: Option<String>,
    /// `kid`: the signing key's id, looked up in the issuer's JWKS.
    #[serde(deserialize_with = "lenient")]
    pub kid: Option<String>,
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value that only serves diagnostics: absent when it has another shape (an array is never an
/// object here).
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(_) => None,
        v => serde_json::from_value(v).ok(),
    })
}

/// A NumericDate: a number, possibly fractional (rounded down), or a numeric string.
fn numeric_date(v: &Value) -> Option<i64> {
    let floor = |f: f64| f.is_finite().then(|| f.floor() as i64);
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(floor)),
        Value::String(s) => {
            (s.trim().parse().ok()).or_else(|| s.trim().parse().ok().and_then(floor))
        }
        _ => None,
    }
}

fn lenient_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(numeric_date(&Value::deserialize(d)?))
}

/// The NumericDate of a claim a local check uses; the error names `claim` and what it holds.
fn checked_date<'de, D: Deserializer<'de>>(d: D, claim: &str) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => numeric_date(&v).map(Some).ok_or_else(|| {
            let kind = kind_of(&v);
            D::Error::custom(format!(
                "{claim} is {kind}, not a NumericDate (seconds since the epoch)"
            ))
        }),
    }
}

fn exp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    checked_date(d, "exp")
}

fn nbf<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    checked_date(d, "nbf")
}

fn audiences<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let one = |a: Value| match a {
        Value::String(a) => Ok(a),
        other => Err(format!(
            "aud holds {}, expected only strings",
            kind_of(&other)
        )),
    };
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::String(a) => Ok(vec![a]),
        Value::Array(items) => items.into_iter().map(one).collect(),
        other => Err(format!(
            "aud is {}, expected a string or an array of strings",
            kind_of(&other)
        )),
    }
    .map_err(D::Error::custom)
}

/// `json` as a JSON object of `T`: `None` when it is not JSON; `Err` says what else is wrong.
fn object<T: DeserializeOwned>(json: &[u8]) -> Option<Result<T, String>> {
    Some(match serde_json::from_slice::<Value>(json).ok()? {
        v @ Value::Object(_) => serde_json::from_value(v).map_err(|e| e.to_string()),
        other => Err(format!(
            "the claims are {}, not a JSON object",
            kind_of(&other)
        )),
    })
}

/// A decoded (unverified) JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodedJwt {
    pub header: Header,
    pub claims: Claims,
}

impl Claims {
    /// `exp` as a time, if present and representable.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        at(self.exp)
    }
    /// `iat` as a time, if present and representable.
    pub fn issued_at(&self) -> Option<OffsetDateTime> {
        at(self.iat)
    }
    /// `nbf` as a time, if present and representable.
    pub fn not_before(&self) -> Option<OffsetDateTime> {
        at(self.nbf)
    }
    /// The audiences joined for display.
    pub(crate) fn audiences_display(&self) -> String {
        // Escaped: a claim is written into messages (see `crate::escape`).
        let auds: Vec<_> = self.aud.iter().map(|a| crate::escape::escape(a)).collect();
        if auds.is_empty() {
            "(none)".to_string()
        } else {
            auds.join(", ")
        }
    }
}

fn at(seconds: Option<i64>) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds?).ok()
}

/// base64url, with or without padding.
pub(crate) fn decode_part(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .or_else(|| URL_SAFE.decode(part).ok())
}

/// The JOSE header of a compact JWS (its first part), when it decodes; for messages only.
pub(crate) fn decode_header(token: &str) -> Option<Header> {
    object(&decode_part(token.split('.').next()?)?)?.ok()
}

/// Decode a compact JWS without verifying it. The error says what is wrong with the shape.
pub(crate) fn decode(token: &str) -> Result<DecodedJwt, String> {
    let parts: Vec<&str> = token.split('.').collect();
    // The token's shape, never its content: length, parts, whitespace.
    let ws = if token.contains(char::is_whitespace) {
        "contains"
    } else {
        "no"
    };
    let s = if parts.len() == 1 { "" } else { "s" };
    let bad = |what: &str| {
        let (len, n) = (token.len(), parts.len());
        format!("{what} ({len} bytes, {n} dot-separated part{s}, {ws} whitespace)")
    };
    let not_a_jwt = |what: &str| bad(&format!("it is not a JWT: {what}"));
    let [h, p, sig] = parts[..] else {
        return Err(not_a_jwt("expected 3 dot-separated parts"));
    };
    if h.is_empty() || p.is_empty() || sig.is_empty() {
        return Err(bad("it is not a signed JWT: a part is empty"));
    }
    let header = decode_part(h).ok_or_else(|| not_a_jwt("the header is not base64url"))?;
    let header = (object(&header).and_then(Result::ok))
        .ok_or_else(|| not_a_jwt("the header is not a JSON object"))?;
    let payload = decode_part(p).ok_or_else(|| not_a_jwt("the claims part is not base64url"))?;
    let claims = (object(&payload).ok_or_else(|| not_a_jwt("the claims part is not JSON"))?)
        .map_err(|problem| bad(&format!("its claims cannot be checked: {problem}")))?;
    if decode_part(sig).is_none() {
        return Err(not_a_jwt("the signature is not base64url"));
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
            (
                make(r#"{"alg":"RS256"}"#, r#"{"exp":"soon"}"#),
                "exp is a string",
            ),
            (
                make(r#"{"alg":"RS256"}"#, r#"{"aud":[1]}"#),
                "aud holds a number",
            ),
            (
                make(r#"{"alg":"RS256"}"#, r#"{"aud":{"a":1}}"#),
                "aud is an object",
            ),
            (make(r#"{"alg":"RS256"}"#, r#"[1]"#), "not a JSON object"),
        ] {
            let e = decode(&input).unwrap_err();
            assert!(e.contains(needle), "{e}");
            assert!(!e.contains(secretish), "{e}");
        }
    }

    #[test]
    fn diagnostic_claims_are_read_leniently() {
        // RFC 7519 allows fractional NumericDates; Entra accepts them.
        let d = decode(&make(
            r#"{"alg":"RS256","kid":7}"#,
            r#"{"aud":"x","exp":1700003600.75,"iat":"1700000000","nbf":1699999999.2,
               "iss":{"odd":true},"sub":"s",
               "kubernetes.io":{"namespace":3,"pod":"not-an-object","serviceaccount":{"name":"sa","uid":[]},"warnafter":{"x":1}}}"#,
        ))
        .unwrap();
        assert_eq!(d.claims.exp, Some(1_700_003_600));
        assert_eq!(d.claims.nbf, Some(1_699_999_999));
        assert_eq!(d.claims.iat, Some(1_700_000_000));
        assert_eq!(d.claims.iss, None);
        assert_eq!(d.header.kid, None);
        let k = d.claims.kubernetes.unwrap();
        assert_eq!((k.namespace, k.pod, k.warnafter), (None, None, None));
        assert_eq!(k.serviceaccount.unwrap().name.as_deref(), Some("sa"));
        // Diagnostics-only claims of any shape never fail decoding.
        for odd in [
            r#"{"iat":true}"#,
            r#"{"iat":{"a":1}}"#,
            r#"{"kubernetes.io":[1,2]}"#,
            r#"{"kubernetes.io":"x"}"#,
            r#"{"sub":5}"#,
            r#"{"exp":null,"aud":null}"#,
        ] {
            decode(&make(r#"{"alg":"RS256"}"#, odd)).unwrap_or_else(|e| panic!("{odd}: {e}"));
        }
    }
}
