//! Which files a COPY source names: `..` clamped at the root, wildcards
//! expanded one path component at a time (Go `filepath.Match` syntax), the
//! named path's symlinks followed inside the root, and `.dockerignore`
//! applied to context sources.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use strata_cache::pattern::Glob;

use super::rootpath;
use super::{CopyError, Origin};

/// One source after expansion.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The path as named (wildcards expanded), relative to the root, for
    /// messages and patterns (a name that is not UTF-8 shows U+FFFD).
    pub named: String,
    /// The same path, byte for byte: its last component names the copy
    /// when it lands inside a directory.
    pub named_os: PathBuf,
    /// Where it really is, relative to the root (symlinks followed); the
    /// `.dockerignore` paths of entries below it start here.
    pub resolved: String,
    /// `resolved` on the host.
    pub host: PathBuf,
    /// Its metadata (of the link target when it was a symlink).
    pub meta: fs::Metadata,
}

/// Expands every source in order; each wildcard's matches are sorted.
pub(crate) fn expand_all(origin: &Origin, sources: &[String]) -> Result<Vec<Source>, CopyError> {
    let mut out = Vec::new();
    for s in sources {
        out.extend(expand(origin, s)?);
    }
    Ok(out)
}

fn expand(origin: &Origin, source: &str) -> Result<Vec<Source>, CopyError> {
    // Like BuildKit, the source is taken from the root: `../x` and `/x` are `x`.
    let clean = crate::path::clean_path(&format!("/{source}"));
    let clean = clean.trim_start_matches('/');
    if !has_wildcard(clean) {
        return Ok(vec![lookup(origin, Path::new(clean), source)?]);
    }
    // Paths are bytes: a name that is not UTF-8 is matched as Go matches it
    // (each invalid byte one U+FFFD) and kept as it is.
    let mut found: Vec<PathBuf> = vec![PathBuf::new()];
    for part in clean.split('/') {
        let mut next = Vec::new();
        for dir in &found {
            if !has_wildcard(part) {
                let candidate = dir.join(unescape(part));
                if exists(origin, &candidate)? {
                    next.push(candidate);
                }
                continue;
            }
            let glob = Glob::new(&collapse_stars(part)).map_err(|e| CopyError::BadPattern {
                pattern: source.to_string(),
                why: e.why,
            })?;
            let shown = dir.to_string_lossy();
            let host = rootpath::in_root(origin.root, dir, true).map_err(io_err(&shown))?;
            let Ok(entries) = fs::read_dir(&host) else {
                continue;
            };
            let mut names: Vec<OsString> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .filter(|n| glob.matches(&go_string(n)))
                .collect();
            names.sort();
            next.extend(names.iter().map(|n| dir.join(n)));
        }
        found = next;
    }
    // Files the context does not send are not there to match.
    if let Some(ignore) = origin.ignore {
        found.retain(|p| {
            let p = p.to_string_lossy();
            !ignore.matches(&p) || walked_for_exceptions(origin, ignore, &p)
        });
    }
    if found.is_empty() {
        return Err(CopyError::NoMatch {
            pattern: source.to_string(),
        });
    }
    found
        .iter()
        .map(|p| lookup(origin, p, &p.to_string_lossy()))
        .collect::<Result<_, _>>()
}

/// A name as Go's `filepath.Match` sees it: UTF-8 with each byte that is
/// not part of a valid sequence read as U+FFFD.
fn go_string(name: &OsStr) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().map(|_| char::REPLACEMENT_CHARACTER));
    }
    out
}

/// The source at `rel`, named `shown` in messages.
fn lookup(origin: &Origin, rel: &Path, shown: &str) -> Result<Source, CopyError> {
    let rel_s = rel.to_string_lossy().into_owned();
    check_ignored(origin, &rel_s, shown)?;
    let resolved = rootpath::resolve(rel, true, &|r| rootpath::link_in(origin.root, r))
        .map_err(io_err(shown))?;
    let resolved_s = resolved.to_string_lossy().into_owned();
    if resolved != rel {
        check_ignored(origin, &resolved_s, shown)?;
    }
    let host = if resolved.as_os_str().is_empty() {
        origin.root.to_path_buf()
    } else {
        origin.root.join(&resolved)
    };
    let meta = fs::symlink_metadata(&host).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CopyError::NotFound {
            name: shown.to_string(),
        },
        _ if e.raw_os_error() == Some(20) => CopyError::NotFound {
            name: shown.to_string(),
        },
        _ => io_err(shown)(e),
    })?;
    Ok(Source {
        named: rel_s,
        named_os: rel.to_path_buf(),
        resolved: resolved_s,
        host,
        meta,
    })
}

fn check_ignored(origin: &Origin, rel: &str, shown: &str) -> Result<(), CopyError> {
    let Some(ignore) = origin.ignore else {
        return Ok(());
    };
    if rel.is_empty() {
        return Ok(());
    }
    match ignore.excluded_by(rel) {
        Some(_) if walked_for_exceptions(origin, ignore, rel) => Ok(()),
        Some((line, pattern)) => Err(CopyError::Excluded {
            name: shown.to_string(),
            line,
            pattern: pattern.to_string(),
        }),
        None => Ok(()),
    }
}

/// An excluded directory is still sent (and so can be named) when `!`
/// patterns may re-include something below it; the copy then keeps only that.
fn walked_for_exceptions(origin: &Origin, ignore: &strata_cache::DockerIgnore, rel: &str) -> bool {
    !ignore.skips_dir(rel) && rootpath::in_root(origin.root, rel, true).is_ok_and(|p| p.is_dir())
}

fn exists(origin: &Origin, rel: &Path) -> Result<bool, CopyError> {
    let shown = rel.to_string_lossy();
    let host = rootpath::in_root(origin.root, rel, false).map_err(io_err(&shown))?;
    Ok(fs::symlink_metadata(host).is_ok())
}

fn io_err(name: &str) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: PathBuf::from(name),
        source,
    }
}

/// Whether `s` has an unescaped `*`, `?` or `[`.
pub(crate) fn has_wildcard(s: &str) -> bool {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// A literal component of a wildcard source: `\x` is `x`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// In one component `**` means what `*` means (Go); the shared glob reads
/// `**` as crossing directories, so runs of stars become one.
fn collapse_stars(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                out.extend(chars.next());
                continue;
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '*' if !in_class && out.ends_with('*') && !out.ends_with("\\*") => continue,
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_helpers() {
        assert!(has_wildcard("a*.txt"));
        assert!(has_wildcard("[ab]"));
        assert!(!has_wildcard("a\\*.txt"));
        assert_eq!(unescape("a\\*b"), "a*b");
        assert_eq!(collapse_stars("a**b"), "a*b");
        assert_eq!(collapse_stars("\\**"), "\\**");
        assert_eq!(collapse_stars("[*]*"), "[*]*");
    }
}
