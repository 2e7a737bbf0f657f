//! Cache mounts (`RUN --mount=type=cache`): folders kept under
//! `$STRATA_ROOT/cache-mounts/` across builds, never in a layer or a cache key.
//!
//! Each one is `cache-mounts/<32 hex of blake3(id)>[-<n>]/` holding `data/`
//! (what the step sees) and `id` (the id as written, for `strata du`). A step
//! holds a `flock` on that folder while it runs, which is what `sharing` means
//! between steps of any builds on the root:
//!
//! - `shared`: a shared lock; any number of steps use `data/` at once;
//! - `locked`: an exclusive lock; a second step waits until the first ends;
//! - `private`: an exclusive lock taken without waiting on the first free
//!   instance (`<hex>`, `<hex>-1`, …), a new one made when all are busy.
//!
//! A new `data/` is made (mode, owner, seed) under an exclusive lock in
//! `data.tmp` and renamed into place, so a step never sees half of one; prune
//! removes a folder only under its exclusive lock, and a step that waited on
//! a folder prune removed starts again.

use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::cache_error::{CacheError, io_err};
use crate::locks::lock;
use crate::snapshots::dir_size;
use crate::usage::cache_mounts_dir;

/// How concurrent steps share a cache mount (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Used by every step at once.
    Shared,
    /// One step at a time; others get a folder of their own.
    Private,
    /// One step at a time; others wait.
    Locked,
}

/// Fills a new cache mount's empty folder.
pub type Seed<'a> = &'a dyn Fn(&Path) -> Result<(), CacheError>;

/// How a new cache mount's folder starts.
pub struct NewMount<'a> {
    /// Its mode.
    pub mode: u32,
    /// Its owner.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
    /// Fills the empty folder (the `from`/`source` seed), before mode and owner are set.
    pub seed: Option<Seed<'a>>,
}

/// A cache mount in use: its folder, locked as its sharing says until dropped.
#[derive(Debug)]
pub struct CacheMountLease {
    data: PathBuf,
    _lock: File,
}

impl CacheMountLease {
    /// The folder to mount.
    pub fn path(&self) -> &Path {
        &self.data
    }
}

/// One cache mount folder, for `strata du`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMountInfo {
    /// The id it was made for.
    pub id: String,
    /// Its folder under the root.
    pub path: PathBuf,
    /// Bytes of its files.
    pub bytes: u64,
}

fn folder(root: &Path, id: &str, instance: usize) -> PathBuf {
    let hex = blake3::hash(id.as_bytes()).to_hex();
    let name = match instance {
        0 => hex[..32].to_string(),
        n => format!("{}-{n}", &hex[..32]),
    };
    cache_mounts_dir(root).join(name)
}

/// Opens (creating) `dir` for locking.
fn open_dir(dir: &Path) -> Result<File, CacheError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    File::open(dir).map_err(io_err(dir))
}

/// Whether `dir` is still the folder `file` was opened on (prune may have
/// removed it while we waited for its lock).
fn same_folder(file: &File, dir: &Path) -> Result<bool, CacheError> {
    let held = file.metadata().map_err(io_err(dir))?;
    match fs::symlink_metadata(dir) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// Makes `dir/data` if it is missing; the caller holds the exclusive lock.
fn initialize(dir: &Path, id: &str, new: &NewMount<'_>) -> Result<(), CacheError> {
    let data = dir.join("data");
    if data.is_dir() {
        return Ok(());
    }
    let tmp = dir.join("data.tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    fs::create_dir(&tmp).map_err(io_err(&tmp))?;
    if let Some(seed) = new.seed {
        seed(&tmp)?;
    }
    std::os::unix::fs::chown(&tmp, Some(new.uid), Some(new.gid)).map_err(io_err(&tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(new.mode & 0o7777))
        .map_err(io_err(&tmp))?;
    let id_file = dir.join("id");
    fs::write(&id_file, id).map_err(io_err(&id_file))?;
    fs::rename(&tmp, &data).map_err(io_err(&data))
}

/// Takes the cache mount `id` for one step as `sharing` says, making its
/// folder with `new` the first time.
pub fn acquire(
    root: &Path,
    id: &str,
    sharing: Sharing,
    new: &NewMount<'_>,
) -> Result<CacheMountLease, CacheError> {
    match sharing {
        Sharing::Shared => loop {
            let dir = folder(root, id, 0);
            let file = open_dir(&dir)?;
            lock(&file, &dir, FlockOperation::LockShared)?;
            if !same_folder(&file, &dir)? {
                continue;
            }
            if !dir.join("data").is_dir() {
                lock(&file, &dir, FlockOperation::LockExclusive)?;
                if !same_folder(&file, &dir)? {
                    continue;
                }
                initialize(&dir, id, new)?;
                lock(&file, &dir, FlockOperation::LockShared)?;
            }
            return Ok(CacheMountLease {
                data: dir.join("data"),
                _lock: file,
            });
        },
        Sharing::Locked => loop {
            let dir = folder(root, id, 0);
            let file = open_dir(&dir)?;
            lock(&file, &dir, FlockOperation::LockExclusive)?;
            if !same_folder(&file, &dir)? {
                continue;
            }
            initialize(&dir, id, new)?;
            return Ok(CacheMountLease {
                data: dir.join("data"),
                _lock: file,
            });
        },
        Sharing::Private => {
            let mut instance = 0;
            loop {
                let dir = folder(root, id, instance);
                let file = open_dir(&dir)?;
                if lock(&file, &dir, FlockOperation::NonBlockingLockExclusive)?
                    && same_folder(&file, &dir)?
                {
                    initialize(&dir, id, new)?;
                    return Ok(CacheMountLease {
                        data: dir.join("data"),
                        _lock: file,
                    });
                }
                instance += 1;
            }
        }
    }
}

/// Every cache mount folder under `root`, with its id and size.
pub fn list(root: &Path) -> Result<Vec<CacheMountInfo>, CacheError> {
    let dir = cache_mounts_dir(root);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_err(&dir))?.path();
        let id = fs::read_to_string(path.join("id")).unwrap_or_default();
        // A folder removed meanwhile is simply not listed.
        let Ok(bytes) = dir_size(&path) else { continue };
        out.push(CacheMountInfo { id, path, bytes });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.path.cmp(&b.path)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> NewMount<'static> {
        NewMount {
            mode: 0o750,
            uid: 0,
            gid: 0,
            seed: None,
        }
    }

    #[test]
    fn a_folder_per_id_kept_and_listed() -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let a = acquire(root.path(), "/root/.cache", Sharing::Shared, &plain())?;
        fs::write(a.path().join("f"), "kept")?;
        assert_eq!(fs::metadata(a.path())?.mode() & 0o7777, 0o750);
        let again = acquire(root.path(), "/root/.cache", Sharing::Shared, &plain())?;
        assert_eq!(fs::read_to_string(again.path().join("f"))?, "kept");
        let listed = list(root.path())?;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, "/root/.cache");
        assert!(listed[0].bytes >= 4);
        Ok(())
    }

    #[test]
    fn private_users_get_their_own_folder() -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let first = acquire(root.path(), "x", Sharing::Private, &plain())?;
        let second = acquire(root.path(), "x", Sharing::Private, &plain())?;
        assert_ne!(first.path(), second.path());
        drop(second);
        let third = acquire(root.path(), "x", Sharing::Private, &plain())?;
        assert_eq!(
            third.path().parent().and_then(|p| p.file_name()),
            folder(root.path(), "x", 1).file_name(),
            "a free private instance is reused"
        );
        Ok(())
    }
}
