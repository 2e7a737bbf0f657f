//! Pushing an image of the local store to its registry: every blob it
//! needs (skipping what the registry has, mounting what another repository
//! of the same registry has), then the manifest.

use strata_cache::ImageStore;
use strata_registry::{
    BlobAction, BlobSource, Client, Descriptor, Digest, PushBlob, PushOptions, PushReport,
    Reference, platform,
};

use crate::ExportError;

/// Pushes the image whose manifest is `manifest` (in `store`) as `name`.
pub fn push(
    store: &ImageStore,
    client: &Client,
    name: &str,
    manifest: &Descriptor,
) -> Result<PushReport, ExportError> {
    let reference = Reference::parse(name)?;
    let image = store
        .layout()
        .image(manifest, &platform::host())
        .map_err(|source| ExportError::Layout {
            name: name.to_string(),
            source,
        })?;
    let content = store.content();
    let mut blobs = Vec::new();
    for d in std::iter::once(image.manifest.config()).chain(image.manifest.layers()) {
        let digest = Digest::try_from(d.digest())
            .map_err(|e| ExportError::InvalidImage(format!("{name}: {e}")))?;
        blobs.push(PushBlob {
            descriptor: d.clone(),
            source: BlobSource::Path(content.blob_path(&digest)),
        });
    }
    let layers: Vec<String> = image
        .manifest
        .layers()
        .iter()
        .map(|l| l.digest().to_string())
        .collect();
    let options = PushOptions {
        mount_from: mount_sources(store, &reference, &layers),
        ..PushOptions::default()
    };
    Ok(client.push_image(
        &reference,
        image.descriptor.media_type(),
        &image.manifest_bytes,
        &blobs,
        &options,
    )?)
}

/// Repositories of the same registry that local images came from and that
/// share a layer with the image pushed (its base, typically): the registry
/// can link those blobs instead of receiving them again.
fn mount_sources(store: &ImageStore, target: &Reference, layers: &[String]) -> Vec<String> {
    let mut repos: Vec<String> = Vec::new();
    let Ok(list) = store.list() else {
        return repos;
    };
    for (name, desc) in list {
        let Ok(other) = Reference::parse(&name) else {
            continue;
        };
        if other.registry() != target.registry()
            || other.repository() == target.repository()
            || repos.iter().any(|r| r == other.repository())
        {
            continue;
        }
        let shares = store
            .layout()
            .image(&desc, &platform::host())
            .is_ok_and(|img| {
                img.manifest
                    .layers()
                    .iter()
                    .any(|l| layers.contains(&l.digest().to_string()))
            });
        if shares {
            repos.push(other.repository().to_string());
        }
    }
    repos
}

/// One line: `pushed NAME sha256:… (uploaded 2, mounted 0, skipped 1)`.
pub fn describe_push(name: &str, report: &PushReport) -> String {
    format!(
        "pushed {name} {} (uploaded {}, mounted {}, skipped {})",
        report.manifest_digest,
        report.count(&BlobAction::Uploaded),
        report.count(&BlobAction::Mounted(String::new())),
        report.count(&BlobAction::Skipped)
    )
}
