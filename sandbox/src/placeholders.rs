//! Mountpoints the sandbox had to create in the root (`/proc`, `/etc/hosts`, ...) land in
//! the upper dir; they are not part of the step's changes, so they are removed afterwards.
//!
//! After the run, an entry at a mountpoint path in upper that was not there before can only
//! be the placeholder: the process cannot create, replace or remove a path that has something
//! mounted on it.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::{RootFs, SandboxError};

/// Mountpoint paths, relative to the root, children before their parents.
const MOUNTPOINTS: [&str; 6] = [
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "proc",
    "dev",
    "sys",
];

/// Parent directories a mountpoint may have needed (copied up or created).
const PARENTS: [&str; 1] = ["etc"];

/// Which of the paths already existed in upper before the run.
pub(crate) struct Placeholders {
    existed: Vec<&'static str>,
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

impl Placeholders {
    /// Records the paths present in `upper` before the run.
    pub(crate) fn survey(upper: &Path) -> Self {
        let existed = MOUNTPOINTS
            .iter()
            .chain(PARENTS.iter())
            .copied()
            .filter(|p| exists(&upper.join(p)))
            .collect();
        Placeholders { existed }
    }

    /// Removes the placeholders the run left in `root.upper`.
    pub(crate) fn remove_created(&self, root: &RootFs) -> Result<(), SandboxError> {
        for rel in MOUNTPOINTS {
            if self.existed.contains(&rel) || !parents_are_real_dirs(&root.upper, rel) {
                continue;
            }
            let path = root.upper.join(rel);
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let removed = if meta.is_dir() {
                fs::remove_dir(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(|e| SandboxError::io("remove mountpoint placeholder", &path, e))?;
        }
        for rel in PARENTS {
            if self.existed.contains(&rel) {
                continue;
            }
            let path = root.upper.join(rel);
            if is_untouched_parent(&path, &root.lower, rel)
                .map_err(|e| SandboxError::io("inspect", &path, e))?
            {
                fs::remove_dir(&path)
                    .map_err(|e| SandboxError::io("remove mountpoint parent", &path, e))?;
            }
        }
        Ok(())
    }
}

/// True when every directory between `upper` and `rel` is a directory, not a symlink: the
/// step may have replaced `/etc` with a symlink to anywhere, and following it would act on
/// the host.
pub(crate) fn parents_are_real_dirs(upper: &Path, rel: &str) -> bool {
    let mut path = upper.to_path_buf();
    let parents: Vec<&str> = rel.split('/').collect();
    for part in &parents[..parents.len().saturating_sub(1)] {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            _ => return false,
        }
    }
    true
}

/// True when `upper_dir` is an empty, non-opaque directory that either is absent from the
/// layers (the sandbox created it) or has the same owner and mode as the layers' version
/// (the sandbox's placeholder made overlayfs copy it up).
pub(crate) fn is_untouched_parent(
    upper_dir: &Path,
    lowers: &[PathBuf],
    rel: &str,
) -> io::Result<bool> {
    let meta = match fs::symlink_metadata(upper_dir) {
        Ok(m) if m.is_dir() => m,
        _ => return Ok(false),
    };
    if fs::read_dir(upper_dir)?.next().is_some() || is_opaque(upper_dir) {
        return Ok(false);
    }
    match topmost_lower(lowers, rel) {
        None => Ok(true),
        Some(lower) => Ok(lower.mode() == meta.mode()
            && lower.uid() == meta.uid()
            && lower.gid() == meta.gid()),
    }
}

/// The metadata of `rel` in the topmost layer that has it, stopping at a whiteout.
fn topmost_lower(lowers: &[PathBuf], rel: &str) -> Option<fs::Metadata> {
    for layer in lowers.iter().rev() {
        if let Ok(meta) = fs::symlink_metadata(layer.join(rel)) {
            use std::os::unix::fs::FileTypeExt;
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                return None;
            }
            return Some(meta);
        }
    }
    None
}

fn is_opaque(dir: &Path) -> bool {
    let Ok(c) = crate::builtin::plan::cpath(dir) else {
        return false;
    };
    let Ok(name) =
        std::ffi::CString::new(format!("{}opaque", crate::userns::overlay_xattr_prefix()))
    else {
        return false;
    };
    let mut value = [0u8; 2];
    // SAFETY: both strings are NUL-terminated and `value` is writable for its length.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n == 1 && value[0] == b'y'
}
