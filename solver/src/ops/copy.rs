//! The file side of COPY/ADD: where each source lands (Docker's destination
//! rules) and copying it into a new layer directory with ownership and mode
//! applied.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::image::clean_path;

pub(crate) mod rootpath;

/// A COPY that cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Several sources need a directory destination.
    #[error(
        "when using COPY with more than one source file, the destination must be a directory and end with a /: {dest}"
    )]
    DestNotDir {
        /// The destination as written.
        dest: String,
    },
    /// A source path escapes its root.
    #[error("source {0:?} is outside the build context")]
    OutsideRoot(String),
    /// Reading or writing a file failed.
    #[error("cannot copy {path}: {source}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How the files are owned and moded in the layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Apply {
    /// Numeric `uid:gid` (resolved by the caller); `None` = 0:0.
    pub owner: Option<(u32, u32)>,
    /// Mode for every copied file and directory; `None` keeps the source's.
    pub chmod: Option<u32>,
}

/// Where sources land: absolute destination directory, or exact file path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Files go *into* this directory (dir sources: their contents).
    Dir(String),
    /// The single file source becomes this path.
    File(String),
}

/// Docker's destination rule. `dest` is relative to `cwd` unless absolute; a
/// trailing `/`, several sources, or an existing directory make it a
/// directory. `exists_as_dir` asks the parent filesystem.
pub fn destination(
    dest: &str,
    cwd: &str,
    sources: usize,
    single_source_is_dir: bool,
    exists_as_dir: impl Fn(&str) -> bool,
) -> Result<Destination, CopyError> {
    let base = if cwd.is_empty() { "/" } else { cwd };
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{base}/{dest}")
    };
    let abs = clean_path(&joined);
    let trailing = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    if sources > 1 {
        if trailing {
            return Ok(Destination::Dir(abs));
        }
        return Err(CopyError::DestNotDir {
            dest: dest.to_string(),
        });
    }
    if trailing || single_source_is_dir || exists_as_dir(&abs) {
        Ok(Destination::Dir(abs))
    } else {
        Ok(Destination::File(abs))
    }
}

/// Copies `src_root/rel` into the layer directory `layer` at `dest`,
/// leaving out entries below it whose path relative to `src_root` `skip`
/// says to (`.dockerignore`). Returns the number of entries written.
pub fn copy_into_layer(
    src_root: &Path,
    rel: &str,
    layer: &Path,
    dest: &Destination,
    apply: Apply,
    skip: &dyn Fn(&str) -> bool,
) -> Result<usize, CopyError> {
    let rel_clean = clean_path(&format!("/{rel}"));
    // clean_path resolved `..`; a path that tried to climb is rejected rather
    // than silently clamped, so the user learns about it.
    if rel.split('/').any(|p| p == "..") {
        return Err(CopyError::OutsideRoot(rel.to_string()));
    }
    let src = src_root.join(rel_clean.trim_start_matches('/'));
    let meta = fs::symlink_metadata(&src).map_err(io_err(&src))?;
    let target_abs = match dest {
        Destination::File(p) => p.clone(),
        Destination::Dir(d) if meta.is_dir() => d.clone(),
        Destination::Dir(d) => {
            let name = src
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{}/{name}", d.trim_end_matches('/'))
        }
    };
    let target = layer.join(target_abs.trim_start_matches('/'));
    if let Some(parent) = target.parent() {
        make_parents(layer, parent, apply)?;
    }
    let tree = Tree {
        rel: rel_clean.trim_start_matches('/').to_string(),
        skip,
        apply,
    };
    tree.copy(&src, &target)
}

/// What a recursive copy carries along: the source's path relative to its
/// root (for `skip`), the filter, and the ownership and mode to apply.
struct Tree<'a> {
    rel: String,
    skip: &'a dyn Fn(&str) -> bool,
    apply: Apply,
}

