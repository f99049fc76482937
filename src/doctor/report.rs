//! The doctor's result: an ordered checklist, as data (JSON through serde) and as text.

use crate::error::CredentialError;
use crate::escape::escape;
use crate::problem::ProblemId;
use serde::ser::SerializeMap as _;
use serde::{Serialize, Serializer};
use std::fmt;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Passed.
    Ok,
    /// Passed, but something deserves attention (the `fix` says what).
    Warn,
    /// Failed: this is (one of) the reasons the credential cannot work; the `fix` says what to do.
    Fail,
    /// Not run, because a check it depends on failed (the summary says which).
    Skip,
}

/// The checks, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CheckId {
    /// Client id, tenant id, token file, authority, expected audience, and where each came from.
    Configuration,
    /// The token file: path, symlink layout, age, readable.
    TokenFile,
    /// The token is a JWT; its header and claims.
    Jwt,
    /// The token's audience against the expected one (and refusal of AWS / cluster audiences).
    Audience,
    /// Expiry, and whether the kubelet is rotating the file.
    Expiry,
    /// AWS outbound federation (cargo feature `aws`, replaces `token-file` to `expiry`): the
    /// options, and a JWT from STS `GetWebIdentityToken` with its issuer, role-ARN subject,
    /// audience and expiry.
    AwsSts,
    /// The issuer's form: HTTPS, no whitespace, trailing slash, publicly resolvable name.
    Issuer,
    /// The issuer's OpenID discovery document, fetched from here over HTTPS.
    Discovery,
    /// The issuer's JWKS, fetched from here, holds the token's `kid`.
    Jwks,
    /// The token's RSA signature (RS256, RS384, RS512) verifies with the published key, as Entra
    /// verifies it.
    Signature,
    /// The scope requested in the test exchange has the form Entra accepts.
    Scope,
    /// A real token request to Entra ID with this token.
    Exchange,
}

impl CheckId {
    /// The stable name used in JSON and text (`token-file`, `exchange`, ...).
    pub fn name(self) -> &'static str {
        [
            "configuration",
            "token-file",
            "jwt",
            "audience",
            "expiry",
            "aws-sts",
            "issuer",
            "discovery",
            "jwks",
            "signature",
            "scope",
            "exchange",
        ][self as usize]
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Check {
    /// Which check.
    pub id: CheckId,
    /// The outcome.
    pub status: Status,
    /// One sentence: what was found.
    pub summary: String,
    /// What was looked at, in order (label, value). Never contains a token.
    #[serde(serialize_with = "ordered_map")]
    pub details: Vec<(String, String)>,
    /// For a warning or failure: exactly what to change. For a problem the credential reports
    /// too, the same as [`CredentialError::fix`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The problem's entry in the catalogue: the same as [`CredentialError::problem_id`] for the
    /// same fault (in JSON its string form, e.g. `"token-expired"` or `"aadsts70021"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem_id: Option<ProblemId>,
    /// The absolute, versioned URL of the problem's documentation section
    /// ([`ProblemId::documentation_url`]): the same as [`CredentialError::documentation_url`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The AADSTS codes Entra answered with (exchange only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aadsts: Vec<u32>,
}

fn ordered_map<S: Serializer>(details: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(details.len()))?;
    for (k, v) in details {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

impl Check {
    pub(crate) fn new(id: CheckId, status: Status, summary: impl Into<String>) -> Self {
        Self {
            id,
            status,
            summary: summary.into(),
            details: Vec::new(),
            fix: None,
            problem_id: None,
            url: None,
            aadsts: Vec::new(),
        }
    }

    pub(crate) fn detail(mut self, label: &str, value: impl Into<String>) -> Self {
        self.details.push((label.to_string(), value.into()));
        self
    }

    /// The outcome: status and what was found.
    pub(crate) fn outcome(mut self, status: Status, summary: impl Into<String>) -> Self {
        self.status = status;
        self.summary = summary.into();
        self
    }

    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// The catalogue entry of this outcome, its URL, and its fix ([`ProblemId::fix`]) unless the
    /// check gave one.
    pub(crate) fn problem(mut self, problem: ProblemId) -> Self {
        self.problem_id = Some(problem);
        self.url = Some(problem.documentation_url());
        self.fix = self.fix.or_else(|| problem.fix().map(str::to_owned));
        self
    }

    /// Failed with the credential's own error: its first line, catalogue entry, URL and fix.
    pub(crate) fn refused(self, e: &CredentialError) -> Self {
        self.outcome(Status::Fail, e.headline()).error(e)
    }

    /// The credential's own problem for this outcome: its catalogue entry, URL and fix.
    pub(crate) fn error(mut self, e: &CredentialError) -> Self {
        self.problem_id = e.problem_id();
        self.url = e.documentation_url().map(str::to_owned);
        self.fix = e.fix().map(str::to_owned);
        self
    }
}

/// The federated identity credential that matches the token found here, exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MatchingFederatedCredential {
    /// The token's `iss`, verbatim (case and trailing slash matter).
    pub issuer: String,
    /// The token's `sub`: `system:serviceaccount:<namespace>:<service account>`.
    pub subject: String,
    /// The audience to put on the credential: the token's own when the credential sends it with a
    /// custom audience (none configured), else the expected audience.
    pub audience: String,
}

/// The whole checklist.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// True when no check failed (warnings allowed).
    pub ok: bool,
    /// The scope of the test exchange.
    pub scope: String,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
    /// The federated credential that would match this token, when the token could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matching_federated_credential: Option<MatchingFederatedCredential>,
}

