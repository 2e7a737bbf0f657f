//! Safe tar extraction: layers into snapshot directories (overlayfs diff
//! format) and `ADD` archives into a build's filesystem.
//!
//! No entry can write outside the destination:
//! - entry and hard-link paths with a `..` component are refused;
//! - absolute paths are made relative to the destination (as Docker does);
//! - layers: every parent component of an entry is checked with `lstat`
//!   while it is walked: it must be a real directory (missing ones are
//!   created 0755), never a symlink, so a symlink unpacked earlier cannot
//!   redirect later entries (a layer unpacks into its own empty snapshot,
//!   so a well-formed layer never needs one);
//! - `ADD` archives: they merge into a filesystem that has symlinks of its
//!   own (`lib -> usr/lib`), so parent symlinks are followed the way Docker's
//!   chrooted extraction follows them: resolved as if the destination were
//!   `/` (see `scoped_path`), never leaving it;
//! - the entry itself replaces whatever is at its path (a symlink there is
//!   removed, not followed; regular files are created with `O_EXCL`);
//! - hard links must point at a non-directory entry unpacked earlier from the
//!   same archive, reached as its parent directories are.
//!
//! Directories get their final mode and mtime after all entries are written,
//! so a read-only directory does not block its own contents.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};
use sha2::{Digest as _, Sha256};

use crate::compression::decompress;
use crate::scoped_path;

/// Prefix of an OCI whiteout entry.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Prefix of AUFS metadata entries (`.wh..wh.plnk`, `.wh..wh.aufs`, ...).
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// The entry that makes its directory opaque.
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";

/// What was unpacked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// Regular files written.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Devices and fifos created.
    pub devices: u64,
    /// Devices and fifos skipped because mknod was not permitted (not root).
    pub skipped_devices: u64,
    /// Whiteouts turned into 0:0 character devices.
    pub whiteouts: u64,
    /// Directories marked opaque.
    pub opaque_dirs: u64,
    /// Extended attributes not set: `trusted.overlay.*` ones from the archive
    /// (overlayfs metadata comes only from whiteouts), and ones the kernel
    /// refused with EPERM or ENOTSUP (other `trusted.*` ones fail the unpack).
    pub skipped_xattrs: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
}

