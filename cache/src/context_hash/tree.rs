//! Walking the selected part of a context and digesting it.
//!
//! The walk is rayon, not `ignore`'s parallel walker: rayon is already a
//! dependency, and the exclusion test needs only the relative path, which a
//! plain `read_dir` gives before anything is stat'ed or read; `ignore` would
//! add a crate and filters we would have to switch off. Every directory is
//! a job on a rayon scope (heap-queued, so depth does not grow the stack)
//! and its entries go through a parallel iterator (so one wide directory
//! still uses every core).

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rayon::prelude::*;

use super::{ContextHashError, ContextHasher};

/// The digest of a selection of context files (or of a whole snapshot, see
/// [`snapshot_digest`]), and what it covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeDigest {
    /// blake3 over the sorted entries (relative path, type, mode bits,
    /// content digest / symlink target / device number; for a snapshot also
    /// owner and extended attributes).
    pub digest: [u8; 32],
    /// Number of entries (files, directories, symlinks, others).
    pub entries: u64,
    /// Total size of the regular files covered.
    pub bytes: u64,
}

impl TreeDigest {
    /// The digest in lowercase hex.
    pub fn hex(&self) -> String {
        hex::encode(self.digest)
    }
}

/// What an entry contributes beyond path, type and mode.
#[derive(Debug)]
enum Payload {
    Content([u8; 32]),
    Target(Vec<u8>),
    Device(u64),
    Nothing,
}

#[derive(Debug)]
struct TreeEntry {
    /// Relative to the context root, `/`-separated, raw bytes.
    path: Vec<u8>,
    kind: u8,
    mode: u32,
    size: u64,
    payload: Payload,
    /// Owner and extended attributes: recorded for snapshots only.
    owner: Option<Owner>,
}

/// What a snapshot's entry adds: `(uid, gid)` and its xattrs.
#[derive(Debug)]
struct Owner {
    ids: (u32, u32),
    xattrs: crate::xattrs::Xattrs,
}

/// The two questions the walk asks of `.dockerignore` (or any filter), and
/// whether ownership and xattrs count (snapshots) or not (contexts).
struct Filter<'a> {
    excluded: &'a (dyn Fn(&str) -> bool + Sync),
    descend: &'a (dyn Fn(&str) -> bool + Sync),
    owners: bool,
}

/// The digest of everything under the snapshot folder `root`, the folder
/// itself included: what [`ContextHasher::digest_tree`] covers plus each
/// entry's owner and extended attributes (overlayfs's opaque marker,
/// capabilities), every file read afresh. It tells whether a base layer
/// snapshot still holds what was unpacked into it.
pub fn snapshot_digest(root: &Path) -> Result<TreeDigest, ContextHashError> {
    let hasher = ContextHasher::uncached();
    let none = |_: &str| false;
    let filter = Filter {
        excluded: &none,
        descend: &none,
        owners: true,
    };
    let meta = stat(root)?;
    let mut entries = Vec::new();
    match hasher.visit(root.to_path_buf(), Vec::new(), &meta, false, &filter)? {
        Visit::Dir { entry, abs, rel } => {
            entries.extend(entry);
            entries.extend(hasher.walk(abs, rel, &filter)?);
        }
        Visit::Leaf(_) | Visit::Skip => {
            return Err(ContextHashError::NotADirectory {
                path: root.to_path_buf(),
            });
        }
    }
    entries.par_sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(encode(&entries, true))
}

