//! Step snapshots: the layer folders (overlayfs diff format) that builds
//! keep between runs, under `$ROOT/snapshots`.
//!
//! Names are short because overlay mount options list them:
//! - `s-<16 hex of the cache key>`: a committed step result, with
//!   `s-….json` beside it ([`SnapshotMeta`]: key, parent chain, size,
//!   creation time). The metadata is written after the folder is in place
//!   and is the source of truth the index is rebuilt from; a folder without
//!   it is an interrupted commit.
//! - `l-<16 hex of a diff ID>`: a base-image layer, with `l-….json` beside
//!   it ([`BaseMeta`]: the whole diffID, the blobs verified to have it, a
//!   digest of the unpacked tree), written last like a step's. A base folder
//!   without metadata is unverified (an interrupted unpack, or one by a
//!   strata that did not check diffIDs) and is never used, only removed.
//!   Two diffIDs sharing 16 hex digits is improbable by chance but a
//!   forger can search for one (2^64 work), so the metadata, not the name,
//!   is the identity: on such a collision the second diffID gets the
//!   `l-<64 hex>` name (see [`crate::base_layers`]).
//! - `tmp-*`: work in progress (prepared snapshots, overlay work folders,
//!   metadata being written, snapshots being deleted). Whatever is not
//!   locked by a live process is garbage left by a killed one.
//!
//! Locks live on the folders themselves: a process using a snapshot (or
//! writing a `tmp-*` entry) holds a shared `flock` on it; a deleter first
//! takes an exclusive non-blocking one, so nothing in use is ever removed.
//! Deleting renames the folder to a `tmp-*` name before removing its
//! content, so a crash mid-delete leaves garbage, never a half snapshot.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::{FlockOperation, RenameFlags, renameat_with};
use serde::{Deserialize, Serialize};

use crate::cache_error::{CacheError, io_err, rio_err};
use crate::locks::lock;

/// The name of a folder under `snapshots/`: `s-…` (step) or `l-…` (base
/// layer), a single path component.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SnapshotId(String);

impl SnapshotId {
    /// The step snapshot name for `key`: `s-<first 16 hex digits>`.
    pub fn for_key(key: &[u8; 32]) -> SnapshotId {
        SnapshotId(format!("s-{}", &hex::encode(key)[..16]))
    }

    /// Checks that `name` is a step (`s-`) or base layer (`l-`) name made
    /// of lowercase hex digits.
    pub fn parse(name: &str) -> Result<SnapshotId, CacheError> {
        let ok = (name.starts_with("s-") || name.starts_with("l-"))
            && name.len() > 2
            && name.len() <= 66
            && name[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(SnapshotId(name.to_string()))
        } else {
            Err(CacheError::InvalidId(name.to_string()))
        }
    }

    /// The base layer folder name for a `sha256:` diff ID, as the solver
    /// unpacks it: `l-<first 16 hex digits>`.
    pub fn for_diff_id(diff_id: &str) -> Result<SnapshotId, CacheError> {
        let hex = diff_id.trim_start_matches("sha256:");
        SnapshotId::parse(&format!("l-{}", &hex[..hex.len().min(16)]))
    }

    /// The long base layer folder name, `l-<all hex digits>`, used when the
    /// short one holds another diffID.
    pub fn for_diff_id_long(diff_id: &str) -> Result<SnapshotId, CacheError> {
        SnapshotId::parse(&format!("l-{}", diff_id.trim_start_matches("sha256:")))
    }

    /// The folder name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for a step snapshot (`s-…`), which has metadata.
    pub fn is_step(&self) -> bool {
        self.0.starts_with("s-")
    }
}

impl TryFrom<String> for SnapshotId {
    type Error = CacheError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SnapshotId::parse(&s)
    }
}

impl From<SnapshotId> for String {
    fn from(id: SnapshotId) -> String {
        id.0
    }
}

