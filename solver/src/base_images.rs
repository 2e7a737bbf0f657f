//! Base images from the local store and from OCI layouts: resolved while
//! lowering ([`ImageResolver`]) and unpacked into shared layer snapshots
//! when a build needs them ([`BaseLayers`]).
//!
//! An image from a layout is imported into the content store first, so a
//! build never reads a layout again after it was resolved. Unpacked layers
//! are snapshots (`snapshots/l-…`) named by their diff ID, shared by every
//! build of the root, committed only once complete and verified (see
//! [`strata_cache::base_layers`]: a layer whose content does not have the
//! diffID its config claims is refused).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use oci_spec::image::ImageConfiguration;
use strata_cache::base_layers::base_layer;
use strata_cache::layout::digest_of;
use strata_cache::snapshots::{BlobRef, Hold, LayerRef, Snapshots};
use strata_cache::{Image, ImageStore, OciLayout, docker_extras};
use strata_registry::{Client, Platform, Reference};

use crate::graph::ImageSource;
use crate::image_config::{Healthcheck, HistoryEntry, ImageConfig};
use crate::ops::executor::{BaseLayers, Layer};
use crate::pull::{PullError, pull};
use crate::solve::DEFAULT_DECOMPRESSION_LIMIT;
use crate::sources::{ImageError, ImageResolver, ResolvedImage};

/// How images missing from the local store are pulled.
pub struct RegistryPull {
    /// The registry client.
    pub client: Client,
    /// The platform chosen in indexes.
    pub platform: Platform,
    /// Re-resolve tags even when the store has them (`--pull`).
    pub always: bool,
    /// Receives progress lines.
    pub progress: Box<dyn Fn(&str) + Send + Sync>,
}

impl std::fmt::Debug for RegistryPull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryPull")
            .field("platform", &self.platform)
            .field("always", &self.always)
            .finish_non_exhaustive()
    }
}

/// The local store and the layouts named by a build, for one platform.
#[derive(Debug)]
pub struct LocalImages {
    store: ImageStore,
    snapshots: Snapshots,
    platform: Platform,
    /// Images resolved so far, by manifest digest.
    resolved: Mutex<HashMap<String, Image>>,
    /// Base layers in use, kept from prune.
    holds: Mutex<Vec<Hold>>,
    registry: Option<RegistryPull>,
    /// The most bytes one layer may decompress to.
    decompression_limit: u64,
}

impl LocalImages {
    /// Images of `store`; layers unpacked into the snapshots of state root `root`.
    pub fn new(store: ImageStore, root: &Path, platform: Platform) -> Result<Self, ImageError> {
        Ok(LocalImages {
            store,
            snapshots: Snapshots::open(root.join("snapshots"))?,
            platform,
            resolved: Mutex::default(),
            holds: Mutex::default(),
            registry: None,
            decompression_limit: DEFAULT_DECOMPRESSION_LIMIT,
        })
    }

    /// Refuses layers that decompress to more than `limit` bytes.
    pub fn with_decompression_limit(mut self, limit: u64) -> Self {
        self.decompression_limit = limit;
        self
    }

