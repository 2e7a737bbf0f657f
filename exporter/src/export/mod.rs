//! `export`: a solved build to an image in the local store, its tags, every
//! `-o` output, its pushes, and the `--iidfile`/`--metadata-file` files.

mod config;
mod memo;
mod outputs;
mod push;

use std::path::PathBuf;

use strata_registry::{Client, PushReport, Reference};
use strata_solver::Solved;

use crate::{Compression, ExportError, ImageRef};

pub use outputs::{Output, OutputError};
pub use push::{describe_push, push};

/// What the export reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportEvent {
    /// The image is in the store; its config digest (the image ID).
    ImageWritten(String),
    /// The image was named (normalized name).
    Tagged(String),
    /// An `-o` output was written (as [`Output::describe`] says it).
    OutputWritten(String),
    /// Pushes start.
    Pushing,
    /// One name was pushed (as [`describe_push`] says it).
    Pushed(String),
}

/// How to export a [`Solved`] build.
pub struct ExportRequest<'a> {
    /// `-t` names in the local store.
    pub tags: Vec<String>,
    /// `-o` outputs.
    pub outputs: Vec<Output>,
    /// `--push`: push every `-t` name.
    pub push: bool,
    /// How new layers are compressed.
    pub compression: Compression,
    /// SOURCE_DATE_EPOCH: fixes every timestamp for reproducible digests.
    pub epoch: Option<i64>,
    /// The state root (packed layers are remembered under `layer-blobs/`).
    pub root: PathBuf,
    /// The client pushes go through.
    pub registry: Client,
    /// Where to write the image ID.
    pub iidfile: Option<PathBuf>,
    /// Where to write `containerimage.digest` and `image.name` as JSON.
    pub metadata_file: Option<PathBuf>,
    /// Receives progress.
    pub progress: &'a mut dyn FnMut(ExportEvent),
}

/// The exported image.
#[derive(Debug)]
pub struct Exported {
    /// The image in the store.
    pub image: ImageRef,
    /// The names it was given, normalized.
    pub names: Vec<String>,
    /// What each push did.
    pub pushed: Vec<(String, PushReport)>,
}

/// Checks what an export will be asked before anything is built: every
/// image name (`-t`, `-o name=`, and so every push) against the reference
/// grammar of the distribution spec, and the compression level.
pub fn check_request(
    tags: &[String],
    outputs: &[Output],
    compression: Compression,
) -> Result<(), ExportError> {
    let image_names = outputs.iter().flat_map(|o| match o {
        Output::Image { names, .. } => names.as_slice(),
        _ => &[],
    });
    for name in tags.iter().chain(image_names) {
        Reference::parse(name)?;
    }
    compression.check()
}

/// Exports `solved` as `req` asks.
pub fn export(solved: &Solved, req: ExportRequest<'_>) -> Result<Exported, ExportError> {
    check_request(&req.tags, &req.outputs, req.compression)?;
    let pushes = push_names(&req)?;
    let store = &solved.store;
    let image = memo::write_image(&memo::ImageRequest {
        store,
        stack: &solved.stack,
        config: &solved.config,
        compression: req.compression,
        epoch: req.epoch,
        memo_dir: req.root.join("layer-blobs"),
        snapshots: req.root.join("snapshots"),
        platform: solved.platform.clone(),
    })?;
    (req.progress)(ExportEvent::ImageWritten(image.config_digest.to_string()));
    let desc = &image.manifest;
    let mut names = Vec::new();
    let image_names = req.outputs.iter().flat_map(|o| match o {
        Output::Image { names, .. } => names.as_slice(),
        _ => &[],
    });
    for name in req.tags.iter().chain(image_names) {
        let tagged = store.tag(name, desc).map_err(|source| ExportError::Tag {
            name: name.clone(),
            source,
        })?;
        (req.progress)(ExportEvent::Tagged(tagged.clone()));
        names.push(tagged);
    }
    for output in &req.outputs {
        outputs::write(store, &image, &solved.stack, &req.tags, output)?;
        (req.progress)(ExportEvent::OutputWritten(output.describe()));
    }
    let mut pushed = Vec::new();
    if !pushes.is_empty() {
        (req.progress)(ExportEvent::Pushing);
        for name in pushes {
            let report = push(store, &req.registry, &name, desc)?;
            (req.progress)(ExportEvent::Pushed(describe_push(&name, &report)));
            pushed.push((name, report));
        }
    }
    if let Some(path) = &req.metadata_file {
        let meta = serde_json::json!({
            "containerimage.digest": image.manifest_digest.as_str(),
            "containerimage.config.digest": image.config_digest.as_str(),
            "image.name": req.tags.join(","),
        });
        let text = serde_json::to_string_pretty(&meta)
            .map_err(|e| ExportError::InvalidImage(format!("metadata: {e}")))?;
        write_file(path, (text + "\n").as_bytes())?;
    }
    if let Some(path) = &req.iidfile {
        write_file(path, image.config_digest.as_str().as_bytes())?;
    }
    Ok(Exported {
        image,
        names,
        pushed,
    })
}

/// The names to push: every `-t` name with `--push`, and the names of
/// `push=true` image outputs (the `-t` names when they name none).
fn push_names(req: &ExportRequest<'_>) -> Result<Vec<String>, ExportError> {
    let mut names: Vec<String> = Vec::new();
    let mut wanted = |list: &[String]| -> Result<(), ExportError> {
        if list.is_empty() {
            return Err(ExportError::NothingToPush);
        }
        for n in list {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        Ok(())
    };
    if req.push {
        wanted(&req.tags)?;
    }
    for output in &req.outputs {
        if let Output::Image {
            names: own,
            push: true,
        } = output
        {
            wanted(if own.is_empty() { &req.tags } else { own })?;
        }
    }
    Ok(names)
}

fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), ExportError> {
    std::fs::write(path, bytes).map_err(|source| ExportError::WriteFile {
        path: path.to_path_buf(),
        source,
    })
}
