//! The catalogue's problem identifiers: one [`ProblemId`] per fault the credential (and `doctor`)
//! can name, each with its section in the documentation.

use std::fmt;
use std::str::FromStr;

/// A documentation page that messages link: a problem's section, or a setup step `doctor` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    /// docs/troubleshooting.md, the [`crate::troubleshooting`] module on docs.rs.
    Troubleshooting,
    /// docs/aws-outbound.md, the [`crate::aws_outbound`] module on docs.rs.
    AwsOutbound,
    /// docs/self-managed.md, the [`crate::guides::self_managed`] module on docs.rs (`doctor`'s
    /// issuer checks link its steps).
    #[cfg_attr(not(feature = "doctor"), allow(dead_code))]
    SelfManaged,
}

impl Page {
    /// The module of the page on docs.rs, relative to [`crate::error::DOCS_ROOT`].
    fn module(self) -> &'static str {
        match self {
            Page::Troubleshooting => "troubleshooting",
            Page::AwsOutbound => "aws_outbound",
            Page::SelfManaged => "guides/self_managed",
        }
    }

    /// The absolute, versioned URL of the section `anchor` of the page on docs.rs, e.g.
    /// `https://docs.rs/azure_identity_k8s/0.1.0/azure_identity_k8s/guides/self_managed/index.html#issuer`.
    pub(crate) fn url(self, anchor: &str) -> String {
        format!(
            "{}{}/index.html#{anchor}",
            crate::error::DOCS_ROOT,
            self.module()
        )
    }
}

