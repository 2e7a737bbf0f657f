//! COPY and ADD into a new layer directory, with docker build's (BuildKit's)
//! rules: which files a source names, where they land, how they are owned,
//! moded and timed, and what `.dockerignore` leaves out.
//!
//! Sources are read below `src_root` as if it were `/`: `..` stops there and
//! symlinks are resolved inside it. The destination is resolved the same way
//! in the destination stage's filesystem, and entries are written into the
//! empty `layer` directory in overlay diff form (a directory the stage
//! already has is recreated there with its existing mode, owner and mtime).

mod digest;
pub mod mode;
mod parents;
pub(crate) mod rootpath;
mod select;
mod tree;
mod xattr;

use std::io;
use std::path::{Path, PathBuf};

use strata_cache::{ContextHasher, DockerIgnore};

use super::user::{self, UserError};
use crate::graph::{Chown, FileMode};
use crate::path::clean_path;
use tree::{Apply, Writer};

/// One COPY or ADD, as the executor runs it.
#[derive(Debug, Clone, Copy)]
pub struct CopyRequest<'a> {
    /// The build context directory, or a merged read-only view of the
    /// `--from` stage or image.
    pub src_root: &'a Path,
    /// Whether the sources come from the context (`.dockerignore` applies,
    /// owners become 0:0).
    pub from_context: bool,
    /// The context's `.dockerignore`.
    pub ignore: &'a DockerIgnore,
    /// Sources as written after variable expansion; may hold wildcards.
    pub sources: &'a [String],
    /// Destination as written; a trailing `/` makes it a directory.
    pub dest: &'a str,
    /// Working directory a relative `dest` is joined to.
    pub cwd: &'a str,
    /// Merged read-only view of the destination stage's filesystem.
    pub parent_root: &'a Path,
    /// The new, empty layer directory to write into.
    pub layer: &'a Path,
    /// `--chown`, resolved against `parent_root`'s passwd and group files.
    pub chown: Option<&'a Chown>,
    /// Where `--chown` names are looked up (`/etc/passwd`, `/etc/group`):
    /// `parent_root`, or the stage's filesystem for a `--link` copy.
    pub users_root: &'a Path,
    /// `--chmod`, applied to every copied file and directory.
    pub chmod: Option<&'a FileMode>,
    /// ADD: a local tar archive is unpacked into `dest` instead of copied.
    pub extract_archives: bool,
    /// `--parents`: each source keeps its path below `dest`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: &'a [String],
    /// The most bytes an archive may decompress to.
    pub decompression_limit: u64,
}

/// What a copy wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Files, directories, symlinks and links copied (not the directories
    /// made for the destination).
    pub entries: u64,
    /// Bytes of regular file content copied.
    pub bytes: u64,
}

/// A COPY or ADD that cannot be carried out; each names its path.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Several sources need a directory destination.
    #[error(
        "When using {instruction} with more than one source file, the destination must be a directory and end with a /: {dest}"
    )]
    DestNotDir {
        /// `COPY` or `ADD`.
        instruction: &'static str,
        /// The destination as written.
        dest: String,
    },
    /// A source that does not exist.
    #[error("{name}: no such file or directory")]
    NotFound {
        /// The source as named.
        name: String,
    },
    /// A wildcard source that matches nothing.
    #[error("{pattern}: no source files were specified (the pattern matches no file)")]
    NoMatch {
        /// The pattern as written.
        pattern: String,
    },
    /// No sources at all.
    #[error("no source files were specified")]
    NoSources,
    /// A `--chmod` that is neither octal nor a valid symbolic mode.
    #[error("--chmod: {0}")]
    BadMode(#[from] mode::BadMode),
    /// A malformed `--exclude` pattern.
    #[error("--exclude={pattern}: {why}")]
    BadExclude {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        why: String,
    },
    /// A malformed wildcard.
    #[error("{pattern}: bad wildcard pattern: {why}")]
    BadPattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A source that `.dockerignore` leaves out of the context.
    #[error("{name}: excluded by .dockerignore line {line} (`{pattern}`)")]
    Excluded {
        /// The source as named.
        name: String,
        /// The line of the pattern that excluded it.
        line: usize,
        /// That pattern.
        pattern: String,
    },
    /// A path the destination needs as a directory is something else.
    #[error("{path}: not a directory in the destination")]
    NotADirectory {
        /// The path in the destination filesystem.
        path: String,
    },
    /// A file would replace a directory the destination has.
    #[error("{path}: cannot replace a directory with a file")]
    IsADirectory {
        /// The path in the destination filesystem.
        path: String,
    },
    /// `--chown` names an unknown user or group.
    #[error("--chown={spec}: {source}")]
    Chown {
        /// `user[:group]` as written.
        spec: String,
        /// Why it could not be resolved.
        #[source]
        source: UserError,
    },
    /// An ADD archive that cannot be unpacked.
    #[error("cannot extract {path}: {source}")]
    Archive {
        /// The archive, as named.
        path: String,
        /// Why.
        #[source]
        source: strata_cache::UnpackError,
    },
    /// The build was cancelled.
    #[error("copy cancelled")]
    Cancelled,
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

/// Where sources are read from, and the `.dockerignore` that applies there
/// (only for the context).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    root: &'a Path,
    ignore: Option<&'a DockerIgnore>,
}

