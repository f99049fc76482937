//! Reading the token file safely: regular files only (after symlinks are resolved), a bounded
//! number of bytes, never an `open` that waits for a writer, and at most one outstanding read per
//! source, on a thread of its own so that a hung network mount blocks that one thread only.

use crate::error::CredentialError;
use crate::problem::ProblemId;
use crate::shell::shell_quote;
use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::Shared;
use std::io::Read;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

/// A real service-account token is about 1 KB; a file larger than this is not one.
pub(crate) const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// The bytes of a token file and when it was last written.
#[derive(Debug, Clone)]
pub(crate) struct FileContent {
    pub(crate) bytes: Vec<u8>,
    pub(crate) modified: Option<SystemTime>,
}

/// Why a token file cannot be used, in parts a report can show: what is wrong with the file,
/// how to fix it, and the catalogue entry.
#[derive(Debug)]
pub(crate) struct FileProblem {
    pub(crate) what: String,
    pub(crate) fix: String,
    pub(crate) problem: ProblemId,
    pub(crate) source: Option<std::io::Error>,
}

impl FileProblem {
    /// `what` is wrong with the file: `problem`, with the catalogue's fix.
    pub(crate) fn new(what: impl Into<String>, problem: ProblemId) -> Self {
        Self {
            what: what.into(),
            fix: problem.fix().unwrap_or_default().to_owned(),
            problem,
            source: None,
        }
    }

    /// The same problem with another fix than the catalogue's.
    fn with_fix(self, fix: impl Into<String>) -> Self {
        let fix = fix.into();
        Self { fix, ..self }
    }

    /// A failed `stat`, `open` or `read` of `path`.
    pub(crate) fn io(e: std::io::Error, path: &Path) -> Self {
        use std::io::ErrorKind as K;
        let problem = match e.kind() {
            K::NotFound => Self::new("does not exist", ProblemId::TokenFileMissing),
            K::PermissionDenied => Self::new(
                "cannot be read: permission denied",
                ProblemId::TokenFileUnreadable,
            ),
            // A symlink loop, an I/O error of the volume, ...: see where the path leads.
            _ => Self::new(format!("cannot be read ({e})"), ProblemId::TokenFileUnreadable)
                .with_fix(format!(
                    "See where the path leads: `ls -l {quoted}; readlink -f {quoted}`. It must resolve to the token file of the pod's projected serviceAccountToken volume (kubelet: <mountPath>/<path> -> ..data/<path>); point AZURE_FEDERATED_TOKEN_FILE (or token_file_path) there.",
                    quoted = shell_quote(&path.display().to_string())
                )),
        };
        Self {
            source: Some(e),
            ..problem
        }
    }

    /// The credential's error for this problem with the file at `path`: names the file, the
    /// problem and the fix.
    pub(crate) fn into_error(self, path: &Path) -> CredentialError {
        let file = crate::escape::path(path);
        let facts = format!("the federated token file {file} {}.", self.what);
        let e = CredentialError::new(self.problem, facts).with_fix(self.fix);
        self.source
            .into_iter()
            .fold(e, CredentialError::with_source)
    }
}

/// A file that is not a regular file: say what it is.
fn check_regular(meta: &std::fs::Metadata) -> Result<(), FileProblem> {
    let t = meta.file_type();
    if t.is_file() {
        return Ok(());
    }
    if t.is_dir() {
        return Err(FileProblem::new(
            "is a directory, not a file",
            ProblemId::TokenFileIsADirectory,
        ));
    }
    #[cfg(unix)]
    let what = {
        use std::os::unix::fs::FileTypeExt;
        [
            (t.is_fifo(), "a named pipe (FIFO)"),
            (t.is_char_device(), "a character device"),
            (t.is_block_device(), "a block device"),
            (t.is_socket(), "a socket"),
        ]
        .into_iter()
        .find_map(|(is, what)| is.then_some(what))
        .unwrap_or("not a regular file")
    };
    #[cfg(not(unix))]
    let what = "not a regular file";
    Err(FileProblem::new(
        format!("is {what}, not a regular file; only a regular file (or a symlink to one) is read"),
        ProblemId::TokenFileNotARegularFile,
    ))
}

