//! A step's extra mounts (`RUN --mount`): host files, directories or sockets bound into the
//! root, fresh tmpfs folders, and files whose bytes (secrets) exist only in the step's mount
//! namespace, on a tmpfs.
//!
//! Every extra mount is `nosuid` and `nodev`. Targets are absolute paths inside the root,
//! resolved there: the builtin runtime attaches the mounts after `pivot_root`, so a symlink
//! in the image at or above a target resolves inside the root, never on the host; runc and
//! crun resolve mount destinations inside the root themselves. The folders and empty files
//! a target needed are removed after the run when nothing was written in them ([`Stubs`]),
//! as BuildKit removes its mount stubs, so a mount leaves no trace in the layer.

use std::ffi::CStr;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::mount_api::{
    FSCONFIG_CMD_CREATE, FSCONFIG_SET_STRING, FSMOUNT_CLOEXEC, FSOPEN_CLOEXEC, MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, MOVE_MOUNT_F_EMPTY_PATH,
    MOVE_MOUNT_T_SYMLINKS, OPEN_TREE_CLONE,
};
use crate::overlay::{check, errno};
use crate::{RootFs, SandboxError};

/// One extra mount of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepMount {
    /// Absolute path inside the root; missing folders are created.
    pub target: String,
    /// What is mounted there.
    pub source: MountSource,
}

/// What an extra mount shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A host directory, file or unix socket, bound at the target.
    Bind {
        /// The host path.
        path: PathBuf,
        /// Read-only inside the step.
        readonly: bool,
    },
    /// A fresh, empty tmpfs.
    Tmpfs {
        /// Its size limit in bytes; the kernel's default (half the memory) when `None`.
        size: Option<u64>,
    },
    /// A read-only file with these bytes, kept on a tmpfs of the step's own mount namespace
    /// (never on disk).
    File {
        /// The bytes.
        contents: SecretBytes,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
}

/// Bytes that must not be printed: `Debug` shows only their length, and they are zeroed
/// when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes({} bytes)", self.0.len())
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: a valid, aligned, exclusive reference; volatile so the write stays.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl StepMount {
    /// True when the target is a file rather than a folder (a bound file or socket, a
    /// secret).
    pub(crate) fn targets_file(&self) -> bool {
        match &self.source {
            MountSource::Bind { path, .. } => fs::metadata(path).is_ok_and(|m| !m.is_dir()),
            MountSource::Tmpfs { .. } => false,
            MountSource::File { .. } => true,
        }
    }
}

/// `target` as a clean absolute path (`.` and `..` resolved lexically, never above `/`),
/// or an error for a relative target, the root itself or a NUL byte.
pub(crate) fn clean_target(target: &str) -> Result<String, SandboxError> {
    if !target.starts_with('/') || target.contains('\0') {
        return Err(SandboxError::InvalidSpec(format!(
            "mount target {target:?} is not an absolute path"
        )));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(SandboxError::InvalidSpec(format!(
            "mount target {target:?} is the root"
        )));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Checks every mount of a spec: clean targets, existing bind sources.
pub(crate) fn validate(mounts: &[StepMount]) -> Result<(), SandboxError> {
    for m in mounts {
        clean_target(&m.target)?;
        if let MountSource::Bind { path, .. } = &m.source
            && fs::symlink_metadata(path).is_err()
        {
            return Err(SandboxError::InvalidSpec(format!(
                "mount source {} does not exist",
                path.display()
            )));
        }
    }
    Ok(())
}

/// The options of the tmpfs that holds a step's [`MountSource::File`] files: private to
/// root, and sized for them; `None` when the step has none.
pub(crate) fn files_tmpfs_options(mounts: &[StepMount]) -> Option<String> {
    let mut total = 0u64;
    let mut any = false;
    for m in mounts {
        if let MountSource::File { contents, .. } = &m.source {
            any = true;
            total += contents.expose().len() as u64 + 4096;
        }
    }
    any.then(|| format!("mode=700,size={}", total + 65536))
}

/// Creates `name` in the directory `dirfd` (a tmpfs; `AT_FDCWD` for a path) with
/// `contents`, `mode` and owner.
/// Only system calls: safe between fork (or clone) and exec.
pub(crate) fn write_file_at(
    dirfd: libc::c_int,
    name: &CStr,
    contents: &[u8],
    mode: u32,
    owner: (u32, u32),
) -> Result<(), i32> {
    // SAFETY: openat/write/fchown/fchmod/close on a descriptor we own and a buffer of `len`.
    unsafe {
        let fd = check(libc::openat(
            dirfd,
            name.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            0o600,
        ) as libc::c_long)? as libc::c_int;
        let mut written = 0;
        let result = loop {
            if written == contents.len() {
                break Ok(());
            }
            let n = libc::write(
                fd,
                contents[written..].as_ptr().cast(),
                contents.len() - written,
            );
            if n < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                break Err(errno());
            }
            written += n as usize;
        };
        let result = result
            .and_then(|()| check(libc::fchown(fd, owner.0, owner.1) as libc::c_long).map(drop))
            .and_then(|()| check(libc::fchmod(fd, mode & 0o7777) as libc::c_long).map(drop));
        libc::close(fd);
        result
    }
}

/// The folders and files the targets of a step's mounts needed in the root, so they can be
/// removed after the run when nothing else was put there.
pub(crate) struct Stubs {
    /// Paths relative to the root that did not exist before the run, deepest first.
    created: Vec<String>,
    /// The deepest existing folder above each created path, if it was only in the lower
    /// layers (creating below it copies it up).
    copied_up: Vec<String>,
}

/// What a path of the root is before the run, looking through the layers.
enum Found {
    Missing,
    Dir { in_upper: bool },
    Other,
}

/// `lstat` of `rel` inside the layer folder `layer`, `None` when missing or when a folder
/// on the way is not a real folder there (never following a layer's symlink on the host).
fn lstat_in_layer(layer: &Path, rel: &str) -> Option<fs::Metadata> {
    let mut path = layer.to_path_buf();
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let meta = fs::symlink_metadata(&path).ok()?;
        if i + 1 == parts.len() {
            return Some(meta);
        }
        if !meta.is_dir() {
            return None;
        }
    }
    None
}