/// `--chmod`, parsed.
#[derive(Debug, Clone)]
pub(crate) enum Chmod {
    Octal(u32),
    Symbolic(mode::Symbolic),
}

/// `--exclude` patterns as a matcher with `.dockerignore`'s rules (BuildKit
/// hands both to the same pattern matcher): a pattern excludes what it
/// matches and everything below; `!` re-includes.
fn exclusions(patterns: &[String]) -> Result<Option<DockerIgnore>, CopyError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    // One line each; `./` keeps a leading `#` from reading as a comment
    // (the pattern is cleaned, so it matches the same paths).
    let lines: Vec<String> = patterns
        .iter()
        .map(|p| {
            if p.starts_with('#') {
                format!("./{p}")
            } else {
                p.replace('\n', " ")
            }
        })
        .collect();
    DockerIgnore::parse(&lines.join("\n"))
        .map(Some)
        .map_err(|e| CopyError::BadExclude {
            pattern: patterns
                .get(e.line.saturating_sub(1))
                .cloned()
                .unwrap_or_default(),
            why: e.cause,
        })
}

/// Carries out one COPY or ADD into `req.layer`. `cancelled` is asked
/// between entries; when it says so the copy stops with [`CopyError::Cancelled`].
pub fn copy(req: &CopyRequest<'_>, cancelled: &dyn Fn() -> bool) -> Result<CopyStats, CopyError> {
    let origin = Origin {
        root: req.src_root,
        ignore: req.from_context.then_some(req.ignore),
    };
    let chmod = match req.chmod {
        None => None,
        Some(FileMode::Octal(m)) => Some(Chmod::Octal(*m)),
        Some(FileMode::Symbolic(s)) => Some(Chmod::Symbolic(mode::Symbolic::parse(s)?)),
    };
    let exclude = exclusions(req.exclude)?;
    let owner = req
        .chown
        .map(|c| {
            user::resolve_chown(req.users_root, &c.user, c.group.as_deref()).map_err(|source| {
                CopyError::Chown {
                    spec: match &c.group {
                        Some(g) => format!("{}:{g}", c.user),
                        None => c.user.clone(),
                    },
                    source,
                }
            })
        })
        .transpose()?;
    if req.sources.is_empty() {
        return Err(CopyError::NoSources);
    }
    let apply = Apply {
        owner,
        chmod: chmod.as_ref(),
        keep_owner: !req.from_context,
    };
    let mut w = Writer::new(req.layer, req.parent_root, apply, cancelled);
    w.exclude = exclude.as_ref();
    let dest_abs = if req.dest.starts_with('/') {
        clean_path(req.dest)
    } else {
        let cwd = if req.cwd.is_empty() { "/" } else { req.cwd };
        clean_path(&format!("{cwd}/{}", req.dest))
    };
    let dest = resolve_dest(req, &dest_abs)?;
    if req.parents {
        parents::copy_parents(&mut w, &origin, req.sources, &dest)?;
        return w.finish();
    }
    let mut sources = select::expand_all(&origin, req.sources)?;
    if let Some(x) = &exclude {
        // The documented rule: a source whose path matches an `--exclude`
        // pattern is not copied, even when a wildcard selected it.
        sources.retain(|s| !x.matches(&s.named));
    }
    let dir_syntax = req.dest.is_empty()
        || req.dest.ends_with('/')
        || req.dest == "."
        || req.dest.ends_with("/.");
    if sources.len() > 1 && !dir_syntax {
        return Err(CopyError::DestNotDir {
            instruction: if req.extract_archives { "ADD" } else { "COPY" },
            dest: req.dest.to_string(),
        });
    }
    for src in &sources {
        w.base = src.resolved.clone();
        if req.extract_archives
            && src.meta.is_file()
            && extract(&mut w, src, &dest, owner, req.decompression_limit)?
        {
            continue;
        }
        let (host, top_existed) = if src.meta.is_dir() {
            // A directory's contents go into the destination directory. As
            // BuildKit (fsutil's `prepareTargetDir`), a missing one is made
            // first like every directory of the path (0755, --chown's
            // owner), whatever its spelling: the source directory's own
            // mode and owner are never given to it, only its times.
            w.ensure_dirs(&dest)?;
            (w.host(&dest), true)
        } else if dir_syntax || w.is_dir(&dest) {
            w.ensure_dirs(&dest)?;
            // The name as it is, bytes and all.
            let name = src.named_os.file_name().unwrap_or_default();
            (w.host(&dest).join(name), false)
        } else {
            w.ensure_dirs(parent_of(&dest))?;
            (w.host(&dest), false)
        };
        w.copy_entry(
            &origin,
            &src.host,
            &src.meta,
            &src.resolved,
            &host,
            top_existed,
        )?;
    }
    w.finish()
}