/// `path` opened for reading, after checking that it resolves to a regular file, and the opened
/// file's own metadata (the path may have been swapped between `stat` and `open`). `O_NONBLOCK`
/// makes `open` of a FIFO swapped in after the `stat` return at once (the `fstat` then catches
/// it); it changes nothing for a regular file. Alone, without a read, the cheap check of
/// `WorkloadIdentityCredential::new()`.
pub(crate) fn open_regular(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), FileProblem> {
    let io = |e| FileProblem::io(e, path);
    check_regular(&std::fs::metadata(path).map_err(io)?)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    check_regular(&meta)?;
    Ok((file, meta))
}

/// Read the token file: it must resolve to a regular file, and at most
/// [`MAX_TOKEN_FILE_BYTES`] are read whatever its size claims to be. Blocking; doctor and setup
/// use it directly, the credential through [`ReadGate`].
pub(crate) fn read_token_file(path: &Path) -> Result<FileContent, FileProblem> {
    let (file, meta) = open_regular(path)?;
    let mut bytes = Vec::new();
    if meta.len() <= MAX_TOKEN_FILE_BYTES {
        bytes.reserve(meta.len() as usize);
        (&file)
            .take(MAX_TOKEN_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| FileProblem::io(e, path))?;
    }
    // What it claims to be, or what it turned out to be (a file growing, a /proc file).
    let len = meta.len().max(bytes.len() as u64);
    if len > MAX_TOKEN_FILE_BYTES {
        return Err(FileProblem::new(
            format!(
                "is at least {len} bytes, far larger than a service-account token (about 1 KB; limit {MAX_TOKEN_FILE_BYTES})"
            ),
            ProblemId::TokenFileNotAJwt,
        ));
    }
    Ok(FileContent {
        bytes,
        modified: meta.modified().ok(),
    })
}

type ReadResult = Result<FileContent, CredentialError>;
/// The reader threads' name (at most 15 bytes: Linux's `comm`).
const READER_THREAD: &str = "token-file-read";
type Reader = Box<dyn FnOnce() -> ReadResult + Send>;
type Reading = Shared<oneshot::Receiver<ReadResult>>;

/// At most one outstanding read: a caller arriving while a read is still running (a hung network
/// mount) joins it instead of starting another, so attempts that time out one after the other
/// cannot pile up blocked threads. A read that has finished is never reused: the next caller
/// starts a fresh one, so a rotated file is always read anew.
#[derive(Default)]
pub(crate) struct ReadGate(Mutex<Option<Reading>>);

/// The read in `slot` while it is still running.
fn running(slot: &Option<Reading>) -> Option<Reading> {
    slot.clone().filter(|r| r.clone().now_or_never().is_none())
}

impl std::fmt::Debug for ReadGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let reading = running(&slot).is_some();
        f.debug_struct("ReadGate")
            .field("reading", &reading)
            .finish()
    }
}

