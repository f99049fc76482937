//! The projected service-account token file.
//!
//! The kubelet writes the token through its atomic writer: the visible file is a symlink through
//! `..data`, which is swapped by rename on every rotation. The file is therefore re-opened by path
//! for every exchange; no descriptor and no content is kept between exchanges.

use super::{Assertion, AssertionSource};
use crate::clock::Clock;
use crate::error::{CredentialError, ErrorCategory};
use crate::jwt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// A real service-account token is about 1 KB; anything this large is not one.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;
/// Tolerated clock difference when checking `exp` / `nbf` locally.
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// What a foreign audience makes a token a credential for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignAudience {
    /// AWS STS (IRSA, `sts.amazonaws.com` and regional or China variants).
    AwsSts,
    /// The EKS Pod Identity agent (`pods.eks.amazonaws.com`).
    EksPodIdentity,
    /// The cluster's API server (`https://kubernetes.default.svc...`).
    KubernetesApi,
}

impl ForeignAudience {
    /// Classify one audience; `None` when it is not a credential for anything else.
    pub fn of(aud: &str) -> Option<Self> {
        let a = aud.trim_end_matches('/');
        // The same names written as URLs (`https://sts.amazonaws.com`) are the same credentials.
        let host = a.strip_prefix("https://").unwrap_or(a);
        // `<x>.amazonaws.com` and the China partition's `<x>.amazonaws.com.cn`.
        let aws = host
            .strip_suffix(".amazonaws.com")
            .or_else(|| host.strip_suffix(".amazonaws.com.cn"));
        match aws {
            // STS, global (`sts`) or regional (`sts.us-east-1`).
            Some(x) if x == "sts" || x.starts_with("sts.") || x.ends_with(".sts") => {
                Some(Self::AwsSts)
            }
            Some("pods.eks") => Some(Self::EksPodIdentity),
            _ if a.starts_with("https://kubernetes.default.svc")
                || host == "kubernetes.default.svc"
                || host.starts_with("kubernetes.default.svc.") =>
            {
                Some(Self::KubernetesApi)
            }
            _ => None,
        }
    }

    /// The first foreign audience among `audiences`, if any.
    pub fn first_in(audiences: &[String]) -> Option<Self> {
        audiences.iter().find_map(|a| Self::of(a))
    }

    /// What holding such a token allows, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::AwsSts => {
                "AWS STS (it is an IRSA token: whoever holds it can assume the pod's IAM role)"
            }
            Self::EksPodIdentity => {
                "the EKS Pod Identity agent (whoever holds it can obtain the pod's AWS credentials)"
            }
            Self::KubernetesApi => {
                "the Kubernetes API server (whoever holds it can call the cluster API as the pod's service account)"
            }
        }
    }
}

/// Audiences that make a token a credential for something else: AWS STS (IRSA), the EKS Pod
/// Identity agent, or the cluster's API server. Handing such a token to a third party lets that
/// party act as the pod there.
pub fn is_foreign_audience(aud: &str) -> bool {
    ForeignAudience::of(aud).is_some()
}

/// Reads the projected token from a file, validating it locally before it is sent.
#[derive(Debug)]
pub struct TokenFileSource {
    path: PathBuf,
    expected_audience: String,
    allow_foreign_audience: bool,
    clock: Arc<dyn Clock>,
}

fn file_error(path: &Path, what: String, fix: &str, anchor: &str) -> CredentialError {
    CredentialError::new(
        ErrorCategory::TokenFile,
        format!(
            "WorkloadIdentityCredential: the federated token file {} {what}. {fix} See docs/troubleshooting.md#{anchor}",
            path.display()
        ),
    )
}

