//! Base-image layers as shared snapshots (`snapshots/l-…`), each under an
//! identity that was checked: a layer is unpacked only from a blob whose
//! uncompressed stream hashes, in the same pass, to the diffID its image
//! config claims, and an existing snapshot serves a blob only once that
//! blob was shown to have the snapshot's diffID (decompressed and hashed,
//! nothing unpacked; remembered in the snapshot's [`BaseMeta`]). So a
//! forged layer claiming another layer's diffID is refused, and nothing is
//! recorded for it, whichever of the two a root sees first.
//!
//! `doctor --deep` re-verifies ([`verify`]): the tree digest recorded at
//! commit against the folder, and the recorded blobs against the diffID.

use std::io::BufReader;

use crate::cache_error::CacheError;
use crate::context_hash::{ContextHashError, snapshot_digest};
use crate::snapshots::{BaseMeta, BlobRef, Hold, SnapshotId, Snapshots, dir_size, now_secs};
use crate::store::{ContentStore, Digest, StoreError};
use crate::unpack::{UnpackError, layer_diff_id, unpack_verified_layer};

/// Why a base layer could not be made available; each names the layer.
#[derive(Debug, thiserror::Error)]
pub enum BaseLayerError {
    /// The layer's uncompressed content does not have the claimed diffID.
    #[error(
        "layer {blob} is refused: its image config claims diffID {claimed}, \
         but its content has diffID {actual}"
    )]
    DiffIdMismatch {
        /// The layer's blob digest.
        blob: String,
        /// The diffID the image config claims.
        claimed: String,
        /// The sha256 of the uncompressed stream.
        actual: String,
    },
    /// The blob digest is not a `sha256:` digest.
    #[error("layer {blob}: {source}")]
    BadDigest {
        /// The layer's blob digest.
        blob: String,
        /// The cause.
        #[source]
        source: strata_registry::InvalidDigest,
    },
    /// The blob could not be opened in the content store.
    #[error("layer {blob}: {source}")]
    Store {
        /// The layer's blob digest.
        blob: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// Reading or unpacking the blob failed.
    #[error("layer {blob}: {source}")]
    Unpack {
        /// The layer's blob digest.
        blob: String,
        /// The cause.
        #[source]
        source: UnpackError,
    },
    /// Digesting the unpacked tree failed.
    #[error("layer {blob}: digesting the unpacked tree: {source}")]
    Tree {
        /// The layer's blob digest.
        blob: String,
        /// The cause.
        #[source]
        source: ContextHashError,
    },
    /// A snapshot operation failed.
    #[error("layer {blob}: {source}")]
    Cache {
        /// The layer's blob digest.
        blob: String,
        /// The cause.
        #[source]
        source: CacheError,
    },
}

/// The snapshot of base layer `blob` (of `content`), unpacked and verified
/// unless a snapshot of its diffID exists, and held for the caller.
/// More than `limit` uncompressed bytes fail with [`UnpackError::TooLarge`]
/// (and record nothing).
pub fn base_layer(
    snaps: &Snapshots,
    content: &ContentStore,
    blob: &BlobRef,
    limit: u64,
) -> Result<(SnapshotId, Hold), BaseLayerError> {
    let cache = |source| BaseLayerError::Cache {
        blob: blob.digest.clone(),
        source,
    };
    let short = SnapshotId::for_diff_id(&blob.diff_id).map_err(cache)?;
    match snapshot_as(snaps, content, blob, &short, limit) {
        // Another diffID has the same first 16 hex digits: use them all.
        Err(BaseLayerError::Cache {
            source: CacheError::DiffIdCollision { .. },
            ..
        }) => {
            let long = SnapshotId::for_diff_id_long(&blob.diff_id).map_err(cache)?;
            snapshot_as(snaps, content, blob, &long, limit).map(|hold| (long, hold))
        }
        other => other.map(|hold| (short, hold)),
    }
}

/// [`base_layer`] under the folder name `id`.
fn snapshot_as(
    snaps: &Snapshots,
    content: &ContentStore,
    blob: &BlobRef,
    id: &SnapshotId,
    limit: u64,
) -> Result<Hold, BaseLayerError> {
    let cache = |source| BaseLayerError::Cache {
        blob: blob.digest.clone(),
        source,
    };
    if let Some((hold, meta)) = existing(snaps, id, &blob.diff_id).map_err(cache)? {
        if !meta.blobs.contains(&blob.digest) {
            let actual = blob_diff_id(content, &blob.digest)?;
            if actual != blob.diff_id {
                return Err(BaseLayerError::DiffIdMismatch {
                    blob: blob.digest.clone(),
                    claimed: blob.diff_id.clone(),
                    actual,
                });
            }
            remember_blob(snaps, id, &blob.digest).map_err(cache)?;
        }
        return Ok(hold);
    }
    let prepared = snaps.prepare().map_err(cache)?;
    let file = open_blob(content, &blob.digest)?;
    unpack_verified_layer(BufReader::new(file), prepared.path(), &blob.diff_id, limit).map_err(
        |e| match e {
            UnpackError::DiffIdMismatch { claimed, actual } => BaseLayerError::DiffIdMismatch {
                blob: blob.digest.clone(),
                claimed,
                actual,
            },
            source => BaseLayerError::Unpack {
                blob: blob.digest.clone(),
                source,
            },
        },
    )?;
    let tree = snapshot_digest(prepared.path()).map_err(|source| BaseLayerError::Tree {
        blob: blob.digest.clone(),
        source,
    })?;
    let meta = BaseMeta {
        diff_id: blob.diff_id.clone(),
        blobs: vec![blob.digest.clone()],
        tree: tree.hex(),
        size: dir_size(prepared.path()).map_err(cache)?,
        created: now_secs(),
    };
    let (hold, theirs) = snaps.commit_base(prepared, id, &meta).map_err(cache)?;
    // Another build committed the diffID first, from another blob.
    if !theirs.blobs.contains(&blob.digest) {
        remember_blob(snaps, id, &blob.digest).map_err(cache)?;
    }
    Ok(hold)
}

