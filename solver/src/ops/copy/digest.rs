//! A digest of exactly what a COPY selects, for the cache key: every entry's
//! path, type, mode, extended attributes and content (a symlink's target),
//! in sorted order.
//! Times never count; the owner counts only outside the context (COPY
//! --from keeps it, the context's is replaced by 0:0).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use strata_cache::ContextHasher;

use super::select::Source;
use super::{CopyError, Origin, xattr};

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Feeds the selected sources, in order, into a blake3 hash.
pub(crate) fn digest(
    origin: &Origin,
    sources: &[Source],
    files: Option<&ContextHasher>,
) -> Result<String, CopyError> {
    let mut h = blake3::Hasher::new();
    let mut d = Digester {
        origin,
        files,
        keep_owner: origin.ignore.is_none(),
        links: HashMap::new(),
    };
    for s in sources {
        d.entry(
            &mut h,
            &s.host,
            &s.meta,
            s.named_os.as_os_str().as_bytes(),
            &s.resolved,
        )?;
    }
    Ok(h.finalize().to_hex().to_string())
}

struct Digester<'a, 'b> {
    origin: &'a Origin<'b>,
    /// Remembers file digests by metadata, so unchanged files are not read again.
    files: Option<&'a ContextHasher>,
    keep_owner: bool,
    /// Multiply-linked files seen so far → the path they were first seen at:
    /// the copy keeps hard links, so which paths share a file counts.
    links: HashMap<(u64, u64), Vec<u8>>,
}

fn field(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

impl Digester<'_, '_> {
    /// Hashes one entry and what is below it. `shown` is its path in the
    /// copy as bytes: a name that is not UTF-8 counts as it is, never as a
    /// lossy string that another name shares.
    fn entry(
        &mut self,
        h: &mut blake3::Hasher,
        host: &Path,
        meta: &fs::Metadata,
        shown: &[u8],
        ctx: &str,
    ) -> Result<(), CopyError> {
        let ft = meta.file_type();
        let kind: &[u8] = if ft.is_dir() {
            b"d"
        } else if ft.is_symlink() {
            b"l"
        } else if ft.is_file() {
            b"f"
        } else if ft.is_fifo() {
            b"p"
        } else if ft.is_char_device() {
            b"c"
        } else if ft.is_block_device() {
            b"b"
        } else {
            // Sockets are not copied.
            return Ok(());
        };
        field(h, shown);
        field(h, kind);
        if !ft.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                field(h, b"hardlink");
                field(h, first);
                return Ok(());
            }
            self.links.insert(key, shown.to_vec());
        }
        field(h, &(meta.mode() & 0o7777).to_le_bytes());
        if self.keep_owner {
            field(h, &meta.uid().to_le_bytes());
            field(h, &meta.gid().to_le_bytes());
        }
        let attrs = xattr::read(host).map_err(io_err(host))?;
        h.update(&(attrs.len() as u64).to_le_bytes());
        for (name, value) in attrs {
            field(h, &name);
            field(h, &value);
        }
        if ft.is_file() {
            h.update(&meta.len().to_le_bytes());
            match self.files {
                Some(files) => {
                    let d = files.file_digest(host, meta).map_err(|e| CopyError::Io {
                        path: host.to_path_buf(),
                        source: io::Error::other(e.to_string()),
                    })?;
                    h.update(&d);
                }
                None => {
                    let mut f = fs::File::open(host).map_err(io_err(host))?;
                    io::copy(&mut f, h).map_err(io_err(host))?;
                }
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(host).map_err(io_err(host))?;
            field(h, target.as_os_str().as_encoded_bytes());
        } else if ft.is_char_device() || ft.is_block_device() {
            field(h, &meta.rdev().to_le_bytes());
        } else if ft.is_dir() {
            let mut names: Vec<_> = fs::read_dir(host)
                .map_err(io_err(host))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(io_err(host))?;
            names.sort();
            for name in names {
                // `.dockerignore` patterns are text; the digest takes the bytes.
                let n = name.to_string_lossy();
                let child_ctx = match ctx {
                    "" => n.to_string(),
                    c => format!("{c}/{n}"),
                };
                let mut child_shown = shown.to_vec();
                if !child_shown.is_empty() {
                    child_shown.push(b'/');
                }
                child_shown.extend_from_slice(name.as_bytes());
                let child = host.join(&name);
                let child_meta = fs::symlink_metadata(&child).map_err(io_err(&child))?;
                if let Some(ignore) = self.origin.ignore {
                    // Below an excluded directory only re-included (`!`)
                    // files count; the directory is walked to find them.
                    if ignore.matches(&child_ctx)
                        && (ignore.skips_dir(&child_ctx) || !child_meta.is_dir())
                    {
                        continue;
                    }
                }
                self.entry(h, &child, &child_meta, &child_shown, &child_ctx)?;
            }
            // Ends the directory, so moving a file out of it changes the digest.
            field(h, b"/");
        }
        Ok(())
    }
}
