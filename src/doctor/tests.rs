//! Unit tests of doctor's helpers.

use super::configuration::is_guid;
use super::fmt_duration;
use super::token_file::describe_layout;
use crate::setup::private_issuer_host;
use time::Duration;

#[test]
fn guids_and_durations() {
    assert!(is_guid("3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11"));
    assert!(!is_guid("my-app"));
    assert_eq!(fmt_duration(Duration::seconds(3725)), "1h02m");
    assert_eq!(fmt_duration(Duration::seconds(-90)), "-1m30s");
}

#[test]
fn private_hosts() {
    for h in [
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "issuer.internal",
        "kubernetes",
    ] {
        assert!(private_issuer_host(h), "{h}");
    }
    for h in [
        "oidc.eks.us-east-1.amazonaws.com",
        "127.0.0.1",
        "s3.eu-west-1.amazonaws.com",
        "localhost",
    ] {
        assert!(!private_issuer_host(h), "{h}");
    }
}

#[cfg(unix)]
#[test]
fn atomic_writer_layout_is_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let ts = dir.path().join("..2026_01_01_00_00_00.1");
    std::fs::create_dir(&ts).unwrap();
    std::fs::write(ts.join("token"), "x").unwrap();
    std::os::unix::fs::symlink("..2026_01_01_00_00_00.1", dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/token", dir.path().join("token")).unwrap();
    let (text, projected) = describe_layout(&dir.path().join("token"));
    assert!(projected, "{text}");
    assert!(
        text.contains("..data/token") && text.contains("..2026_01_01"),
        "{text}"
    );
    let (text, projected) = describe_layout(&ts.join("token"));
    assert!(!projected && text.contains("regular file"), "{text}");
}
