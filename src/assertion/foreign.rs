//! Tokens that are credentials for something else (AWS, the cluster's API server), recognised by
//! their audience and by their path, so that they are refused before they leave the process.
//!
//! The rules, stated in docs/security.md:
//! - an audience is foreign when its host (compared case-insensitively, with or without an
//!   `https://` or `http://` scheme, a port or a trailing slash) is AWS STS (`sts`, `sts-fips`,
//!   regional, China, dual-stack `sts.<region>.api.aws`, VPC endpoints), the EKS Pod Identity
//!   agent (`pods.eks.amazonaws.com`) or the cluster's API server (`kubernetes.default.svc...`);
//! - an audience equal to the token's own issuer is foreign (the default service-account token of
//!   a self-managed cluster);
//! - a path is foreign when it is, lexically or after symlinks are resolved, the default
//!   service-account token, the file named by `AWS_WEB_IDENTITY_TOKEN_FILE` or the EKS Pod
//!   Identity token (also through the kubelet's `..data` / `..<timestamp>` directories).

use crate::config::Env;
use crate::jwt::Claims;
use std::path::{Component, Path, PathBuf};

/// `AWS_WEB_IDENTITY_TOKEN_FILE`: the IRSA token, set by the EKS pod identity webhook.
pub const AWS_WEB_IDENTITY_TOKEN_FILE: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
/// Where the kubelet mounts a pod's default service-account token (a Kubernetes API credential).
pub const DEFAULT_SERVICE_ACCOUNT_TOKEN_PATH: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// Where EKS mounts the EKS Pod Identity token.
pub const EKS_POD_IDENTITY_TOKEN_PATH: &str =
    "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token";

/// What a foreign audience (or path) makes a token a credential for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignAudience {
    /// AWS STS (IRSA: `sts.amazonaws.com`, regional, FIPS, dual-stack and China variants).
    AwsSts,
    /// The EKS Pod Identity agent (`pods.eks.amazonaws.com`).
    EksPodIdentity,
    /// The cluster's API server (`https://kubernetes.default.svc...`).
    KubernetesApi,
    /// The cluster's API server, named by the token's own issuer (`aud` equal to `iss`).
    OwnIssuer,
}

/// The host of an audience written as a URL (`https://Sts.AmazonAWS.com:443/`) or a bare name,
/// lower-cased; `None` when it has no host-like part.
fn host_of(aud: &str) -> Option<String> {
    let lower = aud.trim().to_ascii_lowercase();
    let rest = (lower.strip_prefix("https://"))
        .or_else(|| lower.strip_prefix("http://"))
        .unwrap_or(&lower);
    // The authority ends at the first '/', '?' or '#'; drop user info and port.
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?.split(':').next()?;
    let host = host.trim_end_matches('.');
    (!host.is_empty()).then(|| host.to_string())
}

impl ForeignAudience {
    /// Classify one audience on its own; `None` when it is not a credential for anything else.
    /// [`ForeignAudience::first_in_claims`] also applies the issuer rule.
    pub fn of(aud: &str) -> Option<Self> {
        let host = host_of(aud)?;
        let is_sts = |l: &str| l == "sts" || l == "sts-fips";
        // `<x>.amazonaws.com` and the China partition's `<x>.amazonaws.com.cn`.
        let aws = (host.strip_suffix(".amazonaws.com"))
            .or_else(|| host.strip_suffix(".amazonaws.com.cn"));
        match aws {
            Some("pods.eks") => return Some(Self::EksPodIdentity),
            // STS, global or regional, FIPS, or a VPC endpoint (`vpce-1.sts.us-east-1.vpce`).
            Some(x) if x.split('.').any(is_sts) => return Some(Self::AwsSts),
            _ => {}
        }
        // Dual-stack endpoints: `sts.<region>.api.aws`, `sts-fips.<region>.api.aws`.
        if host.ends_with(".api.aws") && host.split('.').next().is_some_and(is_sts) {
            return Some(Self::AwsSts);
        }
        let api = host == "kubernetes.default.svc" || host.starts_with("kubernetes.default.svc.");
        api.then_some(Self::KubernetesApi)
    }

    /// The first foreign audience of a token: [`ForeignAudience::of`] for each audience, and an
    /// audience equal to the token's own issuer.
    pub fn first_in_claims(claims: &Claims) -> Option<Self> {
        // The same URL: trimmed, without a trailing slash, ignoring case.
        let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
        claims.aud.iter().find_map(|a| Self::of(a)).or_else(|| {
            let iss = norm(claims.iss.as_deref()?);
            let own = |a: &String| !a.trim().is_empty() && norm(a) == iss;
            claims.aud.iter().any(own).then_some(Self::OwnIssuer)
        })
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
            Self::OwnIssuer => {
                "the cluster's API server (its audience is its own issuer, as for the default service-account token of a self-managed cluster: whoever holds it can call the cluster API as the pod's service account)"
            }
        }
    }
}

