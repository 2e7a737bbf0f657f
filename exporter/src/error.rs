//! The exporter's error type; every variant names what failed.

use std::io;
use std::path::{Path, PathBuf};

use strata_cache::StoreError;
use strata_registry::Digest;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A filesystem operation on a snapshot or a destination failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file's size changed between reading its metadata and archiving it.
    #[error("{path}: file changed while being archived (expected {expected} bytes)")]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// The size its metadata announced.
        expected: u64,
    },
    /// The content store refused a read or write.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blob in the store is not the JSON document it should be.
    #[error("blob {digest}: {reason}")]
    BadBlob {
        /// The blob.
        digest: Digest,
        /// What is wrong with it.
        reason: String,
    },
    /// A layer's uncompressed content does not hash to its diff_id.
    #[error("layer {digest}: uncompressed content is {actual}, expected diff_id {expected}")]
    DiffIdMismatch {
        /// The layer blob.
        digest: Digest,
        /// The diff_id the image config names.
        expected: Digest,
        /// What the content hashed to.
        actual: Digest,
    },
    /// A compression level outside what the algorithm accepts.
    #[error("compression level {level} is out of range for {algorithm} ({range})")]
    BadLevel {
        /// `gzip` or `zstd`.
        algorithm: &'static str,
        /// The level asked for.
        level: i32,
        /// The accepted range.
        range: &'static str,
    },
    /// An entry cannot be represented in a tar archive.
    #[error("{path}: {reason}")]
    Unarchivable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// A name cannot be given to the image in the store.
    #[error("{source}")]
    Tag {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: strata_cache::ImageStoreError,
    },
    /// A push was asked for without a name to push.
    #[error("--push needs at least one -t name")]
    NothingToPush,
    /// The registry refused or could not be reached.
    #[error(transparent)]
    Registry(#[from] strata_registry::Error),
    /// The image pushed cannot be read from the store.
    #[error("{name}: {source}")]
    Layout {
        /// The name pushed.
        name: String,
        /// Why.
        #[source]
        source: strata_cache::LayoutError,
    },
    /// A result file (`--iidfile`, `--metadata-file`) cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The image input is inconsistent.
    #[error("invalid image: {0}")]
    InvalidImage(String),
}

/// Maps an `io::Error` to [`ExportError::Io`] naming `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}
