//! Read-only merged views of a layer stack, for the ops that read a
//! filesystem rather than run in it: COPY's source and destination checks,
//! and user lookups in /etc/passwd.
//!
//! A build runs in a private mount namespace ([`private_mount_namespace`]),
//! so these mounts are invisible to the host and vanish with the build's
//! threads even when the process is killed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// Why a view or the build's mount namespace cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The view's mountpoint cannot be created.
    #[error("cannot create a view under {}: {source}", scratch.display())]
    Create {
        /// Where views are made.
        scratch: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// overlayfs refused the view.
    #[error("cannot mount a read-only view of {layers} layers at {}: {source}", dir.display())]
    Mount {
        /// How many layers.
        layers: usize,
        /// The mountpoint.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No private mount namespace (not root).
    #[error("cannot create a private mount namespace (strata build runs as root): {0}")]
    Unshare(#[source] io::Error),
    /// The namespace's mounts cannot be made private.
    #[error("cannot make the build's mounts private: {0}")]
    Private(#[source] io::Error),
}

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
    pub fn new(layers: &[PathBuf], scratch: &Path) -> Result<Self, ViewError> {
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
                    .map_err(|source| ViewError::Create {
                        scratch: scratch.to_path_buf(),
                        source,
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
                    let mut data = format!("lowerdir={}", lower.join(":"));
                    if crate::userns::in_user_namespace() {
                        // Read the markers where overlay writes them in a user namespace.
                        data.push_str(",userxattr");
                    }
                    mount(
                        Some("overlay"),
                        &dir,
                        Some("overlay"),
                        MsFlags::MS_RDONLY,
                        Some(data.as_str()),
                    )
                    .map_err(|e| ViewError::Mount {
                        layers: layers.len(),
                        dir: dir.clone(),
                        source: e.into(),
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
pub fn private_mount_namespace() -> Result<(), ViewError> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| ViewError::Unshare(e.into()))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| ViewError::Private(e.into()))
}
