//! Runs a [`BuildGraph`]: a vertex starts as soon as all its inputs are done,
//! independent branches run in parallel (bounded), and the first failure stops
//! the rest.
//!
//! What a vertex *does* is behind [`Executor`], so the scheduler is tested with
//! a fake and the real ops (sandbox, file copies, image sources) plug in beside it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use strata_cache::CacheError;
use strata_sandbox::{SandboxError, ViewError};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::graph::{BuildGraph, GraphError, Vertex, VertexId};
use crate::ops::copy::CopyError;
use crate::ops::user::UserError;
use crate::progress::{ChannelSink, ProgressEvent, ProgressSink, Stream, VertexLog};
use crate::sources::ImageError;

/// How many output lines a failure report keeps.
const TAIL_LINES: usize = 10;

/// Why one vertex failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The process of an exec op exited unsuccessfully.
    #[error("process exited with code {code}")]
    ExitCode {
        /// The exit code (128 + signal number when killed by a signal).
        code: i32,
    },
    /// The build was cancelled because another step failed.
    #[error("cancelled")]
    Cancelled,
    /// A step's cache key lock could not be taken; the step does not run
    /// unlocked, since another build could then run and record it too.
    #[error("cannot take the cache key lock {}: {source}", path.display())]
    KeyLock {
        /// The lock file (`<root>/locks/<hex key>`).
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: Box<CacheError>,
    },
    /// A file operation of the step failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`create`, `chown`, ...).
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The cache (index, snapshots) failed.
    #[error(transparent)]
    Cache(Box<CacheError>),
    /// The runtime could not run the process.
    #[error(transparent)]
    Sandbox(Box<SandboxError>),
    /// A read-only view of a filesystem cannot be made.
    #[error(transparent)]
    View(Box<ViewError>),
    /// A user or group does not resolve in the step's filesystem.
    #[error(transparent)]
    User(Box<UserError>),
    /// COPY/ADD failed.
    #[error(transparent)]
    Copy(Box<CopyError>),
    /// A base image's layers cannot be had.
    #[error(transparent)]
    BaseImage(Box<ImageError>),
    /// A `RUN --mount` cannot be made (a missing required secret, a missing source).
    #[error(transparent)]
    Mount(Box<crate::ops::run_mounts::MountError>),
    /// The front end left a step without a cache key (a bug).
    #[error("step {0} has no cache key")]
    NoKey(String),
    /// The front end left a base image unresolved (a bug).
    #[error("the base image was not resolved before the build")]
    Unresolved,
    /// The executor panicked (a bug).
    #[error("step {step} panicked: {message}")]
    Panicked {
        /// The step.
        step: String,
        /// The panic.
        message: String,
    },
}

/// The causes an op meets, boxed: they are large and a failure is rare.
macro_rules! boxed_from {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for OpError {
            fn from(e: $ty) -> Self {
                OpError::$variant(Box::new(e))
            }
        })*
    };
}

boxed_from!(
    Cache(CacheError),
    Sandbox(SandboxError),
    View(ViewError),
    User(UserError),
    Copy(CopyError),
    BaseImage(ImageError),
    Mount(crate::ops::run_mounts::MountError),
);

impl OpError {
    /// Whether the step failed because a disk is full (ENOSPC anywhere in
    /// its chain of causes).
    pub fn no_space(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::StorageFull
            {
                return true;
            }
            cause = e.source();
        }
        false
    }
}

/// Why a build stopped.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// A step failed.
    #[error("step {name} failed: {error}")]
    StepFailed {
        /// The failed vertex.
        vertex: VertexId,
        /// Its display name (e.g. `[2/3] RUN make`).
        name: String,
        /// What went wrong.
        error: OpError,
        /// Its last lines of output.
        last_lines: Vec<String>,
    },
    /// The graph itself is invalid.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A scheduler task died (a bug, not a step's failure).
    #[error("scheduler task failed: {0}")]
    Internal(String),
    /// The async runtime could not be started.
    #[error("cannot start the scheduler runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl ScheduleError {
    /// The exit code of the failed process, when a process failed.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ScheduleError::StepFailed {
                error: OpError::ExitCode { code },
                ..
            } => Some(*code),
            _ => None,
        }
    }
}

