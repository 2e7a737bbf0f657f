//! Advisory locks between strata processes sharing one root, all `flock`s
//! (released by the kernel when a process dies, so a killed build never
//! leaves a lock behind).
//!
//! - [`KeyLock`]: `locks/<hex key>`, exclusive, taken by the solver around
//!   "look the key up → run the step → commit → record" so two builds
//!   needing the same step run it once.
//! - [`BuildLease`]: `locks/builds`, shared by every running build; prune
//!   removes blobs and base-layer folders (which builds use without holding
//!   them one by one) only when it can take it exclusively, i.e. while no
//!   build runs.
//! - Snapshot holds live on the snapshot folders themselves (see
//!   [`crate::snapshots::Hold`]).

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::cache_error::{CacheError, io_err};

/// Opens (creating) a lock file under `<root>/locks`.
pub(crate) fn lock_file(root: &Path, name: &str) -> Result<(File, PathBuf), CacheError> {
    let dir = root.join("locks");
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let path = dir.join(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    Ok((file, path))
}

/// Takes `op` on `file`; `Ok(false)` when a non-blocking request would block.
pub(crate) fn lock(file: &File, path: &Path, op: FlockOperation) -> Result<bool, CacheError> {
    match flock(file, op) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(io_err(path)(e.into())),
    }
}

/// An exclusive lock on one cache key, held until dropped.
#[derive(Debug)]
pub struct KeyLock {
    _file: File,
}

impl KeyLock {
    /// The file that holds `key`'s lock in the cache at `root`.
    pub fn path(root: &Path, key: &[u8; 32]) -> PathBuf {
        root.join("locks").join(hex::encode(key))
    }

    /// Waits until no other process or thread holds `key`'s lock, then
    /// takes it.
    pub fn acquire(root: &Path, key: &[u8; 32]) -> Result<KeyLock, CacheError> {
        loop {
            let (file, path) = lock_file(root, &hex::encode(key))?;
            lock(&file, &path, FlockOperation::LockExclusive)?;
            if still_linked(&file, &path)? {
                return Ok(KeyLock { _file: file });
            }
        }
    }

    /// Takes `key`'s lock if nobody holds it; `None` otherwise.
    pub fn try_acquire(root: &Path, key: &[u8; 32]) -> Result<Option<KeyLock>, CacheError> {
        loop {
            let (file, path) = lock_file(root, &hex::encode(key))?;
            if !lock(&file, &path, FlockOperation::NonBlockingLockExclusive)? {
                return Ok(None);
            }
            if still_linked(&file, &path)? {
                return Ok(Some(KeyLock { _file: file }));
            }
        }
    }
}

/// Whether `path` still names the file we locked: prune unlinks idle key
/// lock files (under their lock), and a lock on an unlinked file excludes
/// nobody, so the locker then starts again with a new file.
fn still_linked(file: &File, path: &Path) -> Result<bool, CacheError> {
    let held = file.metadata().map_err(io_err(path))?;
    match fs::metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Removes the key lock files nobody holds; returns how many.
pub(crate) fn remove_idle_key_locks(root: &Path) -> Result<usize, CacheError> {
    let dir = root.join("locks");
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry.map_err(io_err(&dir))?.path();
        let is_key = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()));
        if !is_key {
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if lock(&file, &path, FlockOperation::NonBlockingLockExclusive)?
            && still_linked(&file, &path)?
        {
            fs::remove_file(&path).map_err(io_err(&path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// A running build's lease on the root (shared), held until dropped.
#[derive(Debug)]
pub struct BuildLease {
    _file: File,
}

pub(crate) const BUILDS_LOCK: &str = "builds";

impl BuildLease {
    /// Marks a build as running; waits only while a prune removes blobs.
    pub fn acquire(root: &Path) -> Result<BuildLease, CacheError> {
        let (file, path) = lock_file(root, BUILDS_LOCK)?;
        lock(&file, &path, FlockOperation::LockShared)?;
        Ok(BuildLease { _file: file })
    }

    /// The exclusive side, for prune: `None` while any build runs.
    pub(crate) fn try_exclusive(root: &Path) -> Result<Option<BuildLease>, CacheError> {
        let (file, path) = lock_file(root, BUILDS_LOCK)?;
        Ok(
            lock(&file, &path, FlockOperation::NonBlockingLockExclusive)?
                .then_some(BuildLease { _file: file }),
        )
    }
}