impl ContextHasher {
    /// Digests the files selected by `paths` under the context `root`.
    ///
    /// `paths` are relative to `root` (`/`-separated; `""` or `"."` is the
    /// whole context; wildcards must already be expanded by the caller);
    /// each may name a file, a symlink or a directory (walked recursively).
    /// Overlapping selections are counted once.
    ///
    /// `excluded(rel)` says whether a relative path is left out (e.g.
    /// [`DockerIgnore::matches`](crate::DockerIgnore::matches)); an excluded
    /// path is neither stat'ed nor read. An excluded directory is looked
    /// into only if `descend(rel)` says an exception could re-include
    /// something below it (e.g. `!DockerIgnore::skips_dir`); the directory
    /// itself is then not an entry, its non-excluded children are. A
    /// selected path that is itself excluded contributes nothing; whether
    /// that is an error (COPY of an ignored file) is the caller's call.
    ///
    /// Symlinks are never followed: a symlink contributes its target string,
    /// and a selected path that goes through a symlink is an error. The
    /// result covers relative path, type, permission bits (`mode & 0o7777`),
    /// and content digest, symlink target or device number; never
    /// timestamps or ownership.
    pub fn digest_tree(
        &self,
        root: &Path,
        paths: &[&str],
        excluded: &(dyn Fn(&str) -> bool + Sync),
        descend: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<TreeDigest, ContextHashError> {
        let filter = Filter {
            excluded,
            descend,
            owners: false,
        };
        // Absolute, so that cache entries are shared by every build of this
        // context whatever the working directory.
        let root = fs::canonicalize(root).map_err(|source| ContextHashError::Stat {
            path: root.to_path_buf(),
            source,
        })?;
        let mut entries = Vec::new();
        for sel in paths {
            let components = clean(sel)?;
            let rel = components.join("/");
            check_ancestors(&root, sel, &components)?;
            let (abs, meta, excluded) = if rel.is_empty() {
                let meta = stat(&root)?;
                (root.clone(), meta, false)
            } else {
                let abs = root.join(&rel);
                let meta = stat(&abs)?;
                (abs, meta, (filter.excluded)(&rel))
            };
            match self.visit(abs, rel.into_bytes(), &meta, excluded, &filter)? {
                Visit::Skip => {}
                Visit::Leaf(e) => entries.push(e),
                Visit::Dir { entry, abs, rel } => {
                    // The context root itself is not an entry.
                    entries.extend(entry.filter(|e| !e.path.is_empty()));
                    entries.extend(self.walk(abs, rel, &filter)?);
                }
            }
        }
        entries.par_sort_unstable_by(|a, b| a.path.cmp(&b.path));
        entries.dedup_by(|a, b| a.path == b.path);
        Ok(encode(&entries, false))
    }

    /// Everything below the directory `dir` (relative path `rel`).
    ///
    /// Each directory is a job spawned on a rayon scope (queued on the heap,
    /// so a deep tree does not deepen the stack) and its entries are handled
    /// with a parallel iterator (so a wide directory uses every core).
    fn walk(
        &self,
        dir: PathBuf,
        rel: Vec<u8>,
        filter: &Filter<'_>,
    ) -> Result<Vec<TreeEntry>, ContextHashError> {
        let found = Mutex::new(Vec::new());
        let failed = Mutex::new(None);
        let shared = Shared {
            found: &found,
            failed: &failed,
            filter,
        };
        rayon::scope(|s| self.walk_job(s, dir, rel, &shared));
        if let Some(e) = failed.into_inner().unwrap_or_else(PoisonError::into_inner) {
            return Err(e);
        }
        Ok(found.into_inner().unwrap_or_else(PoisonError::into_inner))
    }

    fn walk_job<'s>(
        &'s self,
        s: &rayon::Scope<'s>,
        dir: PathBuf,
        rel: Vec<u8>,
        shared: &'s Shared<'s>,
    ) {
        if lock(shared.failed).is_some() {
            return;
        }
        match self.list_dir(&dir, &rel, shared.filter) {
            Ok(visits) => {
                let mut leaves = Vec::new();
                for v in visits {
                    match v {
                        Visit::Skip => {}
                        Visit::Leaf(e) => leaves.push(e),
                        Visit::Dir { entry, abs, rel } => {
                            leaves.extend(entry);
                            s.spawn(move |s| self.walk_job(s, abs, rel, shared));
                        }
                    }
                }
                lock(shared.found).extend(leaves);
            }
            Err(e) => {
                lock(shared.failed).get_or_insert(e);
            }
        }
    }

