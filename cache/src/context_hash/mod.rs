//! Build-context hashing with a persistent metadata cache.
//!
//! A COPY/ADD from the build context is keyed by the content of exactly the
//! files it selects: relative path, type, permission bits, content digest or
//! symlink target. Never mtime, atime or ownership of the context files.
//!
//! Hashing a large context on every build would be slow, so [`ContextHasher`]
//! remembers, per absolute path, the stat tuple (size, mtime, ctime, inode,
//! device, mode) under which it last hashed a file, and the blake3 digest it
//! got. A file whose tuple is unchanged is not read again. The memory is a
//! small binary file under the state root ([`persist`]), loaded by
//! [`ContextHasher::open`] and written by [`ContextHasher::save`].
//!
//! The walk itself is in [`tree`]: [`ContextHasher::digest_tree`].

mod persist;
mod tree;

use std::collections::HashMap;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use tree::{TreeDigest, snapshot_digest};

/// How long before the moment a file was hashed its last change must lie
/// for the cached digest to be trusted (see [`Stamp::trusted_at`]).
pub const DEFAULT_RACY_WINDOW: Duration = Duration::from_secs(1);

/// Files at least this large are hashed in chunks with blake3's rayon
/// parallelism inside each chunk; smaller ones with a plain streaming read.
const LARGE_FILE: u64 = 4 << 20;
const LARGE_CHUNK: usize = 1 << 20;
const SMALL_CHUNK: usize = 64 << 10;

