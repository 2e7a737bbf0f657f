//! Dockerfile → build graph: the only module of the solver that knows Dockerfiles.
//!
//! Every stage becomes a chain of vertices (FROM, then one per RUN, COPY, ADD
//! and WORKDIR); metadata instructions fold into the stage's [`ImageConfig`].
//! All stages are lowered; the scheduler runs only what the target needs, so
//! unused stages are pruned there.
//!
//! Not yet: base image configs (needs the cache crate's `read_config`: images
//! start with an empty config plus the default PATH), content digests of COPY
//! sources (needs `context::select`), RUN mounts and heredocs, remote ADD.

use std::sync::Arc;
use strata_parser::shell::{Env, ExpandError, Lexer};

use strata_parser::{
    Chmod, Command, CopySpec, Dockerfile, Instruction, InstructionKind, Span, Stage,
};

use crate::args::{BuildArgs, GlobalArgs, Platform, StageScope, platform_args};
use crate::graph::{
    BuildGraph, Chown, CopyOp, CopySource, EdgeRole, ExecOp, GraphError, ImageSource, Input,
    MkdirOp, NetworkMode, Op, Selection, SourceImageOp, VertexId,
};
use crate::image::{Healthcheck, ImageConfig, StageConfig};
use crate::stages::{self, NamedContext, RefError};

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
    /// The platform built for; the host's when `None`.
    pub platform: Option<Platform>,
    /// Resolves base images to a digest and a config; without one, images
    /// stay unresolved names with an empty config.
    pub images: Option<Arc<dyn ImageResolver>>,
    /// Digests what COPY/ADD select in the build context, for their cache
    /// keys; without one, keys cover the source names only.
    pub context: Option<Arc<dyn ContextFiles>>,
}

/// The build context as the cache keys see it.
pub trait ContextFiles: std::fmt::Debug + Send + Sync {
    /// A digest of exactly what `source` (as written, expanded) selects, or
    /// why it cannot be read (the step then fails when it runs, with the
    /// copy's own message).
    fn digest(&self, source: &str) -> Result<String, String>;
}

/// Looks base images up while lowering (the local store, OCI layouts, later
/// registries), so a stage starts from its base's config and the source
/// vertex's key follows the image's content.
pub trait ImageResolver: std::fmt::Debug + Send + Sync {
    /// The image's manifest digest and config, or one sentence saying why not.
    fn resolve(&self, source: &ImageSource) -> Result<ResolvedImage, String>;
}

/// A resolved base image.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// `sha256:` digest of its manifest in the local content store.
    pub digest: String,
    /// Its config (env, user, workdir, cmd, ONBUILD triggers, history...).
    pub config: ImageConfig,
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

/// Why a Dockerfile cannot be lowered; each names the line.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    /// Variable expansion failed.
    #[error("line {line}: {source}")]
    Expand {
        /// 1-based line.
        line: u32,
        /// What failed.
        #[source]
        source: ExpandError,
    },
    /// A reference (`--target`, `oci-layout://`) is invalid.
    #[error("line {line}: {source}")]
    Ref {
        /// 1-based line (0 for command-line options).
        line: u32,
        /// What failed.
        #[source]
        source: RefError,
    },
    /// A value is invalid (chmod, ...).
    #[error("line {line}: {message}")]
    Invalid {
        /// 1-based line.
        line: u32,
        /// One sentence.
        message: String,
    },
    /// An instruction feature strata does not support yet.
    #[error("line {line}: {what} is not supported yet")]
    Unsupported {
        /// 1-based line.
        line: u32,
        /// The feature.
        what: String,
    },
    /// A base image cannot be found or read.
    #[error("line {line}: {reference}: {message}")]
    Image {
        /// 1-based line.
        line: u32,
        /// The image as named.
        reference: String,
        /// Why.
        message: String,
    },
    /// An ONBUILD trigger of the base image does not parse.
    #[error("line {line}: ONBUILD trigger `{trigger}` of the base image: {message}")]
    Trigger {
        /// The FROM line.
        line: u32,
        /// The trigger as stored in the image.
        trigger: String,
        /// The parser's message.
        message: String,
    },
    /// The Dockerfile has no stage.
    #[error("the Dockerfile has no FROM instruction")]
    NoStage,
    /// Internal graph error.
    #[error(transparent)]
    Graph(#[from] GraphError),
}

struct GlobalEnv<'a>(&'a GlobalArgs);
impl Env for GlobalEnv<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.0.lookup(name)
    }
}

struct ScopeEnv<'a>(&'a StageScope);
impl Env for ScopeEnv<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.0.lookup(name)
    }
}