    /// What each entry of `dir` contributes (subdirectories not entered).
    fn list_dir(
        &self,
        dir: &Path,
        rel: &[u8],
        filter: &Filter<'_>,
    ) -> Result<Vec<Visit>, ContextHashError> {
        let list_err = |source| ContextHashError::ReadDir {
            path: dir.to_path_buf(),
            source,
        };
        let children = fs::read_dir(dir)
            .map_err(list_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(list_err)?;
        children
            .into_par_iter()
            .map(|child| {
                let child_rel = join_rel(rel, &child.file_name());
                let abs = child.path();
                let excluded = (filter.excluded)(&String::from_utf8_lossy(&child_rel));
                // The type from readdir costs no stat; an excluded file is
                // dropped right here.
                let is_dir = child.file_type().is_ok_and(|t| t.is_dir());
                if excluded && !is_dir {
                    return Ok(Visit::Skip);
                }
                // DirEntry::metadata is lstat: symlinks are not followed.
                let meta = child.metadata().map_err(|source| ContextHashError::Stat {
                    path: abs.clone(),
                    source,
                })?;
                self.visit(abs, child_rel, &meta, excluded, filter)
            })
            .collect()
    }

    /// What one path whose lstat is `meta` contributes.
    fn visit(
        &self,
        abs: PathBuf,
        rel: Vec<u8>,
        meta: &Metadata,
        excluded: bool,
        filter: &Filter<'_>,
    ) -> Result<Visit, ContextHashError> {
        let ft = meta.file_type();
        let mode = meta.mode() & 0o7777;
        let owner = if filter.owners && !excluded {
            let xattrs = crate::xattrs::list(&abs).map_err(|source| ContextHashError::Read {
                path: abs.clone(),
                source,
            })?;
            Some(Owner {
                ids: (meta.uid(), meta.gid()),
                xattrs,
            })
        } else {
            None
        };
        if ft.is_dir() {
            if excluded && !(filter.descend)(&String::from_utf8_lossy(&rel)) {
                return Ok(Visit::Skip);
            }
            let entry = (!excluded).then(|| TreeEntry {
                path: rel.clone(),
                kind: b'd',
                mode,
                size: 0,
                payload: Payload::Nothing,
                owner,
            });
            return Ok(Visit::Dir { entry, abs, rel });
        }
        if excluded {
            return Ok(Visit::Skip);
        }
        let (kind, size, payload) = if ft.is_file() {
            let digest = self.file_digest(&abs, meta)?;
            (b'f', meta.len(), Payload::Content(digest))
        } else if ft.is_symlink() {
            let target = fs::read_link(&abs).map_err(|source| ContextHashError::ReadLink {
                path: abs.clone(),
                source,
            })?;
            (
                b'l',
                0,
                Payload::Target(target.into_os_string().into_encoded_bytes()),
            )
        } else if ft.is_char_device() {
            (b'c', 0, Payload::Device(meta.rdev()))
        } else if ft.is_block_device() {
            (b'b', 0, Payload::Device(meta.rdev()))
        } else if ft.is_fifo() {
            (b'p', 0, Payload::Nothing)
        } else {
            (b's', 0, Payload::Nothing)
        };
        Ok(Visit::Leaf(TreeEntry {
            path: rel,
            kind,
            mode,
            size,
            payload,
            owner,
        }))
    }
}

/// What a path contributes to the walk.
enum Visit {
    /// Excluded.
    Skip,
    /// A file, symlink or special file.
    Leaf(TreeEntry),
    /// A directory to walk; `entry` is `None` when the directory itself is
    /// excluded but may hold re-included paths.
    Dir {
        entry: Option<TreeEntry>,
        abs: PathBuf,
        rel: Vec<u8>,
    },
}

/// State shared by the jobs of one walk.
struct Shared<'a> {
    found: &'a Mutex<Vec<TreeEntry>>,
    /// The first error; once set, no new directory is listed.
    failed: &'a Mutex<Option<ContextHashError>>,
    filter: &'a Filter<'a>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking job poisons nothing worth discarding: each push is whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn stat(path: &Path) -> Result<Metadata, ContextHashError> {
    fs::symlink_metadata(path).map_err(|source| ContextHashError::Stat {
        path: path.to_path_buf(),
        source,
    })
}

fn join_rel(parent: &[u8], name: &OsStr) -> Vec<u8> {
    let name = name.as_bytes();
    let mut out = Vec::with_capacity(parent.len() + 1 + name.len());
    if !parent.is_empty() {
        out.extend_from_slice(parent);
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// The components of a selected path; `..` anywhere is refused rather than
/// resolved, since it can only point outside or back into the context.
fn clean(sel: &str) -> Result<Vec<&str>, ContextHashError> {
    let mut out = Vec::new();
    for c in sel.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(ContextHashError::OutsideContext {
                    path: sel.to_string(),
                });
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Fails if a directory on the way to the selected path is a symlink.
fn check_ancestors(root: &Path, sel: &str, components: &[&str]) -> Result<(), ContextHashError> {
    let mut dir = root.to_path_buf();
    for c in components.iter().take(components.len().saturating_sub(1)) {
        dir.push(c);
        let meta = fs::symlink_metadata(&dir).map_err(|source| ContextHashError::Stat {
            path: dir.clone(),
            source,
        })?;
        if meta.file_type().is_symlink() {
            return Err(ContextHashError::ThroughSymlink {
                path: sel.to_string(),
                link: dir,
            });
        }
    }
    Ok(())
}

/// One blake3 over the sorted entries. Every variable-length field is
/// length-prefixed, so no two different lists encode the same. A snapshot's
/// digest (`owners`) has its own prefix and adds owners and xattrs; a
/// context's is unchanged by them.
fn encode(entries: &[TreeEntry], owners: bool) -> TreeDigest {
    let mut h = blake3::Hasher::new();
    if owners {
        h.update(b"strata snapshot tree v1\0");
    } else {
        h.update(b"strata context tree v1\0");
    }
    let mut bytes = 0;
    for e in entries {
        h.update(&(e.path.len() as u64).to_le_bytes());
        h.update(&e.path);
        h.update(&[e.kind]);
        h.update(&e.mode.to_le_bytes());
        match &e.payload {
            Payload::Content(d) => {
                h.update(d);
            }
            Payload::Target(t) => {
                h.update(&(t.len() as u64).to_le_bytes());
                h.update(t);
            }
            Payload::Device(d) => {
                h.update(&d.to_le_bytes());
            }
            Payload::Nothing => {}
        }
        if owners {
            match &e.owner {
                Some(o) => {
                    h.update(&[1]);
                    h.update(&o.ids.0.to_le_bytes());
                    h.update(&o.ids.1.to_le_bytes());
                    h.update(&(o.xattrs.len() as u64).to_le_bytes());
                    for (name, value) in &o.xattrs {
                        h.update(&(name.len() as u64).to_le_bytes());
                        h.update(name);
                        h.update(&(value.len() as u64).to_le_bytes());
                        h.update(value);
                    }
                }
                None => {
                    h.update(&[0]);
                }
            }
        }
        bytes += e.size;
    }
    h.update(&(entries.len() as u64).to_le_bytes());
    TreeDigest {
        digest: *h.finalize().as_bytes(),
        entries: entries.len() as u64,
        bytes,
    }
}
