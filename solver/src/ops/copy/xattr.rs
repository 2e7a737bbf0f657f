//! Extended attributes carried along with copied entries (file capabilities
//! in `security.capability`, `user.*`), as BuildKit's copy does; overlayfs's
//! own `trusted.overlay.*` markers are never copied.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::XattrFlags;

/// `(name, value)` pairs sorted by name.
pub(crate) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

fn unsupported(e: &rustix::io::Errno) -> bool {
    matches!(*e, rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NODATA)
}

/// The attributes of `path` itself (a symlink is not followed); none where
/// the filesystem has no extended attributes.
pub(crate) fn read(path: &Path) -> io::Result<Xattrs> {
    let size = match rustix::fs::llistxattr_query(path) {
        Ok(n) => n,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if size == 0 {
        return Ok(Vec::new());
    }
    let mut names = vec![0u8; size];
    let len = rustix::fs::llistxattr(path, &mut names[..])?;
    names.truncate(len);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.overlay.") {
            continue;
        }
        let key = OsStr::from_bytes(name);
        let size = match rustix::fs::lgetxattr_query(path, key) {
            Ok(n) => n,
            // Removed since it was listed.
            Err(e) if unsupported(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0u8; size];
        let len = rustix::fs::lgetxattr(path, key, &mut value[..])?;
        value.truncate(len);
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
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
