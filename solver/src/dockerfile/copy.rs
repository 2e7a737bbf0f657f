//! COPY and ADD: files from the build context, an earlier stage or an image
//! (`--from`) into a new layer, with `--chown`/`--chmod`; ADD also unpacks
//! local archives. Context sources carry the digest of what they select, so
//! the step's key follows the files.

use strata_parser::{AddOptions, Chmod, CopySpec, Span};

use super::Lowerer;
use super::error::{LowerError, unsupported};
use super::metadata::cwd;
use super::run::parent;
use super::stages::StageState;
use crate::graph::{Chown, CopyOp, CopySource, EdgeRole, Input, Op, Selection};

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
        if !spec.heredocs.is_empty() {
            return unsupported(line, "COPY with a heredoc");
        }
        if spec.parents || !spec.exclude.is_empty() {
            return unsupported(line, "COPY --parents/--exclude");
        }
        let scope = &st.scope;
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
        let selections = spec
            .sources
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
                Chmod::Octal(m) => Some(*m),
                Chmod::Unexpanded(w) => {
                    let s = self.expand(scope, w, line)?;
                    Some(u32::from_str_radix(&s, 8).map_err(|_| LowerError::Invalid {
                        line,
                        message: format!("--chmod={s} is not an octal mode"),
                    })?)
                }
            },
        };
        let op = Op::Copy(CopyOp {
            source,
            selections,
            dest,
            cwd: cwd(&st.config),
            chown,
            chmod,
            extract_archives,
        });
        let origin = st.next_origin(text.clone(), span);
        st.last = self.graph.add_step(op, origin, inputs)?;
        st.config.history(format!("{text} # buildkit"), false);
        Ok(())
    }
}
