//! The catalogue: one [`ProblemId`] per fault the credential (and `doctor`) can name, each with
//! its stable id, its section in the documentation, its [`ErrorCategory`] and whether it is
//! transient.

use std::fmt;
use std::str::FromStr;

/// The root of this release's documentation on docs.rs (`documentation` in Cargo.toml), e.g.
/// `https://docs.rs/azure_identity_k8s/0.1.0/azure_identity_k8s/`. Versioned, so a link in a log
/// line keeps pointing at the text that matches the code that wrote it.
pub(crate) const DOCS_ROOT: &str = concat!(
    "https://docs.rs/",
    env!("CARGO_PKG_NAME"),
    "/",
    env!("CARGO_PKG_VERSION"),
    "/",
    env!("CARGO_CRATE_NAME"),
    "/"
);

/// What part of the flow failed. Lets callers (and the chain) branch without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCategory {
    /// Required configuration (client id, tenant id, token file) was not found at all: the
    /// credential is simply not configured here. A chain moves on to its next source.
    NotConfigured,
    /// Configuration was found but is invalid (malformed tenant id, non-HTTPS authority, ...).
    InvalidConfiguration,
    /// The requested scopes cannot be sent to Entra as they are.
    InvalidScope,
    /// The projected service-account token file is missing, unreadable, empty or not a JWT.
    TokenFile,
    /// The service-account token was read but fails a local check (expired, wrong audience).
    Assertion,
    /// Entra answered with an error (AADSTS code).
    Entra,
    /// Entra's answer could not be understood (not JSON, truncated, missing fields).
    InvalidResponse,
    /// The request did not complete: connection refused or reset, TLS failure, time-out.
    Transport,
    /// The attempt did not finish within the configured bound.
    Timeout,
}

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
    /// docs/security.md, the [`crate::guides::security`] module on docs.rs (the exchange's WARN
    /// about a custom transport links its section on redirects).
    Security,
}

impl Page {
    /// The absolute, versioned URL of the section `anchor` of the page on docs.rs, e.g.
    /// `https://docs.rs/azure_identity_k8s/0.1.0/azure_identity_k8s/guides/self_managed/index.html#issuer`.
    pub(crate) fn url(self, anchor: &str) -> String {
        let module = match self {
            Page::Troubleshooting => "troubleshooting",
            Page::AwsOutbound => "aws_outbound",
            Page::SelfManaged => "guides/self_managed",
            Page::Security => "guides/security",
        };
        format!("{DOCS_ROOT}{module}/index.html#{anchor}")
    }
}

/// A problem's entry: stable id, section (page and anchor), category, whether it is transient
/// (an error may say otherwise from its facts: an HTTP status, an AWS error code), its fix when
/// it needs no facts ([`ProblemId::fix`]) and a `Transport*` problem's words
/// ([`ProblemId::transport_words`]).
struct Entry {
    id: &'static str,
    section: (Page, &'static str),
    category: ErrorCategory,
    transient: bool,
    fix: Option<&'static str>,
    words: Option<&'static str>,
}

/// Declares [`ProblemId`]'s unit variants with their entry (the section is on docs/troubleshooting.md
/// with the id as anchor unless given), and the list of them, so that a variant cannot exist
/// without its entry and its place in [`ProblemId::all`].
macro_rules! problems {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $category:ident, $transient:literal
        $(, in $page:ident $anchor:literal)? $(, words: $words:literal)? $(, fix: $fix:expr)?; )*) => {
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
            /// The entry of a problem other than `Aadsts`.
            fn local(self) -> Option<Entry> {
                match self {
                    $( ProblemId::$variant => Some(Entry {
                        id: $id,
                        section: [$((Page::$page, $anchor),)? (Page::Troubleshooting, $id)][0],
                        category: ErrorCategory::$category,
                        transient: $transient,
                        fix: [$(Some($fix),)? None][0],
                        words: [$(Some($words),)? None][0],
                    }), )*
                    ProblemId::Aadsts(_) => None,
                }
            }
        }
    };
}