impl std::fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A base layer's blob in the content store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// `sha256:` digest of the (compressed) blob.
    pub digest: String,
    /// `sha256:` digest of the uncompressed tar.
    pub diff_id: String,
    /// Blob size in bytes.
    pub size: u64,
    /// The blob's media type.
    pub media_type: String,
}

/// One layer of a cached stack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LayerRef {
    /// A step snapshot (`s-…`).
    Step {
        /// Its folder name.
        id: SnapshotId,
    },
    /// A base-image layer (`l-…`) and its blob.
    Base {
        /// Its folder name.
        id: SnapshotId,
        /// Its blob.
        blob: BlobRef,
    },
}

impl LayerRef {
    /// The layer's folder name.
    pub fn id(&self) -> &SnapshotId {
        match self {
            LayerRef::Step { id } | LayerRef::Base { id, .. } => id,
        }
    }
}

/// What `s-….json` records about a committed snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The cache key, 64 hex digits.
    pub key: String,
    /// The layers below this one, bottom first.
    pub parents: Vec<LayerRef>,
    /// Bytes of the regular files in the folder (hard links counted once).
    pub size: u64,
    /// Commit time, seconds since the Unix epoch.
    pub created: u64,
}

/// What `l-….json` records about a base layer snapshot: its identity and
/// how it was established.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseMeta {
    /// The `sha256:` diffID the unpacked stream was verified to have.
    pub diff_id: String,
    /// `sha256:` digests of the blobs verified to decompress to `diff_id`.
    pub blobs: Vec<String>,
    /// Hex digest of the unpacked tree as committed
    /// ([`crate::context_hash::snapshot_digest`]), for `doctor --deep`.
    pub tree: String,
    /// Bytes of the regular files in the folder (hard links counted once).
    pub size: u64,
    /// Commit time, seconds since the Unix epoch.
    pub created: u64,
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long a commit waits for a concurrent commit of the same key.
const COMMIT_WAIT: Duration = Duration::from_secs(120);

/// The snapshots folder of a root.
#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
}

/// A fresh empty folder (`snapshots/tmp-…`) a step writes its layer into;
/// removed when dropped without [`Snapshots::commit`].
#[derive(Debug)]
pub struct PreparedSnapshot {
    path: PathBuf,
    /// Shared lock on the folder: marks it as in use for doctor and prune,
    /// and becomes the committed snapshot's [`Hold`].
    lock: Option<File>,
    work: Option<(PathBuf, File)>,
}

impl PreparedSnapshot {
    /// The folder to fill (the RUN overlay's upper folder, or COPY's target).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An empty folder on the same filesystem for overlayfs' `workdir`,
    /// created on first use and removed by commit. The overlay must be
    /// unmounted before [`Snapshots::commit`].
    pub fn work_dir(&mut self) -> Result<PathBuf, CacheError> {
        if let Some((p, _)) = &self.work {
            return Ok(p.clone());
        }
        let mut name = self.path.as_os_str().to_owned();
        name.push(".w");
        let p = PathBuf::from(name);
        fs::create_dir(&p).map_err(io_err(&p))?;
        let f = locked_shared(&p)?;
        self.work = Some((p.clone(), f));
        Ok(p)
    }

