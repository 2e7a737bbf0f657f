//! Resolving a path inside a directory that stands for `/`: symlinks are
//! followed as the image would see them (an absolute target starts again at
//! the root, `..` stops at the root), so nothing outside the root is reached.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Symlinks followed before giving up, as Linux's `MAXSYMLINKS`-style limit.
const MAX_LINKS: usize = 255;

/// Resolves `path` (absolute or not, always taken from the root) to a clean
/// relative path with no leading `/` (empty is the root itself). `link_of`
/// says whether a relative path is a symlink and returns its target; a
/// missing component ends the resolution and the rest is kept as written.
/// The last component is followed only when `follow_last` is set. Names are
/// bytes: nothing needs to be UTF-8.
pub(crate) fn resolve(
    path: impl AsRef<Path>,
    follow_last: bool,
    link_of: &dyn Fn(&Path) -> io::Result<Option<PathBuf>>,
) -> io::Result<PathBuf> {
    let path = path.as_ref();
    let mut done = PathBuf::new();
    // Components still to walk, in reverse so the next one is at the end.
    let mut todo: Vec<Vec<u8>> = components_rev(path);
    let mut links = 0;
    while let Some(part) = todo.pop() {
        match part.as_slice() {
            b"" | b"." => continue,
            b".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let is_last = todo.iter().all(|p| p.is_empty() || p == b".");
        done.push(OsStr::from_bytes(&part));
        if is_last && !follow_last {
            break;
        }
        let Some(target) = link_of(&done)? else {
            continue;
        };
        links += 1;
        if links > MAX_LINKS {
            return Err(io::Error::other(format!(
                "too many levels of symbolic links in {}",
                path.display()
            )));
        }
        done.pop();
        if target.as_os_str().as_bytes().starts_with(b"/") {
            done = PathBuf::new();
        }
        todo.extend(components_rev(&target));
    }
    Ok(done)
}

fn components_rev(path: &Path) -> Vec<Vec<u8>> {
    path.as_os_str()
        .as_bytes()
        .split(|b| *b == b'/')
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
}

/// The symlink test for a real directory tree rooted at `root`.
pub(crate) fn link_in(root: &Path, rel: &Path) -> io::Result<Option<PathBuf>> {
    let p = root.join(rel);
    match std::fs::symlink_metadata(&p) {
        Ok(m) if m.file_type().is_symlink() => std::fs::read_link(&p).map(Some),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // A file used as a directory: the path does not exist.
        Err(e) if e.raw_os_error() == Some(20) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `path` resolved inside `root`, as a host path under it.
pub(crate) fn in_root(
    root: &Path,
    path: impl AsRef<Path>,
    follow_last: bool,
) -> io::Result<PathBuf> {
    let rel = resolve(path, follow_last, &|r| link_in(root, r))?;
    Ok(if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type R = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn links_stay_inside_the_root() -> R {
        let root = tempfile::tempdir()?;
        let r = root.path();
        std::fs::create_dir_all(r.join("usr/lib"))?;
        std::os::unix::fs::symlink("usr/lib", r.join("lib"))?;
        std::os::unix::fs::symlink("/etc/passwd", r.join("abs"))?;
        std::os::unix::fs::symlink("../../../../etc", r.join("usr/lib/up"))?;
        std::os::unix::fs::symlink("loop", r.join("loop"))?;
        assert_eq!(in_root(r, "/lib/x", true)?, r.join("usr/lib/x"));
        assert_eq!(in_root(r, "abs", true)?, r.join("etc/passwd"));
        assert_eq!(in_root(r, "abs", false)?, r.join("abs"));
        assert_eq!(in_root(r, "lib/up/group", true)?, r.join("etc/group"));
        assert_eq!(in_root(r, "../../x", true)?, r.join("x"));
        assert_eq!(in_root(r, "/", true)?, r.to_path_buf());
        assert!(in_root(r, "loop/x", true).is_err());
        Ok(())
    }
}
