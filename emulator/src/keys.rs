//! RSA signing keys, JWT signing (RS256) and verification against a JWKS.

use crate::util::{b64, b64_decode, sha256};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256};
use serde_json::{Value, json};

/// An RSA-2048 signing key with its `kid`.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    key: KeyPair,
    n: Vec<u8>,
    e: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a key; the `kid` is the base64url SHA-256 of the SubjectPublicKeyInfo,
    /// the way kube-apiserver derives it.
    pub(crate) fn generate() -> SigningKey {
        let key = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation failed");
        let comps = PublicKeyComponents::<Vec<u8>>::from(key.public_key());
        let spki = key
            .public_key()
            .as_der()
            .expect("RSA public key DER encoding failed");
        let kid = b64(sha256(spki.as_ref()));
        SigningKey {
            kid,
            key,
            n: comps.n,
            e: comps.e,
        }
    }

    /// The public key as a JWK.
    pub(crate) fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": b64(&self.n),
            "e": b64(&self.e),
        })
    }

    /// Signs `claims` as a compact RS256 JWS. `typ` is added to the header when given.
    pub(crate) fn sign_jwt(&self, claims: &Value, typ: Option<&str>) -> String {
        let mut header = json!({"alg": "RS256", "kid": self.kid});
        if let Some(typ) = typ {
            header["typ"] = Value::from(typ);
        }
        let signing_input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .expect("RSA signing failed");
        format!("{signing_input}.{}", b64(sig))
    }
}

/// A JWT split into its decoded parts.
#[derive(Debug, Clone)]
pub(crate) struct DecodedJwt {
    pub(crate) header: Value,
    pub(crate) claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

impl DecodedJwt {
    /// Parses a compact JWS: three base64url parts, JSON object header and claims.
    pub(crate) fn parse(token: &str) -> Option<DecodedJwt> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&b64_decode(h)?).ok()?;
        let claims: Value = serde_json::from_slice(&b64_decode(c)?).ok()?;
        if !header.is_object() || !claims.is_object() {
            return None;
        }
        Some(DecodedJwt {
            header,
            claims,
            signing_input: format!("{h}.{c}"),
            signature: b64_decode(s)?,
        })
    }

    /// The `alg` header.
    pub(crate) fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    /// The `kid` header.
    pub(crate) fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// A string claim.
    pub(crate) fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A numeric date claim (seconds since the epoch).
    pub(crate) fn claim_time(&self, name: &str) -> Option<i64> {
        let v = self.claims.get(name)?;
        v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
    }

    /// `aud` as a list (a string `aud` is a one-element list).
    pub(crate) fn audiences(&self) -> Vec<String> {
        match self.claims.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Verifies the RS256 signature against the key in `jwks` (a JWKS document) named by the
    /// token's `kid`. Returns a reason on failure.
    pub(crate) fn verify_with_jwks(&self, jwks: &Value) -> Result<(), String> {
        if self.alg() != Some("RS256") {
            return Err(format!(
                "The token's signing algorithm '{}' is not supported; only RS256 is.",
                self.alg().unwrap_or("")
            ));
        }
        let Some(kid) = self.kid() else {
            return Err("The token header has no 'kid'.".to_owned());
        };
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let Some(jwk) = keys
            .iter()
            .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
        else {
            return Err(format!("Key was not found. kid: '{kid}'."));
        };
        let comp = |name: &str| {
            jwk.get(name)
                .and_then(Value::as_str)
                .and_then(b64_decode)
                .ok_or_else(|| format!("Key '{kid}' has no valid '{name}'."))
        };
        let n = comp("n")?;
        let e = comp("e")?;
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        PublicKeyComponents { n, e }
            .verify(
                &RSA_PKCS1_2048_8192_SHA256,
                self.signing_input.as_bytes(),
                &self.signature,
            )
            .map_err(|_| format!("Signature is invalid for key '{kid}'."))
    }
}

fn strip_leading_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    if zeros > 0 && zeros < v.len() {
        v.drain(..zeros);
    }
    v
}

/// A JWKS document holding `keys`.
pub(crate) fn jwks<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> Value {
    json!({ "keys": keys.into_iter().map(SigningKey::jwk).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let k = SigningKey::generate();
        let other = SigningKey::generate();
        let t = k.sign_jwt(&json!({"a": 1}), None);
        let d = DecodedJwt::parse(&t).unwrap();
        assert_eq!(d.kid(), Some(k.kid.as_str()));
        assert!(d.header.get("typ").is_none());
        d.verify_with_jwks(&jwks([&k])).unwrap();
        assert!(d.verify_with_jwks(&jwks([&other])).is_err());
        // a key published under the right kid but with another modulus
        let mut forged = other.jwk();
        forged["kid"] = Value::from(k.kid.clone());
        assert!(d.verify_with_jwks(&json!({"keys": [forged]})).is_err());
        assert!(DecodedJwt::parse("a.b").is_none());
        assert!(DecodedJwt::parse("not a jwt").is_none());
    }
}
