//! Resolving a path inside a root folder as if that folder were `/`, the
//! way a process chrooted into it would: symlinks are followed, absolute
//! targets start again at the root, and `..` stops at the root. Nothing it
//! returns can lie outside the root (as long as nobody else changes the
//! tree meanwhile).

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Linux's limit on symlinks followed while resolving one path.
const MAX_SYMLINKS: usize = 40;

/// Why a directory path could not be resolved inside the root.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScopedError {
    /// More symlinks than Linux follows: a loop.
    #[error("too many levels of symlinks at {0:?}")]
    SymlinkLoop(PathBuf),
    /// A component is neither a directory nor a symlink.
    #[error("{0:?} is not a directory")]
    NotADirectory(PathBuf),
    /// A component does not exist and was not to be created.
    #[error("{0:?} does not exist")]
    Missing(PathBuf),
    /// A filesystem operation failed.
    #[error("{0:?}: {1}")]
    Io(PathBuf, #[source] io::Error),
}

/// One step still to walk.
enum Step {
    Up,
    Down(OsString),
}

fn push_steps(pending: &mut Vec<Step>, path: &Path) {
    // `pending` is a stack: push in reverse so the first component pops first.
    for comp in path.components().rev() {
        match comp {
            Component::Normal(c) => pending.push(Step::Down(c.to_os_string())),
            Component::ParentDir => pending.push(Step::Up),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
}

/// The real directory `dir` (relative to `root`) names when `root` is taken
/// as `/`. Missing directories are created 0755 when `create` is set.
pub(crate) fn resolve_dir(root: &Path, dir: &Path, create: bool) -> Result<PathBuf, ScopedError> {
    let mut pending = Vec::new();
    push_steps(&mut pending, dir);
    let mut resolved: Vec<OsString> = Vec::new();
    let mut hops = 0;
    let here = |resolved: &[OsString]| -> PathBuf { resolved.iter().collect() };
    while let Some(step) = pending.pop() {
        let name = match step {
            Step::Up => {
                resolved.pop();
                continue;
            }
            Step::Down(name) => name,
        };
        let path = root.join(here(&resolved)).join(&name);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(ScopedError::SymlinkLoop(path));
                }
                let target = fs::read_link(&path).map_err(|e| ScopedError::Io(path.clone(), e))?;
                if target.is_absolute() {
                    resolved.clear();
                }
                push_steps(&mut pending, &target);
            }
            Ok(m) if m.is_dir() => resolved.push(name),
            Ok(_) => return Err(ScopedError::NotADirectory(here(&resolved).join(name))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create {
                    return Err(ScopedError::Missing(here(&resolved).join(name)));
                }
                fs::create_dir(&path).map_err(|e| ScopedError::Io(path.clone(), e))?;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                    .map_err(|e| ScopedError::Io(path.clone(), e))?;
                resolved.push(name);
            }
            Err(e) => return Err(ScopedError::Io(path, e)),
        }
    }
    Ok(root.join(here(&resolved)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_root() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("usr/lib"))?;
        symlink("usr/lib", root.join("lib"))?;
        symlink("/usr", root.join("abs"))?;
        symlink("../../../..", root.join("up"))?;
        symlink("/", root.join("slash"))?;
        symlink("loop", root.join("loop"))?;
        fs::write(root.join("file"), "")?;

        assert_eq!(
            resolve_dir(&root, Path::new("lib"), false)?,
            root.join("usr/lib")
        );
        assert_eq!(
            resolve_dir(&root, Path::new("abs/lib"), false)?,
            root.join("usr/lib")
        );
        assert_eq!(resolve_dir(&root, Path::new("up"), false)?, root);
        assert_eq!(
            resolve_dir(&root, Path::new("up/usr"), false)?,
            root.join("usr")
        );
        assert_eq!(resolve_dir(&root, Path::new("slash/usr/.."), false)?, root);
        assert_eq!(
            resolve_dir(&root, Path::new("lib/new/dir"), true)?,
            root.join("usr/lib/new/dir")
        );
        assert!(root.join("usr/lib/new/dir").is_dir());
        assert!(matches!(
            resolve_dir(&root, Path::new("loop"), false),
            Err(ScopedError::SymlinkLoop(_))
        ));
        assert!(matches!(
            resolve_dir(&root, Path::new("file/x"), true),
            Err(ScopedError::NotADirectory(_))
        ));
        assert!(matches!(
            resolve_dir(&root, Path::new("nope"), false),
            Err(ScopedError::Missing(_))
        ));
        Ok(())
    }
}
