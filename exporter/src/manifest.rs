//! Image config and manifest, written to the store as canonical JSON.

use oci_spec::image::{Descriptor, ImageManifestBuilder, MediaType, Platform};
use serde_json::{Map, Value, json};
use strata_cache::ContentStore;
use strata_registry::{Digest, docker};

use crate::canonical::to_canonical_json;
use crate::error::ExportError;
use crate::layer::LayerBlob;

/// Layer media types: (OCI, Docker) pairs of the same content.
fn layer_type_pairs() -> [(MediaType, MediaType); 4] {
    [
        (MediaType::ImageLayerGzip, docker::layer_gzip()),
        (MediaType::ImageLayer, docker::layer()),
        (
            MediaType::ImageLayerNonDistributableGzip,
            docker::foreign_layer_gzip(),
        ),
        (
            MediaType::ImageLayerNonDistributable,
            docker::foreign_layer(),
        ),
    ]
}

/// Which family of media types the manifest, config and layers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaTypes {
    /// OCI image spec media types.
    #[default]
    Oci,
    /// Docker image manifest v2 schema 2 media types.
    Docker,
}

impl MediaTypes {
    /// The image manifest's media type in this family.
    pub fn manifest(self) -> MediaType {
        match self {
            MediaTypes::Oci => MediaType::ImageManifest,
            MediaTypes::Docker => docker::manifest(),
        }
    }

    /// The image config's media type in this family.
    pub fn config(self) -> MediaType {
        match self {
            MediaTypes::Oci => MediaType::ImageConfig,
            MediaTypes::Docker => docker::config(),
        }
    }
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
    /// The platform the config names (its OS, architecture and variant).
    pub platform: Platform,
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
    /// The manifest's descriptor (media type, size, digest), for outputs
    /// that list manifests.
    pub manifest: Descriptor,
    /// Digest of the manifest (the image's identity in registries), as in
    /// `manifest`.
    pub manifest_digest: Digest,
    /// Digest of the config (Docker's image ID).
    pub config_digest: Digest,
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

    let config_bytes = to_canonical_json(&config_json(input));
    let config_digest = store.put(&config_bytes)?;

    let mut layers = Vec::with_capacity(input.layers.len());
    for layer in &input.layers {
        layers.push(Descriptor::new(
            layer_media_type(&layer.media_type, input.media_types)?,
            layer.size,
            layer.digest.as_oci().clone(),
        ));
    }
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(input.media_types.manifest())
        .config(Descriptor::new(
            input.media_types.config(),
            config_bytes.len() as u64,
            config_digest.as_oci().clone(),
        ))
        .layers(layers)
        .build()
        .map_err(|e| ExportError::InvalidImage(format!("image manifest: {e}")))?;
    let manifest = serde_json::to_value(&manifest)
        .map_err(|e| ExportError::InvalidImage(format!("image manifest: {e}")))?;
    let manifest_bytes = to_canonical_json(&manifest);
    let manifest_digest = store.put(&manifest_bytes)?;
    Ok(ImageRef {
        manifest: strata_registry::manifest_descriptor(&manifest_bytes, &manifest_digest)?,
        manifest_digest,
        config_digest,
    })
}

fn config_json(input: &ImageInput) -> Value {
    let mut config = Map::new();
    config.insert("architecture".into(), json!(input.platform.architecture()));
    config.insert("os".into(), json!(input.platform.os()));
    if let Some(variant) = input.platform.variant() {
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
fn layer_media_type(media_type: &MediaType, types: MediaTypes) -> Result<MediaType, ExportError> {
    for (oci, docker) in layer_type_pairs() {
        if *media_type == oci || *media_type == docker {
            return Ok(match types {
                MediaTypes::Oci => oci,
                MediaTypes::Docker => docker,
            });
        }
    }
    if types == MediaTypes::Docker && *media_type == MediaType::ImageLayerZstd {
        return Err(ExportError::InvalidImage(
            "zstd layers need OCI media types (Docker media types have no zstd layer)".to_string(),
        ));
    }
    Ok(media_type.clone())
}
