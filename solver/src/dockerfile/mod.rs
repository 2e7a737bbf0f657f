//! The Dockerfile front end: a parsed Dockerfile, build args and a target
//! become a [`BuildGraph`]. The only part of the solver that knows
//! Dockerfiles (or the parser); `graph`, `schedule` and `ops` see the graph.
//!
//! Every stage becomes a chain of vertices (FROM, then one per RUN, COPY,
//! ADD and WORKDIR), each with an [`Origin`] (stage, step k of n, the
//! instruction's text and span); metadata instructions fold into the stage's
//! [`ImageConfig`]. Stages up to the target are lowered; the scheduler runs
//! only what the target needs. Base images are resolved while lowering (their
//! config starts the stage, their digest keys the source vertex) and COPY
//! sources are digested for their keys, as are the context files a RUN
//! bind mount exposes. Remote ADD is refused as unsupported.
//!
//! One file per instruction group: [`base`] (FROM, `--from` images, ONBUILD
//! triggers), [`run`], [`mounts`] (`RUN --mount`), [`copy`] (COPY/ADD),
//! [`heredoc`] (heredocs of RUN and COPY/ADD), [`metadata`] (the image config
//! rules, WORKDIR), [`scope`] (ARG/ENV), [`stages`] (stage references,
//! targets, step numbering) and [`ignore`] (the Dockerfile's default name and
//! its ignore file). This file dispatches.

mod base;
mod checks;
mod copy;
mod entitlements;
mod error;
mod heredoc;
mod ignore;
mod metadata;
mod mounts;
mod run;
mod scope;
mod stages;

use std::sync::Arc;

use strata_parser::shell::{Env, ExpandError, Lexer};
use strata_parser::{Dockerfile, Instruction, InstructionKind, NetworkMode, Span};
use strata_registry::{Platform, platform};

use crate::graph::{BuildGraph, VertexId};
use crate::image_config::ImageConfig;
use crate::sources::{ContextFiles, ImageResolver};

pub(crate) use checks::secrets_in_arg_or_env;
pub use entitlements::{Entitlement, Entitlements, UnknownEntitlement};
pub use error::LowerError;
pub use ignore::{IgnoreError, dockerfile_path, read_ignore};
pub use scope::{BuildArgError, BuildArgs, ScopeTooLarge};
pub use stages::{NamedContext, RefError, parse_build_context};

use metadata::StageConfig;
use scope::{GlobalArgs, platform_args};
use stages::StageState;

/// What `lower` needs besides the Dockerfile.
#[derive(Debug, Default)]
pub struct LowerOptions {
    /// `--build-arg` values.
    pub build_args: BuildArgs,
    /// `--target`; the last stage when `None`.
    pub target: Option<String>,
    /// `--build-context NAME=...` replacements.
    pub build_contexts: Vec<NamedContext>,
    /// `--network` for RUNs without `--network`.
    pub network: NetworkMode,
    /// `--allow`: what RUN may do beyond the sandbox.
    pub entitlements: Entitlements,
    /// The platform built for; the host's when `None`.
    pub platform: Option<Platform>,
    /// Resolves base images to a digest and a config; without one, images
    /// stay unresolved names with an empty config.
    pub images: Option<Arc<dyn ImageResolver>>,
    /// Digests what COPY/ADD select in the build context, for their cache
    /// keys; without one, keys cover the source names only.
    pub context: Option<Arc<dyn ContextFiles>>,
}

/// The lowered build.
#[derive(Debug)]
pub struct Lowered {
    /// The graph, with cache keys computed.
    pub graph: BuildGraph,
    /// The target stage's last vertex.
    pub target: VertexId,
    /// The target stage's image config.
    pub config: ImageConfig,
    /// Each lowered stage's name (if it has one) and the vertices it added.
    pub stages: Vec<(Option<String>, Vec<VertexId>)>,
}

/// A lowered stage: its last vertex and its config.
struct Done {
    last: VertexId,
    config: StageConfig,
}

