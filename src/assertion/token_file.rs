//! The projected service-account token file.
//!
//! The kubelet writes the token through its atomic writer: the visible file is a symlink through
//! `..data`, which is swapped by rename on every rotation. The file is therefore re-opened by path
//! for every exchange; no descriptor and no content is kept between exchanges.

use super::file_read::{FileContent, FileProblem, ReadGate, open_regular, read_token_file};
use super::foreign::{ForeignAudience, ForeignPath, denied_paths, foreign_path};
use super::{Assertion, AssertionSource};
use crate::clock::Clock;
use crate::config::{
    AZURE_AUTHORITY_HOST, AZURE_FEDERATED_TOKEN_AUDIENCE, Env, Sourced, ValueSource,
};
use crate::error::CredentialError;
use crate::escape::escape;
use crate::jwt;
use crate::problem::ProblemId;
use crate::shell::shell_quote;
use azure_core::http::Url;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// Tolerated clock difference when checking `exp` / `nbf` locally.
pub(crate) const CLOCK_SKEW: Duration = Duration::minutes(5);

/// Reads the projected token from a file, validating it locally before it is sent.
///
/// Before anything is sent, the file must be a regular file (after symlinks are resolved) of at
/// most 64 KiB and not a well-known credential for something else, must hold an unexpired JWT,
/// and its path and audience must pass the rules of [`TokenFileSource::new`] (see [the security
/// rules](crate::guides::security)).
#[derive(Debug)]
pub struct TokenFileSource {
    path: PathBuf,
    pub(crate) expected_audience: String,
    /// Whether the expected audience was set by the user (option or environment variable); only
    /// then is a token without it refused.
    audience_explicit: bool,
    pub(crate) allow_foreign_audience: bool,
    pub(crate) denied: Arc<[(PathBuf, ForeignPath)]>,
    clock: Arc<dyn Clock>,
    gate: ReadGate,
    /// The authority host the token is sent to, when known: a token for another cloud's exchange
    /// audience is then told to set that cloud's authority host.
    authority: Option<Url>,
}

/// The fix of a foreign token or credential file: a token of its own for Entra, with the
/// expected audience (the cloud's, when that is itself foreign).
pub(crate) fn dedicated_token_fix(expected: &str, iss: Option<&str>) -> String {
    let audience = safe_audience(expected, iss);
    format!(
        "mount a dedicated projected token with audience {audience} (serviceAccountToken: {{audience: {audience}, expirationSeconds: 3600, path: azure-identity-token}}) and point AZURE_FEDERATED_TOKEN_FILE (or token_file_path) at it; keep this token for what it is for."
    )
}

/// When no token file is configured: the well-known credentials of something else (`denied`:
/// the pod's default service-account token, the IRSA token, ...) that exist, each said to be
/// found and not used, why (what it is a credential for, by its audience when it can be read,
/// else by its path) and its issuer, subject and audience when readable; with
/// [`dedicated_token_fix`] for `expected`. `None` when none exists.
pub(crate) fn unused_credentials(
    denied: &[(PathBuf, ForeignPath)],
    expected: &str,
) -> Option<(String, String)> {
    let mut iss = None;
    let found: Vec<String> = (denied.iter())
        .filter(|(path, _)| path.is_file())
        .map(|(path, foreign)| {
            let claims = read_token(path).ok().map(|t| t.claims);
            let kind = (claims.as_ref().and_then(ForeignAudience::first_in_claims))
                .unwrap_or(foreign.kind);
            let read = claims.map(|c| {
                let show =
                    |v: Option<String>| escape(v.as_deref().unwrap_or("(none)")).into_owned();
                let auds = c.audiences_display();
                iss = iss.take().or(c.iss.clone());
                format!(
                    "; its issuer is {}, subject {}, audience {auds}",
                    show(c.iss),
                    show(c.sub)
                )
            });
            format!(
                "found {} and did not use it, because it is a credential for {}{}",
                foreign.what,
                kind.describe(),
                read.unwrap_or_default(),
            )
        })
        .collect();
    let fix = dedicated_token_fix(expected, iss.as_deref());
    (!found.is_empty()).then(|| (found.join("; "), fix))
}