/// Creates missing parent directories (0755, owned like the copied files as
/// Docker does for directories it creates).
fn make_parents(layer: &Path, dir: &Path, apply: Apply) -> Result<(), CopyError> {
    if dir.exists() || !dir.starts_with(layer) {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        make_parents(layer, parent, apply)?;
    }
    fs::create_dir(dir).map_err(io_err(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(io_err(dir))?;
    set_owner(dir, apply)
}

fn set_owner(path: &Path, apply: Apply) -> Result<(), CopyError> {
    let (uid, gid) = apply.owner.unwrap_or((0, 0));
    // Ownership only changes when we may change it (root); unprivileged test
    // runs keep their own uid.
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && apply.owner.is_none() => Ok(()),
        Err(e) => Err(CopyError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

impl Tree<'_> {
    fn copy(&self, src: &Path, dst: &Path) -> Result<usize, CopyError> {
        let apply = self.apply;
        let meta = fs::symlink_metadata(src).map_err(io_err(src))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let link = fs::read_link(src).map_err(io_err(src))?;
            if fs::symlink_metadata(dst).is_ok() {
                fs::remove_file(dst).map_err(io_err(dst))?;
            }
            std::os::unix::fs::symlink(&link, dst).map_err(io_err(dst))?;
            set_owner(dst, apply)?;
            return Ok(1);
        }
        let mode = apply.chmod.unwrap_or(meta.mode() & 0o7777);
        if ft.is_dir() {
            if !dst.is_dir() {
                fs::create_dir(dst).map_err(io_err(dst))?;
            }
            let mut entries: Vec<_> = fs::read_dir(src)
                .map_err(io_err(src))?
                .collect::<Result<_, _>>()
                .map_err(io_err(src))?;
            entries.sort_by_key(|e| e.file_name());
            let mut n = 1;
            for entry in entries {
                let name = entry.file_name();
                let rel = match self.rel.as_str() {
                    "" => name.to_string_lossy().into_owned(),
                    parent => format!("{parent}/{}", name.to_string_lossy()),
                };
                if (self.skip)(&rel) {
                    continue;
                }
                let child = Tree { rel, ..*self };
                n += child.copy(&entry.path(), &dst.join(&name))?;
            }
            fs::set_permissions(dst, fs::Permissions::from_mode(mode)).map_err(io_err(dst))?;
            set_owner(dst, apply)?;
            return Ok(n);
        }
        if ft.is_file() {
            fs::copy(src, dst).map_err(io_err(dst))?;
            fs::set_permissions(dst, fs::Permissions::from_mode(mode)).map_err(io_err(dst))?;
            set_owner(dst, apply)?;
            return Ok(1);
        }
        // Sockets, fifos and devices are not part of images built from a context.
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type R = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn destination_rules() -> Result<(), CopyError> {
        let no = |_: &str| false;
        assert_eq!(
            destination("app/", "/srv", 1, false, no)?,
            Destination::Dir("/srv/app".into())
        );
        assert_eq!(
            destination("app", "/srv", 1, false, no)?,
            Destination::File("/srv/app".into())
        );
        assert_eq!(
            destination("app", "/srv", 1, false, |p| p == "/srv/app")?,
            Destination::Dir("/srv/app".into())
        );
        assert_eq!(
            destination(".", "/w", 1, false, no)?,
            Destination::Dir("/w".into())
        );
        assert!(destination("/x", "/", 2, false, no).is_err());
        assert_eq!(
            destination("/x/", "/", 2, false, no)?,
            Destination::Dir("/x".into())
        );
        Ok(())
    }

    #[test]
    fn copies_files_and_dir_contents_with_mode() -> R {
        let ctx = tempfile::tempdir()?;
        let layer = tempfile::tempdir()?;
        fs::write(ctx.path().join("a.txt"), "A")?;
        fs::create_dir_all(ctx.path().join("dir/sub"))?;
        fs::write(ctx.path().join("dir/sub/b.txt"), "B")?;
        std::os::unix::fs::symlink("sub/b.txt", ctx.path().join("dir/link"))?;

        let apply = Apply {
            owner: None,
            chmod: Some(0o640),
        };
        let d = Destination::Dir("/app".into());
        copy_into_layer(ctx.path(), "a.txt", layer.path(), &d, apply, &|_| false)?;
        copy_into_layer(
            ctx.path(),
            "dir",
            layer.path(),
            &d,
            Apply::default(),
            &|_| false,
        )?;
        let f = Destination::File("/etc/renamed".into());
        copy_into_layer(
            ctx.path(),
            "a.txt",
            layer.path(),
            &f,
            Apply::default(),
            &|_| false,
        )?;

        let l = layer.path();
        assert_eq!(fs::read_to_string(l.join("app/a.txt"))?, "A");
        assert_eq!(fs::metadata(l.join("app/a.txt"))?.mode() & 0o777, 0o640);
        assert_eq!(fs::read_to_string(l.join("app/sub/b.txt"))?, "B");
        assert_eq!(
            fs::read_link(l.join("app/link"))?,
            PathBuf::from("sub/b.txt")
        );
        assert_eq!(fs::read_to_string(l.join("etc/renamed"))?, "A");
        assert_eq!(fs::metadata(l.join("etc"))?.mode() & 0o777, 0o755);
        assert!(copy_into_layer(ctx.path(), "../x", l, &d, Apply::default(), &|_| false).is_err());
        Ok(())
    }
}
