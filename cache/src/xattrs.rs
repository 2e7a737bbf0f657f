//! Reading a file's extended attributes without following symlinks.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The xattr namespace of overlayfs's own markers (opaque directories) in snapshots:
/// `trusted.overlay.`, or `user.overlay.` in a rootless build (inside a user namespace,
/// where overlayfs is mounted with `userxattr`).
pub fn overlay_prefix() -> &'static str {
    strata_sandbox::overlay_xattr_prefix()
}

/// `(name, value)` pairs sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

fn unsupported(e: &rustix::io::Errno) -> bool {
    matches!(*e, rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NODATA)
}

/// Every attribute of `path` itself (a symlink is not followed), sorted by
/// name; none where the filesystem has no extended attributes.
pub fn list(path: &Path) -> io::Result<Xattrs> {
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