/// The fix of a token without the expected audience (`expected`, or `recommend` when that is
/// foreign): for a token minted for another cloud than `authority`'s, that cloud's authority
/// host; else the projected volume's audience, or the token's own as the expected audience.
pub(crate) fn audience_fix(
    claims: &jwt::Claims,
    expected: &str,
    authority: Option<&Url>,
) -> String {
    let recommend = escape(safe_audience(expected, claims.iss.as_deref()));
    let set = format!("set the projected volume's serviceAccountToken.audience to {recommend}");
    if let Some(authority) = authority
        && let Some(cloud) = crate::cloud::other_cloud(&claims.aud, authority)
    {
        let (host, aud) = (cloud.authority_host, cloud.exchange_audience);
        return format!(
            "the token's audience {aud} is the exchange audience of the cloud at {host}, but the authority is {}: if the identity lives in that cloud, set {AZURE_AUTHORITY_HOST}={host}; otherwise {set}.",
            authority.origin().ascii_serialization()
        );
    }
    match claims.aud.first() {
        Some(own) if ForeignAudience::of(own).is_none() => {
            // The token's claim: escaped (one line), and one shell word in the command.
            let own = escape(own);
            format!(
                "{set}; or, if the federated identity credential deliberately uses {own}, set {AZURE_FEDERATED_TOKEN_AUDIENCE}={} (or expected_audience).",
                shell_quote(&own)
            )
        }
        _ => format!("{set}."),
    }
}

/// The token in `text`, decoded; else the problem, for the credential and `doctor`.
pub(crate) fn decode_token(text: &str) -> Result<jwt::DecodedJwt, FileProblem> {
    jwt::decode(text).map_err(|shape| {
        FileProblem::new(
            format!("does not hold a service-account token: {shape}"),
            ProblemId::TokenFileNotAJwt,
        )
    })
}

/// The token in the file at `path`, read, trimmed and decoded by the credential's rules.
pub(crate) fn read_token(path: &Path) -> Result<jwt::DecodedJwt, FileProblem> {
    decode_token(token_text(&read_token_file(path)?.bytes)?)
}

/// The token in a token file's bytes: UTF-8 text, surrounding whitespace trimmed, not empty.
pub(crate) fn token_text(bytes: &[u8]) -> Result<&str, FileProblem> {
    let text = std::str::from_utf8(bytes).map_err(|_| {
        let what = format!("is not text ({} bytes, not UTF-8)", bytes.len());
        FileProblem::new(what, ProblemId::TokenFileNotAJwt)
    })?;
    match text.trim() {
        "" if text.is_empty() => Err(FileProblem::new("is empty", ProblemId::TokenFileEmpty)),
        "" => Err(FileProblem::new(
            format!("contains only whitespace ({} bytes)", text.len()),
            ProblemId::TokenFileEmpty,
        )),
        token => Ok(token),
    }
}

/// The audience rules of docs/security.md as one decision, shared by the credential and `doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AudienceVerdict {
    /// The token carries the expected audience and nothing foreign: sent.
    Expected,
    /// Another, non-foreign audience, and the expected audience is the default: sent, with a
    /// warning (azure_identity sends it too).
    Custom,
    /// Another audience, and the user set the expected audience: refused.
    Mismatch,
    /// A foreign audience: refused.
    Foreign(ForeignAudience),
    /// A foreign audience, allowed, and the expected audience present: sent, with a warning.
    AllowedForeign(ForeignAudience),
    /// A foreign audience, allowed, but without the expected audience: refused.
    AllowedForeignWithoutExpected(ForeignAudience),
}

impl AudienceVerdict {
    /// Decide for a token's claims. `explicit`: the expected audience was set by the user
    /// (option or `AZURE_FEDERATED_TOKEN_AUDIENCE`), not defaulted.
    pub(crate) fn of(
        claims: &jwt::Claims,
        expected: &str,
        explicit: bool,
        allow_foreign: bool,
    ) -> Self {
        let has_expected = claims.aud.iter().any(|a| a == expected);
        match ForeignAudience::first_in_claims(claims) {
            Some(f) if !allow_foreign => Self::Foreign(f),
            Some(f) if !has_expected => Self::AllowedForeignWithoutExpected(f),
            Some(f) => Self::AllowedForeign(f),
            None if has_expected => Self::Expected,
            None if explicit => Self::Mismatch,
            None => Self::Custom,
        }
    }

    /// The audience a federated identity credential must carry to match a token with this
    /// verdict: the token's own (its first `aud`) when it is sent with a custom audience
    /// ([`Custom`](Self::Custom)); `expected` when it is sent because foreign audiences are
    /// allowed; else `expected` unless that is itself foreign (then the cloud's recommended one),
    /// which a refused token's replacement must be given. Used by `doctor` and `setup`, so both
    /// suggest the same, and never a foreign audience the user did not insist on.
    #[cfg(feature = "doctor")]
    pub(crate) fn credential_audience(&self, claims: &jwt::Claims, expected: &str) -> String {
        match (self, claims.aud.first()) {
            (Self::Custom, Some(own)) => own.clone(),
            (Self::AllowedForeign(_), _) => expected.to_string(),
            _ => safe_audience(expected, claims.iss.as_deref()).to_string(),
        }
    }
}

