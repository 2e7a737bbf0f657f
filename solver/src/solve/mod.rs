//! `solve`: one build from a [`BuildRequest`] to the target's layer stack
//! and image config ([`Solved`]). It owns everything between a caller's
//! arguments and the export: the Dockerfile front end, base-image
//! resolution and pulls, context digests, the build's private mount
//! namespace, its lease on the state root, the executor and scheduler, and
//! the `--explain-cache` records.

mod error;
mod request;

use std::path::PathBuf;
use std::sync::{Arc, mpsc};

use strata_cache::snapshots::Hold;
use strata_cache::{BuildLease, BuildScratch, ImageStore, sweep_dead_scratch};
use strata_registry::{Platform, platform};
use strata_sandbox::{
    Builtin, Limits, OciRuntime, OciRuntimeKind, Runtime, in_user_namespace,
    private_mount_namespace, sweep_stale_cgroups,
};

use crate::base_images::{LocalImages, RegistryPull};
use crate::dockerfile::{
    LowerError, LowerOptions, Lowered, lower, read_ignore, secrets_in_arg_or_env,
};
use crate::explain;
use crate::image_config::ImageConfig;
use crate::ops::context::ContextDigests;
use crate::ops::{Stack, StackExecutor};
use crate::progress::{ChannelSink, ProgressEvent, ProgressSink};
use crate::schedule::{ScheduleError, Scheduler};
use crate::{Op, VertexId};

pub use error::{SolveError, StepFailure};
pub use request::{BuildRequest, DEFAULT_DECOMPRESSION_LIMIT, RuntimeChoice};

/// A finished build: the target stage's filesystem and config, held from
/// prune until this value is dropped (after the export).
pub struct Solved {
    /// The target's layers, bottom first.
    pub stack: Stack,
    /// The target stage's image config.
    pub config: ImageConfig,
    /// The platform the image is for.
    pub platform: Platform,
    /// With `explain`: one line per step that ran, saying why it could not
    /// reuse the previous build.
    pub explain: Option<Vec<String>>,
    /// The local image store the build read from.
    pub store: ImageStore,
    _holds: Vec<Hold>,
    _lease: BuildLease,
}

impl std::fmt::Debug for Solved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Solved")
            .field("stack", &self.stack)
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

/// Runs one build; its events go to `sink` as they happen, from the calling
/// thread (the build itself runs on threads of its own, in a private mount
/// namespace that disappears with them).
pub fn solve(req: BuildRequest, sink: &dyn ProgressSink) -> Result<Solved, SolveError> {
    let (tx, rx) = mpsc::channel();
    let events = ChannelSink::new(tx);
    let mut ran = Vec::new();
    let built = std::thread::scope(|s| {
        let worker = s.spawn(move || build(req, events));
        for event in rx {
            if let ProgressEvent::VertexStarted { vertex, .. } = &event {
                ran.push(*vertex);
            }
            sink.send(event);
        }
        worker.join()
    });
    let built = built.map_err(|_| SolveError::Panicked)??;
    Ok(built.finish(&ran))
}

/// What the build thread hands back for the explanation and the export.
struct Built {
    lowered: Lowered,
    stack: Stack,
    platform: Platform,
    store: ImageStore,
    no_cache: Vec<VertexId>,
    explain_path: PathBuf,
    explain: bool,
    holds: Vec<Hold>,
    lease: BuildLease,
}