/// The topmost layer's entry at `rel` (upper first), `None` when missing or whited out.
fn topmost(root: &RootFs, rel: &str) -> Option<(fs::Metadata, PathBuf, bool)> {
    let upper = std::iter::once((&root.upper, true));
    for (layer, in_upper) in upper.chain(root.lower.iter().rev().map(|l| (l, false))) {
        if let Some(m) = lstat_in_layer(layer, rel) {
            if m.file_type().is_char_device() && m.rdev() == 0 {
                return None;
            }
            return Some((m, layer.join(rel), in_upper));
        }
    }
    None
}

fn find(root: &RootFs, rel: &str) -> Found {
    match topmost(root, rel) {
        None => Found::Missing,
        Some((m, _, in_upper)) if m.is_dir() => Found::Dir { in_upper },
        Some(_) => Found::Other,
    }
}

/// `target` with the symlinks the root's layers hold on its way resolved inside the root
/// (an absolute link starts again at the root, `..` stops there), as runc resolves mount
/// destinations: the folders made for it are then inside the root, whatever the image
/// holds.
pub(crate) fn resolve_target(root: &RootFs, target: &str) -> Result<String, SandboxError> {
    let clean = clean_target(target)?;
    let mut done: Vec<String> = Vec::new();
    let mut todo: Vec<String> = clean.split('/').rev().map(String::from).collect();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => done.push(part),
        }
        let rel = done.join("/");
        let Some((meta, path, _)) = topmost(root, &rel) else {
            continue;
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        links += 1;
        if links > 40 {
            return Err(SandboxError::InvalidSpec(format!(
                "mount target {target:?}: too many levels of symbolic links"
            )));
        }
        let link = fs::read_link(&path).map_err(|e| SandboxError::io("read link", &path, e))?;
        let link = link.to_string_lossy().into_owned();
        done.pop();
        if link.starts_with('/') {
            done.clear();
        }
        todo.extend(link.split('/').rev().map(String::from));
    }
    clean_target(&format!("/{}", done.join("/")))
}

/// The mounts with their targets resolved in `root` ([`resolve_target`]).
pub(crate) fn resolve_all(
    root: &RootFs,
    mounts: &[StepMount],
) -> Result<Vec<StepMount>, SandboxError> {
    mounts
        .iter()
        .map(|m| {
            Ok(StepMount {
                target: resolve_target(root, &m.target)?,
                source: m.source.clone(),
            })
        })
        .collect()
}

impl Stubs {
    /// Records which parts of each target are missing from `root` before the run.
    pub(crate) fn survey(root: &RootFs, mounts: &[StepMount]) -> Self {
        let mut created = Vec::new();
        let mut copied_up = Vec::new();
        for m in mounts {
            let Ok(target) = clean_target(&m.target) else {
                continue;
            };
            let mut rel = String::new();
            let mut parent_in_lower: Option<String> = None;
            for part in target.trim_start_matches('/').split('/') {
                if !rel.is_empty() {
                    rel.push('/');
                }
                rel.push_str(part);
                match find(root, &rel) {
                    Found::Dir { in_upper } => {
                        parent_in_lower = (!in_upper).then(|| rel.clone());
                    }
                    // A file or symlink on the way: whatever gets made is not ours to track.
                    Found::Other => break,
                    Found::Missing => {
                        if !created.contains(&rel) {
                            created.push(rel.clone());
                        }
                        if let Some(p) = parent_in_lower.take()
                            && !copied_up.contains(&p)
                        {
                            copied_up.push(p);
                        }
                    }
                }
            }
        }
        // Deepest first, so children go before their parents.
        created.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
        copied_up.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
        Stubs { created, copied_up }
    }

