//! strata-solver: turns a parsed Dockerfile into a build graph and runs it.
//!
//! It owns `lower` (AST + build args + target → `BuildGraph`, with Docker's
//! ARG/ENV scoping, `--from` resolution, stage pruning and image-config folding),
//! `graph` (vertices, ops, cache keys), `schedule` (parallel execution of the graph
//! with the sandbox, the cache and file operations) and the progress event stream.
//! Only `lower` knows Dockerfiles; the rest sees the graph alone.

pub mod args;
pub mod explain;
pub mod graph;
pub mod image;
pub mod images;
pub mod lower;
pub mod ops;
pub mod progress;
pub mod pull;
pub mod schedule;
pub mod stages;

pub use graph::{BuildGraph, CacheKey, Op, Vertex, VertexId};
pub use progress::{ProgressEvent, ProgressSink};
pub use schedule::{Executor, OpError, ScheduleError, Scheduler};
