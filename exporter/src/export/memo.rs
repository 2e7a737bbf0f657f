//! From the target stage's layer stack and config to an image in the local
//! store: layer blobs (base layers reused as they are, the build's own packed
//! in parallel and remembered per snapshot), history, config and manifest.

use std::path::PathBuf;

use strata_cache::{ImageStore, LayerRef, Snapshots};
use strata_registry::Digest;
use strata_registry::{MediaType, Platform};
use strata_solver::ImageConfig;
use strata_solver::ops::Layer;

use super::config;
use crate::timefmt::rfc3339;
use crate::{
    Compression, ExportError, History, ImageInput, ImageRef, LayerBlob, MediaTypes, write_layers,
};

/// What to write.
pub(crate) struct ImageRequest<'a> {
    /// The image store the image goes to.
    pub store: &'a ImageStore,
    /// The target's layers, bottom first.
    pub stack: &'a [Layer],
    /// The target's config.
    pub config: &'a ImageConfig,
    /// How new layers are compressed.
    pub compression: Compression,
    /// SOURCE_DATE_EPOCH: fixes every timestamp for reproducible digests.
    pub epoch: Option<i64>,
    /// The build cache's snapshots (`$STRATA_ROOT/snapshots`), whose commit
    /// times date an image built without `epoch`.
    pub snapshots: PathBuf,
    /// Where packed layers are remembered (`$STRATA_ROOT/layer-blobs`).
    pub memo_dir: PathBuf,
    /// The platform the image's config names (`--platform`, else the host's).
    pub platform: Platform,
}

/// A packed layer, remembered by snapshot.
#[derive(serde::Serialize, serde::Deserialize)]
struct MemoBlob {
    digest: String,
    diff_id: String,
    size: u64,
    media_type: MediaType,
}

fn blake3_hex(s: &str) -> String {
    blake3::hash(s.as_bytes()).to_hex()[..16].to_string()
}

/// Writes through a temporary file and a rename, so readers never see half a file.
fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Writes the image's blobs, config and manifest to the store.
pub(crate) fn write_image(req: &ImageRequest<'_>) -> Result<ImageRef, ExportError> {
    let content = req.store.content();
    // The build's own layers: packed once per snapshot and way of packing,
    // then reused while the blob is in the store (snapshots never change).
    let memo = |l: &Layer| {
        let spec = format!(
            "{:?}-{:?}-{:?}",
            req.compression.kind, req.compression.level, req.epoch
        );
        req.memo_dir.join(format!(
            "{}-{}.json",
            l.snapshot.id().as_str(),
            blake3_hex(&spec)
        ))
    };
    let remembered = |l: &Layer| -> Option<LayerBlob> {
        let text = std::fs::read(memo(l)).ok()?;
        let b: MemoBlob = serde_json::from_slice(&text).ok()?;
        let blob = LayerBlob {
            digest: b.digest.parse().ok()?,
            diff_id: b.diff_id.parse().ok()?,
            size: b.size,
            media_type: b.media_type,
        };
        content.has(&blob.digest).then_some(blob)
    };
    let mut known: Vec<Option<LayerBlob>> = req
        .stack
        .iter()
        .map(|l| {
            if l.blob().is_none() {
                remembered(l)
            } else {
                None
            }
        })
        .collect();
    let missing: Vec<usize> = (0..req.stack.len())
        .filter(|&i| req.stack[i].blob().is_none() && known[i].is_none())
        .collect();
    let dirs: Vec<PathBuf> = missing.iter().map(|&i| req.stack[i].dir.clone()).collect();
    let packed = write_layers(&dirs, req.compression, content, req.epoch)?;
    let _ = std::fs::create_dir_all(&req.memo_dir);
    for (i, blob) in missing.into_iter().zip(packed) {
        let m = MemoBlob {
            digest: blob.digest.to_string(),
            diff_id: blob.diff_id.to_string(),
            size: blob.size,
            media_type: blob.media_type.clone(),
        };
        // A lost memo only costs packing the layer again.
        if let Ok(bytes) = serde_json::to_vec(&m) {
            let _ = write_atomic(&memo(&req.stack[i]), &bytes);
        }
        known[i] = Some(blob);
    }
    let layers = req
        .stack
        .iter()
        .zip(known)
        .map(|(l, k)| match (l.blob(), k) {
            (Some(b), _) => Ok(LayerBlob {
                digest: parse_digest(&b.digest)?,
                diff_id: parse_digest(&b.diff_id)?,
                size: b.size,
                media_type: MediaType::from(b.media_type.as_str()),
            }),
            (None, Some(blob)) => Ok(blob),
            (None, None) => Err(ExportError::InvalidImage(
                "a packed layer is missing".to_string(),
            )),
        })
        .collect::<Result<Vec<_>, ExportError>>()?;

    let now = req
        .epoch
        .or_else(|| newest_step(&req.snapshots, req.stack))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        });
    let created = rfc3339(now);
    let mut history: Vec<History> = req
        .config
        .history
        .iter()
        .map(|h| History {
            created: h.created.clone().or_else(|| Some(created.clone())),
            created_by: h.created_by.clone(),
            comment: h.comment.clone(),
            empty_layer: h.empty_layer,
        })
        .collect();
    // A base image whose history does not match its layers (some tools
    // write none) would make the history lie about ours: leave it out.
    if history.iter().filter(|h| !h.empty_layer).count() != layers.len() {
        history.clear();
    }
    let input = ImageInput {
        platform: req.platform.clone(),
        created: Some(created),
        config: config::to_json(req.config),
        history,
        layers,
        media_types: MediaTypes::Oci,
    };
    crate::write_image(content, &input)
}

/// When the newest of the stack's own layers was committed. An unchanged
/// rebuild reuses every layer, so its image has the same `created` and the
/// same ID (BuildKit dates cached results the same way); `None` when the
/// build made no layer of its own.
fn newest_step(snapshots: &std::path::Path, stack: &[Layer]) -> Option<i64> {
    let snaps = Snapshots::open(snapshots).ok()?;
    stack
        .iter()
        .filter_map(|l| match &l.snapshot {
            LayerRef::Step { id } => snaps.meta(id).ok(),
            LayerRef::Base { .. } => None,
        })
        .map(|m| m.created)
        .max()
        .and_then(|c| i64::try_from(c).ok())
}

fn parse_digest(s: &str) -> Result<Digest, ExportError> {
    s.parse()
        .map_err(|e| ExportError::InvalidImage(format!("base layer digest {s}: {e}")))
}