problems! {
    /// No client id, tenant id or token file was found: the credential is not configured here.
    NotConfigured = "not-configured", NotConfigured, false;
    /// A configuration value was found but is malformed (tenant id, authority host, ...).
    InvalidConfiguration = "invalid-configuration", InvalidConfiguration, false;
    /// The requested scopes cannot be sent: one `<resource>/.default` scope is needed.
    InvalidScope = "invalid-scope", InvalidScope, false;
    /// The token file does not exist.
    TokenFileMissing = "token-file-missing", TokenFile, false, fix:
        "Check that the pod mounts a projected serviceAccountToken volume at this path (with the Azure Workload \
         Identity webhook: label the pod azure.workload.identity/use: \"true\" and annotate its service account), \
         and that AZURE_FEDERATED_TOKEN_FILE matches mountPath/path.";
    /// The token file cannot be read (permission denied, a symlink loop, an I/O error).
    // The fix is for permission denied; another I/O error's fix says where the path leads.
    TokenFileUnreadable = "token-file-unreadable", TokenFile, false, fix:
        "The projected volume's files are readable by the pod's user only if the volume's defaultMode or the pod's \
         fsGroup allows it; set defaultMode: 0444 or an fsGroup that matches runAsUser.";
    /// The token file's path is a directory.
    TokenFileIsADirectory = "token-file-is-a-directory", TokenFile, false, fix: POINT_AT_THE_TOKEN;
    /// The token file is a FIFO, socket or device, or larger than 64 KiB.
    TokenFileNotARegularFile = "token-file-not-a-regular-file", TokenFile, false,
        fix: POINT_AT_THE_TOKEN;
    /// The token file is empty or holds only whitespace.
    TokenFileEmpty = "token-file-empty", TokenFile, false, fix:
        "Mount a projected serviceAccountToken volume (the kubelet writes the token when the pod starts) and point \
         AZURE_FEDERATED_TOKEN_FILE at its file; never copy the token into a Secret or overwrite the file.";
    /// The token file does not hold a JWT.
    TokenFileNotAJwt = "token-file-not-a-jwt", TokenFile, false, fix: POINT_AT_THE_TOKEN;
    /// The service-account token's `exp` is past.
    TokenExpired = "token-expired", Assertion, false, fix:
        "make the kubelet rotate the file: it must be a projected serviceAccountToken volume (not a copied Secret or a \
         file baked into the image), the kubelet on the node must be healthy (`kubectl describe pod`, the kubelet's \
         logs), and nothing may read the token once and keep it.";
    /// The service-account token's `nbf` is in the future.
    TokenNotYetValid = "token-not-yet-valid", Assertion, false, fix:
        "correct this machine's clock or the API server's: check NTP on the node (`chronyc tracking`, `timedatectl`).";
    /// The token lacks the expected audience the user set.
    AudienceMismatch = "audience-mismatch", Assertion, false;
    /// The token (or the file) is a credential for something else: AWS STS, EKS Pod Identity,
    /// the Kubernetes API server.
    ForeignAudience = "foreign-audience", Assertion, false;
    /// A custom client assertion source failed or returned an empty assertion.
    ClientAssertionSource = "client-assertion-source", Assertion, false;
    /// The token request did not complete (connection, TLS, broken-off answer), for a cause
    /// none of the `Transport*` problems names.
    Transport = "transport", Transport, true;
    /// No answer: the host refused the connection (nothing listens on that port).
    TransportConnectionRefused = "transport-connection-refused", Transport, true,
        words: "connection refused";
    /// No answer: the host name does not resolve.
    TransportDns = "transport-dns", Transport, true, words: "the host name does not resolve (DNS)";
    /// No answer: the connection was closed or reset before an answer.
    TransportConnectionReset = "transport-connection-reset", Transport, true,
        words: "the connection was closed or reset before an answer";
    /// No answer: the server's certificate is from a CA this client does not trust.
    TransportUntrustedCertificate = "transport-untrusted-certificate", Transport, false,
        words: "TLS: the server's certificate is not trusted (unknown issuer)";
    /// No answer: the server's certificate is not valid for the host name.
    TransportCertificateName = "transport-certificate-name", Transport, false,
        words: "TLS: the server's certificate is not valid for this host name";
    /// No answer: the server's certificate is expired or not yet valid.
    TransportCertificateExpired = "transport-certificate-expired", Transport, false,
        words: "TLS: the server's certificate is expired or not yet valid";
    /// No answer: another TLS handshake failure.
    TransportTls = "transport-tls", Transport, true, words: "the TLS handshake failed";
    /// No answer: the HTTP proxy refused or failed the `CONNECT` tunnel.
    TransportProxy = "transport-proxy", Transport, true,
        words: "the HTTP proxy refused or failed the CONNECT tunnel";
    /// No answer: the connection timed out (packets dropped).
    TransportTimedOut = "transport-timed-out", Transport, true, words: "the connection timed out";
    /// An attempt did not finish within `RefreshPolicy::attempt_timeout`.
    Timeout = "timeout", Timeout, true;
    /// The token endpoint's answer is not Entra's (HTML, text, truncated, missing fields).
    InvalidResponse = "invalid-response", InvalidResponse, false, fix:
        "check that AZURE_AUTHORITY_HOST (or the cloud option) names Entra ID (https://login.microsoftonline.com, \
         https://login.microsoftonline.us or https://login.chinacloudapi.cn) and that no proxy or gateway answers in its \
         place; a 5xx or 429 is transient and retried.";
    /// Entra answered with an OAuth error that carries no AADSTS code.
    EntraError = "entra-errors", Entra, false;
    /// AWS STS `AccessDenied`: the role may not call `sts:GetWebIdentityToken`.
    AwsAccessDenied = "aws-access-denied", Assertion, false, in AwsOutbound "access-denied";
    /// Outbound identity federation is not enabled for the AWS account.
    AwsFederationDisabled = "aws-federation-disabled", Assertion, false,
        in AwsOutbound "federation-disabled";
    /// The AWS credentials are missing, expired or not accepted.
    AwsCredentials = "aws-credentials", Assertion, false, in AwsOutbound "aws-credentials";
    /// AWS STS is throttling the account's requests.
    AwsThrottling = "aws-throttling", Assertion, true, in AwsOutbound "throttling";
    /// STS is not activated in the region.
    AwsRegion = "aws-region", Assertion, false, in AwsOutbound "region";
    /// An AWS option or request parameter is outside what STS accepts (duration, signing
    /// algorithm, audience, region).
    AwsLimits = "aws-limits", InvalidConfiguration, false, in AwsOutbound "limits", fix:
        "use values STS GetWebIdentityToken accepts: duration 60 to 3600 s, signing_algorithm RS256 (Entra ID needs it), \
         an audience of 1 to 1000 characters equal to the federated identity credential's, a regional AWS_REGION (e.g. \
         us-east-1), https:// endpoint URLs.";
    /// Any other AWS STS failure (not reached, timed out, an unlisted error code).
    AwsSts = "aws-troubleshooting", Transport, true, in AwsOutbound "troubleshooting";
}