impl ReadGate {
    /// Run `reader` on a thread of its own, or join the read still running.
    pub(crate) async fn read(&self, path: &Path, reader: Reader) -> ReadResult {
        let fail = |what: String, fix: &str| {
            let problem = FileProblem::new(what, ProblemId::TokenFileUnreadable);
            problem.with_fix(fix).into_error(path)
        };
        let read = {
            let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            match running(&slot) {
                Some(r) => r,
                None => {
                    let (tx, rx) = oneshot::channel();
                    let spawned = std::thread::Builder::new()
                        .name(READER_THREAD.into())
                        .spawn(move || tx.send(reader()));
                    if let Err(e) = spawned {
                        return Err(fail(
                            format!(
                                "could not be read: no thread could be started to read it ({e})"
                            ),
                            "The process is out of threads or memory; check its limits (ulimit -u, the container's pids limit).",
                        ));
                    }
                    slot.insert(rx.shared()).clone()
                }
            }
        };
        // The sender is dropped unanswered only if the reader panicked.
        read.await.unwrap_or_else(|_| {
            Err(fail(
                "could not be read: the reading thread ended without an answer".into(),
                "This is a bug; please report it.",
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Live reader threads of the whole process (other tests read token files too, briefly).
    fn reader_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim() == READER_THREAD)
            .count()
    }

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_before_any_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let rss = rss_kib();
        for (p, needle) in [
            (Path::new("/dev/zero"), "character device"),
            (Path::new("/dev/null"), "character device"),
            (fifo.as_path(), "named pipe"),
            (dir.path(), "is a directory"),
        ] {
            let e = read_token_file(p).unwrap_err();
            assert!(e.what.contains(needle), "{}: {e:?}", p.display());
            let e = open_regular(p).unwrap_err();
            assert!(e.what.contains(needle), "{}: {e:?}", p.display());
        }
        // A symlink is followed: to a device it is refused, to a regular file it is read.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(
            read_token_file(&link)
                .unwrap_err()
                .what
                .contains("character device")
        );
        let file = dir.path().join("token");
        std::fs::write(&file, "a.b.c\n").unwrap();
        let link2 = dir.path().join("link2");
        std::os::unix::fs::symlink(&file, &link2).unwrap();
        assert_eq!(read_token_file(&link2).unwrap().bytes, b"a.b.c\n");
        assert!(rss_kib() < rss + 16 * 1024, "memory stayed bounded");
    }

    #[test]
    fn reads_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, vec![b'a'; MAX_TOKEN_FILE_BYTES as usize + 1]).unwrap();
        assert!(read_token_file(&p).unwrap_err().what.contains("far larger"));
        std::fs::write(&p, vec![b'a'; MAX_TOKEN_FILE_BYTES as usize]).unwrap();
        assert_eq!(
            read_token_file(&p).unwrap().bytes.len(),
            MAX_TOKEN_FILE_BYTES as usize
        );
        // /proc files claim a length of 0 but have content: read, bounded.
        let proc = read_token_file(Path::new("/proc/self/status")).unwrap();
        assert!(!proc.bytes.is_empty() && proc.bytes.len() as u64 <= MAX_TOKEN_FILE_BYTES);
    }

    #[tokio::test]
    async fn a_hung_read_is_joined_not_repeated() {
        let gate = Arc::new(ReadGate::default());
        let started = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let make_reader = || -> Reader {
            let started = started.clone();
            let release_rx = release_rx.clone();
            let started_tx = started_tx.clone();
            Box::new(move || {
                started.fetch_add(1, Ordering::SeqCst);
                started_tx.send(()).unwrap();
                // Blocks like a read on a hung mount until the test releases it.
                release_rx.lock().unwrap().recv().unwrap();
                Ok(FileContent {
                    bytes: b"x".to_vec(),
                    modified: None,
                })
            })
        };
        // Ten attempts, each abandoned (as the cache's attempt time-out abandons them).
        for _ in 0..10 {
            let read = gate.read(Path::new("/hung"), make_reader());
            let polled = futures::poll!(Box::pin(read));
            assert!(polled.is_pending());
        }
        started_rx.recv().unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 1, "one outstanding read");
        // One blocked reader thread (a little slack for other tests' brief reads).
        assert!(reader_threads() <= 3, "{} reader threads", reader_threads());
        assert!(format!("{gate:?}").contains("reading: true"));
        // A caller still waiting gets the outcome of that one read once it ends.
        let mut waiting = Box::pin(gate.read(Path::new("/hung"), make_reader()));
        assert!(futures::poll!(&mut waiting).is_pending());
        release_tx.send(()).unwrap();
        assert_eq!(waiting.await.unwrap().bytes, b"x");
        assert_eq!(started.load(Ordering::SeqCst), 1);
        // Finished: the next caller reads anew.
        release_tx.send(()).unwrap();
        gate.read(Path::new("/hung"), make_reader()).await.unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 2);
    }
}