    fn discard(&mut self) {
        if let Some((w, _)) = self.work.take() {
            let _ = fs::remove_dir_all(w);
        }
        if self.lock.take().is_some() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

impl Drop for PreparedSnapshot {
    fn drop(&mut self) {
        self.discard();
    }
}

/// A shared lock on a snapshot folder: while it lives, prune and repair
/// leave the snapshot alone. Take one for every layer a build uses, and
/// keep it until the build no longer reads the folder.
#[derive(Debug)]
pub struct Hold {
    id: SnapshotId,
    _lock: File,
}

impl Hold {
    /// The held snapshot.
    pub fn id(&self) -> &SnapshotId {
        &self.id
    }
}

/// Opens `path` and takes a shared lock on it.
fn locked_shared(path: &Path) -> Result<File, CacheError> {
    let f = File::open(path).map_err(io_err(path))?;
    lock(&f, path, FlockOperation::LockShared)?;
    Ok(f)
}

/// Opens `path` and takes an exclusive lock if free: `None` when in use or
/// gone.
pub(crate) fn try_exclusive(path: &Path) -> Result<Option<File>, CacheError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    if !lock(&f, path, FlockOperation::NonBlockingLockExclusive)? {
        return Ok(None);
    }
    // The entry may have been deleted and replaced while we opened it.
    Ok(same_inode(&f, path)?.then_some(f))
}

fn same_inode(f: &File, path: &Path) -> Result<bool, CacheError> {
    let held = f.metadata().map_err(io_err(path))?;
    match fs::symlink_metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Bytes of the regular files under `path`, each inode once.
pub(crate) fn dir_size(path: &Path) -> Result<u64, CacheError> {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).map_err(io_err(&p))?;
        if m.is_dir() {
            for entry in fs::read_dir(&p).map_err(io_err(&p))? {
                stack.push(entry.map_err(io_err(&p))?.path());
            }
        } else if m.is_file() && (m.nlink() == 1 || seen.insert((m.dev(), m.ino()))) {
            total += m.len();
        }
    }
    Ok(total)
}

