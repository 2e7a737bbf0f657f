//! strata-solver: turns a parsed Dockerfile into a build graph and runs it.
//!
//! It owns `dockerfile` (the front end: AST + build args + target →
//! `BuildGraph`, with Docker's ARG/ENV scoping, `--from` resolution and
//! image-config folding), `graph` (vertices, ops, cache keys, origins),
//! `schedule` (parallel execution of the graph with the sandbox, the cache
//! and file operations) and the progress event stream. Only `dockerfile`
//! knows Dockerfiles; the rest sees the graph alone.

mod base_images;
pub mod dockerfile;
mod explain;
pub mod graph;
mod image_config;
pub mod ops;
mod path;
mod progress;
mod pull;
mod schedule;
mod solve;
mod sources;

pub use dockerfile::{
    BuildArgs, Entitlement, Entitlements, NamedContext, dockerfile_path, parse_build_context,
};
pub use graph::{
    BuildGraph, CacheKey, CacheSharing, EdgeRole, ExecMount, Input, MountFrom, MountKind, Op,
    Origin, SourceSpan, Vertex, VertexId,
};
pub use image_config::{Healthcheck, HistoryEntry, ImageConfig};
pub use ops::{BuildSecrets, MountError};
pub use progress::{BuildWarning, ChannelSink, ProgressEvent, ProgressSink, Stream};
pub use pull::{PullError, Pulled, human_size, pull};
pub use schedule::{CancelFlag, Executor, Job, JobLog, OpError, ScheduleError, Scheduler};
pub use solve::{
    BuildRequest, DEFAULT_DECOMPRESSION_LIMIT, RuntimeChoice, SolveError, Solved, StepFailure,
    solve,
};
pub use sources::{ContextFiles, ImageError, ImageResolver, ResolvedImage};
pub use strata_parser::{NetworkMode, Security};
pub use strata_sandbox::SecretBytes;
/// RUN's resource limits, as the sandbox applies them (re-exported for callers).
pub use strata_sandbox::{
    LimitError, Limits, Ulimit, parse_memory, parse_pids, parse_shm_size, parse_ulimit,
};
