//! Walks snapshots and yields archive entries in a fixed order.
//!
//! A snapshot is a directory in overlayfs diff format: a character device
//! 0:0 is a whiteout (the path is deleted), a directory with
//! `trusted.overlay.opaque=y` hides everything below it. [`walk_layer`] turns
//! one snapshot into OCI layer entries (`.wh.` files); [`walk_merged`] yields
//! the filesystem a stack of snapshots shows, whiteouts applied.
//!
//! Order: depth first, the names of each directory sorted bytewise, so a
//! parent always comes before its children and a directory's content stays
//! together (the order of Go's `filepath.Walk`, which BuildKit's differ uses).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{ExportError, io_err};

/// The prefix OCI layers give a deleted name.
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The OCI name that marks a directory opaque.
pub(crate) const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// Owner, permissions, time and extended attributes of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Sorted by name; overlayfs's own (`trusted.overlay.*`) left out.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file; `source` is `None` for the empty marker files.
    File {
        source: Option<PathBuf>,
        size: u64,
    },
    Dir,
    Symlink(Vec<u8>),
    /// A second name for the file archived earlier at this path.
    HardLink(Vec<u8>),
    CharDevice {
        major: u64,
        minor: u64,
    },
    BlockDevice {
        major: u64,
        minor: u64,
    },
    Fifo,
}

/// One archive entry; `path` is relative, `/`-separated, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub path: Vec<u8>,
    pub kind: Kind,
    pub meta: Meta,
}

/// Receives entries in archive order.
pub(crate) type Sink<'a> = dyn FnMut(Entry) -> Result<(), ExportError> + 'a;

/// A filesystem node found in a snapshot.
struct Node {
    path: PathBuf,
    md: Metadata,
}

impl Node {
    fn read(path: PathBuf) -> Result<Self, ExportError> {
        let md = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        Ok(Node { path, md })
    }

    /// `None` when the path does not exist.
    fn read_if_exists(path: PathBuf) -> Result<Option<Self>, ExportError> {
        match fs::symlink_metadata(&path) {
            Ok(md) => Ok(Some(Node { path, md })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn is_whiteout(&self) -> bool {
        self.md.file_type().is_char_device() && self.md.rdev() == 0
    }

    fn is_dir(&self) -> bool {
        self.md.is_dir()
    }

    fn is_opaque(&self) -> Result<bool, ExportError> {
        if !self.is_dir() {
            return Ok(false);
        }
        let opaque = format!("{}opaque", strata_cache::xattrs::overlay_prefix());
        let value = xattr::get(&self.path, opaque).map_err(io_err(&self.path))?;
        Ok(value.as_deref() == Some(b"y"))
    }

    fn meta(&self) -> Result<Meta, ExportError> {
        let mut xattrs = Vec::new();
        for name in xattr::list(&self.path).map_err(io_err(&self.path))? {
            let name_bytes = name.as_bytes();
            if name_bytes.starts_with(strata_cache::xattrs::overlay_prefix().as_bytes()) {
                continue;
            }
            // An attribute removed between list and get is simply gone.
            if let Some(value) = xattr::get(&self.path, &name).map_err(io_err(&self.path))? {
                xattrs.push((name_bytes.to_vec(), value));
            }
        }
        xattrs.sort();
        Ok(Meta {
            mode: self.md.mode() & 0o7777,
            uid: u64::from(self.md.uid()),
            gid: u64::from(self.md.gid()),
            mtime: self.md.mtime(),
            xattrs,
        })
    }

    /// The entry kind, or `None` for what archives do not hold (sockets).
    /// Hard links are decided by the caller.
    fn kind(&self) -> Result<Option<Kind>, ExportError> {
        let ft = self.md.file_type();
        let rdev = self.md.rdev();
        let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
        Ok(Some(if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File {
                source: Some(self.path.clone()),
                size: self.md.len(),
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(&self.path).map_err(io_err(&self.path))?;
            Kind::Symlink(target.as_os_str().as_bytes().to_vec())
        } else if ft.is_char_device() {
            Kind::CharDevice { major, minor }
        } else if ft.is_block_device() {
            Kind::BlockDevice { major, minor }
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            return Ok(None);
        }))
    }

    fn inode(&self) -> Option<(u64, u64)> {
        (!self.is_dir() && self.md.nlink() > 1).then(|| (self.md.dev(), self.md.ino()))
    }
}

/// The names in `dir`, sorted bytewise.
fn sorted_names(dir: &Path) -> Result<Vec<Vec<u8>>, ExportError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        names.push(entry.file_name().as_bytes().to_vec());
    }
    names.sort();
    Ok(names)
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        return name.to_vec();
    }
    let mut path = Vec::with_capacity(parent.len() + 1 + name.len());
    path.extend_from_slice(parent);
    path.push(b'/');
    path.extend_from_slice(name);
    path
}

fn child(dir: &Path, name: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(name))
}

/// Remembers the first archived path of each multiply-linked inode.
#[derive(Default)]
struct Links(HashMap<(u64, u64), Vec<u8>>);

