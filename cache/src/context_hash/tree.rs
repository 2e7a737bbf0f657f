//! Walking the selected part of a context and digesting it.
//!
//! The walk is rayon over each directory's entries (recursively): rayon is
//! already a dependency, the work-stealing pool keeps both cores busy on
//! wide and deep trees alike, and the exclusion test needs the relative path
//! before anything is stat'ed or read, which a plain `read_dir` gives
//! directly. `ignore`'s parallel walker would add a crate and its own
//! filters that we would have to switch off.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{ContextHashError, ContextHasher};

/// The digest of a selection of context files, and what it covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeDigest {
    /// blake3 over the sorted entries (relative path, type, mode bits,
    /// content digest / symlink target / device number).
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
}

/// The two questions the walk asks of `.dockerignore` (or any filter).
struct Filter<'a> {
    excluded: &'a (dyn Fn(&str) -> bool + Sync),
    descend: &'a (dyn Fn(&str) -> bool + Sync),
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
    /// itself is then not an entry, its non-excluded children are.
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
        let filter = Filter { excluded, descend };
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
            if rel.is_empty() {
                entries.extend(self.walk_dir(&root, &[], &filter)?);
                continue;
            }
            let abs = root.join(&rel);
            let meta = fs::symlink_metadata(&abs).map_err(|source| ContextHashError::Stat {
                path: abs.clone(),
                source,
            })?;
            let excluded = (filter.excluded)(&rel);
            entries.extend(self.visit(abs, rel.into_bytes(), meta, excluded, &filter)?);
        }
        entries.par_sort_unstable_by(|a, b| a.path.cmp(&b.path));
        entries.dedup_by(|a, b| a.path == b.path);
        Ok(encode(&entries))
    }

    /// The entries of the directory `dir` (relative path `rel`), recursively.
    fn walk_dir(
        &self,
        dir: &Path,
        rel: &[u8],
        filter: &Filter<'_>,
    ) -> Result<Vec<TreeEntry>, ContextHashError> {
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
                let name = child.file_name();
                let child_rel = join_rel(rel, &name);
                let abs = child.path();
                let excluded = (filter.excluded)(&String::from_utf8_lossy(&child_rel));
                // The type from readdir costs no stat; an excluded file is
                // dropped right here.
                let is_dir = child.file_type().is_ok_and(|t| t.is_dir());
                if excluded && !is_dir {
                    return Ok(Vec::new());
                }
                // DirEntry::metadata is lstat: symlinks are not followed.
                let meta = child.metadata().map_err(|source| ContextHashError::Stat {
                    path: abs.clone(),
                    source,
                })?;
                self.visit(abs, child_rel, meta, excluded, filter)
            })
            .try_reduce(Vec::new, |mut a, b| {
                a.extend(b);
                Ok(a)
            })
    }

    /// The entries for one path whose lstat is `meta`.
    fn visit(
        &self,
        abs: PathBuf,
        rel: Vec<u8>,
        meta: Metadata,
        excluded: bool,
        filter: &Filter<'_>,
    ) -> Result<Vec<TreeEntry>, ContextHashError> {
        let ft = meta.file_type();
        let mode = meta.mode() & 0o7777;
        if ft.is_dir() {
            if excluded && !(filter.descend)(&String::from_utf8_lossy(&rel)) {
                return Ok(Vec::new());
            }
            let mut out = self.walk_dir(&abs, &rel, filter)?;
            if !excluded {
                out.push(TreeEntry {
                    path: rel,
                    kind: b'd',
                    mode,
                    size: 0,
                    payload: Payload::Nothing,
                });
            }
            return Ok(out);
        }
        if excluded {
            return Ok(Vec::new());
        }
        let (kind, size, payload) = if ft.is_file() {
            let digest = self.file_digest(&abs, &meta)?;
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
        Ok(vec![TreeEntry {
            path: rel,
            kind,
            mode,
            size,
            payload,
        }])
    }
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
/// length-prefixed, so no two different lists encode the same.
fn encode(entries: &[TreeEntry]) -> TreeDigest {
    let mut h = blake3::Hasher::new();
    h.update(b"strata context tree v1\0");
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
        bytes += e.size;
    }
    h.update(&(entries.len() as u64).to_le_bytes());
    TreeDigest {
        digest: *h.finalize().as_bytes(),
        entries: entries.len() as u64,
        bytes,
    }
}