/// The fix of a token file path that leads to something else than the token file.
const POINT_AT_THE_TOKEN: &str = "Point AZURE_FEDERATED_TOKEN_FILE (or token_file_path) at the token file inside the \
     projected volume, <mountPath>/<path> of the serviceAccountToken projection, which holds the service-account JWT \
     the kubelet writes.";

/// AADSTS codes with a section of their own in docs/troubleshooting.md; any other code links
/// the section on Entra errors in general.
const DOCUMENTED_CODES: &[u32] = &[
    70021, 700211, 700212, 700213, 7002137, 7002138, 700024, 90061, 700027, 50027, 900384, 700016,
    90002, 90023, 1002012, 70011, 50196, 7000272, 70023, 5002738, 70003,
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
            (_, Some(Entry { section, .. })) => (section.0, section.1.to_owned()),
            (ProblemId::Aadsts(code), None) if DOCUMENTED_CODES.contains(&code) => {
                (Page::Troubleshooting, format!("aadsts{code}"))
            }
            _ => (Page::Troubleshooting, "entra-errors".to_owned()),
        }
    }

    /// What part of the flow the problem is in: [`ErrorCategory::Entra`] for an AADSTS code.
    pub(crate) fn category(self) -> ErrorCategory {
        self.local().map_or(ErrorCategory::Entra, |e| e.category)
    }

    /// Whether the problem can pass by itself, so that trying again later may succeed (a
    /// connection failure, a time-out; not a certificate the client does not trust, for another
    /// host, or expired). An error's HTTP status or AWS error code may say otherwise.
    pub(crate) fn is_transient(self) -> bool {
        self.local().is_some_and(|e| e.transient)
    }

    /// The entry's fix when it needs no facts, as a command or value: what both the credential's
    /// error and `doctor`'s check say. `None` where the fix is built from the facts (the request's
    /// values, the transport cause, the AWS error code, an AWS STS token instead of a
    /// service-account token), which the error then states with its own fix.
    pub(crate) fn fix(self) -> Option<&'static str> {
        let ProblemId::Aadsts(code) = self else {
            return self.local()?.fix;
        };
        Some(match code {
            // Also for AADSTS70021 when the token lacks iss, sub or aud, and `doctor`'s `jwt` check.
            50027 => {
                "send the projected service-account token exactly as the kubelet writes it (a bound token has iss, sub, aud, iat \
                 and exp); `kubectl create token <service account> --audience api://AzureADTokenExchange` prints one to compare with."
            }
            7000272 => {
                "republish the JWKS from the API server's current keys: `kubectl get --raw /openid/v1/jwks` prints them; copy \
                 that document to the issuer's jwks_uri (e.g. the S3 object). Keep the old key published until tokens signed with \
                 it have expired."
            }
            70023 => {
                "set the projected volume's serviceAccountToken.expirationSeconds to at most 86400 (3600 is the usual value)."
            }
            5002738 => {
                "give the cluster an RSA service-account signing key (kube-apiserver --service-account-signing-key-file) and \
                 republish the JWKS."
            }
            70003 => {
                "send the client-credentials request: grant_type=client_credentials, \
                 client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer and the service-account token as \
                 client_assertion (WorkloadIdentityCredential sends exactly this); Entra ID takes no RFC 8693 token exchange \
                 (grant_type=urn:ietf:params:oauth:grant-type:token-exchange with subject_token)."
            }
            50196 => "reuse the credential (it caches tokens) instead of creating one per request.",
            7000215 | 7000222 => {
                "remove the client secret (AZURE_CLIENT_SECRET); a workload identity uses none."
            }
            code if !DOCUMENTED_CODES.contains(&code) => {
                "look the code up in the Entra ID error code reference (https://login.microsoftonline.com/error)."
            }
            _ => return None,
        })
    }

    /// A `Transport*` problem in plain words, without volatile values (it goes on an error's
    /// first line); "no answer" for [`ProblemId::Transport`] and any other problem.
    pub(crate) fn transport_words(self) -> &'static str {
        self.local().and_then(|e| e.words).unwrap_or("no answer")
    }

    /// The fix of a `Transport*` problem (a request to `origin`, `host`:`port` that got no answer),
    /// as commands and values: `setting` names what chose the URL and its value, `probe` is a URL
    /// (shell-quoted) to fetch with curl from the same pod.
    pub(crate) fn transport_fix(
        self,
        origin: &str,
        host: &str,
        port: u16,
        setting: &str,
        probe: &str,
    ) -> String {
        let curl = format!("`curl -sv {probe}`");
        let s_client =
            format!("`openssl s_client -connect {host}:{port} -servername {host} -showcerts`");
        match self {
            ProblemId::TransportConnectionRefused => format!(
                "Nothing accepts connections on {host}:{port}. Check {setting}; check the egress rule or proxy in between \
                 (HTTPS_PROXY, NO_PROXY); test from this pod with {curl}."
            ),
            ProblemId::TransportDns => format!(
                "The name {host} does not resolve from here. Check the host name in {setting} and the pod's DNS \
                 (`nslookup {host}`); behind a proxy set HTTPS_PROXY; test with {curl}."
            ),
            ProblemId::TransportConnectionReset => format!(
                "Something between this pod and {origin} closed the connection: a firewall or proxy, or a server that does \
                 not speak HTTPS on that port. Check egress rules and the proxy (HTTPS_PROXY, NO_PROXY) and {setting}; \
                 {curl} shows where it stops."
            ),
            ProblemId::TransportUntrustedCertificate => format!(
                "{origin} presented a certificate from a CA this client does not trust, usually a TLS-inspecting proxy. \
                 Add that CA to the system trust store (copy it to /usr/local/share/ca-certificates/ and run \
                 `update-ca-certificates`) or set SSL_CERT_FILE=/path/to/bundle.pem (public roots plus that CA); \
                 {s_client} shows the issuer. Check {setting}."
            ),
            ProblemId::TransportCertificateName => format!(
                "The certificate {origin} presented does not name {host}: the URL points at a server for another name \
                 (an IP address, or a proxy answering in its place). Check {setting}: use the host name the certificate \
                 names, e.g. https://login.microsoftonline.com; {s_client} shows the names."
            ),
            ProblemId::TransportCertificateExpired => format!(
                "The certificate {origin} presented is outside its validity period. Check this machine's clock \
                 (`date -u`); if it is right, the server's certificate has expired: {s_client} shows its dates."
            ),
            ProblemId::TransportTls => format!(
                "The TLS handshake with {origin} failed: the port does not speak TLS (an http:// server, or a proxy), or \
                 the server offers no TLS 1.2/1.3 suite this client supports. Check {setting}; {s_client} shows the handshake."
            ),
            ProblemId::TransportProxy => format!(
                "The HTTP proxy (HTTPS_PROXY) refused or could not open the tunnel to {host}:{port}: allow {host} in the \
                 proxy, or bypass it with NO_PROXY={host}; {curl} uses the same proxy settings."
            ),
            ProblemId::TransportTimedOut => format!(
                "No answer from {origin}: packets are dropped (security group, network policy, firewall). Allow egress to \
                 {host}:{port} or set HTTPS_PROXY; check {setting}; test with `curl -sv --max-time 10 {probe}`."
            ),
            _ => format!(
                "Check network access to {origin} ({setting}), the proxy (HTTPS_PROXY, NO_PROXY) and, for a private CA, \
                 SSL_CERT_FILE; test with {curl}."
            ),
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
            (ProblemId::Aadsts(code), _) => write!(f, "aadsts{code}"),
            (_, entry) => f.write_str(entry.map_or("", |e| e.id)),
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
        if let Some(p) = LOCAL.iter().find(|p| p.local().is_some_and(|e| e.id == s)) {
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
            // A fix is a sentence; the transience of a certificate failure is permanent.
            assert!(p.fix().is_none_or(|f| f.ends_with('.')), "{p}");
            assert_eq!(
                p.is_transient(),
                p.category() == ErrorCategory::Transport && !p.to_string().contains("certificate")
                    || matches!(
                        p,
                        ProblemId::Timeout | ProblemId::AwsThrottling | ProblemId::AwsSts
                    ),
                "{p}"
            );
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
