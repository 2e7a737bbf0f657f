//! COPY and ADD: files from the build context, an earlier stage or an image
//! (`--from`), or heredocs, into a new layer, with `--chown`/`--chmod`,
//! `--parents`, `--exclude` and `--link`; ADD also unpacks local archives.
//! Context sources carry the digest of what they select, so the step's key
//! follows the files.
//!
//! `--link` (the Dockerfile reference): the copy is made on the empty
//! filesystem, not on the stage, and its layer is then stacked on the
//! stage's. Its key leaves the stage out, so changing an earlier step or the
//! base image neither reruns it nor changes its blob; the destination's
//! directories are plain new ones (no symlink of the stage is followed). A
//! `--chown` by name still reads the stage's `/etc/passwd` and `/etc/group`,
//! which then key the copy like its parent would.

use strata_parser::{AddOptions, Chmod, CopySpec, Span};

use super::Lowerer;
use super::error::{LowerError, unsupported};
use super::heredoc;
use super::metadata::cwd;
use super::run::parent;
use super::stages::StageState;
use crate::graph::{Chown, CopyOp, CopySource, EdgeRole, FileMode, Input, Op, Selection};
use crate::ops::copy::mode::Symbolic;

impl Lowerer<'_> {
    /// `ADD`: a COPY that unpacks local archives unless `--unpack=false`.
    pub(super) fn add(
        &mut self,
        st: &mut StageState,
        spec: &CopySpec,
        opts: &AddOptions,
        text: String,
        span: Span,
    ) -> Result<(), LowerError> {
        let line = span.line;
        if opts.checksum.is_some() || opts.keep_git_dir {
            return unsupported(line, "ADD --checksum/--keep-git-dir");
        }
        if spec
            .sources
            .iter()
            .any(|s| s.contains("://") || s.starts_with("git@"))
        {
            return unsupported(line, "ADD from a URL");
        }
        self.copy(st, spec, opts.unpack.unwrap_or(true), text, span)
    }

    /// `COPY` (and ADD's copy, `extract_archives` set).
    pub(super) fn copy(
        &mut self,
        st: &mut StageState,
        spec: &CopySpec,
        extract_archives: bool,
        text: String,
        span: Span,
    ) -> Result<(), LowerError> {
        let line = span.line;
        let (paths, docs) =
            heredoc::split_sources(&spec.sources, &spec.heredocs).ok_or_else(|| {
                LowerError::Invalid {
                    line,
                    message: "a heredoc must stand for a source (COPY <<EOF /dest)".into(),
                }
            })?;
        let scope = &st.scope;
        let inline = docs
            .iter()
            .map(|d| {
                if d.name.contains('/') || d.name == "." || d.name == ".." {
                    return Err(LowerError::Invalid {
                        line,
                        message: format!("heredoc {:?} cannot name a file", d.name),
                    });
                }
                heredoc::inline_file(d, scope).map_err(|e| self.expand_error(line, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut inputs = vec![parent(st.last)];
        let source = match &spec.from {
            None => CopySource::Context { name: ".".into() },
            Some(f) => {
                let from = self.expand(scope, &f.value, line)?;
                let vertex = self.source_vertex(&from, line)?;
                inputs.push(Input {
                    vertex,
                    role: EdgeRole::CopyFrom,
                });
                CopySource::Vertex
            }
        };
        let selections = paths
            .iter()
            .map(|s| {
                let path = self.expand(scope, s, line)?;
                let digest = match (&source, &self.opts.context) {
                    (CopySource::Context { .. }, Some(files)) => files
                        .digest(&path)
                        .unwrap_or_else(|why| format!("unreadable: {why}")),
                    _ => String::new(),
                };
                Ok(Selection { path, digest })
            })
            .collect::<Result<Vec<_>, LowerError>>()?;
        let dest = self.expand(scope, &spec.dest, line)?;
        if inline.len() + selections.len() > 1 && !inline.is_empty() && !is_dir_syntax(&dest) {
            return Err(LowerError::Invalid {
                line,
                message: format!(
                    "with more than one source the destination must be a directory and end with a /: {dest}"
                ),
            });
        }
        let chown = match &spec.chown {
            None => None,
            Some(c) => Some(Chown {
                user: self.expand(scope, &c.value.user, line)?,
                group: match &c.value.group {
                    Some(g) => Some(self.expand(scope, g, line)?),
                    None => None,
                },
            }),
        };
        let chmod = match &spec.chmod {
            None => None,
            Some(c) => match &c.value {
                Chmod::Octal(m) => Some(FileMode::Octal(*m)),
                Chmod::Unexpanded(w) => Some(file_mode(&self.expand(scope, w, line)?, line)?),
            },
        };
        let exclude = spec
            .exclude
            .iter()
            .map(|p| self.expand(scope, p, line))
            .collect::<Result<Vec<_>, _>>()?;
        let named_owner = chown
            .as_ref()
            .is_some_and(|c| !numeric(&c.user) || c.group.as_deref().is_some_and(|g| !numeric(g)));
        let op = Op::Copy(CopyOp {
            source,
            selections,
            dest,
            cwd: cwd(&st.config),
            chown,
            chmod,
            extract_archives,
            inline,
            parents: spec.parents,
            exclude,
        });
        let origin = st.next_origin(text.clone(), span);
        if spec.link {
            let stage = st.last;
            let empty = self.graph.add(
                Op::SourceScratch,
                format!("[internal] empty filesystem for {}", origin.position()),
                vec![],
            )?;
            inputs[0] = parent(empty);
            if named_owner {
                inputs.push(Input {
                    vertex: stage,
                    role: EdgeRole::Users,
                });
            }
            let position = origin.position();
            let linked = self.graph.add_step(op, origin, inputs)?;
            st.last = self.graph.add(
                Op::Link,
                format!("[internal] link the layer of {position}"),
                vec![
                    parent(stage),
                    Input {
                        vertex: linked,
                        role: EdgeRole::Linked,
                    },
                ],
            )?;
        } else {
            st.last = self.graph.add_step(op, origin, inputs)?;
        }
        st.config.history(format!("{text} # buildkit"), false);
        Ok(())
    }
}

/// A `--chmod` after expansion: octal (up to 7777) or symbolic.
fn file_mode(s: &str, line: u32) -> Result<FileMode, LowerError> {
    if let Ok(m) = u32::from_str_radix(s, 8)
        && m <= 0o7777
    {
        return Ok(FileMode::Octal(m));
    }
    Symbolic::parse(s)
        .map(|m| FileMode::Symbolic(m.to_string()))
        .map_err(|e| LowerError::Invalid {
            line,
            message: format!(
                "--chmod={s} is neither an octal mode nor a symbolic one: {}",
                e.why
            ),
        })
}

fn numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A destination that names a directory whatever exists there.
fn is_dir_syntax(dest: &str) -> bool {
    dest.is_empty() || dest.ends_with('/') || dest == "." || dest.ends_with("/.")
}