/// ADD: unpacks `src` into the directory `dest` when its content is a tar
/// archive (plain or gzip, bzip2, xz, zstd compressed, whatever its name);
/// `false`, having written nothing, for any other file. As in BuildKit the
/// destination is a directory whatever its spelling, made 0755 and owned by
/// `--chown`'s user when new, and entries keep the archive's owners unless
/// `--chown` is given.
fn extract(
    w: &mut Writer<'_>,
    src: &select::Source,
    dest: &str,
    owner: Option<(u32, u32)>,
    limit: u64,
) -> Result<bool, CopyError> {
    let archive_err = |source| CopyError::Archive {
        path: src.named.clone(),
        source,
    };
    w.ensure_dirs(parent_of(dest))?;
    let existed = w.is_dir(dest);
    if existed {
        w.ensure_dirs(dest)?;
    }
    let file = std::fs::File::open(&src.host).map_err(|source| CopyError::Io {
        path: src.host.clone(),
        source,
    })?;
    let host = w.host(dest);
    let unpacked = strata_cache::extract_archive(io::BufReader::new(file), &host, owner, limit)
        .map_err(archive_err)?;
    if unpacked && !existed {
        w.adopt_new_dir(dest)?;
    }
    Ok(unpacked)
}

/// A blake3 hex digest of exactly what `sources` select below `src_root`
/// (paths, types, modes, contents, symlink targets; owners too outside the
/// context; never times), for the cache key. Fails like [`copy`] would on a
/// missing, excluded or unmatched source.
///
/// With `files`, file contents are digested through its metadata cache, so a
/// rebuild reads only the files that changed.
pub fn selection_digest(
    src_root: &Path,
    sources: &[String],
    ignore: &DockerIgnore,
    from_context: bool,
    files: Option<&ContextHasher>,
) -> Result<String, CopyError> {
    let origin = Origin {
        root: src_root,
        ignore: from_context.then_some(ignore),
    };
    let selected = select::expand_all(&origin, sources)?;
    digest::digest(&origin, &selected, files)
}

/// `dest_abs` with its symlinks resolved in the destination filesystem as
/// the copy will see it: what this layer already has over the parent's.
fn resolve_dest(req: &CopyRequest<'_>, dest_abs: &str) -> Result<String, CopyError> {
    let link_of = |rel: &Path| match std::fs::symlink_metadata(req.layer.join(rel)) {
        Ok(m) if m.file_type().is_symlink() => std::fs::read_link(req.layer.join(rel)).map(Some),
        Ok(_) => Ok(None),
        Err(_) => rootpath::link_in(req.parent_root, rel),
    };
    // The destination is written in the Dockerfile (UTF-8); only a symlink
    // target on the way could be otherwise, and is read lossily.
    rootpath::resolve(dest_abs, true, &link_of)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|source| CopyError::Io {
            path: PathBuf::from(dest_abs),
            source,
        })
}

fn parent_of(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(p, _)| p)
}