/// Set once the build is being cancelled; long-running ops should poll it.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// True once cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Everything an executor gets to run one vertex.
pub struct Job<O> {
    /// The vertex's id.
    pub id: VertexId,
    /// The vertex (op, inputs, name, cache key).
    pub vertex: Vertex,
    /// Outputs of `vertex.inputs`, in the same order.
    pub inputs: Vec<O>,
    /// Where to report output lines.
    pub log: JobLog,
    /// Cancellation of the whole build.
    pub cancel: CancelFlag,
}

/// Reports a job's output as progress events and keeps its last lines for
/// the failure report.
#[derive(Debug, Clone)]
pub struct JobLog {
    log: VertexLog,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl JobLog {
    /// Reports one line (without its newline).
    pub fn line(&self, stream: Stream, line: &[u8]) {
        self.log.line(stream, line);
        if let Ok(mut tail) = self.tail.lock() {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(String::from_utf8_lossy(line).into_owned());
        }
    }

    fn tail(&self) -> Vec<String> {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Performs vertices. Methods are called on blocking threads.
pub trait Executor: Send + Sync + 'static {
    /// What a vertex yields (e.g. its snapshot stack); handed to its dependents.
    type Output: Clone + Send + Sync + 'static;

    /// A cached result for this vertex, if its key is known to the cache.
    fn cached(&self, _id: VertexId, _vertex: &Vertex) -> Option<Self::Output> {
        None
    }

    /// Runs the vertex.
    fn execute(&self, job: Job<Self::Output>) -> Result<Self::Output, OpError>;
}

/// Drives a graph with an executor.
#[derive(Debug, Clone)]
pub struct Scheduler {
    parallelism: usize,
    sink: ChannelSink,
}

impl Scheduler {
    /// Runs at most `parallelism` vertices at once (at least one), reporting to `sink`.
    pub fn new(parallelism: usize, sink: ChannelSink) -> Self {
        Self {
            parallelism: parallelism.max(1),
            sink,
        }
    }

    /// As many vertices at once as the machine has cores.
    pub fn with_available_parallelism(sink: ChannelSink) -> Self {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(n, sink)
    }

    /// Runs `targets` and everything they depend on; returns every finished
    /// vertex's output. Blocks the calling thread.
    pub fn run<E: Executor>(
        &self,
        graph: &BuildGraph,
        targets: &[VertexId],
        executor: Arc<E>,
    ) -> Result<HashMap<VertexId, E::Output>, ScheduleError> {
        // Fails early on a cycle, before anything runs.
        graph.topological_order()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.parallelism)
            .enable_all()
            .build()
            .map_err(ScheduleError::Runtime)?;
        runtime.block_on(self.drive(graph, targets, executor))
    }

    async fn drive<E: Executor>(
        &self,
        graph: &BuildGraph,
        targets: &[VertexId],
        executor: Arc<E>,
    ) -> Result<HashMap<VertexId, E::Output>, ScheduleError> {
        let wanted: BTreeSet<VertexId> = graph.ancestors(targets).into_iter().collect();
        // Distinct unfinished inputs of each wanted vertex.
        let mut pending: HashMap<VertexId, BTreeSet<VertexId>> = HashMap::new();
        let mut ready: Vec<VertexId> = Vec::new();
        for &id in &wanted {
            let Some(v) = graph.vertex(id) else { continue };
            let inputs: BTreeSet<VertexId> = v.inputs.iter().map(|i| i.vertex).collect();
            if inputs.is_empty() {
                ready.push(id);
            } else {
                pending.insert(id, inputs);
            }
        }

        let permits = Arc::new(Semaphore::new(self.parallelism));
        let cancel = CancelFlag::default();
        let mut outputs: HashMap<VertexId, E::Output> = HashMap::new();
        let mut running: JoinSet<Finished<E::Output>> = JoinSet::new();
        let mut first_error: Option<ScheduleError> = None;

        loop {
            if first_error.is_none() {
                for id in ready.drain(..) {
                    let Some(vertex) = graph.vertex(id).cloned() else {
                        continue;
                    };
                    let inputs: Vec<E::Output> = vertex
                        .inputs
                        .iter()
                        .filter_map(|i| outputs.get(&i.vertex).cloned())
                        .collect();
                    let job = Job {
                        id,
                        vertex,
                        inputs,
                        log: JobLog {
                            log: VertexLog::new(self.sink.clone(), id),
                            tail: Arc::default(),
                        },
                        cancel: cancel.clone(),
                    };
                    running.spawn(run_one(
                        job,
                        executor.clone(),
                        permits.clone(),
                        self.sink.clone(),
                    ));
                }
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let (id, result, tail) = match joined {
                Ok(done) => done,
                // `run_one` does not panic itself; a panic inside the executor is
                // caught by spawn_blocking and turned into an OpError there.
                Err(e) => {
                    cancel.cancel();
                    first_error.get_or_insert(ScheduleError::Internal(e.to_string()));
                    continue;
                }
            };
            match result {
                Ok(output) => {
                    outputs.insert(id, output);
                    for dep in graph.dependents(id) {
                        if let Some(inputs) = pending.get_mut(&dep) {
                            inputs.remove(&id);
                            if inputs.is_empty() {
                                pending.remove(&dep);
                                ready.push(dep);
                            }
                        }
                    }
                }
                Err(OpError::Cancelled) => {}
                Err(error) => {
                    cancel.cancel();
                    if first_error.is_none() {
                        let name = graph.vertex(id).map(|v| v.name.clone()).unwrap_or_default();
                        first_error = Some(ScheduleError::StepFailed {
                            vertex: id,
                            name,
                            error,
                            last_lines: tail,
                        });
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(outputs),
        }
    }
}

/// A finished job: its id, its result and its last output lines.
type Finished<O> = (VertexId, Result<O, OpError>, Vec<String>);

async fn run_one<E: Executor>(
    job: Job<E::Output>,
    executor: Arc<E>,
    permits: Arc<Semaphore>,
    sink: ChannelSink,
) -> Finished<E::Output> {
    let id = job.id;
    // The semaphore is never closed, so acquiring only fails if it were.
    let Ok(_permit) = permits.acquire_owned().await else {
        return (id, Err(OpError::Cancelled), Vec::new());
    };
    if job.cancel.is_cancelled() {
        return (id, Err(OpError::Cancelled), Vec::new());
    }
    let log = job.log.clone();
    let name = job.vertex.name.clone();
    let started = Instant::now();
    let blocking_sink = sink.clone();
    let result = tokio::task::spawn_blocking(move || {
        if let Some(out) = executor.cached(job.id, &job.vertex) {
            blocking_sink.send(ProgressEvent::VertexCached {
                vertex: job.id,
                name: job.vertex.name.clone(),
            });
            return (Ok(out), true);
        }
        blocking_sink.send(ProgressEvent::VertexStarted {
            vertex: job.id,
            name: job.vertex.name.clone(),
        });
        (executor.execute(job), false)
    })
    .await;
    let result = match result {
        Ok((r, cached)) => {
            if !cached {
                match &r {
                    Ok(_) => sink.send(ProgressEvent::VertexDone {
                        vertex: id,
                        elapsed: started.elapsed(),
                    }),
                    Err(OpError::Cancelled) => {}
                    Err(e) => sink.send(ProgressEvent::VertexFailed {
                        vertex: id,
                        error: e.to_string(),
                        elapsed: started.elapsed(),
                    }),
                }
            }
            r
        }
        Err(join) => {
            let error = OpError::Panicked {
                step: name,
                message: join.to_string(),
            };
            sink.send(ProgressEvent::VertexFailed {
                vertex: id,
                error: error.to_string(),
                elapsed: started.elapsed(),
            });
            Err(error)
        }
    };
    (id, result, log.tail())
}
