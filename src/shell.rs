//! Quoting for the commands the crate prints (in errors, `doctor` fixes, `setup` output), so that
//! each can be pasted into a POSIX shell as it is.

/// `s` as one POSIX shell word: unchanged when it holds only characters no shell interprets,
/// else in single quotes (an embedded `'` written as `'\''`). The empty string becomes `''`.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
