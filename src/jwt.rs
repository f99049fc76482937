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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// `iss`: the cluster's OIDC issuer URL.
    pub iss: Option<String>,
    /// `sub`: `system:serviceaccount:<namespace>:<name>` for Kubernetes.
    pub sub: Option<String>,
    /// `aud`: one or more audiences (a string or an array in the JWT).
    pub aud: Vec<String>,
    /// `exp` (seconds since the epoch; a fractional value is rounded down).
    pub exp: Option<i64>,
    /// `iat` (seconds since the epoch; a fractional value is rounded down).
    pub iat: Option<i64>,
    /// `nbf` (seconds since the epoch; a fractional value is rounded down).
    pub nbf: Option<i64>,
    /// The `kubernetes.io` claim of a bound service-account token.
    pub kubernetes: Option<KubernetesClaims>,
}

/// The `kubernetes.io` claim (diagnostics only: every field is read leniently).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubernetesClaims {
    /// The pod's namespace.
    pub namespace: Option<String>,
    /// The service account.
    pub serviceaccount: Option<NamedObject>,
    /// The pod the token is bound to.
    pub pod: Option<NamedObject>,
    /// The node the pod runs on.
    pub node: Option<NamedObject>,
    /// When the kubelet should have replaced the token (seconds since the epoch).
    pub warnafter: Option<i64>,
}

/// A `{name, uid}` pair inside the `kubernetes.io` claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedObject {
    /// The object's name.
    pub name: Option<String>,
    /// The object's uid.
    pub uid: Option<String>,
}

/// The JOSE header fields that matter here (read leniently: a field of another type is absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Header {
    /// `alg`: Entra accepts only RS256.
    pub alg: Option<String>,
    /// `kid`: the signing key's id, looked up in the issuer's JWKS.
    pub kid: Option<String>,
}

type Object = serde_json::Map<String, Value>;

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

fn string(o: &Object, key: &str) -> Option<String> {
    o.get(key).and_then(Value::as_str).map(str::to_string)
}

/// A NumericDate: a number, possibly fractional (rounded down), or a numeric string. `Err` names
/// the claim and what it holds instead.
fn numeric_date(o: &Object, key: &str) -> Result<Option<i64>, String> {
    let v = match o.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let floor = |f: f64| f.is_finite().then(|| f.floor() as i64);
    let n = match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(floor)),
        Value::String(s) => {
            (s.trim().parse().ok()).or_else(|| s.trim().parse().ok().and_then(floor))
        }
        _ => None,
    };
    n.map(Some).ok_or_else(|| {
        format!(
            "{key} is {}, not a NumericDate (seconds since the epoch)",
            kind_of(v)
        )
    })
}

fn named(o: &Object, key: &str) -> Option<NamedObject> {
    o.get(key).and_then(Value::as_object).map(|n| NamedObject {
        name: string(n, "name"),
        uid: string(n, "uid"),
    })
}

impl Claims {
    /// Decode claims from a JSON value (see the type's documentation for what can fail).
    pub(crate) fn from_json(v: &Value) -> Result<Self, String> {
        let o = v
            .as_object()
            .ok_or_else(|| format!("the claims are {}, not a JSON object", kind_of(v)))?;
        let aud = match o.get("aud") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|a| {
                    a.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("aud holds {}, expected only strings", kind_of(a)))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(format!(
                    "aud is {}, expected a string or an array of strings",
                    kind_of(other)
                ));
            }
        };
        let kubernetes =
            o.get("kubernetes.io")
                .and_then(Value::as_object)
                .map(|k| KubernetesClaims {
                    namespace: string(k, "namespace"),
                    serviceaccount: named(k, "serviceaccount"),
                    pod: named(k, "pod"),
                    node: named(k, "node"),
                    warnafter: numeric_date(k, "warnafter").ok().flatten(),
                });
        Ok(Self {
            iss: string(o, "iss"),
            sub: string(o, "sub"),
            aud,
            exp: numeric_date(o, "exp")?,
            nbf: numeric_date(o, "nbf")?,
            iat: numeric_date(o, "iat").ok().flatten(),
            kubernetes,
        })
    }
}

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_json(&Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Header {
    /// The header in `json`, when it is a JSON object.
    fn parse(json: &[u8]) -> Option<Self> {
        let o = serde_json::from_slice::<Value>(json).ok()?;
        let o = o.as_object()?;
        Some(Self {
            alg: string(o, "alg"),
            kid: string(o, "kid"),
        })
    }
}

/// A decoded (unverified) JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodedJwt {
    /// The header.
    pub header: Header,
    /// The claims.
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
        if self.aud.is_empty() {
            "(none)".to_string()
        } else {
            // Escaped: a claim is written into messages (see `crate::escape`).
            self.aud
                .iter()
                .map(|a| crate::escape::escape(a))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// Describe the shape of a string without revealing it: length, parts, whitespace.
pub(crate) fn describe_shape(s: &str) -> String {
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

fn at(seconds: Option<i64>) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds?).ok()
}

fn decode_part(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .or_else(|| URL_SAFE.decode(part).ok())
}

/// The JOSE header of a compact JWS (its first part), when it decodes; for messages only.
pub(crate) fn decode_header(token: &str) -> Option<Header> {
    Header::parse(&decode_part(token.split('.').next()?)?)
}

/// Decode a compact JWS without verifying it. The error says what is wrong with the shape.
pub(crate) fn decode(token: &str) -> Result<DecodedJwt, String> {
    let bad = |what: &str| format!("{what} ({})", describe_shape(token));
    let not_a_jwt = |what: &str| bad(&format!("it is not a JWT: {what}"));
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(not_a_jwt("expected 3 dot-separated parts"));
    };
    if h.is_empty() || p.is_empty() || sig.is_empty() {
        return Err(bad("it is not a signed JWT: a part is empty"));
    }
    let header = decode_part(h).ok_or_else(|| not_a_jwt("the header is not base64url"))?;
    let header =
        Header::parse(&header).ok_or_else(|| not_a_jwt("the header is not a JSON object"))?;
    let payload = decode_part(p).ok_or_else(|| not_a_jwt("the claims part is not base64url"))?;
    let claims: Value =
        serde_json::from_slice(&payload).map_err(|_| not_a_jwt("the claims part is not JSON"))?;
    let claims = Claims::from_json(&claims)
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