/// How a stage begins.
enum BaseVertex {
    /// From an earlier stage's last vertex.
    Stage(VertexId),
    /// From nothing.
    Scratch,
    /// From an image (its source op).
    Image(Op),
}

/// A stage being lowered.
struct StageState {
    /// Its last vertex so far.
    last: VertexId,
    scope: StageScope,
    config: StageConfig,
    label: String,
    step: usize,
    steps: usize,
}

impl StageState {
    /// The progress name of the next step, e.g. `[build 2/4] RUN make`.
    fn name(&mut self, text: &str) -> String {
        let n = format!("[{} {}/{}] {text}", self.label, self.step, self.steps);
        self.step += 1;
        n
    }
}

/// Instructions that add a vertex (a step in progress output).
fn makes_vertex(ins: &Instruction) -> bool {
    matches!(
        ins.kind,
        InstructionKind::Run { .. }
            | InstructionKind::Copy(_)
            | InstructionKind::Add(..)
            | InstructionKind::Workdir(_)
    )
}

/// Parses an ONBUILD trigger stored in a base image's config.
fn parse_trigger(trigger: &str, line: u32) -> Result<Instruction, LowerError> {
    let invalid = |message: String| LowerError::Trigger {
        line,
        trigger: trigger.to_string(),
        message,
    };
    let df = strata_parser::parse(&format!("FROM scratch\n{trigger}\n"))
        .map_err(|e| invalid(e.to_string()))?;
    df.stages
        .into_iter()
        .next()
        .and_then(|s| s.instructions.into_iter().next())
        .ok_or_else(|| invalid("it is empty".into()))
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
    let host = Platform::host();
    let target_platform = opts.platform.clone().unwrap_or_else(|| host.clone());
    let mut l = Lowerer {
        src,
        opts,
        lexer: Lexer::new(df.escape),
        globals: GlobalArgs::new(platform_args(&host, &target_platform)),
        graph: BuildGraph::new(),
        names: df.stages.iter().map(|s| s.name.clone()).collect(),
        done: Vec::new(),
    };
    for ins in &df.global_args {
        if let InstructionKind::Arg(decls) = &ins.kind {
            for d in decls {
                let default = match &d.default {
                    Some(w) => Some(l.expand_global(w, ins.span)?),
                    None => None,
                };
                l.globals.declare(&opts.build_args, &d.name, default);
            }
        }
    }
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

fn parent(v: VertexId) -> Input {
    Input {
        vertex: v,
        role: EdgeRole::Parent,
    }
}

impl Lowerer<'_> {
    fn expand_global(&self, w: &str, span: Span) -> Result<String, LowerError> {
        self.lexer
            .process_word(w, &GlobalEnv(&self.globals))
            .map_err(|source| LowerError::Expand {
                line: span.line,
                source,
            })
    }

    fn expand(&self, scope: &StageScope, w: &str, line: u32) -> Result<String, LowerError> {
        self.lexer
            .process_word(w, &ScopeEnv(scope))
            .map_err(|source| LowerError::Expand { line, source })
    }

    /// A base image named by FROM or `--from`: resolved through
    /// [`LowerOptions::images`] when there is a resolver (its digest goes into
    /// the op, its config starts the stage), else left by name with an empty config.
    fn source_image(
        &mut self,
        reference: &str,
        line: u32,
    ) -> Result<(Op, ImageConfig), LowerError> {
        let source = self.image_source(reference, line)?;
        let (digest, config) = match &self.opts.images {
            None => (None, ImageConfig::default()),
            Some(images) => {
                let r = images
                    .resolve(&source)
                    .map_err(|message| LowerError::Image {
                        line,
                        reference: reference.to_string(),
                        message,
                    })?;
                (Some(r.digest), r.config)
            }
        };
        Ok((Op::SourceImage(SourceImageOp { source, digest }), config))
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

    fn named_context(&self, name: &str) -> Option<ImageSource> {
        self.opts
            .build_contexts
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
            .map(|c| c.source.clone())
    }

    /// An image reference as a source: a named context, `oci-layout://`, or the store.
    fn image_source(&self, reference: &str, line: u32) -> Result<ImageSource, LowerError> {
        if let Some(src) = self.named_context(reference) {
            return Ok(src);
        }
        match stages::parse_oci_layout(reference) {
            Some(r) => r.map_err(|source| LowerError::Ref { line, source }),
            None => Ok(ImageSource::Store {
                reference: reference.to_string(),
            }),
        }
    }

    fn stage(&mut self, index: usize, stage: &Stage) -> Result<Done, LowerError> {
        let label = stage
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{index}"));
        let line = stage.span.line;
        let base = self.expand_global(&stage.base, stage.span)?;
        let (base_vertex, mut config) = if self.named_context(&base).is_none()
            && let Some(i) = stages::resolve_stage(&self.names, index, &base, false)
            && let Some(d) = self.done.get(i)
        {
            (
                BaseVertex::Stage(d.last),
                StageConfig::from_base(d.config.config.clone()),
            )
        } else if base.eq_ignore_ascii_case("scratch") {
            (
                BaseVertex::Scratch,
                StageConfig::from_base(ImageConfig::default()),
            )
        } else {
            let (op, config) = self.source_image(&base, line)?;
            (BaseVertex::Image(op), StageConfig::from_base(config))
        };
        // The base's ONBUILD triggers run first, in this stage; the new image
        // starts with no triggers of its own (Docker's rule).
        let triggers: Vec<(String, Instruction)> = std::mem::take(&mut config.config.on_build)
            .into_iter()
            .map(|t| parse_trigger(&t, line).map(|ins| (t, ins)))
            .collect::<Result<_, _>>()?;
        let steps = 1 + triggers
            .iter()
            .map(|(_, i)| i)
            .chain(&stage.instructions)
            .filter(|i| makes_vertex(i))
            .count();
        let from_name = format!("[{label} 1/{steps}] {}", self.text(stage.span));
        let last = match base_vertex {
            BaseVertex::Stage(v) => v,
            BaseVertex::Scratch => self.graph.add(Op::SourceScratch, from_name, vec![])?,
            BaseVertex::Image(op) => self.graph.add(op, from_name, vec![])?,
        };
        let mut st = StageState {
            last,
            scope: StageScope::new(&self.opts.build_args, &config.config.env),
            config,
            label,
            step: 2,
            steps,
        };
        for (text, ins) in &triggers {
            self.instruction(&mut st, ins, text.clone(), line)?;
        }
        for ins in &stage.instructions {
            let text = self.text(ins.span);
            self.instruction(&mut st, ins, text, ins.span.line)?;
        }
        Ok(Done {
            last: st.last,
            config: st.config,
        })
    }

    /// Lowers one instruction of a stage (`text` is its source line, `line`
    /// the line errors name).
    fn instruction(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        text: String,
        line: u32,
    ) -> Result<(), LowerError> {
        match &ins.kind {
            InstructionKind::Arg(decls) => {
                for d in decls {
                    let default = match &d.default {
                        Some(w) => Some(self.expand(&st.scope, w, line)?),
                        None => None,
                    };
                    st.scope
                        .declare_arg(&self.opts.build_args, &self.globals, &d.name, default);
                }
                st.config.history(format!("ARG {}", arg_text(&text)), true);
            }
            InstructionKind::Env(pairs) => {
                for (k, v) in pairs {
                    let k = self.expand(&st.scope, k, line)?;
                    let v = self.expand(&st.scope, v, line)?;
                    st.scope.set_env(&k, v.clone());
                    st.config.env(&k, &v);
                }
                st.config.history(text, true);
            }
            InstructionKind::Run {
                mounts,
                network,
                security,
                command,
                heredocs,
            } => {
                if !mounts.is_empty() {
                    return unsupported(line, "RUN --mount");
                }
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
                let op = Op::Exec(ExecOp {
                    argv: argv.clone(),
                    env: st.scope.run_env(),
                    user: st.config.config.user.clone(),
                    cwd: cwd(&st.config),
                    network,
                });
                st.last = self.graph.add(op, st.name(&text), vec![parent(st.last)])?;
                st.config
                    .history(format!("RUN {} # buildkit", argv.join(" ")), false);
            }
            InstructionKind::Copy(spec) => {
                let name = st.name(&text);
                st.last = self.copy(st, spec, false, line, name)?;
                st.config.history(format!("{text} # buildkit"), false);
            }
            InstructionKind::Add(spec, opts) => {
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
                let extract = opts.unpack.unwrap_or(true);
                let name = st.name(&text);
                st.last = self.copy(st, spec, extract, line, name)?;
                st.config.history(format!("{text} # buildkit"), false);
            }
            InstructionKind::Workdir(dir) => {
                let dir = self.expand(&st.scope, dir, line)?;
                let path = st.config.workdir(&dir);
                let op = Op::Mkdir(MkdirOp {
                    path,
                    owner: st.config.config.user.clone(),
                });
                st.last = self.graph.add(op, st.name(&text), vec![parent(st.last)])?;
                st.config.history(format!("{text} # buildkit"), false);
            }
            InstructionKind::Cmd(c) => {
                let argv = command_argv(&st.config, c);
                st.config.cmd(argv);
                // BuildKit marks only steps with a layer with `# buildkit`.
                st.config.history(text, true);
            }
            InstructionKind::Entrypoint(c) => {
                let argv = command_argv(&st.config, c);
                st.config.entrypoint(argv);
                st.config.history(text, true);
            }
            InstructionKind::Shell(argv) => {
                st.config.set_shell(argv.clone());
                st.config.history(text, true);
            }
            InstructionKind::User(u) => {
                let u = self.expand(&st.scope, u, line)?;
                st.config.user(&u);
                st.config.history(text, true);
            }
            InstructionKind::Expose(ports) => {
                for p in ports {
                    let words = self
                        .lexer
                        .process_words(p, &ScopeEnv(&st.scope))
                        .map_err(|source| LowerError::Expand { line, source })?;
                    for w in words {
                        st.config.expose(&w);
                    }
                }
                st.config.history(text, true);
            }
            InstructionKind::Volume(paths) => {
                for p in paths {
                    let p = self.expand(&st.scope, p, line)?;
                    st.config.volume(&p);
                }
                st.config.history(text, true);
            }
            InstructionKind::Label(pairs) => {
                for (k, v) in pairs {
                    let k = self.expand(&st.scope, k, line)?;
                    let v = self.expand(&st.scope, v, line)?;
                    st.config.label(&k, &v);
                }
                st.config.history(text, true);
            }
            InstructionKind::StopSignal(s) => {
                let s = self.expand(&st.scope, s, line)?;
                st.config.stop_signal(&s);
                st.config.history(text, true);
            }
            InstructionKind::Healthcheck(h) => {
                let check = match h {
                    None => Healthcheck {
                        test: vec!["NONE".into()],
                        ..Healthcheck::default()
                    },
                    Some(h) => Healthcheck {
                        test: match &h.command {
                            Command::Exec(argv) => {
                                let mut t = vec!["CMD".to_string()];
                                t.extend(argv.iter().cloned());
                                t
                            }
                            Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                        },
                        interval: h.interval.map(nanos),
                        timeout: h.timeout.map(nanos),
                        start_period: h.start_period.map(nanos),
                        start_interval: h.start_interval.map(nanos),
                        retries: h.retries,
                    },
                };
                st.config.healthcheck(check);
                st.config.history(text, true);
            }
            InstructionKind::Onbuild(_) => {
                let trigger = text
                    .get("ONBUILD".len()..)
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_string();
                st.config.on_build(&trigger);
                st.config.history(text, true);
            }
            InstructionKind::Maintainer(m) => {
                st.config.label("maintainer", m);
                st.config.history(text, true);
            }
        }
        Ok(())
    }

    fn copy(
        &mut self,
        st: &StageState,
        spec: &CopySpec,
        extract_archives: bool,
        line: u32,
        name: String,
    ) -> Result<VertexId, LowerError> {
        let (scope, config) = (&st.scope, &st.config);
        if !spec.heredocs.is_empty() {
            return unsupported(line, "COPY with a heredoc");
        }
        if spec.parents || !spec.exclude.is_empty() {
            return unsupported(line, "COPY --parents/--exclude");
        }
        let mut inputs = vec![parent(st.last)];
        let source = match &spec.from {
            None => CopySource::Context { name: ".".into() },
            Some(f) => {
                let from = self.expand(scope, &f.value, line)?;
                let current = self.done.len();
                if self.named_context(&from).is_none()
                    && let Some(i) = stages::resolve_stage(&self.names, current, &from, true)
                    && let Some(d) = self.done.get(i)
                {
                    inputs.push(Input {
                        vertex: d.last,
                        role: EdgeRole::CopyFrom,
                    });
                } else {
                    let (op, _) = self.source_image(&from, line)?;
                    let v = self.graph.add(op, format!("[internal] {from}"), vec![])?;
                    inputs.push(Input {
                        vertex: v,
                        role: EdgeRole::CopyFrom,
                    });
                }
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
            cwd: cwd(config),
            chown,
            chmod,
            extract_archives,
        });
        Ok(self.graph.add(op, name, inputs)?)
    }
}

fn unsupported<T>(line: u32, what: &str) -> Result<T, LowerError> {
    Err(LowerError::Unsupported {
        line,
        what: what.to_string(),
    })
}

fn cwd(config: &StageConfig) -> String {
    if config.config.working_dir.is_empty() {
        "/".to_string()
    } else {
        config.config.working_dir.clone()
    }
}

fn command_argv(config: &StageConfig, c: &Command) -> Vec<String> {
    match c {
        Command::Exec(argv) => argv.clone(),
        Command::Shell(s) => config.shell_form(s),
    }
}

fn arg_text(text: &str) -> &str {
    text.get(3..).map(str::trim).unwrap_or_default()
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
