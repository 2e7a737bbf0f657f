//! What the front end asks of the world while it builds the graph: base
//! images (resolved to a digest and a config, so keys follow content) and
//! the build context's digests (so COPY keys follow the files). The
//! implementations live beside the executor (`images`, `ops::context`).

use strata_cache::base_layers::BaseLayerError;
use strata_cache::{CacheError, ImageStoreError, LayoutError, StoreError};

use crate::graph::ImageSource;
use crate::image_config::ImageConfig;
use crate::ops::copy::CopyError;
use crate::pull::PullError;

/// The build context as the cache keys see it.
pub trait ContextFiles: std::fmt::Debug + Send + Sync {
    /// A digest of exactly what `source` (as written, expanded) selects, or
    /// why it cannot be read (the step then fails when it runs, with the
    /// copy's own message).
    fn digest(&self, source: &str) -> Result<String, CopyError>;
}

/// Looks base images up while lowering (the local store, OCI layouts,
/// registries), so a stage starts from its base's config and the source
/// vertex's key follows the image's content.
pub trait ImageResolver: std::fmt::Debug + Send + Sync {
    /// The image's manifest digest and config.
    fn resolve(&self, source: &ImageSource) -> Result<ResolvedImage, ImageError>;
}

/// A resolved base image.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// `sha256:` digest of its manifest in the local content store.
    pub digest: String,
    /// Its config (env, user, workdir, cmd, ONBUILD triggers, history...).
    pub config: ImageConfig,
}

/// Why a base image cannot be resolved or its layers unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Not in the local store, and no registry to pull from.
    #[error("no such image in the local store (`strata images` lists them)")]
    NotLocal,
    /// The pull failed.
    #[error(transparent)]
    Pull(#[from] PullError),
    /// A pull reported success but the store lacks the image.
    #[error("{0} was pulled but is not in the local store")]
    PulledButMissing(String),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] ImageStoreError),
    /// An OCI layout (or the store's) cannot be read.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The content store failed.
    #[error(transparent)]
    Content(#[from] StoreError),
    /// A layer snapshot cannot be made.
    #[error(transparent)]
    Snapshot(#[from] CacheError),
    /// A layer cannot be unpacked, or its content is not what the image claims.
    #[error("image {image}: {source}")]
    Layer {
        /// The image's manifest digest.
        image: String,
        /// What went wrong with the layer.
        #[source]
        source: Box<BaseLayerError>,
    },
    /// The image's documents contradict each other or are not what they claim.
    #[error("{0}")]
    Invalid(String),
}

impl ImageError {
    /// Whether the environment is at fault (registry unreachable,
    /// credentials refused) rather than the image.
    pub fn is_environment(&self) -> bool {
        matches!(self, ImageError::Pull(e) if e.is_environment())
    }
}
