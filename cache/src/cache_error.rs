//! The error type shared by the build cache: snapshots, the cache index,
//! locks, doctor, usage and prune. Every variant names what failed.

use std::io;
use std::path::{Path, PathBuf};

/// Errors of the build cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A metadata file could not be read or written as JSON.
    #[error("{path}: {source}")]
    Json {
        /// The metadata file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The cache index database failed in a way a rebuild cannot fix.
    #[error("cache index {path}: {message}")]
    Index {
        /// The database file.
        path: PathBuf,
        /// What redb reported.
        message: String,
    },
    /// Another process kept the cache index locked for too long.
    #[error("cache index {0} stayed locked by another process; giving up")]
    Busy(PathBuf),
    /// A snapshot name is not one this cache makes.
    #[error("invalid snapshot name {0:?}")]
    InvalidId(String),
    /// The snapshot does not exist (or was removed while being held).
    #[error("snapshot {0} does not exist")]
    NotFound(PathBuf),
    /// Two cache keys share the 16 hex digits that name their snapshot.
    #[error("snapshot {path} belongs to cache key {existing}, not {wanted}")]
    KeyCollision {
        /// The snapshot folder.
        path: PathBuf,
        /// The key its metadata records.
        existing: String,
        /// The key being committed.
        wanted: String,
    },
    /// The content store failed.
    #[error("content store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Two diffIDs share the hex digits that name their base layer snapshot.
    #[error("base layer snapshot {path} holds diffID {existing}, not {wanted}")]
    DiffIdCollision {
        /// The snapshot folder.
        path: PathBuf,
        /// The diffID its metadata records.
        existing: String,
        /// The diffID being committed.
        wanted: String,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn rio_err(path: &Path) -> impl FnOnce(rustix::io::Errno) -> CacheError + '_ {
    move |e| CacheError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}
