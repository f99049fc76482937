//! The kubelet atomic-writer layout and rotation.

mod common;
use common::*;
use entra_emulator::{ProjectedVolume, ServiceAccountToken};
use std::path::Path;
use std::time::Duration;

fn link(p: &Path) -> String {
    std::fs::read_link(p)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[tokio::test]
async fn layout_and_rotate_now() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let vol = ProjectedVolume::create(
        dir.path(),
        "azure-identity-token",
        s.issuer.clone(),
        s.sa.clone(),
    )
    .unwrap();
    let path = vol.token_path();
    assert_eq!(path, dir.path().join("azure-identity-token"));
    // visible file -> ..data/file ; ..data -> ..<timestamp>
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(link(&path), "..data/azure-identity-token");
    let data = dir.path().join("..data");
    assert!(
        std::fs::symlink_metadata(&data)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let first_dir = link(&data);
    assert!(first_dir.starts_with("..20"), "{first_dir}");
    assert_eq!(first_dir.len(), "..2026_11_28_15_04_05.123456789".len());
    let first = std::fs::read_to_string(&path).unwrap();
    assert_eq!(first, vol.current_token());
    assert_eq!(vol.rotations(), 0);
    // the token is accepted by Entra
    assert_eq!(request_token(&s, &first).await.status, 200);

    let second = vol.rotate_now().unwrap();
    assert_ne!(first, second);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), second);
    assert_eq!(vol.current_token(), second);
    assert_eq!(vol.rotations(), 1);
    let second_dir = link(&data);
    assert_ne!(first_dir, second_dir);
    assert!(
        !dir.path().join(&first_dir).exists(),
        "old directory removed"
    );
    assert!(!dir.path().join("..data_tmp").exists());
    // exactly: the visible link, ..data, one timestamped directory
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            second_dir,
            "..data".to_owned(),
            "azure-identity-token".to_owned()
        ]
    );
}

#[tokio::test]
async fn an_old_first_token_then_fresh_rotations() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let old = ServiceAccountToken {
        issued_at: Some(time::OffsetDateTime::now_utc() - time::Duration::hours(3)),
        ..s.sa.clone()
    };
    let vol = ProjectedVolume::create(dir.path(), "token", s.issuer.clone(), old).unwrap();
    request_token(&s, &vol.current_token())
        .await
        .assert_entra_error(400, "invalid_client", 700024);
    let fresh = vol.rotate_now().unwrap();
    assert_eq!(request_token(&s, &fresh).await.status, 200);
}

#[tokio::test]
async fn background_rotation_and_stop() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let sa = ServiceAccountToken {
        lifetime: Duration::from_secs(1),
        ..s.sa.clone()
    };
    let vol = ProjectedVolume::create(dir.path(), "token", s.issuer.clone(), sa).unwrap();
    vol.start_rotation();
    // no duration is asserted: wait (bounded) until at least two rotations happened
    tokio::time::timeout(Duration::from_secs(30), async {
        while vol.rotations() < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("rotations happen");
    vol.stop_rotating();
    let n = vol.rotations();
    let token = std::fs::read_to_string(vol.token_path()).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(vol.rotations(), n, "stopped");
    assert_eq!(std::fs::read_to_string(vol.token_path()).unwrap(), token);
}