/// Refuse `path` when it is a well-known credential file (`denied`), unless foreign tokens are
/// allowed (then warn); the fix recommends a dedicated token with `expected` (or the cloud's).
pub(crate) fn check_path(
    path: &Path,
    denied: &[(PathBuf, ForeignPath)],
    allow: bool,
    expected: &str,
) -> Result<(), CredentialError> {
    let Some(foreign) = foreign_path(path, denied) else {
        return Ok(());
    };
    let file = crate::escape::path(path);
    if allow {
        tracing::warn!(token_file = %file, "reading {} for Entra ID (allow_foreign_audience is set)", foreign.what);
        return Ok(());
    }
    Err(CredentialError::new(
        ProblemId::ForeignAudience,
        format!(
            "refused to read {file}: it is {}, a credential for {}, and sending it to Entra ID would hand that credential to a third party.",
            foreign.what,
            foreign.kind.describe(),
        ),
    )
    .with_fix(dedicated_token_fix(expected, None)))
}

/// RFC 3339, or the Unix timestamp when that cannot be written (`doctor` shows times so too).
pub(crate) fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn fmt_age(d: Duration) -> String {
    let s = d.whole_seconds();
    match s.abs() {
        3600.. => format!("{}h{:02}m", s / 3600, (s.abs() % 3600) / 60),
        60.. => format!("{}m{:02}s", s / 60, s.abs() % 60),
        _ => format!("{s}s"),
    }
}

/// An audience to recommend in a message: the expected one, unless that is itself foreign, by
/// itself or as the token's own issuer `iss` (then the public cloud's).
pub(crate) fn safe_audience<'a>(expected: &'a str, iss: Option<&str>) -> &'a str {
    let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
    if ForeignAudience::of(expected).is_some() || iss.is_some_and(|i| norm(i) == norm(expected)) {
        crate::config::AUDIENCE_PUBLIC
    } else {
        expected
    }
}

impl TokenFileSource {
    /// A source reading `path` (re-read on every exchange), for a federated identity credential
    /// with audience `expected_audience`, which the token's `aud` must contain.
    ///
    /// Tokens that are credentials for something else are refused (their audience is AWS STS,
    /// the EKS Pod Identity agent, the Kubernetes API server or the token's own issuer; or the
    /// path is the default service-account token, `AWS_WEB_IDENTITY_TOKEN_FILE` of the process
    /// environment, or the EKS Pod Identity token) unless `allow_foreign_audience` is true; even
    /// then the token's `aud` must contain `expected_audience`.
    ///
    /// A relative `path` (`AZURE_FEDERATED_TOKEN_FILE=sa/token`) is resolved here, once, against
    /// the working directory, so a later change of directory does not move the file.
    pub fn new(
        path: impl Into<PathBuf>,
        expected_audience: impl Into<String>,
        allow_foreign_audience: bool,
    ) -> Self {
        let path = path.into();
        Self {
            path: match std::env::current_dir() {
                Ok(dir) if path.is_relative() => dir.join(path),
                _ => path,
            },
            expected_audience: expected_audience.into(),
            audience_explicit: true,
            allow_foreign_audience,
            denied: denied_paths(&Env::process()).into(),
            clock: Arc::new(crate::clock::SystemClock),
            gate: ReadGate::default(),
            authority: None,
        }
    }