fn assertion_error(message: String) -> CredentialError {
    CredentialError::new(ErrorCategory::Assertion, message)
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn fmt_age(d: Duration) -> String {
    let s = d.whole_seconds();
    if s.abs() >= 3600 {
        format!("{}h{:02}m", s / 3600, (s.abs() % 3600) / 60)
    } else if s.abs() >= 60 {
        format!("{}m{:02}s", s / 60, s.abs() % 60)
    } else {
        format!("{s}s")
    }
}

impl TokenFileSource {
    /// A source reading `path`, requiring `expected_audience` in the token's `aud`.
    pub fn new(
        path: impl Into<PathBuf>,
        expected_audience: impl Into<String>,
        allow_foreign_audience: bool,
    ) -> Self {
        Self::with_clock(
            path.into(),
            expected_audience.into(),
            allow_foreign_audience,
            Arc::new(crate::clock::SystemClock),
        )
    }

    pub(crate) fn with_clock(
        path: PathBuf,
        expected_audience: String,
        allow_foreign_audience: bool,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            path,
            expected_audience,
            allow_foreign_audience,
            clock,
        }
    }

    /// The token file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read(&self) -> Result<(Vec<u8>, Option<std::time::SystemTime>), CredentialError> {
        let path = self.path.clone();
        // tokio's fs runs the blocking calls on its blocking pool; without a tokio runtime (a
        // custom azure_core runtime) fall back to a direct read: the file is ~1 KB on a tmpfs.
        if tokio::runtime::Handle::try_current().is_ok() {
            let meta = tokio::fs::metadata(&path)
                .await
                .map_err(|e| self.io_error(e))?;
            self.check_meta(&meta)?;
            let bytes = tokio::fs::read(&path).await.map_err(|e| self.io_error(e))?;
            Ok((bytes, meta.modified().ok()))
        } else {
            let meta = std::fs::metadata(&path).map_err(|e| self.io_error(e))?;
            self.check_meta(&meta)?;
            let bytes = std::fs::read(&path).map_err(|e| self.io_error(e))?;
            Ok((bytes, meta.modified().ok()))
        }
    }

    fn check_meta(&self, meta: &std::fs::Metadata) -> Result<(), CredentialError> {
        if meta.is_dir() {
            return Err(file_error(
                &self.path,
                "is a directory, not a file".into(),
                "Point AZURE_FEDERATED_TOKEN_FILE (or token_file_path) at the token file inside the projected volume, i.e. <mountPath>/<path> of the serviceAccountToken projection.",
                "token-file-is-a-directory",
            ));
        }
        if meta.len() > MAX_TOKEN_FILE_BYTES {
            return Err(file_error(
                &self.path,
                format!(
                    "is {} bytes, far larger than a service-account token (about 1 KB; limit {MAX_TOKEN_FILE_BYTES})",
                    meta.len()
                ),
                "Check that the path names the projected token, not another file.",
                "token-file-not-a-jwt",
            ));
        }
        Ok(())
    }

    fn io_error(&self, e: std::io::Error) -> CredentialError {
        let (what, fix, anchor) = match e.kind() {
            std::io::ErrorKind::NotFound => (
                "does not exist".to_string(),
                "Check that the pod mounts a projected serviceAccountToken volume at this path (with the Azure Workload Identity webhook: label the pod azure.workload.identity/use: \"true\" and annotate its service account), and that AZURE_FEDERATED_TOKEN_FILE matches mountPath/path.",
                "token-file-missing",
            ),
            std::io::ErrorKind::PermissionDenied => (
                "cannot be read: permission denied".to_string(),
                "The projected volume's files are readable by the pod's user only if the volume's defaultMode or the pod's fsGroup allows it; set defaultMode: 0444 or an fsGroup that matches runAsUser.",
                "token-file-unreadable",
            ),
            _ => (
                format!("cannot be read ({e})"),
                "Check the volume mount.",
                "token-file-unreadable",
            ),
        };
        file_error(&self.path, what, fix, anchor).with_source(e)
    }

    /// Read and check the token now (also used by `doctor`).
    pub async fn read_assertion(&self) -> Result<Assertion, CredentialError> {
        let (bytes, modified) = self.read().await?;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return Err(file_error(
                &self.path,
                format!("is not text ({} bytes, not UTF-8)", bytes.len()),
                "It must contain the service-account JWT as written by the kubelet.",
                "token-file-not-a-jwt",
            ));
        };
        let token = text.trim();
        if token.is_empty() {
            return Err(file_error(
                &self.path,
                if text.is_empty() {
                    "is empty".into()
                } else {
                    format!("contains only whitespace ({} bytes)", text.len())
                },
                "The kubelet writes the token when the pod starts; an empty file means the volume is not a serviceAccountToken projection or was overwritten.",
                "token-file-empty",
            ));
        }
        let decoded = jwt::decode(token).map_err(|shape| {
            file_error(
                &self.path,
                format!("does not hold a service-account token: {shape}"),
                "It must contain the JWT written by the kubelet for a serviceAccountToken projection.",
                "token-file-not-a-jwt",
            )
        })?;
        let claims = decoded.claims;
        let now = self.clock.now();

        if let Some(exp) = claims.expires_at()
            && exp < now - CLOCK_SKEW
        {
            let age = modified.map(|m| {
                let m = OffsetDateTime::from(m);
                format!(
                    " The file was last written {} ago ({}).",
                    fmt_age(now - m),
                    fmt_time(m)
                )
            });
            let lifetime = claims.issued_at().map(|iat| exp - iat);
            let rotate_at = match (claims.issued_at(), lifetime) {
                (Some(iat), Some(l)) => format!(
                    " It was issued at {} for {}; the kubelet should have replaced it at 80 % of that lifetime ({}).",
                    fmt_time(iat),
                    fmt_age(l),
                    fmt_time(iat + l * 0.8)
                ),
                _ => String::new(),
            };
            return Err(assertion_error(format!(
                "WorkloadIdentityCredential: the service-account token in {} expired at {} ({} ago).{rotate_at}{} The kubelet is not rotating it: check that the file is a projected serviceAccountToken volume (not a copied Secret), that the kubelet is healthy, and that nothing reads the token once and stores it. See docs/troubleshooting.md#token-expired",
                self.path.display(),
                fmt_time(exp),
                fmt_age(now - exp),
                age.unwrap_or_default(),
            )));
        }
        if let Some(nbf) = claims.not_before()
            && nbf > now + CLOCK_SKEW
        {
            return Err(assertion_error(format!(
                "WorkloadIdentityCredential: the service-account token in {} is not valid before {} ({} from now). This machine's clock is probably wrong; check NTP (chrony) on the node. See docs/troubleshooting.md#token-not-yet-valid",
                self.path.display(),
                fmt_time(nbf),
                fmt_age(nbf - now)
            )));
        }

        if let Some(foreign) = ForeignAudience::first_in(&claims.aud) {
            if !self.allow_foreign_audience {
                return Err(assertion_error(format!(
                    "WorkloadIdentityCredential refused to send the service-account token in {}: its audience ({}) makes it a credential for {}, and sending it to Entra ID would hand that credential to a third party. Mount a dedicated projected token with audience {} (serviceAccountToken: {{audience: {}, expirationSeconds: 3600, path: azure-identity-token}}) and use it for Entra. If you really must reuse this token, set allow_foreign_audience: true in WorkloadIdentityCredentialOptions. See docs/troubleshooting.md#foreign-audience",
                    self.path.display(),
                    claims.audiences_display(),
                    foreign.describe(),
                    self.expected_audience,
                    self.expected_audience,
                )));
            }
            tracing::warn!(
                token_file = %self.path.display(),
                audiences = %claims.audiences_display(),
                "sending a service-account token whose audience is also a credential for AWS or the Kubernetes API (allow_foreign_audience is set)"
            );
        } else if !claims.aud.iter().any(|a| a == &self.expected_audience) {
            return Err(assertion_error(format!(
                "WorkloadIdentityCredential: the service-account token in {} has audience {} but {} is expected. Set the projected volume's audience to {} (serviceAccountToken.audience), or, if your federated identity credential uses another audience, set expected_audience in the options or the environment variable {}. See docs/troubleshooting.md#audience-mismatch",
                self.path.display(),
                claims.audiences_display(),
                self.expected_audience,
                self.expected_audience,
                crate::config::AZURE_FEDERATED_TOKEN_AUDIENCE,
            )));
        }

        Ok(Assertion::new(
            token.to_string(),
            Some(claims),
            self.path.display().to_string(),
        ))
    }
}

