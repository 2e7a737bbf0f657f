//! Why a build failed, by kind: the caller maps kinds to exit codes.

use std::path::PathBuf;

use strata_cache::{CacheError, ImageStoreError};
use strata_sandbox::ViewError;

use crate::dockerfile::{IgnoreError, LowerError};
use crate::graph::Origin;
use crate::schedule::{OpError, ScheduleError};
use crate::sources::ImageError;

/// Why [`solve`](super::solve) failed.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// The context is not a directory.
    #[error("build context {} is not a directory", .0.display())]
    ContextNotDir(PathBuf),
    /// The Dockerfile is not UTF-8.
    #[error("{0}: the Dockerfile is not UTF-8 text")]
    NotUtf8(String),
    /// The Dockerfile does not parse; render it with its source.
    #[error("{0}")]
    Parse(strata_parser::ParseError),
    /// The ignore file cannot be read or parsed.
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    /// The Dockerfile cannot be lowered (a bad reference, expansion or value).
    #[error("{file}: {source}")]
    Lower {
        /// The Dockerfile's name.
        file: String,
        /// What failed, with its line.
        source: LowerError,
    },
    /// A base image cannot be found, pulled or read; see
    /// [`LowerError::is_environment`] for whose fault it is.
    #[error("{file}: {source}")]
    BaseImage {
        /// The Dockerfile's name.
        file: String,
        /// The image and why, with its line.
        source: LowerError,
    },
    /// `--no-cache-filter` names no stage.
    #[error("--no-cache-filter: no stage named {0}")]
    NoCacheFilter(String),
    /// The chosen runtime cannot be used.
    #[error(transparent)]
    Runtime(strata_sandbox::SandboxError),
    /// The build's private mount namespace cannot be made.
    #[error(transparent)]
    Namespace(#[from] ViewError),
    /// The local image store cannot be opened.
    #[error(transparent)]
    Store(#[from] ImageStoreError),
    /// The build's lease on the state root cannot be taken.
    #[error(transparent)]
    Lease(CacheError),
    /// The base-image snapshots cannot be opened.
    #[error(transparent)]
    Images(Box<ImageError>),
    /// The cache index cannot be opened.
    #[error(transparent)]
    Executor(Box<OpError>),
    /// The build's scratch folder cannot be made.
    #[error("cannot create {}: {source}", path.display())]
    Scratch {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// What a killed build left under the state root cannot be removed.
    #[error("cannot remove what a killed build left in {}: {source}", path.display())]
    Leftovers {
        /// The folder swept.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A step failed.
    #[error("failed to solve: step {}: {}", .0.name, .0.error)]
    Step(Box<StepFailure>),
    /// The scheduler failed (not a step).
    #[error(transparent)]
    Schedule(Box<ScheduleError>),
    /// The scheduler's thread panicked.
    #[error("the scheduler thread panicked")]
    Panicked,
    /// The target produced no filesystem.
    #[error("the target step produced no filesystem")]
    NoOutput,
}

/// A failed step: which, where it comes from, why, and what it printed last.
#[derive(Debug)]
pub struct StepFailure {
    /// Its progress name.
    pub name: String,
    /// Where it comes from in the Dockerfile.
    pub origin: Option<Origin>,
    /// Why.
    pub error: OpError,
    /// Its last lines of output.
    pub last_lines: Vec<String>,
}
