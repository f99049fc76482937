//! Unit tests of the setup plan and its quoting.

use super::render::hcl;
use super::*;
use crate::shell::shell_quote;

fn input() -> SetupInput {
    SetupInput {
        issuer: "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC".into(),
        namespace: "prod".into(),
        service_account: "api".into(),
        ..Default::default()
    }
}

#[test]
fn subjects_parse() {
    assert_eq!(
        parse_subject("system:serviceaccount:a:b"),
        Some(("a".into(), "b".into()))
    );
    assert_eq!(parse_subject("arn:aws:iam::1:role/x"), None);
    assert_eq!(parse_subject("system:serviceaccount:a:"), None);
}

#[test]
fn quoting() {
    assert_eq!(shell_quote("https://x/y"), "https://x/y");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(hcl("a${b}"), r#""a$${b}""#);
}

#[test]
fn bad_inputs_are_refused() {
    for (mutate, needle) in [
        (
            Box::new(|i: &mut SetupInput| i.issuer = "http://x".into())
                as Box<dyn Fn(&mut SetupInput)>,
            "https",
        ),
        (
            Box::new(|i: &mut SetupInput| i.issuer = "https://x \n".into()),
            "whitespace",
        ),
        (
            Box::new(|i: &mut SetupInput| i.namespace = "Prod".into()),
            "namespace",
        ),
        (
            Box::new(|i: &mut SetupInput| i.service_account = String::new()),
            "service account",
        ),
    ] {
        let mut i = input();
        mutate(&mut i);
        let e = plan(&i).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn unknown_values_become_shell_variables() {
    let out = plan(&input()).unwrap();
    assert!(
        out.az_identity_command
            .contains("--identity-name \"$IDENTITY_NAME\""),
        "{}",
        out.az_identity_command
    );
    assert!(
        out.az_app_command.contains("--id \"$APP_ID\""),
        "{}",
        out.az_app_command
    );
    assert!(out.notes.iter().any(|n| n.contains("IDENTITY_NAME")));
}
