//! Why a request got no answer: the root cause of a transport error, named from its source chain
//! (azure_core → reqwest → hyper_util → `std::io::Error` / `rustls::Error`) as one of the
//! `ProblemId::Transport*` problems, whose words and fix are the catalogue's.
//!
//! One classifier for the credential's token request, `doctor`'s issuer fetches and the
//! managed-identity probe. It classifies by type where the type is reachable (`io::ErrorKind`,
//! `rustls::Error` inside an `io::Error`), by the fixed texts of hyper_util's connector errors
//! ("dns error", "tunnel error: ...") where it is not, and falls back to the innermost error's
//! text.

use crate::problem::ProblemId;
use azure_core::http::Url;
use std::error::Error as StdError;
use std::io;

/// A classified transport failure of one request: the cause, where to, and the error chain.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// The root cause: one of the `ProblemId::Transport*` problems; not transient when it needs
    /// an operator's action and so outlasts any retry (a certificate the client does not trust,
    /// that names another host, or that is outside its validity period). The token request is
    /// then not retried by the HTTP retry policy (`entra::AttemptPolicy`).
    pub(crate) cause: ProblemId,
    /// The URL requested.
    pub(crate) url: Url,
    /// `scheme://host:port` of the URL requested.
    pub(crate) origin: String,
    /// The innermost error's text (the detail the cause was named from).
    innermost: String,
    /// Every error of the chain, outermost first, joined by ": " (repeats dropped).
    pub(crate) chain: String,
}

impl Failure {
    /// Classify `error` (any error whose `source()` chain leads to the transport's error), for a
    /// request to `url`.
    pub(crate) fn of(url: &Url, error: &(dyn StdError + 'static)) -> Self {
        let (mut cause, mut texts) = (None, Vec::<String>::new());
        // `io::Error::source` skips its payload (it returns the payload's source): the payload is
        // classified by `classify_one`, its text is the io::Error's own.
        for e in std::iter::successors(Some(error), |&e| e.source()) {
            let text = e.to_string();
            cause = cause.or_else(|| classify_one(e, &text));
            if texts.last() != Some(&text) {
                texts.push(text);
            }
        }
        let (host, port) = host_port(url);
        Self {
            cause: cause.unwrap_or(ProblemId::Transport),
            url: url.clone(),
            origin: format!("{}://{host}:{port}", url.scheme()),
            innermost: texts.last().cloned().unwrap_or_default(),
            chain: texts.join(": "),
        }
    }

    /// The cause in plain words for a first line: stable across retries of the same fault
    /// (an unclassified cause gives the innermost error's text).
    pub(crate) fn words(&self) -> String {
        match self.cause {
            ProblemId::Transport => format!("no answer ({})", self.innermost),
            c => c.transport_words().to_owned(),
        }
    }

    /// The fix, as commands and values. `setting` names what chose the URL and its value (e.g.
    /// "the authority host (AZURE_AUTHORITY_HOST; now https://login.microsoftonline.com)");
    /// `probe` is a URL to fetch with curl from the same pod.
    pub(crate) fn fix(&self, setting: &str, probe: &str) -> String {
        // A URL with `?` or `&` is one shell word only when quoted.
        let probe = crate::shell::shell_quote(probe);
        let (host, port) = host_port(&self.url);
        (self.cause).transport_fix(&self.origin, host, port, setting, &probe)
    }
}

fn host_port(url: &Url) -> (&str, u16) {
    (
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0),
    )
}

