//! The build context's digests for COPY/ADD cache keys: exactly the files a
//! source selects (after `.dockerignore`), contents read through a metadata
//! cache persisted under the state root, so an unchanged rebuild reads no
//! file.

use std::path::{Path, PathBuf};

use strata_cache::{ContextHasher, DockerIgnore};

use crate::ops::copy::{CopyError, selection_digest};
use crate::sources::ContextFiles;

/// The main build context of one build.
pub struct ContextDigests {
    root: PathBuf,
    ignore: DockerIgnore,
    files: ContextHasher,
}

impl std::fmt::Debug for ContextDigests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextDigests")
            .field("root", &self.root)
            .finish()
    }
}

impl ContextDigests {
    /// Digests below `root` (filtered by `ignore`), remembering file digests
    /// in `cache_file`.
    pub fn new(root: &Path, ignore: DockerIgnore, cache_file: &Path) -> Self {
        ContextDigests {
            // The metadata cache is keyed by path: absolute, so two contexts
            // never share entries.
            root: root.canonicalize().unwrap_or_else(|_| root.to_path_buf()),
            ignore,
            files: ContextHasher::open(cache_file),
        }
    }

    /// Keeps what was learned for the next build; a failure only costs
    /// re-reading files next time.
    pub fn save(&self) {
        let _ = self.files.save();
    }

    /// Files whose contents were read (not taken from the metadata cache).
    pub fn files_read(&self) -> u64 {
        self.files.files_read()
    }
}

impl ContextFiles for ContextDigests {
    fn digest(&self, source: &str) -> Result<String, CopyError> {
        selection_digest(
            &self.root,
            &[source.to_string()],
            &self.ignore,
            true,
            Some(&self.files),
        )
    }
}