impl Built {
    /// Explains the steps that ran (when asked) and saves this build's
    /// summary for the next one.
    fn finish(self, ran: &[VertexId]) -> Solved {
        let graph = &self.lowered.graph;
        // Without its key no summary is written or compared: values stay out.
        let key = self
            .explain_path
            .parent()
            .and_then(|dir| explain::ValueKey::open(dir).ok());
        let summary = key
            .map(|key| explain::summarize(graph, &graph.ancestors(&[self.lowered.target]), &key));
        let lines = summary.as_ref().filter(|_| self.explain).map(|now| {
            let before = explain::load(&self.explain_path);
            ran.iter()
                .filter_map(|&id| graph.vertex(id).map(|v| (id, v)))
                .filter(|(_, v)| !matches!(v.op, Op::SourceImage(_) | Op::SourceScratch))
                .filter_map(|(id, v)| {
                    let pos = v.origin.as_ref()?.position();
                    let why = explain::reason(
                        before.get(&pos),
                        now.get(&pos)?,
                        self.no_cache.contains(&id),
                    );
                    Some(format!("{}: {why}", v.name))
                })
                .collect()
        });
        // The next build compares with this one; losing it only loses an explanation.
        if let Some(now) = &summary {
            let _ = explain::save(&self.explain_path, now);
        }
        Solved {
            stack: self.stack,
            config: self.lowered.config,
            platform: self.platform,
            explain: lines,
            store: self.store,
            _holds: self.holds,
            _lease: self.lease,
        }
    }
}

/// The build proper, on its own thread.
fn build(req: BuildRequest, events: ChannelSink) -> Result<Built, SolveError> {
    if !req.context.is_dir() {
        return Err(SolveError::ContextNotDir(req.context));
    }
    let file = req.dockerfile_name.clone();
    let src = String::from_utf8(req.dockerfile).map_err(|_| SolveError::NotUtf8(file.clone()))?;
    let ignore = read_ignore(&req.context, req.dockerfile_path.as_deref())?;
    let df = strata_parser::parse(&src).map_err(SolveError::Parse)?;
    for warning in secrets_in_arg_or_env(&df, &file) {
        events.send(ProgressEvent::Warning(warning));
    }
    let runtime = runtime(req.runtime)?;

    private_mount_namespace()?;
    let root = req.root.as_path();
    let store = ImageStore::open(root.join("store"))?;
    // Held for the whole build: prune leaves alone what a running build uses.
    let lease = BuildLease::acquire(root).map_err(SolveError::Lease)?;
    // What killed builds left: their steps' cgroups (and anything still running in them),
    // their scratch folders. A rootless build makes no cgroups, so it has none to sweep.
    if !in_user_namespace() {
        sweep_stale_cgroups().map_err(SolveError::Runtime)?;
    }
    sweep_dead_scratch(root).map_err(|source| SolveError::Leftovers {
        path: root.join("tmp"),
        source: std::io::Error::other(source),
    })?;
    let scratch = BuildScratch::create(root).map_err(|source| SolveError::Scratch {
        path: root.join("tmp"),
        source: std::io::Error::other(source),
    })?;
    let runtime = runtime.finish(req.limits, scratch.path());
    let platform = req.platform.clone().unwrap_or_else(platform::host);
    let pulls = registry_pull(platform.clone(), req.pull, req.registry, &events);
    let images = Arc::new(
        LocalImages::new(store.clone(), root, platform.clone())
            .map_err(|e| SolveError::Images(Box::new(e)))?
            .with_registry(pulls)
            .with_decompression_limit(req.decompression_limit),
    );
    let context = Arc::new(ContextDigests::new(
        &req.context,
        ignore.clone(),
        &root.join("context-hash.bin"),
    ));
    let opts = LowerOptions {
        build_args: req.build_args,
        target: req.target.clone(),
        build_contexts: req.build_contexts,
        network: req.network,
        entitlements: req.entitlements,
        platform: req.platform,
        images: Some(images.clone()),
        context: Some(context.clone()),
    };
    let lowered = lower(&df, &src, &opts).map_err(|source| match source {
        // A base image that cannot be found fails the build, as in docker.
        LowerError::Image { .. } => SolveError::BaseImage {
            file: file.clone(),
            source,
        },
        source => SolveError::Lower {
            file: file.clone(),
            source,
        },
    })?;
    context.save();
    let unused = opts.build_args.unconsumed();
    if !unused.is_empty() {
        events.send(ProgressEvent::UnusedBuildArgs(unused));
    }

    let no_cache = no_cache_vertices(&req.no_cache_filter, req.no_cache, &lowered)?;
    let executor = Arc::new(
        StackExecutor::new(
            root,
            scratch.path(),
            &req.context,
            ignore,
            runtime,
            images.clone(),
        )
        .map_err(|e| SolveError::Executor(Box::new(e)))?
        .with_no_cache(no_cache.clone())
        .with_decompression_limit(req.decompression_limit)
        .with_secrets(req.secrets),
    );
    executor.prefetch(&lowered.graph);
    let target = lowered.target;
    let result = Scheduler::with_available_parallelism(events).run(
        &lowered.graph,
        &[target],
        executor.clone(),
    );
    let mut outputs = result.map_err(|e| match e {
        ScheduleError::StepFailed {
            vertex,
            name,
            error,
            last_lines,
        } => SolveError::Step(Box::new(StepFailure {
            name,
            origin: lowered.graph.vertex(vertex).and_then(|v| v.origin.clone()),
            error,
            last_lines,
        })),
        e => SolveError::Schedule(Box::new(e)),
    })?;
    let stack = outputs.remove(&target).ok_or(SolveError::NoOutput)?;
    executor.finish();
    let mut holds = executor.take_holds();
    holds.extend(images.take_holds());
    Ok(Built {
        explain_path: explain::summary_path(
            root,
            &req.context,
            req.dockerfile_path.as_deref(),
            req.target.as_deref(),
        ),
        explain: req.explain,
        lowered,
        stack,
        platform,
        store,
        no_cache,
        holds,
        lease,
    })
}

