//! Writing copied entries into the new layer directory: directories the
//! destination needs (taken over from the parent filesystem when they exist
//! there, as overlayfs's copy-up does, created 0755 otherwise), files with
//! their mode, owner and mtime, symlinks as symlinks, hard links kept.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use strata_cache::DockerIgnore;

use super::{Chmod, CopyError, CopyStats, Origin, xattr};

/// How copied entries are owned and moded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Apply<'a> {
    /// `--chown`, resolved; `None`: 0:0 from the context, the source's owner
    /// from a stage.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`; `None` keeps the source's mode.
    pub chmod: Option<&'a Chmod>,
    /// Whether the source's owner is kept (COPY --from) when there is no `--chown`.
    pub keep_owner: bool,
}

/// The layer being written, with what it needs to remember across sources.
pub(crate) struct Writer<'a> {
    pub layer: &'a Path,
    pub parent_root: &'a Path,
    pub apply: Apply<'a>,
    pub cancelled: &'a dyn Fn() -> bool,
    pub stats: CopyStats,
    /// `--exclude`, matched against paths relative to the source being
    /// copied (`base`), as fsutil matches them.
    pub exclude: Option<&'a DockerIgnore>,
    /// The source being copied, relative to the source root.
    pub base: String,
    /// Source (device, inode) of multiply-linked files → their first copy.
    links: HashMap<(u64, u64), PathBuf>,
    /// Directories whose mtime is set once everything is written (writing
    /// into a directory changes it), innermost last.
    dir_times: Vec<(PathBuf, fs::Metadata)>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl<'a> Writer<'a> {
    pub fn new(
        layer: &'a Path,
        parent_root: &'a Path,
        apply: Apply<'a>,
        cancelled: &'a dyn Fn() -> bool,
    ) -> Self {
        Writer {
            layer,
            parent_root,
            apply,
            cancelled,
            stats: CopyStats::default(),
            exclude: None,
            base: String::new(),
            links: HashMap::new(),
            dir_times: Vec::new(),
        }
    }

    /// The layer path of the image path `rel` (already resolved, relative).
    pub fn host(&self, rel: &str) -> PathBuf {
        match rel {
            "" => self.layer.to_path_buf(),
            r => self.layer.join(r),
        }
    }

    /// Makes every directory of `rel` exist in the layer. One that the
    /// parent filesystem has keeps its mode, owner and mtime there; a new
    /// one is 0755, owned by `--chown`'s user (BuildKit's `MkdirAll`).
    pub fn ensure_dirs(&mut self, rel: &str) -> Result<(), CopyError> {
        let mut sofar = String::new();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            if !sofar.is_empty() {
                sofar.push('/');
            }
            sofar.push_str(part);
            let dst = self.layer.join(&sofar);
            match fs::symlink_metadata(&dst) {
                Ok(m) if m.is_dir() => continue,
                Ok(_) => {
                    return Err(CopyError::NotADirectory {
                        path: format!("/{sofar}"),
                    });
                }
                Err(_) => {}
            }
            match fs::symlink_metadata(self.parent_root.join(&sofar)) {
                Ok(m) if m.is_dir() => {
                    fs::create_dir(&dst).map_err(io_err(&dst))?;
                    set_meta(&dst, (m.uid(), m.gid()), Some(m.mode() & 0o7777))?;
                    self.dir_times.push((dst, m));
                }
                Ok(_) => {
                    return Err(CopyError::NotADirectory {
                        path: format!("/{sofar}"),
                    });
                }
                Err(_) => {
                    fs::create_dir(&dst).map_err(io_err(&dst))?;
                    set_meta(&dst, self.apply.owner.unwrap_or((0, 0)), Some(0o755))?;
                }
            }
        }
        Ok(())
    }

    /// Makes the layer directory `dst` for a directory of the source
    /// (`src`, whose metadata is `meta`) that a copied entry lies below
    /// (`--parents`): one the destination has already is taken over as
    /// [`Writer::ensure_dirs`] does; a new one is made as a copied directory.
    pub fn mirror_dir(
        &mut self,
        dst: &Path,
        src: &Path,
        meta: &fs::Metadata,
    ) -> Result<(), CopyError> {
        match fs::symlink_metadata(dst) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(CopyError::NotADirectory {
                    path: self.image_path(dst),
                });
            }
            Err(_) => {}
        }
        let rel = dst.strip_prefix(self.layer).unwrap_or(dst);
        let taken = match fs::symlink_metadata(self.parent_root.join(rel)) {
            Ok(m) if m.is_dir() => Some(m),
            Ok(_) => {
                return Err(CopyError::NotADirectory {
                    path: self.image_path(dst),
                });
            }
            Err(_) => None,
        };
        fs::create_dir(dst).map_err(io_err(dst))?;
        match taken {
            Some(m) => {
                set_meta(dst, (m.uid(), m.gid()), Some(m.mode() & 0o7777))?;
                self.dir_times.push((dst.to_path_buf(), m));
            }
            None => {
                set_meta(dst, self.owner_of(meta), Some(self.mode_of(meta)))?;
                copy_xattrs(src, dst)?;
                self.dir_times.push((dst.to_path_buf(), meta.clone()));
            }
        }
        Ok(())
    }

    /// Gives a directory something else created for the destination
    /// (an ADD archive's target) the mode and owner of one made here.
    pub fn adopt_new_dir(&mut self, rel: &str) -> Result<(), CopyError> {
        set_meta(
            &self.host(rel),
            self.apply.owner.unwrap_or((0, 0)),
            Some(0o755),
        )
    }

    /// Whether the image path `rel` is a directory in the layer or, failing
    /// that, in the parent filesystem.
    pub fn is_dir(&self, rel: &str) -> bool {
        let in_layer = fs::symlink_metadata(self.host(rel));
        match in_layer {
            Ok(m) => m.is_dir(),
            Err(_) => fs::symlink_metadata(self.parent_root.join(rel)).is_ok_and(|m| m.is_dir()),
        }
    }

    fn owner_of(&self, meta: &fs::Metadata) -> (u32, u32) {
        match self.apply.owner {
            Some(o) => o,
            None if self.apply.keep_owner => (meta.uid(), meta.gid()),
            None => (0, 0),
        }
    }

    fn mode_of(&self, meta: &fs::Metadata) -> u32 {
        match self.apply.chmod {
            None => meta.mode() & 0o7777,
            Some(Chmod::Octal(m)) => *m,
            Some(Chmod::Symbolic(s)) => s.apply(meta.mode(), meta.is_dir()),
        }
    }

    /// Copies the entry `src` (whose metadata is `meta`; `ctx` is its path
    /// relative to the source root, for `.dockerignore`) to `dst`.
    /// `top_existed` says `dst` is a directory the destination already had:
    /// then its own metadata is left as it was.
    pub fn copy_entry(
        &mut self,
        origin: &Origin,
        src: &Path,
        meta: &fs::Metadata,
        ctx: &str,
        dst: &Path,
        top_existed: bool,
    ) -> Result<(), CopyError> {
        if (self.cancelled)() {
            return Err(CopyError::Cancelled);
        }
        let ft = meta.file_type();
        if ft.is_dir() {
            return self.copy_dir(origin, src, meta, ctx, dst, top_existed);
        }
        self.clear_non_dir(dst)?;
        if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
            fs::hard_link(first, dst).map_err(io_err(dst))?;
            self.stats.entries += 1;
            return Ok(());
        }
        if ft.is_symlink() {
            let target = fs::read_link(src).map_err(io_err(src))?;
            std::os::unix::fs::symlink(&target, dst).map_err(io_err(dst))?;
            set_meta(dst, self.owner_of(meta), None)?;
        } else if ft.is_file() {
            fs::copy(src, dst).map_err(io_err(dst))?;
            self.stats.bytes += meta.len();
            set_meta(dst, self.owner_of(meta), Some(self.mode_of(meta)))?;
        } else if !make_special(meta, dst)? {
            // Sockets are not copied.
            return Ok(());
        } else {
            set_meta(dst, self.owner_of(meta), Some(self.mode_of(meta)))?;
        }
        copy_xattrs(src, dst)?;
        set_mtime(dst, meta)?;
        if meta.nlink() > 1 {
            self.links
                .insert((meta.dev(), meta.ino()), dst.to_path_buf());
        }
        self.stats.entries += 1;
        Ok(())
    }

    fn copy_dir(
        &mut self,
        origin: &Origin,
        src: &Path,
        meta: &fs::Metadata,
        ctx: &str,
        dst: &Path,
        top_existed: bool,
    ) -> Result<(), CopyError> {
        // As BuildKit: a directory is never copied over something else.
        match self.existing(dst) {
            Some(m) if m.is_dir() => {
                if fs::symlink_metadata(dst).is_err() {
                    fs::create_dir(dst).map_err(io_err(dst))?;
                }
            }
            Some(_) => {
                return Err(CopyError::NotADirectory {
                    path: self.image_path(dst),
                });
            }
            None => fs::create_dir(dst).map_err(io_err(dst))?,
        }
        let mut names: Vec<OsString> = fs::read_dir(src)
            .map_err(io_err(src))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err(src))?;
        names.sort();
        for name in names {
            let child_ctx = match ctx {
                "" => name.to_string_lossy().into_owned(),
                c => format!("{c}/{}", name.to_string_lossy()),
            };
            let child = src.join(&name);
            let child_meta = fs::symlink_metadata(&child).map_err(io_err(&child))?;
            let child_dst = dst.join(&name);
            let rel = match child_ctx.strip_prefix(self.base.as_str()) {
                Some(r) if !self.base.is_empty() => r.trim_start_matches('/'),
                _ => child_ctx.as_str(),
            };
            let ignored = origin.ignore.is_some_and(|i| i.matches(&child_ctx));
            let excluded = self.exclude.is_some_and(|x| x.matches(rel));
            if ignored || excluded {
                {
                    // An excluded directory may still hold re-included files
                    // (`!` patterns); it is kept only if one of them is.
                    let skip = |m: Option<&DockerIgnore>, path: &str, hit: bool| {
                        hit && m.is_some_and(|m| m.skips_dir(path))
                    };
                    if child_meta.is_dir()
                        && !skip(origin.ignore, &child_ctx, ignored)
                        && !skip(self.exclude, rel, excluded)
                    {
                        let existed = child_dst.exists();
                        let before = self.stats.entries;
                        self.copy_dir(origin, &child, &child_meta, &child_ctx, &child_dst, false)?;
                        if self.stats.entries == before + 1 && !existed {
                            self.dir_times.retain(|(p, _)| *p != child_dst);
                            fs::remove_dir(&child_dst).map_err(io_err(&child_dst))?;
                            self.stats.entries -= 1;
                        }
                    }
                }
            } else {
                self.copy_entry(origin, &child, &child_meta, &child_ctx, &child_dst, false)?;
            }
        }
        if !top_existed {
            set_meta(dst, self.owner_of(meta), Some(self.mode_of(meta)))?;
            copy_xattrs(src, dst)?;
        } else {
            // The destination directory keeps its mode and owner but takes
            // the source directory's times (fsutil restores them from the
            // source after filling it).
            self.dir_times.retain(|(p, _)| p != dst);
        }
        self.dir_times.push((dst.to_path_buf(), meta.clone()));
        self.stats.entries += 1;
        Ok(())
    }

    /// What the destination filesystem has at the layer path `dst`: the
    /// layer's entry, or else the parent's.
    fn existing(&self, dst: &Path) -> Option<fs::Metadata> {
        fs::symlink_metadata(dst).ok().or_else(|| {
            let rel = dst.strip_prefix(self.layer).ok()?;
            fs::symlink_metadata(self.parent_root.join(rel)).ok()
        })
    }

    /// The image path (`/...`) of the layer path `dst`, for messages.
    fn image_path(&self, dst: &Path) -> String {
        let rel = dst.strip_prefix(self.layer).unwrap_or(dst);
        format!("/{}", rel.display())
    }

    /// Makes room for a file at `dst`: a file or symlink the layer has there
    /// is removed (so nothing is written through it); a directory, in the
    /// layer or the parent, is an error as in BuildKit.
    fn clear_non_dir(&self, dst: &Path) -> Result<(), CopyError> {
        match self.existing(dst) {
            Some(m) if m.is_dir() => Err(CopyError::IsADirectory {
                path: self.image_path(dst),
            }),
            _ if fs::symlink_metadata(dst).is_ok() => fs::remove_file(dst).map_err(io_err(dst)),
            _ => Ok(()),
        }
    }

    /// Sets the remembered directory mtimes, innermost first.
    pub fn finish(mut self) -> Result<CopyStats, CopyError> {
        while let Some((dir, meta)) = self.dir_times.pop() {
            set_mtime(&dir, &meta)?;
        }
        Ok(self.stats)
    }
}

