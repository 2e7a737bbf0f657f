//! Manifests, indexes and descriptors (OCI and Docker v2 schema 2) in
//! oci-spec's types, and the Docker media types oci-spec has no variant for.

use oci_spec::image::{Descriptor, MediaType, Platform};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::platform;

/// Docker v2 schema 2 media types. oci-spec has no variant for them, so
/// each is a [`MediaType::Other`], spelled here and nowhere else.
pub mod docker {
    use oci_spec::image::MediaType;

    fn other(s: &str) -> MediaType {
        MediaType::Other(s.to_string())
    }

    /// Image manifest v2 schema 2.
    pub fn manifest() -> MediaType {
        other("application/vnd.docker.distribution.manifest.v2+json")
    }
    /// Manifest list.
    pub fn manifest_list() -> MediaType {
        other("application/vnd.docker.distribution.manifest.list.v2+json")
    }
    /// Image config.
    pub fn config() -> MediaType {
        other("application/vnd.docker.container.image.v1+json")
    }
    /// Uncompressed layer.
    pub fn layer() -> MediaType {
        other("application/vnd.docker.image.rootfs.diff.tar")
    }
    /// gzip layer.
    pub fn layer_gzip() -> MediaType {
        other("application/vnd.docker.image.rootfs.diff.tar.gzip")
    }
    /// Uncompressed foreign (non-distributable) layer.
    pub fn foreign_layer() -> MediaType {
        other("application/vnd.docker.image.rootfs.foreign.diff.tar")
    }
    /// gzip foreign (non-distributable) layer.
    pub fn foreign_layer_gzip() -> MediaType {
        other("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
    }
}

/// Whether `media_type` is an image manifest (OCI or Docker).
pub fn is_image_manifest(media_type: &MediaType) -> bool {
    *media_type == MediaType::ImageManifest || *media_type == docker::manifest()
}

/// Whether `media_type` is an index (OCI) or a manifest list (Docker).
pub fn is_index(media_type: &MediaType) -> bool {
    *media_type == MediaType::ImageIndex || *media_type == docker::manifest_list()
}

/// The `Accept` header for manifest requests.
pub(crate) fn accept_manifests() -> String {
    [
        MediaType::ImageIndex,
        docker::manifest_list(),
        MediaType::ImageManifest,
        docker::manifest(),
    ]
    .map(|m| m.to_string())
    .join(", ")
}

/// The descriptor of the manifest or index `bytes`, stored under `digest`,
/// its media type read from the document (an OCI one without `mediaType` is
/// told by its shape: an index has `manifests`).
pub fn manifest_descriptor(bytes: &[u8], digest: &Digest) -> Result<Descriptor> {
    let (media_type, _) = classify(digest.as_str(), None, bytes)?;
    Ok(Descriptor::new(
        media_type,
        bytes.len() as u64,
        digest.as_oci().clone(),
    ))
}

/// The parts of an image manifest this client needs.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageManifest {
    pub(crate) config: Descriptor,
    #[serde(default)]
    pub(crate) layers: Vec<Descriptor>,
}

/// The parts of an index / manifest list this client needs.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Index {
    pub(crate) manifests: Vec<Descriptor>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
}

/// What a manifest document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Image,
    Index,
}

/// Decide the media type and kind of a manifest from its Content-Type and
/// its own `mediaType` field (registries sometimes send a generic type).
pub(crate) fn classify(
    reference: &str,
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<(MediaType, Kind)> {
    let invalid = |reason: String| Error::InvalidManifest {
        reference: reference.to_string(),
        reason,
    };
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| c.starts_with("application/vnd."))
        .map(MediaType::from);
    let media_type = probe
        .media_type
        .as_deref()
        .map(MediaType::from)
        .or(header)
        .or(match (&probe.manifests, &probe.config) {
            (Some(_), _) => Some(MediaType::ImageIndex),
            (None, Some(_)) => Some(MediaType::ImageManifest),
            _ => None,
        })
        .ok_or_else(|| invalid("no mediaType and neither manifests nor config".to_string()))?;
    let kind = if is_image_manifest(&media_type) {
        Kind::Image
    } else if is_index(&media_type) {
        Kind::Index
    } else {
        return Err(invalid(format!("unsupported media type {media_type}")));
    };
    Ok((media_type, kind))
}

/// Pick the manifest for `wanted`; the error lists what the index offers.
pub(crate) fn select<'a>(
    reference: &str,
    index: &'a Index,
    wanted: &Platform,
) -> Result<&'a Descriptor> {
    index
        .manifests
        .iter()
        .find(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| platform::matches(wanted, p))
        })
        .ok_or_else(|| {
            let available: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform().as_ref())
                // Attestation manifests say `unknown/unknown`.
                .filter(|p| p.os().to_string() != "unknown")
                .map(|p| platform::display(p).to_string())
                .collect();
            Error::PlatformNotFound {
                reference: reference.to_string(),
                wanted: platform::display(wanted).to_string(),
                available: if available.is_empty() {
                    "none".to_string()
                } else {
                    available.join(", ")
                },
            }
        })
}