/// Errors of context hashing; each names the path it is about.
#[derive(Debug, thiserror::Error)]
pub enum ContextHashError {
    /// `lstat` (or `fstat`) failed.
    #[error("cannot stat {path}: {source}")]
    Stat {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Opening or reading a file's content failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Listing a directory failed.
    #[error("cannot list directory {path}: {source}")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Reading a symlink's target failed.
    #[error("cannot read symlink {path}: {source}")]
    ReadLink {
        /// The symlink.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file handed to [`ContextHasher::file_digest`] is not a regular file
    /// (or was replaced by something else while being opened).
    #[error("{path} is not a regular file")]
    NotRegular {
        /// The path.
        path: PathBuf,
    },
    /// A snapshot to digest is not a directory.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A selected path leaves the context (`..`) .
    #[error("selected path `{path}` is outside the build context")]
    OutsideContext {
        /// The selected path as given.
        path: String,
    },
    /// A selected path goes through a symlink inside the context; following
    /// it could leave the context, and symlinks are never followed.
    #[error("selected path `{path}` goes through the symlink {link}")]
    ThroughSymlink {
        /// The selected path as given.
        path: String,
        /// The symlink on the way.
        link: PathBuf,
    },
    /// Writing the metadata cache failed.
    #[error("cannot write the context hash cache {path}: {source}")]
    Save {
        /// The cache file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// The stat tuple under which a digest was computed. Any difference means
/// the file must be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
    mode: u32,
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        Stamp {
            size: meta.size(),
            mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: nanos(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
            mode: meta.mode(),
        }
    }

    /// The "racy-git" rule. A digest recorded at `recorded_ns` (wall clock
    /// read *before* the content was read) is trusted only if the file's last
    /// change (the later of ctime and mtime) lies more than `window` before
    /// that moment.
    ///
    /// Why: the kernel stamps ctime/mtime from a coarse clock (one tick, a
    /// few ms) and some filesystems keep whole seconds only. A write that
    /// lands after our read but within the same timestamp granule leaves the
    /// stat tuple identical, so the tuple alone cannot tell. Such a write can
    /// only happen if the file's timestamp is within one granule of the
    /// moment we read it; for those entries we distrust the tuple and read
    /// the file again next time (when it is re-recorded with a later
    /// `recorded_ns`, it becomes trusted). Any later write moves ctime past
    /// the window, which the tuple comparison catches.
    fn trusted_at(&self, recorded_ns: i128, window: Duration) -> bool {
        let changed = self.ctime_ns.max(self.mtime_ns);
        changed.saturating_add(window.as_nanos() as i128) < recorded_ns
    }
}

fn nanos(secs: i64, nsecs: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nsecs)
}

fn now_ns() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// One remembered digest.
#[derive(Debug, Clone, Copy)]
struct Entry {
    stamp: Stamp,
    digest: [u8; 32],
    /// Wall clock (ns since the epoch) just before the content was read.
    recorded_ns: i128,
    /// Wall clock (seconds since the epoch) when a build last used it.
    last_seen: i64,
}

/// Hashes build-context files, remembering digests between builds.
///
/// Shared by reference across threads (`digest_tree` hashes in parallel);
/// one per build is the intended use: `open`, hash, `save`.
#[derive(Debug)]
pub struct ContextHasher {
    cache_file: PathBuf,
    entries: Mutex<HashMap<PathBuf, Entry>>,
    dirty: AtomicBool,
    racy_window: Duration,
    files_read: AtomicU64,
    bytes_read: AtomicU64,
}

impl ContextHasher {
    /// Loads the metadata cache from `cache_file`. A missing, unreadable,
    /// corrupt or truncated file is treated as an empty cache: hashing then
    /// reads every file, which is slower but never wrong, so a build never
    /// fails because of this file.
    pub fn open(cache_file: &Path) -> ContextHasher {
        ContextHasher {
            cache_file: cache_file.to_path_buf(),
            entries: Mutex::new(persist::load(cache_file)),
            dirty: AtomicBool::new(false),
            racy_window: DEFAULT_RACY_WINDOW,
            files_read: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
        }
    }

    /// A hasher that remembers nothing between calls (and is never saved):
    /// every file is read.
    fn uncached() -> ContextHasher {
        ContextHasher {
            cache_file: PathBuf::new(),
            entries: Mutex::default(),
            dirty: AtomicBool::new(false),
            racy_window: DEFAULT_RACY_WINDOW,
            files_read: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
        }
    }

    /// Replaces the racy window ([`DEFAULT_RACY_WINDOW`]): how long before a
    /// file was hashed its last change must be for the digest to be reused.
    /// Tests and benchmarks on freshly written trees use a shorter one.
    pub fn with_racy_window(mut self, window: Duration) -> ContextHasher {
        self.racy_window = window;
        self
    }

    /// How many files this hasher has actually read (cache misses), for
    /// tests and progress output.
    pub fn files_read(&self) -> u64 {
        self.files_read.load(Ordering::Relaxed)
    }

    /// How many content bytes this hasher has actually read.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// Number of remembered digests.
    pub fn cached_entries(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Entry>> {
        // A panic elsewhere while holding the lock leaves a map that is still
        // consistent (every insert is a single call), so keep using it.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The blake3 digest of the regular file at `path`, whose `lstat` is
    /// `meta`. Served from the cache when `meta` matches the remembered
    /// stat tuple exactly and the entry is not racy; otherwise the file is
    /// read (without following a symlink) and the result remembered.
    /// Entries are keyed by `path` as given; [`ContextHasher::digest_tree`]
    /// passes absolute paths under the canonical context root.
    pub fn file_digest(&self, path: &Path, meta: &Metadata) -> Result<[u8; 32], ContextHashError> {
        let stamp = Stamp::of(meta);
        let now = now_ns();
        {
            let mut entries = self.lock();
            if let Some(entry) = entries.get_mut(path)
                && entry.stamp == stamp
                && stamp.trusted_at(entry.recorded_ns, self.racy_window)
            {
                // Refresh the "last used" day so eviction keeps it; rewriting
                // the file for this alone happens at most once a day.
                let today = (now / 1_000_000_000) as i64;
                if today - entry.last_seen >= persist::SEEN_GRANULE_SECS {
                    entry.last_seen = today;
                    self.dirty.store(true, Ordering::Relaxed);
                }
                return Ok(entry.digest);
            }
        }
        let (digest, entry) = self.read_file(path)?;
        if let Some(entry) = entry {
            self.lock().insert(path.to_path_buf(), entry);
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok(digest)
    }

    /// Reads and hashes `path`. Returns the cache entry to remember too,
    /// unless the file changed while it was being read.
    fn read_file(&self, path: &Path) -> Result<([u8; 32], Option<Entry>), ContextHashError> {
        let read_err = |source| ContextHashError::Read {
            path: path.to_path_buf(),
            source,
        };
        let stat_err = |source| ContextHashError::Stat {
            path: path.to_path_buf(),
            source,
        };
        let recorded_ns = now_ns();
        // O_NOFOLLOW: if the file was swapped for a symlink after the walk's
        // lstat, fail instead of hashing what it points to.
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(read_err)?;
        let before = file.metadata().map_err(stat_err)?;
        if !before.is_file() {
            return Err(ContextHashError::NotRegular {
                path: path.to_path_buf(),
            });
        }
        let (digest, n) = hash_content(&mut file, before.len()).map_err(read_err)?;
        self.files_read.fetch_add(1, Ordering::Relaxed);
        self.bytes_read.fetch_add(n, Ordering::Relaxed);
        let before = Stamp::of(&before);
        let after = Stamp::of(&file.metadata().map_err(stat_err)?);
        let entry = (before == after && n == before.size).then_some(Entry {
            stamp: before,
            digest,
            recorded_ns,
            last_seen: (recorded_ns / 1_000_000_000) as i64,
        });
        Ok((digest, entry))
    }

    /// Writes the cache file atomically (temp file, fsync, rename) if
    /// anything changed since `open`. Entries not used for
    /// [`persist::MAX_AGE_SECS`] are dropped and the count is capped at
    /// [`persist::MAX_ENTRIES`] (most recently used kept), which bounds the
    /// file to a few tens of MB. Concurrent processes: the last writer wins;
    /// a reader sees either the old or the new file, never a torn one.
    pub fn save(&self) -> Result<(), ContextHashError> {
        if !self.dirty.load(Ordering::Relaxed) {
            return Ok(());
        }
        let entries = self.lock().clone();
        persist::save(&self.cache_file, entries, self.racy_window).map_err(|source| {
            ContextHashError::Save {
                path: self.cache_file.clone(),
                source,
            }
        })?;
        self.dirty.store(false, Ordering::Relaxed);
        Ok(())
    }
}

/// blake3 of a file's content and the number of bytes read. A streaming
/// read rather than `update_mmap_rayon`: a context file truncated by the
/// user while strata maps it would kill the process with SIGBUS, and the
/// walk already keeps both cores busy with different files. Big files are
/// read in 1 MiB chunks hashed with `update_rayon`, so a lone large file
/// still uses every core.
fn hash_content(file: &mut File, size: u64) -> io::Result<([u8; 32], u64)> {
    let mut hasher = blake3::Hasher::new();
    let large = size >= LARGE_FILE;
    // Small files: one buffer of their size (plus one byte to see the end).
    let buf_len = if large {
        LARGE_CHUNK
    } else {
        (size as usize + 1).min(SMALL_CHUNK)
    };
    let mut buf = vec![0u8; buf_len];
    let mut total = 0u64;
    loop {
        let n = fill(file, &mut buf)?;
        if n == 0 {
            break;
        }
        if large {
            hasher.update_rayon(&buf[..n]);
        } else {
            hasher.update(&buf[..n]);
        }
        total += n as u64;
    }
    Ok((*hasher.finalize().as_bytes(), total))
}

/// Reads until `buf` is full or the file ends.
fn fill(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ctime_ns: i128, mtime_ns: i128) -> Stamp {
        Stamp {
            size: 1,
            mtime_ns,
            ctime_ns,
            ino: 1,
            dev: 1,
            mode: 0o100644,
        }
    }

    #[test]
    fn racy_rule_distrusts_changes_near_the_read() {
        let w = Duration::from_secs(1);
        let read_at = 100_000_000_000;
        // Changed 2 s before the read: a later write would move ctime.
        assert!(stamp(read_at - 2_000_000_000, read_at - 3_000_000_000).trusted_at(read_at, w));
        // Changed 0.5 s before: a write in the same granule may be invisible.
        assert!(!stamp(read_at - 500_000_000, read_at - 3_000_000_000).trusted_at(read_at, w));
        // Exactly one window before is still racy (the bound is strict).
        assert!(!stamp(read_at - 1_000_000_000, read_at - 3_000_000_000).trusted_at(read_at, w));
        // An mtime set into the future keeps the entry racy.
        assert!(!stamp(read_at - 3_000_000_000, read_at + 10).trusted_at(read_at, w));
    }
}