/// The cause one error of the chain names, if it names one.
fn classify_one(e: &(dyn StdError + 'static), text: &str) -> Option<ProblemId> {
    use ProblemId::*;
    use io::ErrorKind as K;
    use rustls::{CertificateError as C, Error::InvalidCertificate as Cert};
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(match tls {
            Cert(C::UnknownIssuer) => TransportUntrustedCertificate,
            Cert(C::NotValidForName | C::NotValidForNameContext { .. }) => TransportCertificateName,
            Cert(
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. },
            ) => TransportCertificateExpired,
            _ => TransportTls,
        });
    }
    if let Some(io) = e.downcast_ref::<io::Error>() {
        // Its payload first (`source()` skips it): hyper-rustls wraps tokio-rustls's
        // `io::Error(InvalidData, rustls::Error)` in an `io::Error(Other, ...)`.
        let payload = io.get_ref().map(|p| p as &(dyn StdError + 'static));
        if let Some(cause) = payload.and_then(|p| classify_one(p, &p.to_string())) {
            return Some(cause);
        }
        return match io.kind() {
            K::ConnectionRefused => Some(TransportConnectionRefused),
            K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::NotConnected
            | K::UnexpectedEof => Some(TransportConnectionReset),
            K::TimedOut => Some(TransportTimedOut),
            _ => None,
        };
    }
    // hyper_util's connector errors are private types with fixed texts; then hyper's
    // `IncompleteMessage` and reqwest's own time-out type.
    match text {
        "dns error" => Some(TransportDns),
        t if t.starts_with("tunnel error") => Some(TransportProxy),
        t if t.starts_with("connection closed before message completed") => {
            Some(TransportConnectionReset)
        }
        "operation timed out" => Some(TransportTimedOut),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("https://login.example:8443/t/oauth2/v2.0/token").unwrap()
    }

    /// The shape azure_core gives a transport error: its message over the transport's error.
    fn wrapped(inner: impl StdError + Send + Sync + 'static) -> azure_core::Error {
        azure_core::Error::with_error(
            azure_core::error::ErrorKind::Connection,
            inner,
            "failed to execute `reqwest` request",
        )
        .with_context("retry policy expired and the request will no longer be retried")
    }

    #[test]
    fn io_kinds_and_tls_payloads_are_named_through_the_chain() {
        let cases: Vec<(io::Error, ProblemId)> = vec![
            (
                io::ErrorKind::ConnectionRefused.into(),
                ProblemId::TransportConnectionRefused,
            ),
            (
                io::ErrorKind::ConnectionReset.into(),
                ProblemId::TransportConnectionReset,
            ),
            (
                io::ErrorKind::UnexpectedEof.into(),
                ProblemId::TransportConnectionReset,
            ),
            (io::ErrorKind::TimedOut.into(), ProblemId::TransportTimedOut),
            (
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                ),
                ProblemId::TransportUntrustedCertificate,
            ),
            (
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName),
                ),
                ProblemId::TransportCertificateName,
            ),
            (
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
                ),
                ProblemId::TransportCertificateExpired,
            ),
            (
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
                ),
                ProblemId::TransportTls,
            ),
            (
                io::Error::other(io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                )),
                ProblemId::TransportUntrustedCertificate,
            ),
            (
                io::Error::other(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "tls handshake eof",
                )),
                ProblemId::TransportConnectionReset,
            ),
            (io::Error::other("something else"), ProblemId::Transport),
        ];
        for (io, expected) in cases {
            let f = Failure::of(&url(), &wrapped(io));
            assert_eq!(f.cause, expected, "{}", f.chain);
            assert_eq!(f.origin, "https://login.example:8443");
            assert!(f.chain.starts_with("retry policy expired"), "{}", f.chain);
        }
    }

    #[test]
    fn unclassified_causes_fall_back_to_the_innermost_text() {
        let f = Failure::of(&url(), &wrapped(io::Error::other("weird failure")));
        assert_eq!(f.cause, ProblemId::Transport);
        assert_eq!(f.words(), "no answer (weird failure)");
        assert!(f.fix("X", "https://p").contains("`curl -sv https://p`"));
        assert!(
            f.fix("X", "https://p/a?b=1&c=2")
                .contains("`curl -sv 'https://p/a?b=1&c=2'`")
        );
    }

    #[test]
    fn every_cause_has_its_own_words_and_a_concrete_fix() {
        let mut problems = std::collections::HashSet::new();
        for cause in [
            ProblemId::TransportConnectionRefused,
            ProblemId::TransportDns,
            ProblemId::TransportConnectionReset,
            ProblemId::TransportUntrustedCertificate,
            ProblemId::TransportCertificateName,
            ProblemId::TransportCertificateExpired,
            ProblemId::TransportTls,
            ProblemId::TransportProxy,
            ProblemId::TransportTimedOut,
            ProblemId::Transport,
        ] {
            assert!(problems.insert(cause.transport_words()), "{cause:?}");
            assert_eq!(cause.category(), crate::ErrorCategory::Transport);
            // Only a certificate failure outlasts a retry.
            assert_eq!(
                !cause.is_transient(),
                matches!(
                    cause,
                    ProblemId::TransportUntrustedCertificate
                        | ProblemId::TransportCertificateName
                        | ProblemId::TransportCertificateExpired
                ),
                "{cause:?}"
            );
            let f = Failure {
                cause,
                url: url(),
                origin: "https://h:1".into(),
                innermost: "x".into(),
                chain: "x".into(),
            };
            let fix = f.fix("the authority host", "https://h:1/probe");
            assert!(fix.contains('`') || fix.contains('='), "{cause:?}: {fix}");
        }
    }
}
