//! RUN: a process on top of the stage's filesystem, with the stage's shell,
//! environment, user and working directory, and its `--mount`s
//! ([`super::mounts`]). `--security` and heredocs are refused until the
//! sandbox supports them.

use strata_parser::{Command, InstructionKind, Span};

use super::Lowerer;
use super::error::{LowerError, unsupported};
use super::metadata::cwd;
use super::stages::StageState;
use crate::graph::{EdgeRole, ExecOp, Input, NetworkMode, Op};

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
        if !heredocs.is_empty() {
            return unsupported(line, "RUN with a heredoc");
        }
        if security.is_some() {
            return unsupported(line, "RUN --security");
        }
        let argv = match command {
            Command::Exec(argv) => argv.clone(),
            Command::Shell(s) => st.config.shell_form(s),
        };
        let network = match network.as_ref().map(|f| f.value) {
            None => self.opts.network,
            Some(strata_parser::NetworkMode::Default) => NetworkMode::Default,
            Some(strata_parser::NetworkMode::None) => NetworkMode::None,
            Some(strata_parser::NetworkMode::Host) => NetworkMode::Host,
        };
        let cwd = cwd(&st.config);
        let mut inputs = vec![parent(st.last)];
        let mounts = self.run_mounts(st, mounts, &cwd, &mut inputs, line)?;
        let op = Op::Exec(ExecOp {
            argv: argv.clone(),
            env: st.scope.run_env(),
            user: st.config.config.user.clone(),
            cwd,
            network,
            mounts,
        });
        let origin = st.next_origin(text, span);
        st.last = self.graph.add_step(op, origin, inputs)?;
        st.config
            .history(format!("RUN {} # buildkit", argv.join(" ")), false);
        Ok(())
    }
}

/// The stage's filesystem so far, as a vertex's parent input.
pub(super) fn parent(v: crate::graph::VertexId) -> Input {
    Input {
        vertex: v,
        role: EdgeRole::Parent,
    }
}
