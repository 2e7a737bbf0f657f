//! A build's scratch folder, `<root>/tmp/build-<pid>-<nanos>`: everything a build keeps only
//! while it runs (the sandbox's run folders and OCI bundles among them) lives there, so that
//! nothing of strata's is left in the system's temp dir. The build holds an exclusive `flock`
//! on the folder itself until it ends; the folder of a build that was killed has no holder, and
//! the next build removes it ([`sweep_dead_scratch`]).

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::cache_error::{CacheError, io_err};
use crate::locks::lock;

const PREFIX: &str = "build-";

/// A build's scratch folder, locked and removed when dropped.
#[derive(Debug)]
pub struct BuildScratch {
    path: PathBuf,
    _lock: File,
}

impl BuildScratch {
    /// Makes and locks a new scratch folder under `<root>/tmp`.
    pub fn create(root: &Path) -> Result<BuildScratch, CacheError> {
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = tmp.join(format!("{PREFIX}{}-{nanos}", std::process::id()));
        fs::create_dir(&path).map_err(io_err(&path))?;
        let file = File::open(&path).map_err(io_err(&path))?;
        lock(&file, &path, FlockOperation::LockExclusive)?;
        Ok(BuildScratch { path, _lock: file })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BuildScratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Removes the scratch folders of builds that are gone: no process holds their lock and the
/// pid in their name is not running (which also covers a build between making its folder and
/// locking it). Returns how many were removed.
pub fn sweep_dead_scratch(root: &Path) -> Result<usize, CacheError> {
    let tmp = root.join("tmp");
    let entries = match fs::read_dir(&tmp) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(&tmp)(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry.map_err(io_err(&tmp))?.path();
        let Some(pid) = path.file_name().and_then(|n| n.to_str()).and_then(owner) else {
            continue;
        };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if lock(&file, &path, FlockOperation::NonBlockingLockExclusive)? {
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The pid in `build-<pid>-<nanos>`.
fn owner(name: &str) -> Option<u32> {
    let (pid, nanos) = name.strip_prefix(PREFIX)?.split_once('-')?;
    nanos.parse::<u128>().ok()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_builds_folder_is_swept_and_a_live_one_kept() -> Result<(), Box<dyn std::error::Error>>
    {
        let root = tempfile::tempdir()?;
        let live = BuildScratch::create(root.path())?;
        // A pid above the kernel's maximum (4194304) is never running.
        let dead = root.path().join("tmp/build-4194305-1");
        fs::create_dir_all(dead.join("strata-oci-x/rootfs"))?;
        let other = root.path().join("tmp/keep-me");
        fs::create_dir(&other)?;
        assert_eq!(sweep_dead_scratch(root.path())?, 1);
        assert!(!dead.exists());
        assert!(live.path().is_dir());
        assert!(other.is_dir());
        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists());
        Ok(())
    }

    #[test]
    fn names_give_their_pid() {
        assert_eq!(owner("build-12-345"), Some(12));
        assert_eq!(owner("build-12"), None);
        assert_eq!(owner("other-12-3"), None);
    }
}