    /// Pulls store references that are not local (or always, see
    /// [`RegistryPull::always`]) from their registry.
    pub fn with_registry(mut self, registry: RegistryPull) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The holds on the base layers unpacked so far (see
    /// [`StackExecutor::take_holds`](crate::ops::StackExecutor::take_holds)).
    pub fn take_holds(&self) -> Vec<Hold> {
        self.holds
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default()
    }

    /// The image tagged `reference` (or its familiar spelling, without
    /// `docker.io/library/`) when every blob it needs is local.
    fn local(&self, reference: &str) -> Result<Option<Image>, ImageError> {
        let familiar = Reference::parse(reference).map(|r| r.to_string()).ok();
        for name in std::iter::once(reference).chain(familiar.as_deref()) {
            let image = self.store.image(name, &self.platform)?;
            if let Some(image) = image.filter(|i| self.complete(i)) {
                return Ok(Some(image));
            }
        }
        Ok(None)
    }

    fn complete(&self, image: &Image) -> bool {
        let content = self.store.content();
        image
            .manifest
            .layers()
            .iter()
            .all(|l| digest_of(l).is_ok_and(|d| content.has(&d)))
    }

    /// `name@sha256:…` whose manifest and blobs are all in the content
    /// store: tagged and returned without the network.
    fn pinned_offline(&self, reference: &str) -> Result<Option<Image>, ImageError> {
        let Some(digest) = Reference::parse(reference)
            .ok()
            .and_then(|r| r.digest().cloned())
        else {
            return Ok(None);
        };
        let content = self.store.content();
        if !content.has(&digest) {
            return Ok(None);
        }
        let bytes = content.read(&digest)?;
        let desc = strata_registry::manifest_descriptor(&bytes, &digest)
            .map_err(|e| ImageError::Invalid(format!("manifest {digest}: {e}")))?;
        let Ok(image) = self.store.layout().image(&desc, &self.platform) else {
            return Ok(None);
        };
        if !self.complete(&image) {
            return Ok(None);
        }
        self.store.tag(reference, &desc)?;
        Ok(Some(image))
    }

    fn store_image(&self, reference: &str) -> Result<Image, ImageError> {
        let Some(registry) = &self.registry else {
            return self.local(reference)?.ok_or(ImageError::NotLocal);
        };
        if let Some(image) = self.pinned_offline(reference)? {
            return Ok(image);
        }
        if !registry.always
            && let Some(image) = self.local(reference)?
        {
            return Ok(image);
        }
        let progress = &*registry.progress;
        let pulled = pull(
            &self.store,
            &registry.client,
            reference,
            &registry.platform,
            progress,
        );
        match pulled {
            Ok(_) => {}
            // `--pull` on an image that only exists here (built, never pushed).
            Err(PullError::Registry(strata_registry::Error::NotFound { .. }))
                if registry.always
                    && let Some(image) = self.local(reference)? =>
            {
                progress(&format!(
                    "{reference} is not in its registry: using the local image"
                ));
                return Ok(image);
            }
            Err(e) => return Err(e.into()),
        }
        self.local(reference)?
            .ok_or_else(|| ImageError::PulledButMissing(reference.to_string()))
    }

    fn find(&self, source: &ImageSource) -> Result<Image, ImageError> {
        match source {
            ImageSource::Layout { path, reference } => {
                let layout = OciLayout::open(path)?;
                let image = layout.resolve(reference, &self.platform)?;
                layout.import(&image, self.store.content())?;
                Ok(image)
            }
            ImageSource::Store { reference } => self.store_image(reference),
        }
    }

    /// Unpacks one layer blob of image `image` (its manifest digest) into
    /// its shared snapshot, once per root, verifying its diffID; the snapshot
    /// is held (safe from prune) for this process's life.
    fn unpack(&self, image: &str, blob: BlobRef) -> Result<Layer, ImageError> {
        let limit = self.decompression_limit;
        let (id, hold) =
            base_layer(&self.snapshots, self.store.content(), &blob, limit).map_err(|source| {
                ImageError::Layer {
                    image: image.to_string(),
                    source: Box::new(source),
                }
            })?;
        if let Ok(mut holds) = self.holds.lock() {
            holds.push(hold);
        }
        Ok(Layer {
            dir: self.snapshots.path(&id),
            snapshot: LayerRef::Base { id, blob },
        })
    }
}

impl ImageResolver for LocalImages {
    fn resolve(&self, source: &ImageSource) -> Result<ResolvedImage, ImageError> {
        let image = self.find(source)?;
        let digest = image.digest()?.to_string();
        let config = image_config(&image)?;
        if let Ok(mut map) = self.resolved.lock() {
            map.insert(digest.clone(), image);
        }
        Ok(ResolvedImage { digest, config })
    }
}

impl BaseLayers for LocalImages {
    fn layers(&self, digest: &str) -> Result<Vec<Layer>, ImageError> {
        let image = self
            .resolved
            .lock()
            .ok()
            .and_then(|m| m.get(digest).cloned())
            .ok_or_else(|| {
                ImageError::Invalid(format!("image {digest} was not resolved by this build"))
            })?;
        let diff_ids = image.config.rootfs().diff_ids();
        let layers = image.manifest.layers();
        if diff_ids.len() != layers.len() {
            return Err(ImageError::Invalid(format!(
                "image {digest}: {} layers but {} diff IDs in its config",
                layers.len(),
                diff_ids.len()
            )));
        }
        layers
            .iter()
            .zip(diff_ids)
            .map(|(desc, diff_id)| {
                let blob = BlobRef {
                    digest: digest_of(desc)?.to_string(),
                    diff_id: diff_id.clone(),
                    size: desc.size(),
                    media_type: desc.media_type().to_string(),
                };
                self.unpack(digest, blob)
            })
            .collect()
    }
}

/// The parts of an image's config a stage builds on.
fn image_config(image: &Image) -> Result<ImageConfig, ImageError> {
    let c: &ImageConfiguration = &image.config;
    let extras = docker_extras(&image.config_bytes).map_err(|e| {
        ImageError::Invalid(format!("config {}: {e}", image.manifest.config().digest()))
    })?;
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