    /// The source of `WorkloadIdentityCredential` and `doctor`, for the configured token file,
    /// expected audience and authority (see [`audience_fix`]): when the user did not set the
    /// expected audience, a token with another (non-foreign) audience is sent, with a warning, as
    /// azure_identity sends it.
    pub(crate) fn configured(
        path: PathBuf,
        audience: &Sourced<String>,
        allow_foreign_audience: bool,
        authority: Option<Url>,
        env: &Env,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            audience_explicit: audience.source != ValueSource::Default,
            denied: denied_paths(env).into(),
            clock,
            authority,
            ..Self::new(path, audience.value.clone(), allow_foreign_audience)
        }
    }

    /// The token file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cheap check of `WorkloadIdentityCredential::new()`: not a foreign credential's path,
    /// a regular file that can be opened. Reads no content; the file is read on every exchange.
    pub(crate) fn check_now(&self) -> Result<(), CredentialError> {
        let (allow, expected) = (self.allow_foreign_audience, &self.expected_audience);
        check_path(&self.path, &self.denied, allow, expected)?;
        open_regular(&self.path)
            .map(drop)
            .map_err(|p| p.into_error(&self.path))
    }

    /// The audience rules (docs/security.md): a foreign audience is refused unless allowed, and
    /// even then the expected audience must be present; another audience is refused when the
    /// user set the expected audience, and otherwise sent with a warning.
    pub(crate) fn check_audience(&self, claims: &jwt::Claims) -> Result<(), CredentialError> {
        let (file, auds) = (crate::escape::path(&self.path), claims.audiences_display());
        let expected = &self.expected_audience;
        let verdict = self.verdict(claims);
        let refused = format!("refused to send the service-account token in {file}");
        let facts = match verdict {
            AudienceVerdict::Expected => return Ok(()),
            AudienceVerdict::Foreign(foreign) => format!(
                "{refused}: its audience ({auds}) makes it a credential for {}, and sending it to Entra ID would hand that credential to a third party.",
                foreign.describe(),
            ),
            AudienceVerdict::AllowedForeignWithoutExpected(_) => format!(
                "{refused}: allow_foreign_audience is set, but the token's audience ({auds}) does not include the expected audience {expected} (from {}). allow_foreign_audience does not switch off the audience check.",
                if self.audience_explicit {
                    "your configuration"
                } else {
                    "the default"
                },
            ),
            AudienceVerdict::Mismatch => format!(
                "the service-account token in {file} has audience {auds} but {expected} is expected (set by expected_audience or {AZURE_FEDERATED_TOKEN_AUDIENCE})."
            ),
            AudienceVerdict::AllowedForeign(foreign) => {
                tracing::warn!(
                    token_file = %file,
                    audiences = %auds,
                    "sending a service-account token that is also a credential for {} (allow_foreign_audience is set)",
                    foreign.describe()
                );
                return Ok(());
            }
            AudienceVerdict::Custom => {
                tracing::warn!(
                    token_file = %file,
                    audiences = %auds,
                    recommended = %expected,
                    "sending a service-account token whose audience is not the recommended one; the federated identity credential's audience must equal the token's (set {AZURE_FEDERATED_TOKEN_AUDIENCE} to make this a local check)",
                );
                return Ok(());
            }
        };
        let (problem, fix) = self.audience_problem(claims, verdict);
        Err(CredentialError::new(problem, facts).with_fix(fix))
    }

    /// The catalogue entry and fix of a token with `verdict` (other than
    /// [`Expected`](AudienceVerdict::Expected)), refused or sent with a warning: a dedicated token
    /// for a foreign one, [`audience_fix`] for another audience.
    pub(crate) fn audience_problem(
        &self,
        claims: &jwt::Claims,
        verdict: AudienceVerdict,
    ) -> (ProblemId, String) {
        let expected = &self.expected_audience;
        let dedicated = dedicated_token_fix(expected, claims.iss.as_deref());
        match verdict {
            AudienceVerdict::Mismatch | AudienceVerdict::Custom => (
                ProblemId::AudienceMismatch,
                audience_fix(claims, expected, self.authority.as_ref()),
            ),
            AudienceVerdict::AllowedForeignWithoutExpected(_) => (
                ProblemId::ForeignAudience,
                format!(
                    "{dedicated} To send this token anyway, set {AZURE_FEDERATED_TOKEN_AUDIENCE} (or expected_audience) to the audience its federated identity credential has, as well as allow_foreign_audience."
                ),
            ),
            _ => (ProblemId::ForeignAudience, dedicated),
        }
    }

    /// [`AudienceVerdict::of`] with this source's expected audience and settings.
    pub(crate) fn verdict(&self, claims: &jwt::Claims) -> AudienceVerdict {
        let (explicit, allow) = (self.audience_explicit, self.allow_foreign_audience);
        AudienceVerdict::of(claims, &self.expected_audience, explicit, allow)
    }

    /// The token's `exp` and `nbf` against this source's clock, with [`CLOCK_SKEW`]; `modified`:
    /// when the file was last written (also used by `doctor`).
    pub(crate) fn check_times(
        &self,
        claims: &jwt::Claims,
        modified: Option<std::time::SystemTime>,
    ) -> Result<(), CredentialError> {
        let (now, file) = (self.clock.now(), crate::escape::path(&self.path));
        let modified = modified.map(OffsetDateTime::from);
        if let Some(exp) = claims.expires_at()
            && exp < now - CLOCK_SKEW
        {
            let age = modified.map(|m| {
                let (ago, at) = (fmt_age(now - m), fmt_time(m));
                format!(" The file was last written {ago} ago ({at}).")
            });
            let rotate_at = match claims.issued_at().map(|iat| (iat, exp - iat)) {
                Some((iat, l)) if !l.is_positive() => format!(
                    " Its iat ({}) is not before its exp: this is not a token a kubelet issued.",
                    fmt_time(iat)
                ),
                Some((iat, l)) => format!(
                    " It was issued at {} for {}; the kubelet should have replaced it at 80 % of that lifetime ({}).",
                    fmt_time(iat),
                    fmt_age(l),
                    fmt_time(iat + l * 0.8)
                ),
                None => String::new(),
            };
            // Written after the token had expired: something copies a stale token there.
            let verdict = match modified {
                Some(m) if m > exp => {
                    "The file was written after the token had expired: whatever writes it copies an old token; only the kubelet's projected volume writes fresh ones."
                }
                _ => "The kubelet is not rotating it.",
            };
            return Err(CredentialError::new(
                ProblemId::TokenExpired,
                format!(
                    "the service-account token in {file} expired at {} ({} ago).{rotate_at}{} {verdict}",
                    fmt_time(exp),
                    fmt_age(now - exp),
                    age.unwrap_or_default(),
                ),
            ));
        }
        if let Some(nbf) = claims.not_before()
            && nbf > now + CLOCK_SKEW
        {
            return Err(CredentialError::new(
                ProblemId::TokenNotYetValid,
                format!(
                    "the service-account token in {file} is not valid before {} ({} from now): a clock is wrong.",
                    fmt_time(nbf),
                    fmt_age(nbf - now)
                ),
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl AssertionSource for TokenFileSource {
    async fn assertion(&self) -> Result<Assertion, CredentialError> {
        // The path check too on the read thread (see `ReadGate`): resolving symlinks touches the
        // file system.
        let (path, denied) = (self.path.clone(), self.denied.clone());
        let (allow, expected) = (self.allow_foreign_audience, self.expected_audience.clone());
        let read = move || {
            check_path(&path, &denied, allow, &expected)?;
            read_token_file(&path).map_err(|p| p.into_error(&path))
        };
        let FileContent { bytes, modified } = self.gate.read(&self.path, Box::new(read)).await?;
        let token = token_text(&bytes).map_err(|p| p.into_error(&self.path))?;
        let claims = decode_token(token)
            .map_err(|p| p.into_error(&self.path))?
            .claims;
        self.check_times(&claims, modified)?;
        self.check_audience(&claims)?;
        let file = crate::escape::path(&self.path);
        Ok(Assertion::new(token.to_string(), Some(claims), file))
    }

    fn describe(&self) -> String {
        format!(
            "service-account token file {}",
            crate::escape::path(&self.path)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCategory;
    use crate::clock::ManualClock;
    use crate::jwt::tests::make;

    const NOW: i64 = 1_800_000_000;

    fn source(path: PathBuf, allow: bool) -> TokenFileSource {
        let env = Env::from_pairs::<&str, &str>([]);
        source_with(path, "api://AzureADTokenExchange", true, allow, &env)
    }

    fn token(aud: &str, iat: i64, exp: i64) -> String {
        make(
            r#"{"alg":"RS256","kid":"k"}"#,
            &format!(
                r#"{{"aud":["{aud}"],"iss":"https://issuer.example/id/X","sub":"system:serviceaccount:ns:sa","iat":{iat},"nbf":{iat},"exp":{exp}}}"#
            ),
        )
    }

    async fn err_for(content: &[u8]) -> CredentialError {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, content).unwrap();
        source(p, false).assertion().await.unwrap_err()
    }

    #[tokio::test]
    async fn an_audience_with_control_characters_is_escaped_and_shell_quoted_in_the_fix() {
        // JSON escapes: the claim holds a newline and an ANSI escape.
        let t = token(r"api://my\napp\u001b[31m", NOW - 10, NOW + 3600);
        let e = err_for(t.as_bytes()).await;
        assert_eq!(e.problem_id(), Some(ProblemId::AudienceMismatch), "{e}");
        let first = e.message().lines().next().unwrap();
        assert!(!first.chars().any(char::is_control), "{first:?}");
        let fix = e.fix().unwrap();
        assert!(!fix.chars().any(char::is_control), "{fix:?}");
        assert!(
            fix.contains(r"AZURE_FEDERATED_TOKEN_AUDIENCE='api://my\napp\u{1b}[31m'"),
            "{fix}"
        );
        // A value a shell would split or expand is one quoted word.
        let claims = jwt::Claims {
            aud: vec!["api://it's mine".into()],
            ..Default::default()
        };
        let fix = audience_fix(&claims, "api://AzureADTokenExchange", None);
        assert!(
            fix.contains(r"AZURE_FEDERATED_TOKEN_AUDIENCE='api://it'\''s mine'"),
            "{fix}"
        );
    }

    #[tokio::test]
    async fn good_token_is_trimmed_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        let t = token("api://AzureADTokenExchange", NOW - 10, NOW + 3600);
        std::fs::write(&p, format!("  {t}\n")).unwrap();
        let a = source(p, false).assertion().await.unwrap();
        assert_eq!(a.secret(), t);
        assert!(!format!("{a:?}").contains(&t));
    }

    #[tokio::test]
    async fn each_bad_file_has_its_own_message() {
        let e = source(PathBuf::from("/no/such/token"), false)
            .assertion()
            .await
            .unwrap_err();
        assert!(
            e.message().contains("does not exist") && e.message().contains("#token-file-missing"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = source(dir.path().to_path_buf(), false)
            .assertion()
            .await
            .unwrap_err();
        assert!(e.message().contains("is a directory"), "{e}");
        let e = err_for(b"").await;
        assert!(e.message().contains("is empty"), "{e}");
        let e = err_for(b" \n").await;
        assert!(e.message().contains("only whitespace"), "{e}");
        let e = err_for(b"hunter2-not-a-jwt").await;
        assert!(
            e.message().contains("3 dot-separated parts") && !e.message().contains("hunter2"),
            "{e}"
        );
        let e = err_for(&[0xff, 0xfe, 0x00]).await;
        assert!(e.message().contains("not UTF-8"), "{e}");
        assert_eq!(e.category(), ErrorCategory::TokenFile);
    }

    #[tokio::test]
    async fn expired_token_says_when_and_why() {
        let e =
            err_for(token("api://AzureADTokenExchange", NOW - 7200, NOW - 3600).as_bytes()).await;
        assert_eq!(e.category(), ErrorCategory::Assertion);
        assert!(
            e.message().contains("expired at")
                && e.message().contains("80 %")
                && e.message().contains("1h00m ago"),
            "{e}"
        );
        // Within the skew: accepted.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(
            &p,
            token("api://AzureADTokenExchange", NOW - 3600, NOW - 60),
        )
        .unwrap();
        assert!(source(p, false).assertion().await.is_ok());
    }

    fn source_with(
        path: PathBuf,
        expected: &str,
        explicit: bool,
        allow: bool,
        env: &Env,
    ) -> TokenFileSource {
        TokenFileSource {
            audience_explicit: explicit,
            denied: denied_paths(env).into(),
            clock: Arc::new(ManualClock::new(
                OffsetDateTime::from_unix_timestamp(NOW).unwrap(),
            )),
            ..TokenFileSource::new(path, expected, allow)
        }
    }

    fn token_with(aud: &str, iss: &str) -> String {
        make(
            r#"{"alg":"RS256","kid":"k"}"#,
            &format!(
                r#"{{"aud":["{aud}"],"iss":"{iss}","sub":"system:serviceaccount:ns:sa","iat":{NOW},"exp":{}}}"#,
                NOW + 3600
            ),
        )
    }

    /// The audience rules of docs/security.md, one case each.
    #[tokio::test]
    async fn audience_rules() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        let env = Env::from_pairs::<&str, &str>([]);
        let iss = "https://my-oidc-bucket.s3.eu-west-1.amazonaws.com";
        let expected = "api://AzureADTokenExchange";
        // (audience, expected audience set by the user, allow_foreign_audience, expected outcome)
        for (aud, explicit, allow, outcome) in [
            (expected, false, false, Ok(())),
            // A custom audience: sent, as azure_identity sends it, unless the user set the
            // expected audience.
            ("api://my-custom-audience", false, false, Ok(())),
            (
                "api://my-custom-audience",
                true,
                false,
                Err(
                    "has audience api://my-custom-audience but api://AzureADTokenExchange is expected",
                ),
            ),
            // Foreign audiences: refused whatever the expected audience.
            (
                "sts.amazonaws.com",
                false,
                false,
                Err("credential for AWS STS"),
            ),
            (
                "https://STS-FIPS.us-east-1.amazonaws.com",
                true,
                false,
                Err("credential for AWS STS"),
            ),
            (
                "sts.eu-west-1.api.aws",
                false,
                false,
                Err("credential for AWS STS"),
            ),
            (
                "pods.eks.amazonaws.com",
                false,
                false,
                Err("EKS Pod Identity"),
            ),
            (
                "http://kubernetes.default.svc",
                false,
                false,
                Err("Kubernetes API server"),
            ),
            (iss, false, false, Err("its own issuer")),
            (&format!("{iss}/"), false, false, Err("its own issuer")),
            // allow_foreign_audience does not switch off the expected-audience check.
            (
                "sts.amazonaws.com",
                false,
                true,
                Err("does not include the expected audience"),
            ),
            (
                iss,
                true,
                true,
                Err("does not include the expected audience"),
            ),
        ] {
            std::fs::write(&p, token_with(aud, iss)).unwrap();
            let got = source_with(p.clone(), expected, explicit, allow, &env)
                .assertion()
                .await;
            match (outcome, got) {
                (Ok(()), Ok(a)) => assert_eq!(a.claims().unwrap().aud, vec![aud.to_string()]),
                (Err(needle), Err(e)) => {
                    let m = e.message();
                    assert!(m.contains(needle), "{aud}: {m}");
                    assert_eq!(e.category(), ErrorCategory::Assertion);
                    // No message suggests a foreign audience (the token's own is quoted as such).
                    assert!(m.contains(expected), "{aud}: {m}");
                    for bad in ["AUDIENCE=sts", "audience: sts", "audience: https://my-oidc"] {
                        assert!(!m.contains(bad), "{aud}: {m}");
                    }
                }
                (want, got) => {
                    panic!("{aud} explicit={explicit} allow={allow}: want {want:?}, got {got:?}")
                }
            }
        }
        // Allowed, and the user expects that audience: sent (with a warning).
        std::fs::write(&p, token_with("sts.amazonaws.com", iss)).unwrap();
        let a = source_with(p.clone(), "sts.amazonaws.com", true, true, &env)
            .assertion()
            .await
            .unwrap();
        assert_eq!(a.claims().unwrap().aud, vec!["sts.amazonaws.com"]);
        // A foreign expected audience is never recommended: the cloud's audience is.
        std::fs::write(&p, token_with("api://x", iss)).unwrap();
        let e = source_with(p.clone(), "sts.amazonaws.com", true, false, &env)
            .assertion()
            .await
            .unwrap_err();
        assert!(
            e.fix().is_some_and(|f| f.starts_with(
                "set the projected volume's serviceAccountToken.audience to api://AzureADTokenExchange;"
            )),
            "{e}"
        );
        assert_eq!(e.problem_id(), Some(ProblemId::AudienceMismatch));
    }

    #[test]
    fn audience_verdicts() {
        use AudienceVerdict::*;
        use ForeignAudience::*;
        let e = "api://AzureADTokenExchange";
        let claims = |auds: &[&str]| jwt::Claims {
            iss: Some("https://issuer.example".into()),
            aud: auds.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        };
        for (auds, explicit, allow, want) in [
            (&[e][..], false, false, Expected),
            (&["api://custom"][..], false, false, Custom),
            (&["api://custom"][..], true, false, Mismatch),
            (&[e, "sts.amazonaws.com"][..], false, false, Foreign(AwsSts)),
            (
                &[e, "sts.amazonaws.com"][..],
                true,
                true,
                AllowedForeign(AwsSts),
            ),
            (
                &["https://issuer.example/"][..],
                false,
                true,
                AllowedForeignWithoutExpected(OwnIssuer),
            ),
        ] {
            assert_eq!(
                AudienceVerdict::of(&claims(auds), e, explicit, allow),
                want,
                "{auds:?}"
            );
        }
    }

    #[tokio::test]
    async fn well_known_credential_paths_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let irsa = dir.path().join("irsa-token");
        std::fs::write(&irsa, token("api://AzureADTokenExchange", NOW, NOW + 3600)).unwrap();
        let link = dir.path().join("innocent-looking");
        std::os::unix::fs::symlink(&irsa, &link).unwrap();
        let env = Env::from_pairs([(
            crate::assertion::foreign::AWS_WEB_IDENTITY_TOKEN_FILE,
            irsa.display().to_string(),
        )]);
        for p in [
            irsa.clone(),
            link.clone(),
            PathBuf::from(crate::assertion::foreign::DEFAULT_SERVICE_ACCOUNT_TOKEN_PATH),
            PathBuf::from(crate::assertion::foreign::EKS_POD_IDENTITY_TOKEN_PATH),
        ] {
            let s = source_with(p.clone(), "api://AzureADTokenExchange", false, false, &env);
            for e in [s.check_now().unwrap_err(), s.assertion().await.unwrap_err()] {
                assert!(
                    e.message().contains("refused to read")
                        && e.message().contains("#foreign-audience"),
                    "{}: {e}",
                    p.display()
                );
            }
        }
        // allow_foreign_audience lets the file be read (its audience rules still apply).
        let s = source_with(link, "api://AzureADTokenExchange", false, true, &env);
        assert!(s.assertion().await.is_ok());
    }

    #[tokio::test]
    async fn extreme_timestamps_are_checked_without_panicking() {
        // exp at the last representable second (9999-12-31T23:59:59Z): `exp + skew` would
        // overflow; the token is simply not expired.
        let max = 253_402_300_799;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, token("api://AzureADTokenExchange", NOW - 10, max)).unwrap();
        assert!(source(p.clone(), false).assertion().await.is_ok());
        // iat at the first representable second, exp long past: expired, with a message.
        let min = -377_705_116_800;
        std::fs::write(&p, token("api://AzureADTokenExchange", min, NOW - 7200)).unwrap();
        let e = source(p.clone(), false).assertion().await.unwrap_err();
        assert!(e.message().contains("expired at"), "{e}");
        // iat after exp (nonsense claims): expired, without a negative lifetime.
        std::fs::write(
            &p,
            token("api://AzureADTokenExchange", NOW - 60, NOW - 7200),
        )
        .unwrap();
        let e = source(p.clone(), false).assertion().await.unwrap_err();
        assert!(e.message().contains("is not before its exp"), "{e}");
        assert!(!e.message().contains(" for -"), "{e}");
        // nbf at the end of time: not yet valid.
        std::fs::write(&p, token("api://AzureADTokenExchange", max, max)).unwrap();
        let e = source(p, false).assertion().await.unwrap_err();
        assert!(e.message().contains("not valid before"), "{e}");
    }

    /// Nothing configured but the pod's default service-account token present (staged here in
    /// its place in the list of foreign paths): the not-configured error says it was found and
    /// not used, why, and its claims, with the dedicated-token fix instead of "no token file".
    #[test]
    fn the_default_token_found_with_nothing_configured_is_named_and_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("token");
        let iss = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC";
        let claims = format!(
            r#"{{"aud":["https://kubernetes.default.svc"],"iss":"{iss}","sub":"system:serviceaccount:billing:billing-api","exp":{}}}"#,
            NOW + 3600
        );
        std::fs::write(&staged, make(r#"{"alg":"RS256"}"#, &claims)).unwrap();
        let env = Env::from_pairs::<&str, &str>([]);
        let mut denied = denied_paths(&env);
        let default = denied
            .iter_mut()
            .find(|(p, _)| p.ends_with("kubernetes.io/serviceaccount/token"));
        default.unwrap().0 = staged;
        let not_configured = |denied: &[(PathBuf, ForeignPath)]| {
            crate::config::resolve(&crate::config::ConfigInputs {
                client_id: None,
                tenant_id: None,
                token_file_path: None,
                cloud: None,
                expected_audience: None,
                well_known_token_paths: &[],
                env: &env,
                unused_token: &|aud| unused_credentials(denied, aud),
            })
            .unwrap_err()
        };
        let e = not_configured(&denied);
        assert!(e.is_not_configured(), "{e}");
        let text = e.message();
        assert!(
            text.contains("found the pod's default service-account token (/var/run/secrets/kubernetes.io/serviceaccount/token) and did not use it, because it is a credential for the Kubernetes API server")
                && text.contains(&format!("its issuer is {iss}, subject system:serviceaccount:billing:billing-api, audience https://kubernetes.default.svc"))
                && !text.contains("no token file"),
            "{text}"
        );
        let fix = e.fix().unwrap();
        assert!(
            fix.contains(
                "mount a dedicated projected token with audience api://AzureADTokenExchange"
            ) && fix.contains("AZURE_FEDERATED_TOKEN_FILE")
                && !fix.contains("kubernetes.default.svc"),
            "{fix}"
        );
        // Without it, the error is as before.
        let e = not_configured(&[]);
        assert!(
            e.message()
                .contains("no client id, no tenant id, no token file."),
            "{e}"
        );
    }
}