/// Fifos and device nodes are recreated; `false` for anything else.
fn make_special(meta: &fs::Metadata, dst: &Path) -> Result<bool, CopyError> {
    use std::os::unix::fs::FileTypeExt;
    let ft = meta.file_type();
    let kind = if ft.is_fifo() {
        SFlag::S_IFIFO
    } else if ft.is_char_device() {
        SFlag::S_IFCHR
    } else if ft.is_block_device() {
        SFlag::S_IFBLK
    } else {
        return Ok(false);
    };
    nix::sys::stat::mknod(dst, kind, Mode::from_bits_truncate(0o600), meta.rdev())
        .map_err(|e| io_err(dst)(io::Error::from(e)))?;
    Ok(true)
}

/// After the owner is set: changing it drops `security.capability`.
fn copy_xattrs(src: &Path, dst: &Path) -> Result<(), CopyError> {
    let attrs = xattr::read(src).map_err(io_err(src))?;
    xattr::write(dst, &attrs).map_err(io_err(dst))
}

/// Owner first: changing it clears set-uid bits the mode then restores.
fn set_meta(path: &Path, owner: (u32, u32), mode: Option<u32>) -> Result<(), CopyError> {
    std::os::unix::fs::lchown(path, Some(owner.0), Some(owner.1)).map_err(io_err(path))?;
    if let Some(mode) = mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(path))?;
    }
    Ok(())
}

/// Gives `path` (not following a symlink) the access and modification
/// times of `meta`.
fn set_mtime(path: &Path, meta: &fs::Metadata) -> Result<(), CopyError> {
    let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    nix::sys::stat::utimensat(None, path, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| io_err(path)(io::Error::from(e)))
}