/// Why an archive could not be unpacked; each error names the entry.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// Reading the archive (or decompressing it) failed.
    #[error("reading the archive: {0}")]
    Read(#[source] io::Error),
    /// The entry's path would leave the destination.
    #[error("entry {entry:?}: {reason}")]
    Unsafe {
        /// The entry's path as written in the archive.
        entry: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// A filesystem operation on the entry failed.
    #[error("entry {entry:?}: {op}: {source}")]
    Entry {
        /// The entry's path as written in the archive.
        entry: PathBuf,
        /// The operation that failed.
        op: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The entry has a type strata cannot create.
    #[error("entry {entry:?}: unsupported tar entry type {kind:?}")]
    Unsupported {
        /// The entry's path as written in the archive.
        entry: PathBuf,
        /// The tar type byte.
        kind: u8,
    },
    /// The archive decompresses to more than the caller's limit; reading
    /// stopped there.
    #[error("it decompresses to more than {limit} bytes, the decompression limit")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The uncompressed layer does not hash to the diffID it was unpacked
    /// for (see [`unpack_verified_layer`]).
    #[error("its content has diffID {actual}, not the claimed {claimed}")]
    DiffIdMismatch {
        /// The diffID the image config claims.
        claimed: String,
        /// The sha256 of the uncompressed stream.
        actual: String,
    },
}

/// How entries are interpreted.
#[derive(Debug, Clone, Copy)]
enum Flavor {
    /// An image layer: whiteouts become overlayfs whiteouts.
    Layer,
    /// An `ADD` archive: whiteout names are ordinary files, the root entry
    /// does not touch the destination's metadata, and `owner` overrides the
    /// archive's ownership.
    Extract { owner: Option<(u32, u32)> },
}

/// Unpacks a (possibly compressed) layer tar into `dest` in overlayfs diff
/// format: `.wh.NAME` becomes a 0:0 character device `NAME`, and
/// `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory.
pub fn unpack_layer(reader: impl Read + Send, dest: &Path) -> Result<UnpackStats, UnpackError> {
    let reader = decompress(reader).map_err(UnpackError::Read)?;
    Unpacker::new(dest, Flavor::Layer)?.run(reader)
}

/// Unpacks a layer as [`unpack_layer`] does, hashing the uncompressed stream
/// in the same pass, and fails with [`UnpackError::DiffIdMismatch`] unless
/// its sha256 is `diff_id`. The digest covers the whole stream: whatever
/// follows the tar's end-of-archive blocks is read and hashed too, as it is
/// part of the diffID. More than `limit` uncompressed bytes fail with
/// [`UnpackError::TooLarge`]. On any error, what was written to `dest` is
/// the caller's to discard.
pub fn unpack_verified_layer(
    reader: impl Read + Send,
    dest: &Path,
    diff_id: &str,
    limit: u64,
) -> Result<UnpackStats, UnpackError> {
    let bounded = Bounded::new(decompress(reader).map_err(UnpackError::Read)?, limit);
    let mut hashed = Sha256Reader::new(bounded);
    let unpacked = Unpacker::new(dest, Flavor::Layer)?
        .run(&mut hashed)
        .and_then(|stats| {
            io::copy(&mut hashed, &mut io::sink()).map_err(UnpackError::Read)?;
            Ok(stats)
        });
    let stats = hashed.inner.check(unpacked)?;
    let actual = hashed.diff_id();
    if actual != diff_id {
        return Err(UnpackError::DiffIdMismatch {
            claimed: diff_id.to_string(),
            actual,
        });
    }
    Ok(stats)
}

/// The diffID of a (possibly compressed) layer: `sha256:` and the hex
/// sha256 of its whole uncompressed stream. Nothing is unpacked.
pub fn layer_diff_id(reader: impl Read + Send) -> io::Result<String> {
    let mut hashed = Sha256Reader::new(decompress(reader)?);
    io::copy(&mut hashed, &mut io::sink())?;
    Ok(hashed.diff_id())
}

/// A reader that hashes what passes through it.
struct Sha256Reader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Sha256Reader<R> {
    fn new(inner: R) -> Self {
        Sha256Reader {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// `sha256:<hex>` of everything read so far.
    fn diff_id(self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Extracts a (possibly compressed) tar archive into `dest` as Dockerfile
/// `ADD` does, merging with what is there. Ownership is the archive's, or
/// `owner` (uid, gid) for every entry when given (`--chown`). Whiteout names
/// are extracted as ordinary files, as Docker's and BuildKit's `ADD` do.
/// More than `limit` decompressed bytes fail with [`UnpackError::TooLarge`],
/// leaving what was extracted so far for the caller to discard.
///
/// Returns `Ok(false)`, having written nothing, when the decompressed content
/// does not start with a valid tar header (the file is then copied as is by
/// the caller).
pub fn extract_archive(
    reader: impl Read + Send,
    dest: &Path,
    owner: Option<(u32, u32)>,
    limit: u64,
) -> Result<bool, UnpackError> {
    let Ok(reader) = decompress(reader) else {
        return Ok(false);
    };
    let mut reader = Bounded::new(reader, limit);
    let mut first = [0u8; 512];
    if reader.read_exact(&mut first).is_err() || !is_tar_header(&first) {
        return Ok(false);
    }
    let unpacked = Unpacker::new(dest, Flavor::Extract { owner })?
        .run(io::Cursor::new(first).chain(&mut reader));
    reader.check(unpacked)?;
    Ok(true)
}

/// A reader that fails once more than `limit` bytes have passed through it,
/// and remembers that it did: a decompression bomb stops at the limit, and
/// the error that surfaces (tar may wrap or replace the read error) is
/// turned back into [`UnpackError::TooLarge`] by [`Bounded::check`].
struct Bounded<R> {
    inner: R,
    left: u64,
    limit: u64,
    exceeded: bool,
}

impl<R: Read> Bounded<R> {
    fn new(inner: R, limit: u64) -> Self {
        Bounded {
            inner,
            left: limit,
            limit,
            exceeded: false,
        }
    }

    /// `result`, or [`UnpackError::TooLarge`] when the limit was hit.
    fn check<T>(&self, result: Result<T, UnpackError>) -> Result<T, UnpackError> {
        if self.exceeded {
            return Err(UnpackError::TooLarge { limit: self.limit });
        }
        result
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Reading one byte past the limit tells "exactly the limit" from "more".
        let want = buf
            .len()
            .min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        match self.left.checked_sub(n as u64) {
            Some(left) => {
                self.left = left;
                Ok(n)
            }
            None => {
                self.exceeded = true;
                Err(io::Error::other(format!(
                    "decompressed content exceeds {} bytes",
                    self.limit
                )))
            }
        }
    }
}

/// True when `block` is a tar header whose checksum is right (an all-zero
/// block, the end-of-archive marker, is not).
fn is_tar_header(block: &[u8; 512]) -> bool {
    let field = &block[148..156];
    let digits: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| !matches!(c, ' ' | '\0'))
        .collect();
    let Ok(stored) = u32::from_str_radix(&digits, 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    !digits.is_empty() && stored == sum && block.iter().any(|&b| b != 0)
}

/// A directory whose final metadata is applied once all entries are in.
struct PendingDir {
    path: PathBuf,
    mode: u32,
    mtime: Timespec,
}

struct Unpacker<'d> {
    dest: &'d Path,
    flavor: Flavor,
    stats: UnpackStats,
    /// Relative paths of non-directory entries written, for hard links.
    unpacked: HashSet<PathBuf>,
    dirs: Vec<PendingDir>,
}

/// Metadata common to every entry.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl<'d> Unpacker<'d> {
    fn new(dest: &'d Path, flavor: Flavor) -> Result<Self, UnpackError> {
        fs::create_dir_all(dest).map_err(|source| UnpackError::Entry {
            entry: dest.to_path_buf(),
            op: "creating the destination",
            source,
        })?;
        Ok(Unpacker {
            dest,
            flavor,
            stats: UnpackStats::default(),
            unpacked: HashSet::new(),
            dirs: Vec::new(),
        })
    }

    fn run(mut self, reader: impl Read) -> Result<UnpackStats, UnpackError> {
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(UnpackError::Read)? {
            let mut entry = entry.map_err(UnpackError::Read)?;
            self.entry(&mut entry)?;
        }
        self.finish_dirs()?;
        Ok(self.stats)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let name = entry.path().map_err(UnpackError::Read)?.into_owned();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let rel = clean(&name)?;
        let meta = self.meta(entry, &name)?;
        let Some(base) = rel.file_name().map(ToOwned::to_owned) else {
            // The root entry (`./`): a layer sets the snapshot root's metadata;
            // ADD leaves the existing destination alone.
            if matches!(self.flavor, Flavor::Layer) && kind.is_dir() {
                self.dir(self.dest.to_path_buf(), &name, &meta)?;
            }
            return Ok(());
        };
        let parent = self.parent_dir(&rel, &name, true)?;
        let path = parent.join(&base);

        if matches!(self.flavor, Flavor::Layer) && base.as_bytes().starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(&parent, &base, &name);
        }
        self.clear(&path, kind.is_dir(), &name)?;

        use tar::EntryType as T;
        match kind {
            T::Directory => self.dir(path, &name, &meta)?,
            T::Regular | T::Continuous | T::GNUSparse => {
                self.file(entry, &path, &name, &meta)?;
                self.unpacked.insert(rel);
            }
            T::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .ok_or_else(|| unsafe_entry(&name, "symlink without a target"))?;
                std::os::unix::fs::symlink(&target, &path).map_err(op(&name, "symlink"))?;
                self.stats.symlinks += 1;
                self.finish_node(&path, &name, &meta, false)?;
                self.unpacked.insert(rel);
            }
            T::Link => {
                let target = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .ok_or_else(|| unsafe_entry(&name, "hard link without a target"))?;
                self.hardlink(&target, &path, &name)?;
                self.unpacked.insert(rel);
            }
            T::Char | T::Block | T::Fifo => {
                let (file_type, dev) = match kind {
                    T::Char => (FileType::CharacterDevice, device(entry, &name)?),
                    T::Block => (FileType::BlockDevice, device(entry, &name)?),
                    _ => (FileType::Fifo, rustix::fs::makedev(0, 0)),
                };
                match rustix::fs::mknodat(CWD, &path, file_type, Mode::from_raw_mode(0o600), dev) {
                    Ok(()) => {
                        self.stats.devices += 1;
                        self.finish_node(&path, &name, &meta, true)?;
                        self.unpacked.insert(rel);
                    }
                    Err(rustix::io::Errno::PERM) => self.stats.skipped_devices += 1,
                    Err(e) => return Err(op(&name, "mknod")(e.into())),
                }
            }
            other => {
                return Err(UnpackError::Unsupported {
                    entry: name,
                    kind: other.as_byte(),
                });
            }
        }
        Ok(())
    }

    /// The entry's mode, owner (after `--chown`), mtime and xattrs.
    fn meta<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        name: &Path,
    ) -> Result<Meta, UnpackError> {
        let header = entry.header();
        let field = |r: io::Result<u64>, what: &'static str| {
            r.map_err(|source| UnpackError::Entry {
                entry: name.to_path_buf(),
                op: what,
                source,
            })
        };
        let mode = field(header.mode().map(u64::from), "reading the mode")? as u32 & 0o7777;
        let mut uid = field(header.uid(), "reading the uid")?;
        let mut gid = field(header.gid(), "reading the gid")?;
        let mut mtime = Timespec {
            tv_sec: field(header.mtime(), "reading the mtime")? as i64,
            tv_nsec: 0,
        };
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(UnpackError::Read)? {
            for ext in pax {
                let ext = ext.map_err(UnpackError::Read)?;
                let Ok(key) = ext.key() else { continue };
                if let Some(attr) = key.strip_prefix("SCHILY.xattr.") {
                    xattrs.push((attr.to_string(), ext.value_bytes().to_vec()));
                } else if key == "mtime" {
                    if let Some(t) = ext.value().ok().and_then(parse_pax_time) {
                        mtime = t;
                    }
                } else if key == "uid" {
                    uid = ext.value().ok().and_then(|v| v.parse().ok()).unwrap_or(uid);
                } else if key == "gid" {
                    gid = ext.value().ok().and_then(|v| v.parse().ok()).unwrap_or(gid);
                }
            }
        }
        let (uid, gid) = match self.flavor {
            Flavor::Extract { owner: Some(owner) } => owner,
            _ => (
                u32::try_from(uid).map_err(|_| unsafe_entry(name, "uid out of range"))?,
                u32::try_from(gid).map_err(|_| unsafe_entry(name, "gid out of range"))?,
            ),
        };
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    /// The real directory holding `rel`, created if missing (see the module
    /// comment for how layers and archives treat symlinks on the way).
    fn parent_dir(&self, rel: &Path, name: &Path, create: bool) -> Result<PathBuf, UnpackError> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        if matches!(self.flavor, Flavor::Extract { .. }) {
            return scoped_path::resolve_dir(self.dest, parent, create)
                .map_err(|e| unsafe_entry(name, &e.to_string()));
        }
        let mut dir = self.dest.to_path_buf();
        for comp in parent.components() {
            dir.push(comp);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(unsafe_entry(
                        name,
                        &format!("parent {:?} is a symlink", relative(self.dest, &dir)),
                    ));
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(unsafe_entry(
                        name,
                        &format!("parent {:?} is not a directory", relative(self.dest, &dir)),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&dir).map_err(op(name, "creating a parent directory"))?;
                    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                        .map_err(op(name, "chmod of a parent directory"))?;
                }
                Err(e) => return Err(op(name, "lstat of a parent directory")(e)),
            }
        }
        Ok(dir)
    }

    /// Removes what is at `path` unless both it and the new entry are
    /// directories (then the directory is kept and its metadata updated).
    fn clear(&mut self, path: &Path, new_is_dir: bool, name: &Path) -> Result<(), UnpackError> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() && new_is_dir => return Ok(()),
            Ok(m) if m.is_dir() => {
                fs::remove_dir_all(path).map_err(op(name, "removing a directory"))?;
            }
            Ok(_) => fs::remove_file(path).map_err(op(name, "removing the existing entry"))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(op(name, "lstat")(e)),
        }
        // What was there is gone: its pending directories must not get their
        // metadata applied later, through whatever replaces them.
        self.dirs.retain(|d| !d.path.starts_with(path));
        Ok(())
    }

    fn whiteout(&mut self, parent: &Path, base: &OsStr, name: &Path) -> Result<(), UnpackError> {
        let base = base.as_bytes();
        if base == OPAQUE_WHITEOUT {
            let opaque = format!("{}opaque", crate::xattrs::overlay_prefix());
            rustix::fs::lsetxattr(parent, opaque.as_str(), b"y", XattrFlags::empty())
                .map_err(|e| op(name, "setting the overlay opaque xattr")(e.into()))?;
            self.stats.opaque_dirs += 1;
            return Ok(());
        }
        if base.starts_with(WHITEOUT_META_PREFIX) {
            // AUFS bookkeeping (hard-link directories and the like): not content.
            return Ok(());
        }
        let hidden = &base[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(unsafe_entry(name, "whiteout of no name"));
        }
        let hidden = OsStr::from_bytes(hidden);
        let path = parent.join(hidden);
        self.clear(&path, false, name)?;
        rustix::fs::mknodat(
            CWD,
            &path,
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(|e| op(name, "creating a whiteout device")(e.into()))?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    fn dir(&mut self, path: PathBuf, name: &Path, meta: &Meta) -> Result<(), UnpackError> {
        match fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(op(name, "mkdir")(e)),
        }
        // Writable while its contents arrive; the final mode comes at the end.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).map_err(op(name, "chmod"))?;
        chown(&path, meta, name)?;
        self.xattrs(&path, meta, name)?;
        self.stats.dirs += 1;
        self.dirs.push(PendingDir {
            path,
            mode: meta.mode,
            mtime: meta.mtime,
        });
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        name: &Path,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .map_err(op(name, "create"))?;
        let n = io::copy(entry, &mut file).map_err(op(name, "writing content"))?;
        self.stats.bytes += n;
        self.stats.files += 1;
        drop(file);
        self.finish_node(path, name, meta, true)
    }

    /// Owner, mode (not for symlinks), xattrs and times, in that order:
    /// chown clears setuid bits and file capabilities, so it goes first.
    fn finish_node(
        &mut self,
        path: &Path,
        name: &Path,
        meta: &Meta,
        chmod: bool,
    ) -> Result<(), UnpackError> {
        chown(path, meta, name)?;
        if chmod {
            fs::set_permissions(path, fs::Permissions::from_mode(meta.mode))
                .map_err(op(name, "chmod"))?;
        }
        self.xattrs(path, meta, name)?;
        set_times(path, meta.mtime, name)
    }

    fn xattrs(&mut self, path: &Path, meta: &Meta, name: &Path) -> Result<(), UnpackError> {
        for (key, value) in &meta.xattrs {
            // overlayfs reads its own metadata (opaque, redirect, metacopy)
            // from these; only whiteout translation may set them.
            if key.starts_with(crate::xattrs::overlay_prefix()) {
                self.stats.skipped_xattrs += 1;
                continue;
            }
            match rustix::fs::lsetxattr(path, key.as_str(), value, XattrFlags::empty()) {
                Ok(()) => {}
                // Only real root can set trusted.*: a rootless build skips them too.
                Err(rustix::io::Errno::PERM | rustix::io::Errno::NOTSUP)
                    if !key.starts_with("trusted.") || strata_sandbox::in_user_namespace() =>
                {
                    self.stats.skipped_xattrs += 1;
                }
                Err(e) => return Err(op(name, "setting an xattr")(e.into())),
            }
        }
        Ok(())
    }

    fn hardlink(&mut self, target: &Path, path: &Path, name: &Path) -> Result<(), UnpackError> {
        let rel = clean(target).map_err(|_| {
            unsafe_entry(
                name,
                &format!("hard link target {target:?} leaves the destination"),
            )
        })?;
        if !self.unpacked.contains(&rel) {
            return Err(unsafe_entry(
                name,
                &format!("hard link target {target:?} is not an earlier entry of this archive"),
            ));
        }
        // The target was unpacked, but a later entry may have turned one of
        // its parents into a symlink: walk to it again.
        let base = rel
            .file_name()
            .ok_or_else(|| unsafe_entry(name, "hard link to the root"))?;
        let parent = self.parent_dir(&rel, name, false).map_err(|e| match e {
            UnpackError::Unsafe { entry, reason } => UnpackError::Unsafe {
                entry,
                reason: format!("hard link target {target:?}: {reason}"),
            },
            other => other,
        })?;
        let walked = parent.join(base);
        let m = fs::symlink_metadata(&walked).map_err(op(name, "lstat of the hard link target"))?;
        if m.is_dir() {
            return Err(unsafe_entry(name, "hard link to a directory"));
        }
        fs::hard_link(&walked, path).map_err(op(name, "hard link"))?;
        self.stats.hardlinks += 1;
        Ok(())
    }

    /// Applies directory modes and mtimes, deepest first, so setting a
    /// child's metadata does not disturb its parent's mtime.
    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
        for d in dirs {
            let name = relative(self.dest, &d.path);
            // Never chmod through a symlink (see `clear`; this is the backstop).
            match fs::symlink_metadata(&d.path) {
                Ok(m) if m.is_dir() => {}
                _ => continue,
            }
            fs::set_permissions(&d.path, fs::Permissions::from_mode(d.mode))
                .map_err(op(&name, "chmod"))?;
            set_times(&d.path, d.mtime, &name)?;
        }
        Ok(())
    }
}

