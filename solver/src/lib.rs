//! strata-solver: turns a parsed Dockerfile into a build graph and runs it.
//!
//! It owns `dockerfile` (the front end: AST + build args + target →
//! `BuildGraph`, with Docker's ARG/ENV scoping, `--from` resolution and
//! image-config folding), `graph` (vertices, ops, cache keys, origins),
//! `schedule` (parallel execution of the graph with the sandbox, the cache
//! and file operations) and the progress event stream. Only `dockerfile`
//! knows Dockerfiles; the rest sees the graph alone.

pub mod dockerfile;
pub mod explain;
pub mod graph;
pub mod image;
pub mod images;
pub mod ops;
pub mod path;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod schedule;
pub mod solve;
pub mod sources;

pub use graph::{BuildGraph, CacheKey, Op, Origin, Vertex, VertexId};
pub use progress::{ChannelSink, ProgressEvent, ProgressSink};
pub use schedule::{Executor, OpError, ScheduleError, Scheduler};
pub use solve::{BuildRequest, RuntimeChoice, SolveError, Solved, StepFailure, solve};