/// A token file that is a credential for something else, recognised by its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignPath {
    /// What the file is a credential for.
    pub kind: ForeignAudience,
    /// Which well-known file it is, for messages.
    pub what: String,
}

/// The files that hold other credentials: the default service-account token, the EKS Pod
/// Identity token and the file named by `AWS_WEB_IDENTITY_TOKEN_FILE` in `env`.
pub(crate) fn denied_paths(env: &Env) -> Vec<(PathBuf, ForeignPath)> {
    let entry = |path: PathBuf, kind, what: &str| {
        let what = format!("{what} ({})", crate::escape::path(&path));
        (path, ForeignPath { kind, what })
    };
    let mut v = vec![
        entry(
            DEFAULT_SERVICE_ACCOUNT_TOKEN_PATH.into(),
            ForeignAudience::KubernetesApi,
            "the pod's default service-account token",
        ),
        entry(
            EKS_POD_IDENTITY_TOKEN_PATH.into(),
            ForeignAudience::EksPodIdentity,
            "the EKS Pod Identity token",
        ),
    ];
    // A path: any bytes the OS allows (not only UTF-8).
    if let Some(p) = env.var_os(AWS_WEB_IDENTITY_TOKEN_FILE) {
        v.push(entry(
            p.into(),
            ForeignAudience::AwsSts,
            &format!("the IRSA token named by {AWS_WEB_IDENTITY_TOKEN_FILE}"),
        ));
    }
    v
}

/// `path` without `.`, with `..` applied lexically, and `/var/run` written as `/run` (one is a
/// symlink to the other on every common distribution).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    match out.strip_prefix("/var/run") {
        Ok(rest) => Path::new("/run").join(rest),
        Err(_) => out,
    }
}

/// Whether `candidate` is `denied`, or the same file name directly inside `denied`'s directory
/// or one of the kubelet's atomic-writer directories there (`..data`, `..2024_01_01_...`).
fn same_or_atomic_writer_copy(candidate: &Path, denied: &Path) -> bool {
    let writer_copy = || {
        let dir = candidate.parent()?;
        let dotted = dir.file_name()?.to_str()?.starts_with("..");
        Some(
            dotted
                && dir.parent() == denied.parent()
                && candidate.file_name() == denied.file_name(),
        )
    };
    candidate == denied || writer_copy() == Some(true)
}