/// The entry's device numbers (a header without the fields, as old tar
/// formats write, means 0:0).
fn device<R: Read>(entry: &tar::Entry<'_, R>, name: &Path) -> Result<rustix::fs::Dev, UnpackError> {
    let h = entry.header();
    let read = |r: io::Result<Option<u32>>| r.map(Option::unwrap_or_default);
    let major = read(h.device_major()).map_err(op(name, "reading the device major"))?;
    let minor = read(h.device_minor()).map_err(op(name, "reading the device minor"))?;
    Ok(rustix::fs::makedev(major, minor))
}

fn chown(path: &Path, meta: &Meta, name: &Path) -> Result<(), UnpackError> {
    rustix::fs::chownat(
        CWD,
        path,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| {
        // In a rootless build's user namespace, an id it does not map.
        let what = if e == rustix::io::Errno::INVAL && strata_sandbox::in_user_namespace() {
            "chown (a rootless build maps ids 0 to 65536 only)"
        } else {
            "chown"
        };
        op(name, what)(e.into())
    })
}

fn set_times(path: &Path, mtime: Timespec, name: &Path) -> Result<(), UnpackError> {
    let times = Timestamps {
        last_access: mtime,
        last_modification: mtime,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| op(name, "setting times")(e.into()))
}

/// A PAX time, `seconds[.fraction]`.
fn parse_pax_time(v: &str) -> Option<Timespec> {
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let tv_sec = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let tv_nsec = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(Timespec { tv_sec, tv_nsec })
}

/// The entry's path relative to the destination: leading `/` and `.`
/// components dropped, `..` refused.
fn clean(name: &Path) -> Result<PathBuf, UnpackError> {
    let mut out = PathBuf::new();
    for comp in name.components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => return Err(unsafe_entry(name, "path has a `..` component")),
        }
    }
    Ok(out)
}

fn relative(dest: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(dest).unwrap_or(path).to_path_buf()
}

fn unsafe_entry(name: &Path, reason: &str) -> UnpackError {
    UnpackError::Unsafe {
        entry: name.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn op<'a>(name: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> UnpackError + 'a {
    move |source| UnpackError::Entry {
        entry: name.to_path_buf(),
        op,
        source,
    }
}