    /// Removes the stubs still empty in `root.upper` after the run, then the folders only
    /// copied up for them.
    pub(crate) fn remove(&self, root: &RootFs) -> Result<(), SandboxError> {
        for rel in &self.created {
            if !crate::placeholders::parents_are_real_dirs(&root.upper, rel) {
                continue;
            }
            let path = root.upper.join(rel);
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let removed = if meta.is_dir() {
                let empty = fs::read_dir(&path).is_ok_and(|mut e| e.next().is_none());
                if !empty {
                    continue;
                }
                fs::remove_dir(&path)
            } else if meta.is_file() && meta.len() == 0 {
                fs::remove_file(&path)
            } else {
                continue;
            };
            removed.map_err(|e| SandboxError::io("remove mount stub", &path, e))?;
        }
        for rel in &self.copied_up {
            if !crate::placeholders::parents_are_real_dirs(&root.upper, rel) {
                continue;
            }
            let path = root.upper.join(rel);
            if crate::placeholders::is_untouched_parent(&path, &root.lower, rel)
                .map_err(|e| SandboxError::io("inspect", &path, e))?
            {
                fs::remove_dir(&path)
                    .map_err(|e| SandboxError::io("remove mount stub parent", &path, e))?;
            }
        }
        Ok(())
    }
}

/// Paths relative to nothing: `/a`, `/a/b` for `/a/b/c` (the folders above a target).
pub(crate) fn parents_of(target: &str) -> Vec<String> {
    let mut out = crate::builtin::plan::dir_prefixes(target);
    out.pop();
    out
}

/// The files of a step's [`MountSource::File`] mounts for runc and crun, written on a tmpfs
/// mounted at a folder of the bundle in the runtime's private mount namespace, so the bytes
/// never reach a disk; `<dir>/<index of the mount>` is what the config binds.
pub(crate) struct StagedFiles {
    dir: std::ffi::CString,
    options: std::ffi::CString,
    files: Vec<(std::ffi::CString, SecretBytes, u32, (u32, u32))>,
}

impl StagedFiles {
    /// Prepares the files of `mounts` under `dir` (an empty folder of the bundle).
    pub(crate) fn new(dir: &Path, mounts: &[StepMount]) -> Result<Self, SandboxError> {
        use crate::builtin::plan::{cpath, cstr};
        let mut files = Vec::new();
        for (i, m) in mounts.iter().enumerate() {
            if let MountSource::File {
                contents,
                mode,
                uid,
                gid,
            } = &m.source
            {
                files.push((cstr(&i.to_string())?, contents.clone(), *mode, (*uid, *gid)));
            }
        }
        Ok(StagedFiles {
            dir: cpath(dir)?,
            options: cstr(&files_tmpfs_options(mounts).unwrap_or_default())?,
            files,
        })
    }