/// How base images missing from the store are pulled, for `platform`.
fn registry_pull(
    platform: Platform,
    always: bool,
    client: strata_registry::Client,
    events: &ChannelSink,
) -> RegistryPull {
    let events = events.clone();
    RegistryPull {
        client,
        platform,
        always,
        progress: Box::new(move |line| events.send(ProgressEvent::Message(line.to_string()))),
    }
}

/// The vertices `--no-cache` or `--no-cache-filter` say must run.
fn no_cache_vertices(
    filter: &[String],
    all: bool,
    lowered: &Lowered,
) -> Result<Vec<VertexId>, SolveError> {
    if all {
        return Ok(lowered.graph.ids());
    }
    let mut out = Vec::new();
    for wanted in filter {
        let stage = lowered
            .stages
            .iter()
            .find(|(name, _)| {
                name.as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(wanted))
            })
            .ok_or_else(|| SolveError::NoCacheFilter(wanted.clone()))?;
        out.extend(stage.1.iter().copied());
    }
    Ok(out)
}

/// The runtime chosen, found before any work; [`Chosen::finish`] gives it the build's limits
/// and scratch folder.
enum Chosen {
    Builtin,
    Oci(OciRuntime),
}

impl Chosen {
    fn finish(self, limits: Limits, scratch: &std::path::Path) -> Arc<dyn Runtime> {
        let temp = scratch.to_path_buf();
        match self {
            Chosen::Builtin => Arc::new(Builtin::default().with_limits(limits).with_temp_dir(temp)),
            Chosen::Oci(rt) => Arc::new(rt.with_limits(limits).with_temp_dir(temp)),
        }
    }
}

fn runtime(choice: RuntimeChoice) -> Result<Chosen, SolveError> {
    let kind = match choice {
        RuntimeChoice::Builtin => return Ok(Chosen::Builtin),
        RuntimeChoice::Runc => OciRuntimeKind::Runc,
        RuntimeChoice::Crun => OciRuntimeKind::Crun,
    };
    let rt = OciRuntime::new(kind).map_err(SolveError::Runtime)?;
    Ok(Chosen::Oci(rt))
}
