//! From the target stage's layer stack and config to an image in the local
//! store: layer blobs (base layers reused as they are, the build's own packed
//! in parallel), config and manifest, tags.

use std::path::PathBuf;

use oci_spec::image::{Descriptor, MediaType};
use strata_cache::{Digest, ImageStore, PlatformSelector};
use strata_exporter::{Compression, History, ImageInput, ImageRef, LayerBlob, MediaTypes, output};
use strata_solver::image::ImageConfig;
use strata_solver::ops::Layer;

use crate::image_config;
use crate::output_spec::OutputSpec;
use crate::timefmt::rfc3339;

/// What to export.
pub struct ExportRequest<'a> {
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
    /// The platform the image's config names (`--platform`, else the host's).
    pub platform: PlatformSelector,
}

/// Writes the image's blobs, config and manifest to the store.
pub fn write_image(req: &ExportRequest<'_>) -> Result<ImageRef, String> {
    let content = req.store.content();
    let own: Vec<PathBuf> = req
        .stack
        .iter()
        .filter(|l| l.blob.is_none())
        .map(|l| l.dir.clone())
        .collect();
    let mut packed = strata_exporter::write_layers(&own, req.compression, content, req.epoch)
        .map_err(|e| e.to_string())?
        .into_iter();
    let layers = req
        .stack
        .iter()
        .map(|l| match &l.blob {
            Some(b) => Ok(LayerBlob {
                digest: parse_digest(&b.digest)?,
                diff_id: parse_digest(&b.diff_id)?,
                size: b.size,
                media_type: b.media_type.clone(),
            }),
            None => packed
                .next()
                .ok_or_else(|| "a packed layer is missing".to_string()),
        })
        .collect::<Result<Vec<_>, String>>()?;

    let now = req.epoch.unwrap_or_else(|| {
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
    let platform = req.platform.clone();
    let input = ImageInput {
        architecture: platform.architecture,
        os: platform.os,
        variant: platform.variant,
        created: Some(created),
        config: image_config::to_json(req.config),
        history,
        layers,
        media_types: MediaTypes::Oci,
    };
    strata_exporter::write_image(content, &input).map_err(|e| e.to_string())
}

/// Tags `image` with each name in `tags`; returns the normalized names.
pub fn tag(store: &ImageStore, image: &ImageRef, tags: &[String]) -> Result<Vec<String>, String> {
    let desc = manifest_descriptor(image)?;
    tags.iter()
        .map(|t| store.tag(t, &desc).map_err(|e| e.to_string()))
        .collect()
}

/// The OCI descriptor of an image's manifest.
pub fn manifest_descriptor(image: &ImageRef) -> Result<Descriptor, String> {
    let digest: oci_spec::image::Digest = image
        .manifest_digest
        .as_str()
        .parse()
        .map_err(|e| format!("manifest digest {}: {e}", image.manifest_digest))?;
    Ok(Descriptor::new(
        MediaType::from(image.manifest_media_type.as_str()),
        image.manifest_size,
        digest,
    ))
}

fn parse_digest(s: &str) -> Result<Digest, String> {
    s.parse().map_err(|e| format!("{e}"))
}

/// Writes one `-o` output of the image built.
pub fn write_output(
    store: &ImageStore,
    image: &ImageRef,
    stack: &[Layer],
    tags: &[String],
    output: &OutputSpec,
) -> Result<(), String> {
    let dirs: Vec<PathBuf> = stack.iter().map(|l| l.dir.clone()).collect();
    let content = store.content();
    match output {
        OutputSpec::Image => Ok(()),
        OutputSpec::Oci(dest) => {
            output::oci_archive(content, &[(image.manifest(), tags.to_vec())], dest)
        }
        OutputSpec::Docker(dest) => {
            output::docker_archive(content, &image.manifest_digest, tags, dest)
        }
        OutputSpec::Local(dest) => output::local_dir(&dirs, dest),
        OutputSpec::Tar(dest) => output::tar_stream(&dirs, dest),
    }
    .map_err(|e| e.to_string())
}
