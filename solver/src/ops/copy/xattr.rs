//! Extended attributes carried along with copied entries (file capabilities
//! in `security.capability`, `user.*`), as BuildKit's copy does; overlayfs's
//! own `trusted.overlay.*` markers (`user.overlay.*` in a rootless build) are never copied.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::XattrFlags;

pub(crate) use strata_cache::xattrs::Xattrs;

/// The attributes of `path` itself (a symlink is not followed) but
/// overlayfs's own; none where the filesystem has no extended attributes.
pub(crate) fn read(path: &Path) -> io::Result<Xattrs> {
    let mut attrs = strata_cache::xattrs::list(path)?;
    let overlay = strata_cache::xattrs::overlay_prefix().as_bytes();
    attrs.retain(|(name, _)| !name.starts_with(overlay));
    Ok(attrs)
}

/// Sets `attrs` on `path` (not following a symlink). An attribute the
/// kernel or filesystem refuses (EPERM, ENOTSUP, e.g. `security.*` without
/// the capability) is skipped, as BuildKit's copy logs and goes on.
pub(crate) fn write(path: &Path, attrs: &Xattrs) -> io::Result<()> {
    for (name, value) in attrs {
        match rustix::fs::lsetxattr(path, OsStr::from_bytes(name), value, XattrFlags::empty()) {
            Ok(()) => {}
            Err(
                rustix::io::Errno::PERM | rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ACCESS,
            ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