impl Report {
    /// The check with this id.
    pub fn check(&self, id: CheckId) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// The first failed check: where to start fixing.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.status == Status::Fail)
    }

    /// How many checks ended with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// `text` line by line, each line [`escape`]d: the report's own line breaks stay, a control
/// character or bidirectional override inside a line (from a claim, a path, Entra's answer) is
/// written escaped, so no value colours the terminal or reorders the text.
fn indent(f: &mut fmt::Formatter<'_>, text: &str, first: &str, rest: &str) -> fmt::Result {
    for (i, line) in text.lines().enumerate() {
        writeln!(f, "{}{}", if i == 0 { first } else { rest }, escape(line))?;
    }
    Ok(())
}

impl fmt::Display for Report {
    /// The checklist for a terminal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            let label = ["[ ok ]", "[warn]", "[FAIL]", "[skip]"][c.status as usize];
            writeln!(f, "{label} {:<13} {}", c.id.name(), escape(&c.summary))?;
            let width = c.details.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in &c.details {
                let first = format!("         {:<1$} ", format!("{k}:"), width + 1);
                indent(f, v, &first, &" ".repeat(width + 11))?;
            }
            if let Some(fix) = &c.fix {
                indent(f, fix, "         fix: ", "              ")?;
            }
            if let Some(see) = &c.url
                && c.status != Status::Ok
            {
                writeln!(f, "         see: {see}")?;
            }
        }
        if let Some(m) = &self.matching_federated_credential {
            writeln!(f)?;
            writeln!(f, "A federated identity credential matching this token:")?;
            writeln!(f, "  issuer:   {}", escape(&m.issuer))?;
            writeln!(f, "  subject:  {}", escape(&m.subject))?;
            writeln!(f, "  audience: {}", escape(&m.audience))?;
        }
        writeln!(f)?;
        let verdict = if self.ok { "OK" } else { "FAILED" };
        write!(
            f,
            "doctor: {verdict}: {} ok, {} warning(s), {} failed, {} skipped",
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Fail),
            self.count(Status::Skip)
        )?;
        if let Some(first) = self.first_failure() {
            write!(f, "; start with `{}`", first.id)?;
        }
        writeln!(f)?;
        if !self.ok {
            writeln!(
                f,
                "Every request and answer (never a token): rerun with RUST_LOG=azure_identity_k8s=debug,azure_core=debug"
            )?;
        }
        Ok(())
    }
}
