//! RUN: a process on top of the stage's filesystem, with the stage's shell,
//! environment, user and working directory, and its `--mount`s
//! ([`super::mounts`]); heredocs are lowered in [`super::heredoc`].
//! `--network=host` and `--security=insecure` need their entitlements
//! ([`super::entitlements`]).

use strata_parser::{Command, Flag, InstructionKind, NetworkMode, Security, Span};

use super::Lowerer;
use super::entitlements::Entitlement;
use super::error::LowerError;
use super::metadata::cwd;
use super::stages::StageState;
use crate::graph::{EdgeRole, ExecOp, Input, Op};

impl Lowerer<'_> {
    /// `RUN` (`kind` is an [`InstructionKind::Run`]).
    pub(super) fn run(
        &mut self,
        st: &mut StageState,
        kind: &InstructionKind,
        text: String,
        span: Span,
    ) -> Result<(), LowerError> {
        let line = span.line;
        let InstructionKind::Run {
            mounts,
            network,
            security,
            command,
            heredocs,
        } = kind
        else {
            return Ok(());
        };
        let host = (NetworkMode::Host, "--network=host");
        let network = self.entitled(line, network, host, Entitlement::NetworkHost)?;
        let insecure = (Security::Insecure, "--security=insecure");
        let security = self.entitled(line, security, insecure, Entitlement::SecurityInsecure)?;
        let argv = match command {
            Command::Exec(argv) => argv.clone(),
            Command::Shell(s) if !heredocs.is_empty() => {
                super::heredoc::run_argv(s, heredocs, |c| st.config.shell_form(c))
            }
            Command::Shell(s) => st.config.shell_form(s),
        };
        let network = network.unwrap_or(self.opts.network);
        let cwd = cwd(&st.config);
        let mut inputs = vec![parent(st.last)];
        let mounts = self.run_mounts(st, mounts, &cwd, &mut inputs, line)?;
        let op = Op::Exec(ExecOp {
            argv: argv.clone(),
            env: st.scope.run_env(),
            user: st.config.config.user.clone(),
            cwd,
            network,
            security: security.unwrap_or_default(),
            mounts,
        });
        let origin = st.next_origin(text, span);
        st.last = self.graph.add_step(op, origin, inputs)?;
        st.config
            .history(format!("RUN {} # buildkit", argv.join(" ")), false);
        Ok(())
    }

    /// The flag's value, refused when it is `(value, written)` and the build was not
    /// given `entitlement`.
    fn entitled<T: Copy + PartialEq>(
        &self,
        line: u32,
        flag: &Option<Flag<T>>,
        (needs_entitlement, written): (T, &str),
        entitlement: Entitlement,
    ) -> Result<Option<T>, LowerError> {
        let Some(flag) = flag else { return Ok(None) };
        if flag.value == needs_entitlement && !self.opts.entitlements.allows(entitlement) {
            return Err(LowerError::NotEntitled {
                line,
                span: Some(flag.span),
                what: format!("RUN {written}"),
                entitlement,
            });
        }
        Ok(Some(flag.value))
    }
}

/// The stage's filesystem so far, as a vertex's parent input.
pub(super) fn parent(v: crate::graph::VertexId) -> Input {
    Input {
        vertex: v,
        role: EdgeRole::Parent,
    }
}