/// Declares [`ProblemId`]'s unit variants with their stable id, page and anchor, and the list of
/// them, so that a variant cannot exist without its id and its place in [`ProblemId::all`].
macro_rules! problems {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $page:ident $anchor:literal; )*) => {
        /// A problem of the catalogue: the stable identifier a [`crate::CredentialError`]
        /// ([`problem_id`](crate::CredentialError::problem_id)) and a `doctor` check carry for the
        /// same fault, for programs to branch on and to search logs for.
        ///
        /// Its string form ([`Display`](fmt::Display), [`FromStr`], and serde) is the documented,
        /// stable id: the anchor of its section in docs/troubleshooting.md (`token-expired`,
        /// `invalid-scope`, ...), `aadsts<code>` for an Entra error (e.g. `aadsts70021`, also for
        /// codes without a section of their own), or `aws-<anchor>` for a section of
        /// docs/aws-outbound.md (e.g. `aws-access-denied`).
        /// [`documentation_url`](Self::documentation_url) is the absolute, versioned URL of that
        /// section.
        ///
        /// ```
        /// use azure_identity_k8s::ProblemId;
        /// assert_eq!(ProblemId::TokenExpired.to_string(), "token-expired");
        /// assert_eq!("aadsts70021".parse::<ProblemId>(), Ok(ProblemId::Aadsts(70021)));
        /// assert!(ProblemId::Aadsts(70021).documentation_url().ends_with("/troubleshooting/index.html#aadsts70021"));
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ProblemId {
            $( $(#[$doc])* $variant, )*
            /// Entra answered with this AADSTS code (the first of its `error_codes`).
            Aadsts(u32),
        }

        /// Every problem but [`ProblemId::Aadsts`].
        const LOCAL: &[ProblemId] = &[$(ProblemId::$variant,)*];

        impl ProblemId {
            /// The stable id, page and anchor of a problem other than `Aadsts`.
            fn local(self) -> Option<(&'static str, Page, &'static str)> {
                match self {
                    $( ProblemId::$variant => Some(($id, Page::$page, $anchor)), )*
                    ProblemId::Aadsts(_) => None,
                }
            }
        }
    };
}

problems! {
    /// No client id, tenant id or token file was found: the credential is not configured here.
    NotConfigured = "not-configured", Troubleshooting "not-configured";
    /// A configuration value was found but is malformed (tenant id, authority host, ...).
    InvalidConfiguration = "invalid-configuration", Troubleshooting "invalid-configuration";
    /// The requested scopes cannot be sent: one `<resource>/.default` scope is needed.
    InvalidScope = "invalid-scope", Troubleshooting "invalid-scope";
    /// The token file does not exist.
    TokenFileMissing = "token-file-missing", Troubleshooting "token-file-missing";
    /// The token file cannot be read (permission denied, a symlink loop, an I/O error).
    TokenFileUnreadable = "token-file-unreadable", Troubleshooting "token-file-unreadable";
    /// The token file's path is a directory.
    TokenFileIsADirectory = "token-file-is-a-directory", Troubleshooting "token-file-is-a-directory";
    /// The token file is a FIFO, socket or device, or larger than 64 KiB.
    TokenFileNotARegularFile = "token-file-not-a-regular-file", Troubleshooting "token-file-not-a-regular-file";
    /// The token file is empty or holds only whitespace.
    TokenFileEmpty = "token-file-empty", Troubleshooting "token-file-empty";
    /// The token file does not hold a JWT.
    TokenFileNotAJwt = "token-file-not-a-jwt", Troubleshooting "token-file-not-a-jwt";
    /// The service-account token's `exp` is past.
    TokenExpired = "token-expired", Troubleshooting "token-expired";
    /// The service-account token's `nbf` is in the future.
    TokenNotYetValid = "token-not-yet-valid", Troubleshooting "token-not-yet-valid";
    /// The token lacks the expected audience the user set.
    AudienceMismatch = "audience-mismatch", Troubleshooting "audience-mismatch";
    /// The token (or the file) is a credential for something else: AWS STS, EKS Pod Identity,
    /// the Kubernetes API server.
    ForeignAudience = "foreign-audience", Troubleshooting "foreign-audience";
    /// A custom client assertion source failed or returned an empty assertion.
    ClientAssertionSource = "client-assertion-source", Troubleshooting "client-assertion-source";
    /// The token request did not complete (connection, TLS, broken-off answer), for a cause
    /// none of the `Transport*` problems names.
    Transport = "transport", Troubleshooting "transport";
    /// No answer: the host refused the connection (nothing listens on that port).
    TransportConnectionRefused = "transport-connection-refused", Troubleshooting "transport-connection-refused";
    /// No answer: the host name does not resolve.
    TransportDns = "transport-dns", Troubleshooting "transport-dns";
    /// No answer: the connection was closed or reset before an answer.
    TransportConnectionReset = "transport-connection-reset", Troubleshooting "transport-connection-reset";
    /// No answer: the server's certificate is from a CA this client does not trust.
    TransportUntrustedCertificate = "transport-untrusted-certificate", Troubleshooting "transport-untrusted-certificate";
    /// No answer: the server's certificate is not valid for the host name.
    TransportCertificateName = "transport-certificate-name", Troubleshooting "transport-certificate-name";
    /// No answer: the server's certificate is expired or not yet valid.
    TransportCertificateExpired = "transport-certificate-expired", Troubleshooting "transport-certificate-expired";
    /// No answer: another TLS handshake failure.
    TransportTls = "transport-tls", Troubleshooting "transport-tls";
    /// No answer: the HTTP proxy refused or failed the `CONNECT` tunnel.
    TransportProxy = "transport-proxy", Troubleshooting "transport-proxy";
    /// No answer: the connection timed out (packets dropped).
    TransportTimedOut = "transport-timed-out", Troubleshooting "transport-timed-out";
    /// An attempt did not finish within `RefreshPolicy::attempt_timeout`.
    Timeout = "timeout", Troubleshooting "timeout";
    /// The token endpoint's answer is not Entra's (HTML, text, truncated, missing fields).
    InvalidResponse = "invalid-response", Troubleshooting "invalid-response";
    /// Entra answered with an OAuth error that carries no AADSTS code.
    EntraError = "entra-errors", Troubleshooting "entra-errors";
    /// AWS STS `AccessDenied`: the role may not call `sts:GetWebIdentityToken`.
    AwsAccessDenied = "aws-access-denied", AwsOutbound "access-denied";
    /// Outbound identity federation is not enabled for the AWS account.
    AwsFederationDisabled = "aws-federation-disabled", AwsOutbound "federation-disabled";
    /// The AWS credentials are missing, expired or not accepted.
    AwsCredentials = "aws-credentials", AwsOutbound "aws-credentials";
    /// AWS STS is throttling the account's requests.
    AwsThrottling = "aws-throttling", AwsOutbound "throttling";
    /// STS is not activated in the region.
    AwsRegion = "aws-region", AwsOutbound "region";
    /// An AWS option or request parameter is outside what STS accepts (duration, signing
    /// algorithm, audience, region).
    AwsLimits = "aws-limits", AwsOutbound "limits";
    /// Any other AWS STS failure (not reached, timed out, an unlisted error code).
    AwsSts = "aws-troubleshooting", AwsOutbound "troubleshooting";
}

/// AADSTS codes with a section of their own in docs/troubleshooting.md; any other code links
/// the section on Entra errors in general.
const DOCUMENTED_CODES: &[u32] = &[
    70021, 700211, 700212, 700213, 7002137, 7002138, 700024, 90061, 700027, 50027, 900384, 700016,
    90002, 90023, 1002012, 70011, 50196, 7000272, 70023, 5002738,
];

impl ProblemId {
    /// Every problem of the catalogue: each local one, and `Aadsts(code)` for every code with a
    /// section of its own in docs/troubleshooting.md.
    pub fn all() -> impl Iterator<Item = ProblemId> {
        LOCAL
            .iter()
            .copied()
            .chain(DOCUMENTED_CODES.iter().map(|&c| ProblemId::Aadsts(c)))
    }

    /// The page and anchor of the problem's section: for an AADSTS code without a section of its
    /// own, the section on Entra errors in general.
    fn section(self) -> (Page, String) {
        match (self, self.local()) {
            (_, Some((_, page, anchor))) => (page, anchor.to_owned()),
            (ProblemId::Aadsts(code), None) if DOCUMENTED_CODES.contains(&code) => {
                (Page::Troubleshooting, format!("aadsts{code}"))
            }
            _ => (Page::Troubleshooting, "entra-errors".to_owned()),
        }
    }

    /// The anchor of the problem's section (`<a id>` in docs/troubleshooting.md or
    /// docs/aws-outbound.md), and which of the two pages it is on (`true`: aws-outbound.md).
    #[cfg(test)]
    pub(crate) fn anchor(self) -> (bool, String) {
        let (page, anchor) = self.section();
        (page == Page::AwsOutbound, anchor)
    }

    /// The absolute, versioned URL of the problem's section on docs.rs, e.g.
    /// `https://docs.rs/azure_identity_k8s/0.1.0/azure_identity_k8s/troubleshooting/index.html#token-expired`.
    pub fn documentation_url(self) -> String {
        let (page, anchor) = self.section();
        page.url(&anchor)
    }
}

impl fmt::Display for ProblemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.local()) {
            (_, Some((id, _, _))) => f.write_str(id),
            (ProblemId::Aadsts(code), None) => write!(f, "aadsts{code}"),
            (_, None) => unreachable!("every other variant is local"),
        }
    }
}

