//! strata-cache: everything strata keeps on disk between builds.
//!
//! It owns the content store (`blobs/sha256/<hex>`, written atomically and
//! verified, [`store`]), OCI image layouts and the local image store
//! ([`layout`], [`image_store`]), safe layer unpacking into snapshot directories
//! ([`unpack`], [`compression`]) under verified diffIDs ([`base_layers`]),
//! and `.dockerignore` matching with Docker's
//! exact semantics ([`dockerignore`], on [`pattern`]). Snapshots stacked with
//! overlayfs, the cache index, context hashing, pruning and the remote cache
//! come next.

pub mod base_layers;
mod cache_error;
pub mod cache_mounts;
pub mod compression;
pub mod context_hash;
pub mod dockerignore;
pub mod doctor;
pub mod image_store;
pub mod index;
pub mod layout;
pub mod locks;
pub mod pattern;
mod scoped_path;
pub mod scratch;
pub mod snapshots;
pub mod store;
pub mod test_stop;
pub mod unpack;
pub mod usage;
pub mod xattrs;

pub use cache_error::CacheError;
pub use compression::{Compression, decompress};
pub use context_hash::{ContextHashError, ContextHasher, TreeDigest};
pub use dockerignore::DockerIgnore;
pub use doctor::{Report, doctor, repair};
pub use image_store::{ImageStore, ImageStoreError, normalize_name};
pub use index::{CacheIndex, CacheRecord};
pub use layout::{Image, LayoutError, OciLayout, docker_extras};
pub use locks::{BuildLease, KeyLock};
pub use scratch::{BuildScratch, sweep_dead_scratch};
pub use snapshots::{
    BlobRef, Hold, LayerRef, PreparedSnapshot, SnapshotId, SnapshotMeta, Snapshots,
};
pub use store::{BlobWriter, ContentStore, StoreError};
pub use unpack::{
    UnpackError, UnpackStats, extract_archive, layer_diff_id, unpack_layer, unpack_verified_layer,
};
pub use usage::{PruneOptions, PruneReport, Usage, UsageLine, prune, usage};