/// A hold on complete snapshot `id` and its metadata, when it exists;
/// [`CacheError::DiffIdCollision`] when it holds another diffID.
fn existing(
    snaps: &Snapshots,
    id: &SnapshotId,
    diff_id: &str,
) -> Result<Option<(Hold, BaseMeta)>, CacheError> {
    let hold = match snaps.hold(id) {
        Ok(hold) => hold,
        Err(CacheError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = snaps.base_meta(id)?;
    if meta.diff_id != diff_id {
        return Err(CacheError::DiffIdCollision {
            path: snaps.path(id),
            existing: meta.diff_id,
            wanted: diff_id.to_string(),
        });
    }
    Ok(Some((hold, meta)))
}

/// Adds `digest` to the blobs verified for held snapshot `id`. Two builds
/// adding at once may lose one addition; that blob is verified again later.
fn remember_blob(snaps: &Snapshots, id: &SnapshotId, digest: &str) -> Result<(), CacheError> {
    let mut meta = snaps.base_meta(id)?;
    if !meta.blobs.iter().any(|b| b == digest) {
        meta.blobs.push(digest.to_string());
        snaps.write_json(id, &meta)?;
    }
    Ok(())
}

fn open_blob(content: &ContentStore, digest: &str) -> Result<std::fs::File, BaseLayerError> {
    let parsed: Digest = digest.parse().map_err(|source| BaseLayerError::BadDigest {
        blob: digest.to_string(),
        source,
    })?;
    content
        .open_blob(&parsed)
        .map_err(|source| BaseLayerError::Store {
            blob: digest.to_string(),
            source,
        })
}

/// The diffID of blob `digest` of `content`, decompressed and hashed.
fn blob_diff_id(content: &ContentStore, digest: &str) -> Result<String, BaseLayerError> {
    let file = open_blob(content, digest)?;
    layer_diff_id(BufReader::new(file)).map_err(|e| BaseLayerError::Unpack {
        blob: digest.to_string(),
        source: UnpackError::Read(e),
    })
}

/// What is wrong with base layer snapshot `id`, one sentence each: its
/// metadata is unreadable or names another diffID; with `deep`, its folder
/// no longer has the tree digest recorded at commit, or a recorded blob
/// present in `content` does not decompress to the diffID.
pub fn verify(
    snaps: &Snapshots,
    content: &ContentStore,
    id: &SnapshotId,
    deep: bool,
) -> Vec<String> {
    let meta = match snaps.base_meta(id) {
        Ok(meta) => meta,
        Err(e) => {
            return vec![format!(
                "base layer snapshot {id}: unreadable metadata: {e}"
            )];
        }
    };
    let hex = meta.diff_id.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64 || !hex.starts_with(&id.as_str()[2..]) {
        return vec![format!(
            "base layer snapshot {id}: its metadata records diffID {}, which does not match its name",
            meta.diff_id
        )];
    }
    if !deep {
        return Vec::new();
    }
    let mut problems = Vec::new();
    match snapshot_digest(&snaps.path(id)) {
        Ok(tree) if tree.hex() == meta.tree => {}
        Ok(_) => problems.push(format!(
            "base layer snapshot {id} (diffID {}): its content changed since it was unpacked \
             (the tree digest differs from the one recorded)",
            meta.diff_id
        )),
        Err(e) => problems.push(format!(
            "base layer snapshot {id}: digesting its content: {e}"
        )),
    }
    for blob in &meta.blobs {
        let present = blob.parse::<Digest>().is_ok_and(|d| content.has(&d));
        if !present {
            continue;
        }
        match blob_diff_id(content, blob) {
            Ok(actual) if actual == meta.diff_id => {}
            Ok(actual) => problems.push(format!(
                "base layer snapshot {id}: blob {blob} was recorded with diffID {} \
                 but has diffID {actual}",
                meta.diff_id
            )),
            Err(e) => problems.push(format!("base layer snapshot {id}: {e}")),
        }
    }
    problems
}
