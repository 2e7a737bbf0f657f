//! Image config and manifest, written to the store as canonical JSON.

use serde_json::{Map, Value, json};
use strata_cache::ContentStore;
use strata_registry::Digest;

use crate::canonical::to_canonical_json;
use crate::error::ExportError;
use crate::layer::{LayerBlob, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_LAYER_ZSTD};

/// OCI image manifest media type.
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image manifest (v2 schema 2) media type.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config media type.
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Layer media types: (OCI, Docker) pairs of the same content.
const LAYER_TYPE_PAIRS: [(&str, &str); 4] = [
    (
        MEDIA_TYPE_LAYER_GZIP,
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ),
    (
        MEDIA_TYPE_LAYER_TAR,
        "application/vnd.docker.image.rootfs.diff.tar",
    ),
    (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ),
    (
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.docker.image.rootfs.foreign.diff.tar",
    ),
];

/// Which family of media types the manifest, config and layers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaTypes {
    /// OCI image spec media types.
    #[default]
    Oci,
    /// Docker image manifest v2 schema 2 media types.
    Docker,
}

/// One image config history entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct History {
    /// RFC 3339 time of the step.
    pub created: Option<String>,
    /// The instruction, e.g. `RUN /bin/sh -c make`.
    pub created_by: String,
    /// A free comment (BuildKit writes `buildkit.dockerfile.v0`).
    pub comment: Option<String>,
    /// True when the step added no layer (ENV, CMD, ...).
    pub empty_layer: bool,
}

/// Everything an image is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInput {
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `linux`.
    pub os: String,
    /// `v8`, `v7`, ... when the platform has one.
    pub variant: Option<String>,
    /// RFC 3339 creation time; leave it out (or set it from
    /// SOURCE_DATE_EPOCH) for reproducible digests.
    pub created: Option<String>,
    /// The runtime `config` object with Docker's field names (`Env`, `Cmd`,
    /// `Entrypoint`, `User`, `WorkingDir`, `ExposedPorts`, `Volumes`, `Labels`,
    /// `StopSignal`, `Healthcheck`, `OnBuild`, `Shell`), included as given.
    pub config: Value,
    /// One entry per step; the entries without `empty_layer` match `layers` one to one.
    pub history: Vec<History>,
    /// Base image layers first.
    pub layers: Vec<LayerBlob>,
    /// OCI or Docker media types.
    pub media_types: MediaTypes,
}

/// An image manifest in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Digest of the manifest (the image's identity in registries).
    pub manifest_digest: Digest,
    /// Size of the manifest in bytes.
    pub manifest_size: u64,
    /// Digest of the config (Docker's image ID).
    pub config_digest: Digest,
    /// The manifest's media type.
    pub manifest_media_type: String,
}

impl ImageRef {
    /// The manifest's descriptor, for outputs that list manifests.
    pub fn manifest(&self) -> ManifestRef {
        ManifestRef {
            digest: self.manifest_digest.clone(),
            size: self.manifest_size,
            media_type: self.manifest_media_type.clone(),
        }
    }
}

/// A manifest or index in the store, as a descriptor names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRef {
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// An image manifest or index (manifest list) media type.
    pub media_type: String,
}

/// Writes the config and manifest of `input` to `store`.
///
/// Both are canonical JSON (sorted keys, no whitespace), so the same input
/// always gives the same digests.
pub fn write_image(store: &ContentStore, input: &ImageInput) -> Result<ImageRef, ExportError> {
    let layered = input.history.iter().filter(|h| !h.empty_layer).count();
    if !input.history.is_empty() && layered != input.layers.len() {
        return Err(ExportError::InvalidImage(format!(
            "history has {layered} entries with a layer but the image has {} layers",
            input.layers.len()
        )));
    }
    if !input.config.is_object() {
        return Err(ExportError::InvalidImage(
            "the runtime config must be a JSON object".to_string(),
        ));
    }

    let (manifest_type, config_type) = match input.media_types {
        MediaTypes::Oci => (MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_OCI_CONFIG),
        MediaTypes::Docker => (MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_CONFIG),
    };

    let config_bytes = to_canonical_json(&config_json(input));
    let config_digest = store.put(&config_bytes)?;

    let mut layers = Vec::with_capacity(input.layers.len());
    for layer in &input.layers {
        layers.push(json!({
            "mediaType": layer_media_type(&layer.media_type, input.media_types)?,
            "digest": layer.digest.as_str(),
            "size": layer.size,
        }));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {
            "mediaType": config_type,
            "digest": config_digest.as_str(),
            "size": config_bytes.len(),
        },
        "layers": layers,
    });
    let manifest_bytes = to_canonical_json(&manifest);
    let manifest_digest = store.put(&manifest_bytes)?;
    Ok(ImageRef {
        manifest_digest,
        manifest_size: manifest_bytes.len() as u64,
        config_digest,
        manifest_media_type: manifest_type.to_string(),
    })
}

fn config_json(input: &ImageInput) -> Value {
    let mut config = Map::new();
    config.insert("architecture".into(), json!(input.architecture));
    config.insert("os".into(), json!(input.os));
    if let Some(variant) = &input.variant {
        config.insert("variant".into(), json!(variant));
    }
    if let Some(created) = &input.created {
        config.insert("created".into(), json!(created));
    }
    config.insert("config".into(), input.config.clone());
    let diff_ids: Vec<&str> = input.layers.iter().map(|l| l.diff_id.as_str()).collect();
    config.insert(
        "rootfs".into(),
        json!({ "type": "layers", "diff_ids": diff_ids }),
    );
    let history: Vec<Value> = input.history.iter().map(history_json).collect();
    config.insert("history".into(), Value::Array(history));
    Value::Object(config)
}

fn history_json(h: &History) -> Value {
    let mut entry = Map::new();
    if let Some(created) = &h.created {
        entry.insert("created".into(), json!(created));
    }
    entry.insert("created_by".into(), json!(h.created_by));
    if let Some(comment) = &h.comment {
        entry.insert("comment".into(), json!(comment));
    }
    if h.empty_layer {
        entry.insert("empty_layer".into(), json!(true));
    }
    Value::Object(entry)
}

/// `media_type` in the family `types`; types with no counterpart pass through,
/// except zstd, which Docker media types cannot express.
fn layer_media_type(media_type: &str, types: MediaTypes) -> Result<String, ExportError> {
    for (oci, docker) in LAYER_TYPE_PAIRS {
        if media_type == oci || media_type == docker {
            return Ok(match types {
                MediaTypes::Oci => oci,
                MediaTypes::Docker => docker,
            }
            .to_string());
        }
    }
    if types == MediaTypes::Docker && media_type == MEDIA_TYPE_LAYER_ZSTD {
        return Err(ExportError::InvalidImage(
            "zstd layers need OCI media types (Docker media types have no zstd layer)".to_string(),
        ));
    }
    Ok(media_type.to_string())
}
