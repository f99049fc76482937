//! Properties of the parsers every byte from the outside goes through: JWT claim decoding, the
//! token endpoint's success and error bodies, and scope validation. None may panic, whatever the
//! input; errors keep the HTTP status and never echo a token. (The same parsers are fuzzed with
//! cargo-fuzz: `scripts/fuzz.sh`.)

use azure_identity_k8s::__fuzz::{decode, parse_error, parse_success, validate_scopes};
use azure_identity_k8s::ErrorCategory;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// JSON-ish text: mostly valid fragments of token responses, with arbitrary values in between.
fn jsonish() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("\"access_token\"".to_string()),
        Just("\"expires_in\"".to_string()),
        Just("\"refresh_in\"".to_string()),
        Just("\"token_type\"".to_string()),
        Just("\"Bearer\"".to_string()),
        Just("\"error\"".to_string()),
        Just("\"error_codes\"".to_string()),
        Just("\"error_description\"".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:e}")),
        any::<i64>().prop_map(|n| format!("\"{n}\"")),
        any::<u32>().prop_map(|n| format!("[{n}]")),
        "\\PC{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("null".to_string()),
        Just(":".to_string()),
        Just(",".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
    ];
    proptest::collection::vec(atom, 0..24).prop_map(|v| v.concat())
}

/// A token-response object with arbitrary field values.
fn token_response() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| format!("\"{n}\"")),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|n| format!("{n:e}")),
        Just("null".to_string()),
        "\\PC{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    (
        proptest::option::of("[a-zA-Z0-9._-]{0,40}"),
        proptest::option::of(value.clone()),
        proptest::option::of(value),
        proptest::option::of(prop_oneof![Just("Bearer"), Just("bearer"), Just("pop")]),
    )
        .prop_map(|(token, expires_in, refresh_in, token_type)| {
            let mut fields = Vec::new();
            if let Some(t) = token {
                fields.push(format!("\"access_token\":\"{t}\""));
            }
            if let Some(e) = expires_in {
                fields.push(format!("\"expires_in\":{e}"));
            }
            if let Some(r) = refresh_in {
                fields.push(format!("\"refresh_in\":{r}"));
            }
            if let Some(t) = token_type {
                fields.push(format!("\"token_type\":\"{t}\""));
            }
            format!("{{{}}}", fields.join(","))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_never_panics_on_arbitrary_strings(s in "\\PC*") {
        let _ = decode(&s);
    }

    #[test]
    fn decode_never_panics_on_three_part_tokens(
        header in "\\PC{0,40}",
        claims in jsonish(),
        sig in "[A-Za-z0-9_=-]{0,12}",
        raw in any::<bool>(),
    ) {
        let token = if raw {
            format!("{header}.{claims}.{sig}")
        } else {
            format!("{}.{}.{sig}", b64(&header), b64(&claims))
        };
        if let Err(message) = decode(&token) {
            // The error describes the shape, never the content.
            prop_assert!(!message.contains(&token) || token.len() < 8, "{message}");
        }
    }

    #[test]
    fn decode_reads_back_any_claim_values(
        iss in "\\PC{0,30}",
        sub in "\\PC{0,30}",
        aud in proptest::collection::vec("\\PC{0,20}", 0..4),
        exp in any::<i64>(),
    ) {
        let json = serde_json::json!({"iss": iss, "sub": sub, "aud": aud, "exp": exp});
        let token = format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64(&json.to_string()));
        let claims = decode(&token).expect("a well-formed token decodes");
        prop_assert_eq!(claims.iss.as_deref(), Some(iss.as_str()));
        prop_assert_eq!(claims.sub.as_deref(), Some(sub.as_str()));
        prop_assert_eq!(&claims.aud, &aud);
        prop_assert_eq!(claims.exp, Some(exp));
        // Times far outside the representable range are "unknown", not a panic.
        let _ = claims.expires_at();
    }

    #[test]
    fn parse_success_never_panics_and_keeps_the_status(
        status in 200u16..300,
        body in prop_oneof![jsonish(), token_response(), "\\PC*"],
    ) {
        match parse_success(status, body.as_bytes()) {
            Ok((expires_in, refresh_in)) => {
                prop_assert!(expires_in > 0);
                if let Some(r) = refresh_in {
                    prop_assert!(r > 0 && r < expires_in);
                }
            }
            Err(e) => {
                prop_assert_eq!(e.http_status().map(u16::from), Some(status));
                prop_assert_eq!(e.category(), ErrorCategory::InvalidResponse);
            }
        }
    }

    #[test]
    fn parse_success_never_panics_on_bytes(status in 200u16..300, body in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = parse_success(status, &body) {
            prop_assert_eq!(e.http_status().map(u16::from), Some(status));
        }
    }

    #[test]
    fn parse_error_never_panics_and_keeps_the_status(
        status in 100u16..600,
        retry_after in proptest::option::of("\\PC{0,30}"),
        body in prop_oneof![
            jsonish(),
            "\\PC*",
            proptest::collection::vec(any::<u8>(), 0..512)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ],
    ) {
        let e = parse_error(status, retry_after.as_deref(), body.as_bytes());
        prop_assert_eq!(e.http_status().map(u16::from), Some(status));
        let transient = status == 408 || status == 429 || status >= 500;
        prop_assert_eq!(e.is_transient(), transient, "{}", e);
        prop_assert!(e.message().contains(&status.to_string()), "{}", e);
    }

    #[test]
    fn parse_error_keeps_entra_codes(status in 400u16..600, codes in proptest::collection::vec(any::<u32>(), 1..4), desc in "\\PC{0,60}") {
        let body = serde_json::json!({
            "error": "invalid_client",
            "error_description": desc,
            "error_codes": codes,
        });
        let e = parse_error(status, None, body.to_string().as_bytes());
        prop_assert_eq!(e.aadsts_codes(), codes.as_slice());
        prop_assert_eq!(e.category(), ErrorCategory::Entra);
        prop_assert_eq!(e.http_status().map(u16::from), Some(status));
    }

    #[test]
    fn scope_validation_never_panics(scopes in proptest::collection::vec("\\PC{0,40}|[a-z:/.]{0,30}/\\.default", 0..4)) {
        let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        match validate_scopes(&refs) {
            Ok(()) => {
                prop_assert_eq!(refs.len(), 1);
                prop_assert!(refs[0].ends_with("/.default") && refs[0].len() > "/.default".len());
                prop_assert!(!refs[0].chars().any(|c| c.is_whitespace() || c.is_control()));
            }
            Err(e) => prop_assert_eq!(e.category(), ErrorCategory::InvalidScope),
        }
    }
}
