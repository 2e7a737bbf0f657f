//! Read-only merged views of a layer stack, for the ops that read a
//! filesystem rather than run in it: COPY's source and destination checks,
//! and user lookups in /etc/passwd.
//!
//! The strata process runs in a private mount namespace (the cli enters one
//! at start), so these mounts are invisible to the host and vanish with the
//! process even when it is killed.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::schedule::OpError;

/// A directory showing the union of a layer stack, read-only, for as long as
/// the value lives.
#[derive(Debug)]
pub struct MergedView {
    root: PathBuf,
    mounted: bool,
    /// A directory of ours to remove on drop (the mountpoint or an empty root).
    owned: Option<PathBuf>,
}

impl MergedView {
    /// Makes the union of `layers` (bottom first) visible. One layer is used
    /// as it is; two or more are stacked with overlayfs under `scratch`.
    pub fn new(layers: &[PathBuf], scratch: &Path) -> Result<Self, OpError> {
        match layers {
            [only] => Ok(MergedView {
                root: only.clone(),
                mounted: false,
                owned: None,
            }),
            _ => {
                let dir = tempfile::Builder::new()
                    .prefix("view-")
                    .tempdir_in(scratch)
                    .map_err(|e| {
                        OpError::Failed(format!(
                            "cannot create a view under {}: {e}",
                            scratch.display()
                        ))
                    })?
                    .keep();
                let mut view = MergedView {
                    root: dir.clone(),
                    mounted: false,
                    owned: Some(dir.clone()),
                };
                if layers.len() >= 2 {
                    // overlayfs lists lower directories topmost first.
                    let lower: Vec<String> = layers
                        .iter()
                        .rev()
                        .map(|l| escape_overlay_path(&l.to_string_lossy()))
                        .collect();
                    let data = format!("lowerdir={}", lower.join(":"));
                    mount(
                        Some("overlay"),
                        &dir,
                        Some("overlay"),
                        MsFlags::MS_RDONLY,
                        Some(data.as_str()),
                    )
                    .map_err(|e| {
                        OpError::Failed(format!(
                            "cannot mount a read-only view of {} layers at {}: {e}",
                            layers.len(),
                            dir.display()
                        ))
                    })?;
                    view.mounted = true;
                }
                Ok(view)
            }
        }
    }

    /// The merged root.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for MergedView {
    fn drop(&mut self) {
        if self.mounted {
            let _ = umount2(&self.root, MntFlags::MNT_DETACH);
        }
        if let Some(dir) = &self.owned {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// overlayfs splits its options on `,` and lower directories on `:`; both
/// must be escaped with a backslash inside a path.
fn escape_overlay_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if matches!(c, ',' | ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Moves the calling thread (and the threads it starts afterwards) into a
/// mount namespace of its own whose mounts do not propagate to the host, so
/// that the build's views are invisible outside and disappear with the
/// process, however it ends. Needs root (CAP_SYS_ADMIN).
pub fn private_mount_namespace() -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| {
        format!("cannot create a private mount namespace (strata build runs as root): {e}")
    })?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make the build's mounts private: {e}"))
}