impl Snapshots {
    /// Opens (creating if needed) the snapshots folder `dir`
    /// (`$ROOT/snapshots`), private to its owner: base layers may carry
    /// device nodes and setuid files, which no other user of the host may
    /// reach through it (Docker keeps `/var/lib/docker` 0710 for the same
    /// reason).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Snapshots, CacheError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let meta = fs::metadata(&dir).map_err(io_err(&dir))?;
        if meta.mode() & 0o777 != 0o700 {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_err(&dir))?;
        }
        Ok(Snapshots { dir })
    }

    /// The snapshots folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where snapshot `id` lives (whether or not it exists).
    pub fn path(&self, id: &SnapshotId) -> PathBuf {
        self.dir.join(id.as_str())
    }

    pub(crate) fn meta_path(&self, id: &SnapshotId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// A new empty `tmp-…` folder, locked as in use until committed or
    /// dropped.
    pub fn prepare(&self) -> Result<PreparedSnapshot, CacheError> {
        loop {
            let path = tempfile::Builder::new()
                .prefix("tmp-")
                .rand_bytes(8)
                .tempdir_in(&self.dir)
                .map_err(io_err(&self.dir))?
                .keep();
            // The upper folder's root becomes the container's `/`, so it
            // needs the usual mode, not tempfile's 0700.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(io_err(&path))?;
            let lock = locked_shared(&path)?;
            // A concurrent repair may have taken the unlocked folder for
            // garbage in the instant before we locked it.
            if same_inode(&lock, &path)? {
                return Ok(PreparedSnapshot {
                    path,
                    lock: Some(lock),
                    work: None,
                });
            }
        }
    }

    /// Makes `prepared` durable as the result of `key`, stacked on
    /// `parents` (bottom first), and returns its id with a hold on it.
    ///
    /// Durability: one `syncfs` of the snapshots filesystem writes back all
    /// the step's files at once (an fsync per file would cost one journal
    /// commit each); then the folder is renamed to `s-…` without replacing
    /// anything, the folder is fsynced, and the metadata is written
    /// atomically last, so a snapshot with metadata is always complete.
    ///
    /// When another build already committed `key`, ours is discarded and
    /// theirs returned.
    pub fn commit(
        &self,
        mut prepared: PreparedSnapshot,
        key: &[u8; 32],
        parents: &[LayerRef],
    ) -> Result<(SnapshotId, Hold), CacheError> {
        if let Some((w, _)) = prepared.work.take() {
            fs::remove_dir_all(&w).map_err(io_err(&w))?;
        }
        let size = dir_size(&prepared.path)?;
        let lock = match &prepared.lock {
            Some(l) => l,
            None => return Err(CacheError::NotFound(prepared.path.clone())),
        };
        rustix::fs::syncfs(lock).map_err(rio_err(&prepared.path))?;
        let id = SnapshotId::for_key(key);
        let dest = self.path(&id);
        let key_hex = hex::encode(key);
        let started = Instant::now();
        loop {
            match renameat_with(
                rustix::fs::CWD,
                &prepared.path,
                rustix::fs::CWD,
                &dest,
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => break,
                Err(e) if e == rustix::io::Errno::EXIST || e == rustix::io::Errno::NOTEMPTY => {
                    if let Some(hold) = self.existing(&id, &key_hex)? {
                        prepared.discard();
                        return Ok((id, hold));
                    }
                    if started.elapsed() > COMMIT_WAIT {
                        return Err(CacheError::Io {
                            path: dest,
                            source: io::Error::new(
                                io::ErrorKind::TimedOut,
                                "another build is still committing this snapshot",
                            ),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(rio_err(&dest)(e)),
            }
        }
        // Renamed: from now on the folder is `dest`; the lock moves with it.
        crate::test_stop::point("snapshot-renamed");
        let lock = prepared.lock.take();
        let finish = || -> Result<(), CacheError> {
            sync_dir(&self.dir)?;
            let meta = SnapshotMeta {
                key: key_hex.clone(),
                parents: parents.to_vec(),
                size,
                created: now_secs(),
            };
            self.write_json(&id, &meta)?;
            crate::test_stop::point("snapshot-meta-written");
            Ok(())
        };
        match (finish(), lock) {
            (Ok(()), Some(lock)) => Ok((id.clone(), Hold { id, _lock: lock })),
            (Err(e), lock) => {
                drop(lock);
                let _ = self.remove(&id);
                Err(e)
            }
            (Ok(()), None) => Err(CacheError::NotFound(dest)),
        }
    }

    /// Makes `prepared`, a base-image layer unpacked into it and verified,
    /// durable as `id` with `meta` beside it (written last, as for steps),
    /// and returns a hold on it with its metadata. When another build
    /// committed the same diffID first, ours is discarded and theirs
    /// returned; [`CacheError::DiffIdCollision`] when `id` holds another
    /// diffID.
    pub fn commit_base(
        &self,
        mut prepared: PreparedSnapshot,
        id: &SnapshotId,
        meta: &BaseMeta,
    ) -> Result<(Hold, BaseMeta), CacheError> {
        let dest = self.path(id);
        match &prepared.lock {
            Some(lock) => rustix::fs::syncfs(lock).map_err(rio_err(&prepared.path))?,
            None => return Err(CacheError::NotFound(prepared.path.clone())),
        }
        let started = Instant::now();
        loop {
            match renameat_with(
                rustix::fs::CWD,
                &prepared.path,
                rustix::fs::CWD,
                &dest,
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => break,
                Err(e) if e == rustix::io::Errno::EXIST || e == rustix::io::Errno::NOTEMPTY => {
                    if let Some(found) = self.existing_base(id, &meta.diff_id)? {
                        prepared.discard();
                        return Ok(found);
                    }
                    if started.elapsed() > COMMIT_WAIT {
                        return Err(CacheError::Io {
                            path: dest,
                            source: io::Error::new(
                                io::ErrorKind::TimedOut,
                                "another build is still committing this base layer",
                            ),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(rio_err(&dest)(e)),
            }
        }
        let lock = prepared.lock.take();
        let finish = || -> Result<(), CacheError> {
            sync_dir(&self.dir)?;
            self.write_json(id, meta)
        };
        match (finish(), lock) {
            (Ok(()), Some(lock)) => Ok((
                Hold {
                    id: id.clone(),
                    _lock: lock,
                },
                meta.clone(),
            )),
            (Err(e), lock) => {
                drop(lock);
                let _ = self.remove(id);
                Err(e)
            }
            (Ok(()), None) => Err(CacheError::NotFound(dest)),
        }
    }

    /// What to do about an existing base folder `id` while committing
    /// `diff_id`: a hold on it and its metadata when complete; `None` after
    /// clearing an unverified leftover, or while a live process is still
    /// committing it.
    fn existing_base(
        &self,
        id: &SnapshotId,
        diff_id: &str,
    ) -> Result<Option<(Hold, BaseMeta)>, CacheError> {
        match self.base_meta(id) {
            Ok(meta) if meta.diff_id == diff_id => match self.hold(id) {
                Ok(h) => Ok(Some((h, meta))),
                Err(CacheError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            },
            Ok(meta) => Err(CacheError::DiffIdCollision {
                path: self.path(id),
                existing: meta.diff_id,
                wanted: diff_id.to_string(),
            }),
            Err(_) => {
                if let Some(lock) = try_exclusive(&self.path(id))? {
                    self.delete_locked(id, lock)?;
                }
                Ok(None)
            }
        }
    }

    /// What to do about an existing `dest` while committing `key`: a hold on
    /// it when complete; `None` after clearing an interrupted commit's
    /// leftover, or while a live process is still committing it.
    fn existing(&self, id: &SnapshotId, key_hex: &str) -> Result<Option<Hold>, CacheError> {
        let dest = self.path(id);
        match self.meta(id) {
            Ok(meta) if meta.key == key_hex => match self.hold(id) {
                Ok(h) => Ok(Some(h)),
                Err(CacheError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            },
            Ok(meta) => Err(CacheError::KeyCollision {
                path: dest,
                existing: meta.key,
                wanted: key_hex.to_string(),
            }),
            Err(_) => {
                if let Some(lock) = try_exclusive(&dest)? {
                    self.delete_locked(id, lock)?;
                }
                Ok(None)
            }
        }
    }

    /// Writes the metadata of `id` atomically (temp file, fsync, rename).
    pub(crate) fn write_json(
        &self,
        id: &SnapshotId,
        meta: &impl Serialize,
    ) -> Result<(), CacheError> {
        let path = self.meta_path(id);
        let bytes = serde_json::to_vec_pretty(meta).map_err(|source| CacheError::Json {
            path: path.clone(),
            source,
        })?;
        let mut tmp = tempfile::Builder::new()
            .prefix("tmp-")
            .tempfile_in(&self.dir)
            .map_err(io_err(&self.dir))?;
        lock(tmp.as_file(), tmp.path(), FlockOperation::LockShared)?;
        tmp.write_all(&bytes).map_err(io_err(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
        tmp.persist(&path).map_err(|e| io_err(&path)(e.error))?;
        sync_dir(&self.dir)
    }

    /// The metadata of step snapshot `id`.
    pub fn meta(&self, id: &SnapshotId) -> Result<SnapshotMeta, CacheError> {
        let path = self.meta_path(id);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        serde_json::from_slice(&bytes).map_err(|source| CacheError::Json { path, source })
    }

    /// The metadata of base layer snapshot `id`.
    pub fn base_meta(&self, id: &SnapshotId) -> Result<BaseMeta, CacheError> {
        let path = self.meta_path(id);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        serde_json::from_slice(&bytes).map_err(|source| CacheError::Json { path, source })
    }

    /// Holds snapshot `id` (see [`Hold`]); [`CacheError::NotFound`] when it
    /// does not exist, has no metadata yet (or ever: an unverified base
    /// layer) or was removed meanwhile. Waits only while a prune is
    /// deleting it.
    pub fn hold(&self, id: &SnapshotId) -> Result<Hold, CacheError> {
        let path = self.path(id);
        let lock = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CacheError::NotFound(path));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        crate::locks::lock(&lock, &path, FlockOperation::LockShared)?;
        let complete = self.meta_path(id).is_file();
        if !same_inode(&lock, &path)? || !complete {
            return Err(CacheError::NotFound(path));
        }
        Ok(Hold {
            id: id.clone(),
            _lock: lock,
        })
    }

    /// Holds every layer of a stack; `None` when one of them is missing,
    /// or when a base layer's folder now holds another diffID than the
    /// stack was built on (its short name was reused after a prune).
    pub fn hold_layers(&self, layers: &[LayerRef]) -> Result<Option<Vec<Hold>>, CacheError> {
        let mut holds = Vec::with_capacity(layers.len());
        for layer in layers {
            match self.hold(layer.id()) {
                Ok(h) => holds.push(h),
                Err(CacheError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
            if let LayerRef::Base { id, blob } = layer
                && !self
                    .base_meta(id)
                    .is_ok_and(|meta| meta.diff_id == blob.diff_id)
            {
                return Ok(None);
            }
        }
        Ok(Some(holds))
    }

    /// True when the layer's folder and its metadata exist.
    pub fn exists(&self, id: &SnapshotId) -> bool {
        self.path(id).is_dir() && self.meta_path(id).is_file()
    }

    /// Removes snapshot `id` unless it is held; false when it is held or
    /// absent.
    pub fn remove(&self, id: &SnapshotId) -> Result<bool, CacheError> {
        match try_exclusive(&self.path(id))? {
            Some(lock) => {
                self.delete_locked(id, lock)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Deletes a snapshot we hold exclusively: metadata first (so it stops
    /// counting as a result), then the folder, renamed to a `tmp-` name
    /// before its content goes.
    pub(crate) fn delete_locked(&self, id: &SnapshotId, lock: File) -> Result<(), CacheError> {
        let meta = self.meta_path(id);
        match fs::remove_file(&meta) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&meta)(e)),
        }
        self.delete_entry(&self.path(id), lock)
    }

    /// Renames a locked entry to a fresh `tmp-` name and removes it.
    fn delete_entry(&self, path: &Path, lock: File) -> Result<(), CacheError> {
        let grave = tempfile::Builder::new()
            .prefix("tmp-")
            .rand_bytes(8)
            .tempdir_in(&self.dir)
            .map_err(io_err(&self.dir))?
            .keep();
        let is_dir = lock.metadata().map_err(io_err(path))?.is_dir();
        if is_dir {
            // Replaces the empty grave folder.
            fs::rename(path, &grave).map_err(io_err(path))?;
            drop(lock);
            fs::remove_dir_all(&grave).map_err(io_err(&grave))
        } else {
            fs::remove_dir(&grave).map_err(io_err(&grave))?;
            fs::remove_file(path).map_err(io_err(path))
        }
    }

    /// Every snapshot folder (`s-…` and `l-…`), sorted.
    pub fn list(&self) -> Result<Vec<SnapshotId>, CacheError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Ok(id) = SnapshotId::parse(name)
                && entry.file_type().map_err(io_err(&entry.path()))?.is_dir()
            {
                out.push(id);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Garbage nobody uses: unlocked `tmp-*` entries and snapshot folders
    /// without metadata (interrupted commits, base layers no one verified),
    /// with their sizes.
    pub fn leftovers(&self) -> Result<Vec<(PathBuf, u64)>, CacheError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let garbage = name.starts_with("tmp-")
                || SnapshotId::parse(name).is_ok_and(|id| !self.meta_path(&id).is_file());
            if garbage && try_exclusive(&path)?.is_some() {
                let size = match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => dir_size(&path).unwrap_or(0),
                    Ok(m) => m.len(),
                    Err(_) => continue,
                };
                out.push((path, size));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes one leftover if it is still unused; false otherwise.
    pub(crate) fn remove_leftover(&self, path: &Path) -> Result<bool, CacheError> {
        match try_exclusive(path)? {
            Some(lock) => {
                self.delete_entry(path, lock)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Removes the [`Snapshots::leftovers`] that are still unused; returns
    /// how many and their bytes.
    pub fn remove_leftovers(&self) -> Result<(u64, u64), CacheError> {
        let (mut count, mut bytes) = (0, 0);
        for (path, size) in self.leftovers()? {
            if self.remove_leftover(&path)? {
                count += 1;
                bytes += size;
            }
        }
        Ok((count, bytes))
    }
}
