//! Resolving a path inside a directory that stands for `/`: symlinks are
//! followed as the image would see them (an absolute target starts again at
//! the root, `..` stops at the root), so nothing outside the root is reached.

use std::io;
use std::path::{Path, PathBuf};

/// Symlinks followed before giving up, as Linux's `MAXSYMLINKS`-style limit.
const MAX_LINKS: usize = 255;

/// Resolves `path` (absolute or not, always taken from the root) to a clean
/// relative path with no leading `/` (`""` is the root itself). `link_of`
/// says whether a relative path is a symlink and returns its target; a
/// missing component ends the resolution and the rest is kept as written.
/// The last component is followed only when `follow_last` is set.
pub(crate) fn resolve(
    path: &str,
    follow_last: bool,
    link_of: &dyn Fn(&str) -> io::Result<Option<PathBuf>>,
) -> io::Result<String> {
    let mut done: Vec<String> = Vec::new();
    // Components still to walk, in reverse so the next one is at the end.
    let mut todo: Vec<String> = components_rev(path);
    let mut links = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let is_last = todo.iter().all(|p| p.is_empty() || p == ".");
        done.push(part);
        if is_last && !follow_last {
            break;
        }
        let Some(target) = link_of(&done.join("/"))? else {
            continue;
        };
        links += 1;
        if links > MAX_LINKS {
            return Err(io::Error::other(format!(
                "too many levels of symbolic links in {path}"
            )));
        }
        done.pop();
        let target = target.to_string_lossy().into_owned();
        if target.starts_with('/') {
            done.clear();
        }
        todo.extend(components_rev(&target));
    }
    Ok(done.join("/"))
}

fn components_rev(path: &str) -> Vec<String> {
    path.split('/').rev().map(str::to_string).collect()
}

/// The symlink test for a real directory tree rooted at `root`.
pub(crate) fn link_in(root: &Path, rel: &str) -> io::Result<Option<PathBuf>> {
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
pub(crate) fn in_root(root: &Path, path: &str, follow_last: bool) -> io::Result<PathBuf> {
    let rel = resolve(path, follow_last, &|r| link_in(root, r))?;
    Ok(if rel.is_empty() {
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