struct Lowerer<'a> {
    src: &'a str,
    opts: &'a LowerOptions,
    lexer: Lexer,
    /// The instruction being lowered, where expansion errors point.
    at: Span,
    globals: GlobalArgs,
    graph: BuildGraph,
    names: Vec<Option<String>>,
    done: Vec<Done>,
}

/// Lowers a parsed Dockerfile (`src` is its text, for step names).
pub fn lower(df: &Dockerfile, src: &str, opts: &LowerOptions) -> Result<Lowered, LowerError> {
    if df.stages.is_empty() {
        return Err(LowerError::NoStage);
    }
    if opts.network == NetworkMode::Host && !opts.entitlements.allows(Entitlement::NetworkHost) {
        return Err(LowerError::NotEntitled {
            line: 0,
            span: None,
            what: "--network=host".into(),
            entitlement: Entitlement::NetworkHost,
        });
    }
    let host = platform::host();
    let target_platform = opts.platform.clone().unwrap_or_else(|| host.clone());
    let mut l = Lowerer {
        src,
        opts,
        lexer: Lexer::new(df.escape),
        at: Span::default(),
        globals: GlobalArgs::new(platform_args(&host, &target_platform)),
        graph: BuildGraph::new(),
        names: df.stages.iter().map(|s| s.name.clone()).collect(),
        done: Vec::new(),
    };
    l.global_args(&df.global_args)?;
    let target = stages::target_stage(&l.names, opts.target.as_deref())
        .map_err(|source| LowerError::Ref { line: 0, source })?;
    let mut stages = Vec::new();
    for (i, stage) in df.stages.iter().enumerate() {
        let before: std::collections::HashSet<VertexId> = l.graph.ids().into_iter().collect();
        let done = l.stage(i, stage)?;
        l.done.push(done);
        let added = l.graph.ids().into_iter().filter(|v| !before.contains(v));
        stages.push((stage.name.clone(), added.collect()));
        if i == target {
            break;
        }
    }
    let Some(last) = l.done.get(target) else {
        return Err(LowerError::NoStage);
    };
    let (target_vertex, config) = (last.last, last.config.config.clone());
    l.graph.compute_keys()?;
    Ok(Lowered {
        graph: l.graph,
        target: target_vertex,
        config,
        stages,
    })
}

impl Lowerer<'_> {
    fn expand(&self, scope: &impl Env, w: &str, line: u32) -> Result<String, LowerError> {
        self.lexer
            .process_word(w, scope)
            .map_err(|source| self.expand_error(line, source))
    }

    /// A failed expansion on `line`, pointing at the instruction lowered now.
    fn expand_error(&self, line: u32, source: ExpandError) -> LowerError {
        LowerError::Expand {
            line,
            span: self.at,
            source,
        }
    }

    /// A scope outgrowing its limit at the instruction lowered now.
    fn too_large(&self, source: ScopeTooLarge) -> LowerError {
        LowerError::ScopeTooLarge {
            line: self.at.line,
            span: self.at,
            source,
        }
    }

    /// The instruction's first source line, for progress and history.
    fn text(&self, span: Span) -> String {
        self.src
            .get(span.start..span.end)
            .and_then(|s| s.lines().next())
            .unwrap_or("")
            .trim()
            .to_string()
    }

    /// Lowers one instruction of a stage (`text` is its source line, `span`
    /// where errors and the step's origin point).
    fn instruction(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        text: String,
        span: Span,
    ) -> Result<(), LowerError> {
        let line = span.line;
        self.at = span;
        match &ins.kind {
            InstructionKind::Arg(decls) => self.arg(st, decls, &text, line),
            InstructionKind::Env(pairs) => self.env(st, pairs, text, line),
            InstructionKind::Run { .. } => self.run(st, &ins.kind, text, span),
            InstructionKind::Copy(spec) => self.copy(st, spec, false, text, span),
            InstructionKind::Add(spec, opts) => self.add(st, spec, opts, text, span),
            InstructionKind::Workdir(dir) => self.workdir(st, dir, text, span),
            _ => self.metadata(st, ins, text, line),
        }
    }
}