    /// Mounts the tmpfs and writes the files (nothing when there are none). Only system
    /// calls: runs between fork and exec, in the runtime's own mount namespace.
    pub(crate) fn write(&self) -> Result<(), i32> {
        if self.files.is_empty() {
            return Ok(());
        }
        // SAFETY: mount/open/close on NUL-terminated strings prepared in `new`.
        unsafe {
            check(libc::mount(
                c"tmpfs".as_ptr(),
                self.dir.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                self.options.as_ptr().cast(),
            ) as libc::c_long)?;
            let dirfd = check(libc::open(
                self.dir.as_ptr(),
                libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
            ) as libc::c_long)? as libc::c_int;
            let result = self
                .files
                .iter()
                .try_for_each(|(name, bytes, mode, owner)| {
                    write_file_at(dirfd, name, bytes.expose(), *mode, *owner)
                });
            libc::close(dirfd);
            result
        }
    }
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets `attrs` on the detached mount `fd` (one mount, not its children).
fn set_attrs(fd: libc::c_int, attrs: u64) -> Result<(), i32> {
    let attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `attr` (of the size given) and the empty path.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// A detached bind mount of `path` (below `dirfd`), `nosuid,nodev` and read-only if asked.
/// The caller owns (and closes) the returned descriptor.
fn clone_tree(dirfd: libc::c_int, path: &CStr, attrs: u64) -> Result<libc::c_int, i32> {
    // SAFETY: open_tree reads a NUL-terminated path and returns a new descriptor.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dirfd,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    })? as libc::c_int;
    if let Err(e) = set_attrs(fd, attrs | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV) {
        // SAFETY: closes the descriptor just opened.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(fd)
}

/// A detached bind mount of the host path `source`. Only system calls.
pub(crate) fn detach_bind(source: &CStr, readonly: bool) -> Result<libc::c_int, i32> {
    let ro = if readonly { MOUNT_ATTR_RDONLY } else { 0 };
    clone_tree(libc::AT_FDCWD, source, ro)
}

/// A detached, empty tmpfs (`nosuid,nodev`), `size` bytes at most when given. Only
/// system calls.
pub(crate) fn detach_tmpfs(size: Option<&CStr>, mode: &CStr) -> Result<libc::c_int, i32> {
    // SAFETY: the new mount API on NUL-terminated strings; the fs context is closed here.
    unsafe {
        let fs = check(libc::syscall(
            libc::SYS_fsopen,
            c"tmpfs".as_ptr(),
            FSOPEN_CLOEXEC,
        ))? as libc::c_int;
        let set = |key: &CStr, value: &CStr| {
            check(libc::syscall(
                libc::SYS_fsconfig,
                fs,
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            ))
        };
        let result = (|| {
            if let Some(size) = size {
                set(c"size", size)?;
            }
            set(c"mode", mode)?;
            check(libc::syscall(
                libc::SYS_fsconfig,
                fs,
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_char>(),
                0,
            ))?;
            check(libc::syscall(
                libc::SYS_fsmount,
                fs,
                FSMOUNT_CLOEXEC,
                (MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV) as libc::c_uint,
            ))
            .map(|fd| fd as libc::c_int)
        })();
        libc::close(fs);
        result
    }
}

/// Writes `contents` to a new file at `path` (on the step's files tmpfs) and returns a
/// detached, read-only mount of it. Only system calls.
pub(crate) fn detach_file(
    path: &CStr,
    contents: &[u8],
    mode: u32,
    owner: (u32, u32),
) -> Result<libc::c_int, i32> {
    write_file_at(libc::AT_FDCWD, path, contents, mode, owner)?;
    clone_tree(libc::AT_FDCWD, path, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC)
}

/// Attaches the detached mount `fd` at `target`, resolved in the current root (after
/// `pivot_root`: symlinks cannot lead out of it), and closes `fd`. Only system calls.
pub(crate) fn attach(fd: libc::c_int, target: &CStr) -> Result<(), i32> {
    // SAFETY: move_mount reads the NUL-terminated paths; the descriptor is ours to close.
    unsafe {
        let moved = check(libc::syscall(
            libc::SYS_move_mount,
            fd,
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS,
        ));
        libc::close(fd);
        moved.map(drop)
    }
}

/// Creates an empty file at `path` if nothing is there (a mount target for a file).
/// Only system calls.
pub(crate) fn touch(path: &CStr) -> Result<(), i32> {
    // SAFETY: open/close on a NUL-terminated path.
    unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_CREAT | libc::O_RDONLY | libc::O_CLOEXEC,
            0o644,
        );
        if fd < 0 {
            // A folder or a socket already there is a fine mountpoint for a bind.
            return match errno() {
                libc::EISDIR | libc::ENXIO | libc::EOPNOTSUPP => Ok(()),
                e => Err(e),
            };
        }
        libc::close(fd);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_cleaned_inside_the_root() {
        assert_eq!(clean_target("/a/./b/../c/").ok().as_deref(), Some("/a/c"));
        assert_eq!(
            clean_target("/../../etc").ok().as_deref(),
            Some("/etc"),
            "`..` never climbs above the root"
        );
        assert!(clean_target("relative").is_err());
        assert!(clean_target("/..").is_err());
    }

    #[test]
    fn secret_bytes_are_not_printed() {
        let s = SecretBytes::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "SecretBytes(7 bytes)");
    }

    #[test]
    fn stubs_are_what_was_missing_and_removed_only_when_empty()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let lower = dir.path().join("lower");
        fs::create_dir_all(lower.join("usr"))?;
        let upper = dir.path().join("upper");
        fs::create_dir(&upper)?;
        let root = RootFs {
            lower: vec![lower],
            upper: upper.clone(),
            work: dir.path().join("work"),
        };
        let mount = |t: &str| StepMount {
            target: t.into(),
            source: MountSource::Tmpfs { size: None },
        };
        let stubs = Stubs::survey(&root, &[mount("/usr/a/b"), mount("/run/x")]);
        assert_eq!(stubs.created, ["usr/a/b", "usr/a", "run/x", "run"]);
        assert_eq!(stubs.copied_up, ["usr"]);
        fs::create_dir_all(upper.join("usr/a/b"))?;
        fs::create_dir_all(upper.join("run/x"))?;
        fs::write(upper.join("run/kept"), "written by the step")?;
        stubs.remove(&root)?;
        assert!(!upper.join("usr").exists(), "an untouched copy-up stays");
        assert!(upper.join("run/kept").exists());
        assert!(!upper.join("run/x").exists());
        Ok(())
    }
}
