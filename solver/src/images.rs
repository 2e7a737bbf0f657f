//! Base images from the local store and from OCI layouts: resolved while
//! lowering ([`ImageResolver`]) and unpacked into shared layer snapshots
//! when a build needs them ([`BaseLayers`]).
//!
//! An image from a layout is imported into the content store first, so a
//! build never reads a layout again after it was resolved. Unpacked layers
//! live under `snapshots/` named by their diff ID, shared by every build
//! of the root; a layer is unpacked into a temporary folder and renamed into
//! place, so a crash never leaves a half-unpacked layer under a final name.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;

use oci_spec::image::ImageConfiguration;
use strata_cache::layout::digest_of;
use strata_cache::{Image, ImageStore, OciLayout, PlatformSelector, docker_extras, unpack_layer};

use crate::graph::ImageSource;
use crate::image::{Healthcheck, HistoryEntry, ImageConfig};
use crate::lower::{ImageResolver, ResolvedImage};
use crate::ops::executor::{BaseLayers, Layer, LayerBlobRef};

/// The local store and the layouts named by a build, for one platform.
#[derive(Debug)]
pub struct LocalImages {
    store: ImageStore,
    snapshots: PathBuf,
    platform: PlatformSelector,
    /// Images resolved so far, by manifest digest.
    resolved: Mutex<HashMap<String, Image>>,
}

impl LocalImages {
    /// Images of `store`; layers unpacked under `snapshots`.
    pub fn new(
        store: ImageStore,
        snapshots: impl Into<PathBuf>,
        platform: PlatformSelector,
    ) -> Self {
        LocalImages {
            store,
            snapshots: snapshots.into(),
            platform,
            resolved: Mutex::default(),
        }
    }

    fn find(&self, source: &ImageSource) -> Result<Image, String> {
        match source {
            ImageSource::Layout { path, reference } => {
                let layout = OciLayout::open(path).map_err(|e| e.to_string())?;
                let image = layout
                    .resolve(reference, &self.platform)
                    .map_err(|e| e.to_string())?;
                layout
                    .import(&image, self.store.content())
                    .map_err(|e| e.to_string())?;
                Ok(image)
            }
            ImageSource::Store { reference } => self
                .store
                .image(reference, &self.platform)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    "no such image in the local store (`strata images` lists them; \
                     pulling from a registry is not available yet)"
                        .to_string()
                }),
        }
    }

    /// Unpacks one layer blob into its shared snapshot, once.
    fn unpack(&self, blob: &LayerBlobRef) -> Result<PathBuf, String> {
        let hex = blob.diff_id.trim_start_matches("sha256:");
        let dir = self
            .snapshots
            .join(format!("l-{}", &hex[..hex.len().min(16)]));
        if dir.is_dir() {
            return Ok(dir);
        }
        fs::create_dir_all(&self.snapshots)
            .map_err(|e| format!("cannot create {}: {e}", self.snapshots.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix("unpack-")
            .tempdir_in(&self.snapshots)
            .map_err(|e| format!("cannot unpack under {}: {e}", self.snapshots.display()))?;
        let digest = blob
            .digest
            .parse()
            .map_err(|e: strata_cache::store::DigestParseError| e.to_string())?;
        let file = self
            .store
            .content()
            .open_blob(&digest)
            .map_err(|e| e.to_string())?;
        unpack_layer(std::io::BufReader::new(file), tmp.path())
            .map_err(|e| format!("layer {}: {e}", blob.digest))?;
        match fs::rename(tmp.path(), &dir) {
            Ok(()) => {
                // Renamed away: nothing left for the guard to remove.
                let _ = tmp.keep();
                Ok(dir)
            }
            // Another build unpacked the same layer first; use theirs.
            Err(_) if dir.is_dir() => Ok(dir),
            Err(e) => Err(format!(
                "cannot move the unpacked layer to {}: {e}",
                dir.display()
            )),
        }
    }
}

impl ImageResolver for LocalImages {
    fn resolve(&self, source: &ImageSource) -> Result<ResolvedImage, String> {
        let image = self.find(source)?;
        let digest = image.digest().map_err(|e| e.to_string())?.to_string();
        let config = image_config(&image)?;
        if let Ok(mut map) = self.resolved.lock() {
            map.insert(digest.clone(), image);
        }
        Ok(ResolvedImage { digest, config })
    }
}

impl BaseLayers for LocalImages {
    fn layers(&self, digest: &str) -> Result<Vec<Layer>, String> {
        let image = self
            .resolved
            .lock()
            .ok()
            .and_then(|m| m.get(digest).cloned())
            .ok_or_else(|| format!("image {digest} was not resolved by this build"))?;
        let diff_ids = image.config.rootfs().diff_ids();
        let layers = image.manifest.layers();
        if diff_ids.len() != layers.len() {
            return Err(format!(
                "image {digest}: {} layers but {} diff IDs in its config",
                layers.len(),
                diff_ids.len()
            ));
        }
        layers
            .iter()
            .zip(diff_ids)
            .map(|(desc, diff_id)| {
                let blob = LayerBlobRef {
                    digest: digest_of(desc).map_err(|e| e.to_string())?.to_string(),
                    diff_id: diff_id.clone(),
                    size: desc.size(),
                    media_type: desc.media_type().to_string(),
                };
                Ok(Layer {
                    dir: self.unpack(&blob)?,
                    blob: Some(blob),
                })
            })
            .collect()
    }
}

/// The parts of an image's config a stage builds on.
fn image_config(image: &Image) -> Result<ImageConfig, String> {
    let c: &ImageConfiguration = &image.config;
    let extras = docker_extras(&image.config_bytes)
        .map_err(|e| format!("config {}: {e}", image.manifest.config().digest()))?;
    let mut out = ImageConfig {
        history: c
            .history()
            .iter()
            .map(|h| HistoryEntry {
                created: h.created().clone(),
                created_by: h.created_by().clone().unwrap_or_default(),
                comment: h.comment().clone(),
                empty_layer: h.empty_layer().unwrap_or(false),
            })
            .collect(),
        on_build: extras.on_build,
        shell: extras.shell,
        healthcheck: extras.healthcheck.map(|h| Healthcheck {
            test: h.test,
            interval: h.interval.and_then(|v| u64::try_from(v).ok()),
            timeout: h.timeout.and_then(|v| u64::try_from(v).ok()),
            start_period: h.start_period.and_then(|v| u64::try_from(v).ok()),
            start_interval: h.start_interval.and_then(|v| u64::try_from(v).ok()),
            retries: h.retries.and_then(|v| u32::try_from(v).ok()),
        }),
        ..ImageConfig::default()
    };
    if let Some(rc) = c.config() {
        out.env = rc.env().clone().unwrap_or_default();
        out.cmd = rc.cmd().clone();
        out.entrypoint = rc.entrypoint().clone();
        out.user = rc.user().clone().unwrap_or_default();
        out.working_dir = rc.working_dir().clone().unwrap_or_default();
        out.exposed_ports = rc.exposed_ports().iter().flatten().cloned().collect();
        out.volumes = rc.volumes().iter().flatten().cloned().collect();
        out.labels = rc
            .labels()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.stop_signal = rc.stop_signal().clone();
    }
    Ok(out)
}