impl Links {
    /// The entry for `node` at `path`: a hard link when its inode was seen.
    fn entry(&mut self, node: &Node, path: Vec<u8>) -> Result<Option<Entry>, ExportError> {
        let Some(kind) = node.kind()? else {
            return Ok(None);
        };
        let kind = match node.inode() {
            Some(inode) => match self.0.get(&inode) {
                Some(first) => Kind::HardLink(first.clone()),
                None => {
                    self.0.insert(inode, path.clone());
                    kind
                }
            },
            None => kind,
        };
        Ok(Some(Entry {
            path,
            kind,
            meta: node.meta()?,
        }))
    }
}

/// Yields the OCI layer entries of one snapshot (the root itself excluded).
pub(crate) fn walk_layer(root: &Path, sink: &mut Sink<'_>) -> Result<(), ExportError> {
    layer_dir(root, &[], &mut Links::default(), sink)
}

fn layer_dir(
    dir: &Path,
    rel: &[u8],
    links: &mut Links,
    sink: &mut Sink<'_>,
) -> Result<(), ExportError> {
    // Whiteouts are renamed, so sort by the archived name.
    let mut nodes = Vec::new();
    for name in sorted_names(dir)? {
        let node = Node::read(child(dir, &name))?;
        let archived = if node.is_whiteout() {
            [WHITEOUT_PREFIX, &name].concat()
        } else {
            name
        };
        nodes.push((archived, node));
    }
    nodes.sort_by(|a, b| a.0.cmp(&b.0));

    for (name, node) in nodes {
        let path = join(rel, &name);
        if node.is_whiteout() {
            let meta = Meta {
                mode: 0o600,
                xattrs: Vec::new(),
                ..node.meta()?
            };
            sink(empty_file(path, meta))?;
            continue;
        }
        let Some(entry) = links.entry(&node, path.clone())? else {
            continue;
        };
        let is_dir = entry.kind == Kind::Dir;
        let meta = entry.meta.clone();
        sink(entry)?;
        if is_dir {
            // The marker comes first so an applier clears the lower content
            // before this layer's own entries land.
            if node.is_opaque()? {
                let marker_meta = Meta {
                    xattrs: Vec::new(),
                    ..meta
                };
                sink(empty_file(join(&path, OPAQUE_MARKER), marker_meta))?;
            }
            layer_dir(&node.path, &path, links, sink)?;
        }
    }
    Ok(())
}

fn empty_file(path: Vec<u8>, meta: Meta) -> Entry {
    Entry {
        path,
        kind: Kind::File {
            source: None,
            size: 0,
        },
        meta,
    }
}

/// Yields the filesystem that `layers` (bottom first) show when stacked,
/// without whiteouts, hidden content or the root itself.
pub(crate) fn walk_merged(layers: &[PathBuf], sink: &mut Sink<'_>) -> Result<(), ExportError> {
    let mut visible = Vec::new();
    for layer in layers.iter().rev() {
        let node = Node::read(layer.clone())?;
        if !node.is_dir() {
            return Err(io_err(layer)(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "a snapshot must be a directory",
            )));
        }
        let opaque = node.is_opaque()?;
        visible.push(layer.clone());
        if opaque {
            break;
        }
    }
    merged_dir(&visible, &[], &mut Links::default(), sink)
}

/// The merged root directory's metadata: the topmost snapshot's.
pub(crate) fn merged_root_meta(layers: &[PathBuf]) -> Result<Option<Meta>, ExportError> {
    match layers.last() {
        Some(top) => Ok(Some(Node::read(top.clone())?.meta()?)),
        None => Ok(None),
    }
}

/// `dirs`: the directory `rel` in each snapshot that shows it, topmost first.
fn merged_dir(
    dirs: &[PathBuf],
    rel: &[u8],
    links: &mut Links,
    sink: &mut Sink<'_>,
) -> Result<(), ExportError> {
    // The topmost snapshot holding a name decides what it is.
    let mut top: BTreeMap<Vec<u8>, (usize, Node)> = BTreeMap::new();
    for (depth, dir) in dirs.iter().enumerate() {
        for name in sorted_names(dir)? {
            if let std::collections::btree_map::Entry::Vacant(slot) = top.entry(name) {
                let node = Node::read(child(dir, slot.key()))?;
                slot.insert((depth, node));
            }
        }
    }
    for (name, (depth, node)) in top {
        if node.is_whiteout() {
            continue;
        }
        let path = join(rel, &name);
        let Some(entry) = links.entry(&node, path.clone())? else {
            continue;
        };
        let is_dir = entry.kind == Kind::Dir;
        sink(entry)?;
        if is_dir {
            let below = visible_below(&dirs[depth + 1..], &name, node.is_opaque()?)?;
            let mut sub = vec![node.path];
            sub.extend(below);
            merged_dir(&sub, &path, links, sink)?;
        }
    }
    Ok(())
}

/// The lower directories named `name` that an upper directory lets through:
/// none when it is opaque, and none past a lower non-directory or whiteout.
fn visible_below(
    lower: &[PathBuf],
    name: &[u8],
    opaque: bool,
) -> Result<Vec<PathBuf>, ExportError> {
    let mut out = Vec::new();
    if opaque {
        return Ok(out);
    }
    for dir in lower {
        let Some(node) = Node::read_if_exists(child(dir, name))? else {
            continue;
        };
        if !node.is_dir() {
            break;
        }
        let opaque = node.is_opaque()?;
        out.push(node.path);
        if opaque {
            break;
        }
    }
    Ok(out)
}
