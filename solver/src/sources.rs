//! What the front end asks of the world while it builds the graph: base
//! images (resolved to a digest and a config, so keys follow content) and
//! the build context's digests (so COPY keys follow the files). The
//! implementations live beside the executor (`images`, `ops::context`).

use crate::graph::ImageSource;
use crate::image::ImageConfig;

/// The build context as the cache keys see it.
pub trait ContextFiles: std::fmt::Debug + Send + Sync {
    /// A digest of exactly what `source` (as written, expanded) selects, or
    /// why it cannot be read (the step then fails when it runs, with the
    /// copy's own message).
    fn digest(&self, source: &str) -> Result<String, String>;
}

/// Looks base images up while lowering (the local store, OCI layouts,
/// registries), so a stage starts from its base's config and the source
/// vertex's key follows the image's content.
pub trait ImageResolver: std::fmt::Debug + Send + Sync {
    /// The image's manifest digest and config, or one sentence saying why not.
    fn resolve(&self, source: &ImageSource) -> Result<ResolvedImage, String>;
}

/// A resolved base image.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// `sha256:` digest of its manifest in the local content store.
    pub digest: String,
    /// Its config (env, user, workdir, cmd, ONBUILD triggers, history...).
    pub config: ImageConfig,
}
