//! A projected service-account token volume written with the kubelet's atomic-writer layout.
//!
//! ```text
//! dir/
//!   ..2026_11_28_15_04_05.123456789/token
//!   ..data -> ..2026_11_28_15_04_05.123456789
//!   token  -> ..data/token
//! ```
//!
//! An update writes a new timestamped directory, points a temporary symlink at it, renames the
//! symlink over `..data`, then deletes the old directory.

use crate::kube::{Issuer, ServiceAccountToken};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::macros::format_description;

/// A directory holding a service-account token the way the kubelet writes it.
///
/// Dropping it stops the rotation task; the files stay.
pub struct ProjectedVolume {
    inner: Arc<VolumeState>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What the volume and its rotation task share.
struct VolumeState {
    dir: PathBuf,
    file_name: String,
    issuer: Issuer,
    sa: ServiceAccountToken,
    current: Mutex<String>,
    rotations: AtomicUsize,
}

impl std::fmt::Debug for ProjectedVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectedVolume")
            .field("dir", &self.inner.dir)
            .field("file_name", &self.inner.file_name)
            .finish_non_exhaustive()
    }
}

impl ProjectedVolume {
    /// Creates `dir` if needed and writes the first token (minted with `sa` as given, so an
    /// `issued_at` in the past produces an already-old token). Later tokens are issued now.
    pub fn create(
        dir: &Path,
        file_name: &str,
        issuer: Issuer,
        sa: ServiceAccountToken,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let token = issuer.mint(&sa);
        let inner = Arc::new(VolumeState {
            dir: dir.to_owned(),
            file_name: file_name.to_owned(),
            issuer,
            sa: ServiceAccountToken {
                issued_at: None,
                ..sa
            },
            current: Mutex::new(String::new()),
            rotations: AtomicUsize::new(0),
        });
        inner.write(token)?;
        Ok(ProjectedVolume {
            inner,
            task: Mutex::new(None),
        })
    }

    /// `dir/file_name`, the path a pod reads (a symlink through `..data`).
    pub fn token_path(&self) -> PathBuf {
        self.inner.dir.join(&self.inner.file_name)
    }

    /// The volume directory.
    pub fn dir(&self) -> PathBuf {
        self.inner.dir.clone()
    }

    /// Writes a freshly minted token and returns it.
    pub fn rotate_now(&self) -> std::io::Result<String> {
        self.inner.rotate()
    }

    /// The token most recently written.
    pub fn current_token(&self) -> String {
        self.inner.current.lock().unwrap().clone()
    }

    /// Starts a tokio task that rotates the token whenever it is 80 % through its lifetime (the
    /// kubelet's rule). Restarts the task if one is running.
    pub fn start_rotation(&self) {
        self.stop_rotating();
        let inner = self.inner.clone();
        let lifetime = inner.sa.lifetime;
        let period = lifetime.mul_f64(0.8).max(Duration::from_millis(10));
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let inner = inner.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || inner.rotate()).await {
                    tracing::warn!("projected volume rotation failed: {e}");
                }
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Stops the rotation task (the current token stays on disk and ages).
    pub fn stop_rotating(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }

    /// How many times the token was rewritten after the first write.
    pub fn rotations(&self) -> usize {
        self.inner.rotations.load(Ordering::SeqCst)
    }
}

impl Drop for ProjectedVolume {
    fn drop(&mut self) {
        self.stop_rotating();
    }
}

impl VolumeState {
    fn rotate(&self) -> std::io::Result<String> {
        let token = self.issuer.mint(&self.sa);
        self.write(token.clone())?;
        self.rotations.fetch_add(1, Ordering::SeqCst);
        Ok(token)
    }

    fn write(&self, token: String) -> std::io::Result<()> {
        // Holding `current` serializes writers.
        let mut current = self.current.lock().unwrap();
        let data_link = self.dir.join("..data");
        let old_target = std::fs::read_link(&data_link).ok();

        // 1. the new timestamped directory with the payload
        let ts_dir = self.new_ts_dir()?;
        let payload = self.dir.join(&ts_dir).join(&self.file_name);
        std::fs::write(&payload, &token)?;
        set_mode(&payload, 0o644)?;

        // 2. swap ..data atomically: a temporary symlink renamed over it
        let tmp_link = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp_link);
        symlink(Path::new(&ts_dir), &tmp_link)?;
        std::fs::rename(&tmp_link, &data_link)?;

        // 3. the visible file, once
        let visible = self.dir.join(&self.file_name);
        if std::fs::symlink_metadata(&visible).is_err() {
            symlink(&Path::new("..data").join(&self.file_name), &visible)?;
        }

        // 4. the old directory goes
        if let Some(old) = old_target
            && old != Path::new(&ts_dir)
        {
            let _ = std::fs::remove_dir_all(self.dir.join(old));
        }
        *current = token;
        Ok(())
    }

    fn new_ts_dir(&self) -> std::io::Result<String> {
        let now = time::OffsetDateTime::now_utc();
        let base = now
            .format(format_description!(
                "..[year]_[month]_[day]_[hour]_[minute]_[second].[subsecond digits:9]"
            ))
            .map_err(std::io::Error::other)?;
        let mut name = base.clone();
        let mut n = 0;
        loop {
            match std::fs::create_dir(self.dir.join(&name)) {
                Ok(()) => return Ok(name),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    n += 1;
                    name = format!("{base}{n}");
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "projected volumes need symlinks (unix)",
    ))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}