#[async_trait::async_trait]
impl AssertionSource for TokenFileSource {
    async fn assertion(&self) -> Result<Assertion, CredentialError> {
        self.read_assertion().await
    }

    fn describe(&self) -> String {
        format!("service-account token file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::jwt::tests::make;

    const NOW: i64 = 1_800_000_000;

    fn source(path: PathBuf, allow: bool) -> TokenFileSource {
        let clock = Arc::new(ManualClock::new(
            OffsetDateTime::from_unix_timestamp(NOW).unwrap(),
        ));
        TokenFileSource::with_clock(path, "api://AzureADTokenExchange".into(), allow, clock)
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
        source(p, false).read_assertion().await.unwrap_err()
    }

    #[tokio::test]
    async fn good_token_is_trimmed_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        let t = token("api://AzureADTokenExchange", NOW - 10, NOW + 3600);
        std::fs::write(&p, format!("  {t}\n")).unwrap();
        let a = source(p, false).read_assertion().await.unwrap();
        assert_eq!(a.secret(), t);
        assert!(!format!("{a:?}").contains(&t));
    }

    #[tokio::test]
    async fn each_bad_file_has_its_own_message() {
        let e = source(PathBuf::from("/no/such/token"), false)
            .read_assertion()
            .await
            .unwrap_err();
        assert!(
            e.message().contains("does not exist") && e.message().contains("#token-file-missing"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = source(dir.path().to_path_buf(), false)
            .read_assertion()
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
        assert!(source(p, false).read_assertion().await.is_ok());
    }

    #[tokio::test]
    async fn wrong_and_foreign_audiences() {
        let e = err_for(token("api://something-else", NOW, NOW + 3600).as_bytes()).await;
        assert!(
            e.message().contains("api://something-else")
                && e.message().contains("AZURE_FEDERATED_TOKEN_AUDIENCE"),
            "{e}"
        );
        for aud in [
            "sts.amazonaws.com",
            "pods.eks.amazonaws.com",
            "https://kubernetes.default.svc.cluster.local",
        ] {
            let e = err_for(token(aud, NOW, NOW + 3600).as_bytes()).await;
            assert!(
                e.message().contains("refused") && e.message().contains("allow_foreign_audience"),
                "{aud}: {e}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, token("sts.amazonaws.com", NOW, NOW + 3600)).unwrap();
        assert!(source(p, true).read_assertion().await.is_ok());
    }

    #[tokio::test]
    async fn extreme_timestamps_are_checked_without_panicking() {
        // exp at the last representable second (9999-12-31T23:59:59Z): `exp + skew` would
        // overflow; the token is simply not expired.
        let max = 253_402_300_799;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, token("api://AzureADTokenExchange", NOW - 10, max)).unwrap();
        assert!(source(p.clone(), false).read_assertion().await.is_ok());
        // iat at the first representable second, exp long past: expired, with a message.
        let min = -377_705_116_800;
        std::fs::write(&p, token("api://AzureADTokenExchange", min, NOW - 7200)).unwrap();
        let e = source(p.clone(), false).read_assertion().await.unwrap_err();
        assert!(e.message().contains("expired at"), "{e}");
        // nbf at the end of time: not yet valid.
        std::fs::write(&p, token("api://AzureADTokenExchange", max, max)).unwrap();
        let e = source(p, false).read_assertion().await.unwrap_err();
        assert!(e.message().contains("not valid before"), "{e}");
    }

    #[test]
    fn foreign_audiences_are_classified() {
        use ForeignAudience::*;
        for (aud, kind) in [
            ("sts.amazonaws.com", Some(AwsSts)),
            ("https://sts.us-east-1.amazonaws.com/", Some(AwsSts)),
            ("sts.cn-north-1.amazonaws.com.cn", Some(AwsSts)),
            ("pods.eks.amazonaws.com", Some(EksPodIdentity)),
            (
                "https://kubernetes.default.svc.cluster.local",
                Some(KubernetesApi),
            ),
            ("api://AzureADTokenExchange", None),
            ("s3.amazonaws.com", None),
        ] {
            assert_eq!(ForeignAudience::of(aud), kind, "{aud}");
        }
        // A regional STS token is described as what it is, not as a cluster token.
        let auds = vec![
            "api://x".to_string(),
            "sts.eu-west-1.amazonaws.com".to_string(),
        ];
        assert!(
            ForeignAudience::first_in(&auds)
                .unwrap()
                .describe()
                .contains("IRSA")
        );
    }

    #[test]
    fn foreign_audiences() {
        assert!(is_foreign_audience("sts.amazonaws.com"));
        assert!(is_foreign_audience("https://kubernetes.default.svc"));
        assert!(is_foreign_audience(
            "https://kubernetes.default.svc.cluster.local/"
        ));
        assert!(!is_foreign_audience("api://AzureADTokenExchange"));
        for aud in [
            "https://sts.amazonaws.com",
            "https://sts.amazonaws.com/",
            "sts.us-east-1.amazonaws.com",
            "https://sts.eu-west-1.amazonaws.com",
            "sts.amazonaws.com.cn",
            "sts.cn-north-1.amazonaws.com.cn",
            "https://pods.eks.amazonaws.com",
            "kubernetes.default.svc.cluster.local",
        ] {
            assert!(is_foreign_audience(aud), "{aud}");
        }
        for aud in [
            "https://s3.amazonaws.com",
            "api://AzureADTokenExchangeUSGov",
            "sts.example.com",
            "https://myapp.example/sts.amazonaws.com.evil",
        ] {
            assert!(!is_foreign_audience(aud), "{aud}");
        }
    }
}
