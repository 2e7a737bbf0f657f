//! `COPY --parents`: every source keeps its path below the destination, as
//! `cp --parents` or `rsync --relative` (the Dockerfile reference). A `/./`
//! in a source is the point the kept path starts from (`./x/./y/*.txt`
//! lands as `y/*.txt`); without one it starts at the root. As in BuildKit
//! (which copies from that point with the rest as an include pattern), the
//! rest may hold wildcards, `**` among them, and a matched directory is
//! copied whole. The directories on the way are made like copied
//! directories (the source's mode and owner, `--chmod`/`--chown` applied)
//! unless the destination has them already.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use strata_cache::pattern::Glob;

use super::select::has_wildcard;
use super::tree::Writer;
use super::{CopyError, Origin, rootpath};
use crate::path::clean_path;

/// Copies every source of a `--parents` COPY below `dest` (resolved,
/// relative to the destination root).
pub(super) fn copy_parents(
    w: &mut Writer<'_>,
    origin: &Origin,
    sources: &[String],
    dest: &str,
) -> Result<(), CopyError> {
    w.ensure_dirs(dest)?;
    let dest_host = w.host(dest);
    for source in sources {
        let (base, rest) = match source.split_once("/./") {
            Some((b, r)) => (b, r),
            None => ("", source.as_str()),
        };
        let base = relative(base);
        let rest = relative(rest);
        let base_host = rootpath::in_root(origin.root, &base, true).map_err(|e| io(&base, e))?;
        // Exclusions below a matched directory are relative to the point the
        // kept path starts from, as the include root of BuildKit's copy.
        w.base = base.clone();
        let copied = if has_wildcard(&rest) {
            let glob = Glob::new(&rest).map_err(|e| CopyError::BadPattern {
                pattern: source.clone(),
                why: e.why,
            })?;
            let mut walk = Walk {
                origin,
                glob: &glob,
                base: &base,
                copied: 0,
            };
            walk.dir(w, &base_host, "", &dest_host)?;
            walk.copied
        } else {
            copy_literal(w, origin, &base, &base_host, &rest, &dest_host, source)?
        };
        if copied == 0 {
            return Err(CopyError::NoMatch {
                pattern: source.clone(),
            });
        }
    }
    Ok(())
}

/// `p` cleaned, taken from the root, without its leading `/` (`""` is the root).
fn relative(p: &str) -> String {
    clean_path(&format!("/{p}"))
        .trim_start_matches('/')
        .to_string()
}

fn join(a: &str, b: &str) -> String {
    match (a, b) {
        ("", b) => b.to_string(),
        (a, "") => a.to_string(),
        (a, b) => format!("{a}/{b}"),
    }
}

fn io(path: &str, source: std::io::Error) -> CopyError {
    CopyError::Io {
        path: PathBuf::from(path),
        source,
    }
}

/// A source without wildcards: `rest` below `base`, with its directories.
fn copy_literal(
    w: &mut Writer<'_>,
    origin: &Origin,
    base: &str,
    base_host: &Path,
    rest: &str,
    dest_host: &Path,
    shown: &str,
) -> Result<usize, CopyError> {
    let (mut src, mut dst, mut ctx) = (
        base_host.to_path_buf(),
        dest_host.to_path_buf(),
        base.to_string(),
    );
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        src.push(part);
        dst.push(part);
        ctx = join(&ctx, part);
        let meta = fs::symlink_metadata(&src).map_err(|_| CopyError::NotFound {
            name: shown.to_string(),
        })?;
        if origin.ignore.is_some_and(|ig| ig.matches(&ctx)) {
            return Err(CopyError::NotFound {
                name: shown.to_string(),
            });
        }
        if i + 1 < parts.len() {
            if !meta.is_dir() {
                return Err(CopyError::NotFound {
                    name: shown.to_string(),
                });
            }
            w.mirror_dir(&dst, &src, &meta)?;
        } else {
            w.copy_entry(origin, &src, &meta, &ctx, &dst, false)?;
        }
    }
    if parts.is_empty() {
        // `x/./`: the directory's contents, as a plain COPY would.
        let meta = fs::metadata(&src).map_err(|e| io(base, e))?;
        w.copy_entry(origin, &src, &meta, &ctx, &dst, true)?;
    }
    Ok(1)
}

/// A walk below the base for a wildcard source.
struct Walk<'a> {
    origin: &'a Origin<'a>,
    glob: &'a Glob,
    base: &'a str,
    copied: usize,
}

impl Walk<'_> {
    /// Walks the source directory `src` (at `rel` below the base); `dst`
    /// is where it lands. Directories are made only on the way to a match.
    fn dir(
        &mut self,
        w: &mut Writer<'_>,
        src: &Path,
        rel: &str,
        dst: &Path,
    ) -> Result<(), CopyError> {
        let Ok(entries) = fs::read_dir(src) else {
            return Ok(());
        };
        let mut names: Vec<OsString> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            let child_rel = join(rel, &name.to_string_lossy());
            let ctx = join(self.base, &child_rel);
            let child = src.join(&name);
            let Ok(meta) = fs::symlink_metadata(&child) else {
                continue;
            };
            if let Some(ignore) = self.origin.ignore
                && ignore.matches(&ctx)
                && (!meta.is_dir() || ignore.skips_dir(&ctx))
            {
                continue;
            }
            if let Some(x) = w.exclude
                && x.matches(&child_rel)
                && (!meta.is_dir() || x.skips_dir(&child_rel))
            {
                continue;
            }
            let child_dst = dst.join(&name);
            if self.glob.matches(&child_rel) {
                self.ensure_parents(w, src, rel, dst)?;
                w.copy_entry(self.origin, &child, &meta, &ctx, &child_dst, false)?;
                self.copied += 1;
            } else if meta.is_dir() {
                self.dir(w, &child, &child_rel, &child_dst)?;
            }
        }
        Ok(())
    }

    /// Makes the directories from the base down to `dst` (the source
    /// directory `src`, at `rel`), so a match inside can land.
    fn ensure_parents(
        &self,
        w: &mut Writer<'_>,
        src: &Path,
        rel: &str,
        dst: &Path,
    ) -> Result<(), CopyError> {
        if rel.is_empty() {
            return Ok(());
        }
        let depth = rel.split('/').count();
        let (mut s, mut d) = (src.to_path_buf(), dst.to_path_buf());
        let mut chain = Vec::with_capacity(depth);
        for _ in 0..depth {
            chain.push((s.clone(), d.clone()));
            s.pop();
            d.pop();
        }
        for (s, d) in chain.into_iter().rev() {
            let meta = fs::symlink_metadata(&s).map_err(|e| CopyError::Io {
                path: s.clone(),
                source: e,
            })?;
            w.mirror_dir(&d, &s, &meta)?;
        }
        Ok(())
    }
}