/// A string that is not a problem id of this release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProblemId(String);

impl fmt::Display for UnknownProblemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a problem id of azure_identity_k8s {}",
            self.0,
            env!("CARGO_PKG_VERSION")
        )
    }
}

impl std::error::Error for UnknownProblemId {}

impl FromStr for ProblemId {
    type Err = UnknownProblemId;

    /// The inverse of `Display`: `token-expired`, `aadsts70021` (any code), `aws-access-denied`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(p) = LOCAL
            .iter()
            .find(|p| p.local().is_some_and(|(id, ..)| id == s))
        {
            return Ok(*p);
        }
        s.strip_prefix("aadsts")
            .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|c| c.parse().ok())
            .map(ProblemId::Aadsts)
            .ok_or_else(|| UnknownProblemId(s.to_owned()))
    }
}

impl serde::Serialize for ProblemId {
    /// As its string form, e.g. `"token-expired"`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every problem's section exists on its page, its URL is absolute, and its string form
    /// parses back to it. `ProblemId::all` lists every variant by construction: the `problems!`
    /// macro declares each unit variant together with its entry in `LOCAL`.
    #[test]
    fn every_problem_has_its_section_and_round_trips() {
        let troubleshooting = include_str!("../docs/troubleshooting.md");
        let aws = include_str!("../docs/aws-outbound.md");
        let mut n = 0;
        for p in ProblemId::all() {
            match p {
                ProblemId::Aadsts(code) => assert!(DOCUMENTED_CODES.contains(&code)),
                _ => assert!(p.local().is_some()),
            }
            let (on_aws_page, anchor) = p.anchor();
            let page = if on_aws_page { aws } else { troubleshooting };
            assert!(
                page.contains(&format!("<a id=\"{anchor}\"></a>")),
                "{p}: no anchor {anchor:?}"
            );
            let url = p.documentation_url();
            assert!(
                url.starts_with("https://docs.rs/azure_identity_k8s/")
                    && url.ends_with(&format!("#{anchor}")),
                "{url}"
            );
            assert_eq!(p.to_string().parse::<ProblemId>(), Ok(p));
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{p}\""),
                "serialized as its id"
            );
            n += 1;
        }
        assert_eq!(n, LOCAL.len() + DOCUMENTED_CODES.len());
        // Ids stay what they were before the type existed (documented, searched for in logs).
        assert_eq!(ProblemId::AwsSts.to_string(), "aws-troubleshooting");
        assert_eq!(ProblemId::EntraError.to_string(), "entra-errors");
        assert_eq!(ProblemId::Aadsts(123).to_string(), "aadsts123");
        assert!(
            ProblemId::Aadsts(123)
                .documentation_url()
                .ends_with("/troubleshooting/index.html#entra-errors")
        );
        // The other way round: every section of the two pages that names a problem has its id.
        let anchors: Vec<(bool, String)> = ProblemId::all().map(ProblemId::anchor).collect();
        for (on_aws_page, page, not_problems) in [
            (false, troubleshooting, &["doctor"][..]),
            (true, aws, &["iam-policy", "logging"][..]),
        ] {
            for (i, _) in page.match_indices("<a id=\"") {
                let anchor: String = page[i + 7..].chars().take_while(|c| *c != '"').collect();
                assert!(
                    not_problems.contains(&anchor.as_str())
                        || anchors.contains(&(on_aws_page, anchor.clone())),
                    "section {anchor:?} has no ProblemId"
                );
            }
        }
        for bad in [
            "",
            "aadsts",
            "aadsts-1",
            "Token-Expired",
            "aadsts99999999999",
        ] {
            assert!(bad.parse::<ProblemId>().is_err(), "{bad}");
        }
    }
}