/// Whether `path` is one of `denied`, compared lexically and after symlinks are resolved. Touches
/// the file system (`canonicalize`), so it runs where the token file is read.
pub(crate) fn foreign_path(path: &Path, denied: &[(PathBuf, ForeignPath)]) -> Option<ForeignPath> {
    let lex = lexical(path);
    let real = std::fs::canonicalize(path).ok().map(|p| lexical(&p));
    denied.iter().find_map(|(d, what)| {
        let d_lex = lexical(d);
        let d_real = std::fs::canonicalize(d).ok().map(|p| lexical(&p));
        let hit = same_or_atomic_writer_copy(&lex, &d_lex)
            || real.as_deref().is_some_and(|r| {
                same_or_atomic_writer_copy(r, &d_lex) || d_real.as_deref().is_some_and(|dr| r == dr)
            });
        hit.then(|| what.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ForeignAudience::*;

    #[test]
    fn audiences_are_classified_by_host() {
        for (aud, kind) in [
            ("sts.amazonaws.com", Some(AwsSts)),
            ("STS.AmazonAWS.com", Some(AwsSts)),
            ("https://sts.amazonaws.com", Some(AwsSts)),
            ("HTTPS://STS.AMAZONAWS.COM/", Some(AwsSts)),
            ("http://sts.amazonaws.com", Some(AwsSts)),
            ("https://sts.amazonaws.com:443/", Some(AwsSts)),
            ("https://sts.us-east-1.amazonaws.com/", Some(AwsSts)),
            ("sts-fips.us-east-1.amazonaws.com", Some(AwsSts)),
            ("sts-fips.amazonaws.com", Some(AwsSts)),
            ("sts.eu-west-1.api.aws", Some(AwsSts)),
            ("https://sts-fips.us-west-2.api.aws", Some(AwsSts)),
            ("vpce-0a1b.sts.us-east-1.vpce.amazonaws.com", Some(AwsSts)),
            ("sts.amazonaws.com.cn", Some(AwsSts)),
            ("sts.cn-north-1.amazonaws.com.cn", Some(AwsSts)),
            ("pods.eks.amazonaws.com", Some(EksPodIdentity)),
            ("https://Pods.EKS.amazonaws.com", Some(EksPodIdentity)),
            ("https://kubernetes.default.svc", Some(KubernetesApi)),
            ("kubernetes.default.svc.cluster.local", Some(KubernetesApi)),
            (
                "HTTP://Kubernetes.Default.Svc.Cluster.Local/",
                Some(KubernetesApi),
            ),
            ("api://AzureADTokenExchange", None),
            ("api://AzureADTokenExchangeUSGov", None),
            ("s3.amazonaws.com", None),
            ("sts.example.com", None),
            ("https://myapp.example/sts.amazonaws.com.evil", None),
            ("https://123456789012.tokens.sts.global.api.aws", None),
            ("", None),
        ] {
            assert_eq!(ForeignAudience::of(aud), kind, "{aud:?}");
        }
        assert!(ForeignAudience::of("https://kubernetes.default.svc.cluster.local/").is_some());
        assert!(ForeignAudience::of("api://AzureADTokenExchange").is_none());
    }

    #[test]
    fn an_audience_equal_to_the_issuer_is_foreign() {
        let claims = |iss: &str, aud: &str| Claims {
            iss: Some(iss.into()),
            aud: vec!["api://AzureADTokenExchange".into(), aud.into()],
            ..Default::default()
        };
        let iss = "https://my-oidc-bucket.s3.eu-west-1.amazonaws.com";
        for aud in [iss, "https://My-OIDC-Bucket.s3.eu-west-1.amazonaws.com/"] {
            assert_eq!(
                ForeignAudience::first_in_claims(&claims(iss, aud)),
                Some(OwnIssuer),
                "{aud}"
            );
        }
        assert_eq!(
            ForeignAudience::first_in_claims(&claims(iss, "api://x")),
            None
        );
        // The host rules win, so an IRSA audience is described as what it is.
        assert_eq!(
            ForeignAudience::first_in_claims(&claims(iss, "sts.amazonaws.com")),
            Some(AwsSts)
        );
        assert!(OwnIssuer.describe().contains("own issuer"));
    }

    #[test]
    fn well_known_paths_are_foreign_lexically_and_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let irsa_dir = dir.path().join("eks.amazonaws.com/serviceaccount");
        let data = irsa_dir.join("..2026_01_01_00_00_00.1");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("token"), "x").unwrap();
        std::os::unix::fs::symlink("..2026_01_01_00_00_00.1", irsa_dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/token", irsa_dir.join("token")).unwrap();
        let elsewhere = dir.path().join("my-link");
        std::os::unix::fs::symlink(irsa_dir.join("token"), &elsewhere).unwrap();
        let irsa = irsa_dir.join("token");
        let env = Env::from_pairs([(AWS_WEB_IDENTITY_TOKEN_FILE, irsa.display().to_string())]);
        let denied = denied_paths(&env);
        for p in [
            irsa.clone(),
            irsa_dir.join("..data/token"),
            irsa_dir.join("./sub/../token"),
            elsewhere,
        ] {
            let f = foreign_path(&p, &denied).unwrap_or_else(|| panic!("{}", p.display()));
            assert_eq!(f.kind, AwsSts, "{}", p.display());
            assert!(f.what.contains(AWS_WEB_IDENTITY_TOKEN_FILE));
        }
        for (p, kind) in [
            (DEFAULT_SERVICE_ACCOUNT_TOKEN_PATH, KubernetesApi),
            (
                "/run/secrets/kubernetes.io/serviceaccount/token",
                KubernetesApi,
            ),
            (
                "/var/run/secrets/kubernetes.io/serviceaccount/..data/token",
                KubernetesApi,
            ),
            (EKS_POD_IDENTITY_TOKEN_PATH, EksPodIdentity),
        ] {
            assert_eq!(
                foreign_path(Path::new(p), &denied).map(|f| f.kind),
                Some(kind),
                "{p}"
            );
        }
        let own = dir.path().join("azure-identity-token");
        std::fs::write(&own, "x").unwrap();
        for p in [
            own.as_path(),
            Path::new("/var/run/secrets/azure/tokens/azure-identity-token"),
            Path::new("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"),
        ] {
            assert_eq!(foreign_path(p, &denied), None, "{}", p.display());
        }
    }
}
