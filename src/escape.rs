//! Values from outside the crate's control (a token's claims and header, file paths) written into
//! messages and `doctor`'s report: [`escape`], [`path`]. A control character (a newline, an ANSI escape) or
//! a bidirectional override in a claim would otherwise start a forged log line, colour a terminal
//! or reorder the text around it; ordinary Unicode stays readable.

use std::borrow::Cow;

/// Whether `c` is written escaped: a control character (C0, DEL, C1), a bidirectional formatting
/// character (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069) or a line or paragraph
/// separator (U+2028, U+2029).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with each such character written as Rust writes it in a string literal (`\n`, `\t`,
/// `\u{1b}`, `\u{202e}`), everything else unchanged, so one value stays on one line and prints
/// as itself. Borrowed when nothing needs escaping.
pub(crate) fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A path for a message: lossy UTF-8, then [`escape`]d.
pub(crate) fn path(p: &std::path::Path) -> String {
    escape(&p.to_string_lossy()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_escaped_and_the_rest_is_kept() {
        assert_eq!(escape("s\n\u{1b}[31mred"), "s\\n\\u{1b}[31mred");
        assert_eq!(
            escape("https://ü\u{202e}.example"),
            "https://ü\\u{202e}.example"
        );
        assert_eq!(
            escape("a\tb\r\u{7f}\u{85}\u{2028}\u{2066}"),
            "a\\tb\\r\\u{7f}\\u{85}\\u{2028}\\u{2066}"
        );
        // Ordinary text, other scripts and emoji are borrowed as they are.
        for plain in [
            "system:serviceaccount:prod:api",
            "https://issuer.example/日本",
            "Zoë 🚀",
            "",
        ] {
            assert!(matches!(escape(plain), Cow::Borrowed(p) if p == plain));
        }
        assert_eq!(path(std::path::Path::new("/tmp/a\nb")), "/tmp/a\\nb");
    }
}
