//! strata-cache: everything strata keeps on disk between builds.
//!
//! It will own the content store (`blobs/sha256/<hex>`, written atomically and
//! verified), snapshots (one directory per layer, stacked with overlayfs), the
//! cache index (cache key → result), build-context hashing, usage reports and
//! pruning, and the remote cache. Today it holds `.dockerignore` matching
//! with Docker's exact semantics ([`dockerignore`], on [`pattern`]).

pub mod context_hash;
pub mod dockerignore;
pub mod pattern;
pub mod store;

pub use context_hash::{ContextHashError, ContextHasher, TreeDigest};
pub use dockerignore::DockerIgnore;
pub use store::{BlobWriter, ContentStore, Digest, StoreError};
