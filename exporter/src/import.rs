//! Importing an image archive (OCI layout or docker archive, as `strata
//! save`, `docker save` and `-o type=oci|docker` write them) into the local
//! store, names restored: the reverse of the archive outputs.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, MediaType};
use serde_json::{Value, json};
use strata_cache::{ContentStore, ImageStore, OciLayout};
use strata_registry::Digest;

const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Why an archive cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The archive cannot be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The archive.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No temporary folder beside the store.
    #[error("temporary folder: {0}")]
    Temp(#[source] std::io::Error),
    /// The archive is not an image archive, or is damaged.
    #[error("load {}: {reason}", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Imports the archive at `input` into `store`; returns the names restored.
pub fn load(store: &ImageStore, input: &Path) -> Result<Vec<String>, ImportError> {
    let bad = |reason: String| ImportError::Archive {
        path: input.to_path_buf(),
        reason,
    };
    let file = File::open(input).map_err(|source| ImportError::Open {
        path: input.to_path_buf(),
        source,
    })?;
    let tmp = tempfile::Builder::new()
        .prefix("load-")
        .tempdir_in(store.layout().root())
        .map_err(ImportError::Temp)?;
    tar::Archive::new(BufReader::new(file))
        .unpack(tmp.path())
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    let dir = tmp.path();
    import_blobs(store.content(), &dir.join("blobs/sha256")).map_err(bad)?;
    if dir.join("index.json").is_file() {
        tag_oci(store, dir).map_err(bad)
    } else if dir.join("manifest.json").is_file() {
        tag_docker(store, dir).map_err(bad)
    } else {
        Err(bad(
            "neither index.json nor manifest.json: not an image archive".to_string(),
        ))
    }
}

/// Every file of `blobs/sha256/`, verified against its name.
fn import_blobs(content: &ContentStore, dir: &Path) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let digest: Digest = format!("sha256:{name}")
            .parse()
            .map_err(|_| format!("blob {} is not named by a sha256 digest", path.display()))?;
        import_file(content, &path, Some(&digest))?;
    }
    Ok(())
}

fn import_file(
    content: &ContentStore,
    path: &Path,
    expected: Option<&Digest>,
) -> Result<Digest, String> {
    if let Some(d) = expected
        && content.has(d)
    {
        return Ok(d.clone());
    }
    let mut file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut writer = content.writer().map_err(|e| e.to_string())?;
    std::io::copy(&mut file, &mut writer).map_err(|e| format!("{}: {e}", path.display()))?;
    writer
        .commit(expected)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The name as `FROM` and `strata` commands spell it: `docker.io/library/`
/// left out (archives often hold the fully qualified form).
fn familiar(name: &str) -> String {
    strata_registry::Reference::parse(name).map_or_else(|_| name.to_string(), |r| r.to_string())
}

/// `dir/rel` when `rel` is a plain relative path to a regular file (no `..`,
/// no symlink that could lead out of the archive).
fn inside(dir: &Path, rel: &str) -> Result<std::path::PathBuf, String> {
    let relative = Path::new(rel);
    if !relative
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!("manifest.json names {rel:?}, outside the archive"));
    }
    let path = dir.join(relative);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => Ok(path),
        _ => Err(format!(
            "manifest.json names {rel:?}, which is not a file in the archive"
        )),
    }
}

/// Tags each named index.json entry of an OCI archive.
fn tag_oci(store: &ImageStore, dir: &Path) -> Result<Vec<String>, String> {
    let layout = OciLayout::open(dir).map_err(|e| e.to_string())?;
    let index = layout.index().map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    for desc in index.manifests() {
        let annotations = desc.annotations().clone().unwrap_or_default();
        let Some(name) = annotations
            .get(ANNOTATION_IMAGE_NAME)
            .or_else(|| annotations.get(ANNOTATION_REF_NAME))
        else {
            continue;
        };
        let plain = Descriptor::new(
            desc.media_type().clone(),
            desc.size(),
            desc.digest().clone(),
        );
        names.push(
            store
                .tag(&familiar(name), &plain)
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(names)
}

/// Docker archive: an OCI manifest over its config and (uncompressed)
/// layers, tagged with its RepoTags.
fn tag_docker(store: &ImageStore, dir: &Path) -> Result<Vec<String>, String> {
    let path = dir.join("manifest.json");
    let text = std::fs::read(&path).map_err(|e| format!("manifest.json: {e}"))?;
    let entries: Vec<Value> =
        serde_json::from_slice(&text).map_err(|e| format!("manifest.json: {e}"))?;
    let content = store.content();
    let mut names = Vec::new();
    for entry in entries {
        let file = |v: &Value| -> Result<(Digest, u64), String> {
            let rel = v.as_str().ok_or("manifest.json: a path is not a string")?;
            let p = inside(dir, rel)?;
            let digest = import_file(content, &p, None)?;
            let size = content.size(&digest).map_err(|e| e.to_string())?;
            Ok((digest, size))
        };
        let (config, config_size) = file(&entry["Config"])?;
        let layers = entry["Layers"]
            .as_array()
            .ok_or("manifest.json: Layers is not a list")?
            .iter()
            .map(|l| {
                file(l).map(|(d, s)| {
                    json!({"mediaType": MediaType::ImageLayer.to_string(), "digest": d.as_str(), "size": s})
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MediaType::ImageManifest.to_string(),
            "config": {"mediaType": MediaType::ImageConfig.to_string(), "digest": config.as_str(), "size": config_size},
            "layers": layers,
        }))
        .map_err(|e| e.to_string())?;
        let digest = content.put(&manifest).map_err(|e| e.to_string())?;
        let desc = Descriptor::new(
            MediaType::ImageManifest,
            manifest.len() as u64,
            digest.as_oci().clone(),
        );
        for tag in entry["RepoTags"].as_array().into_iter().flatten() {
            if let Some(tag) = tag.as_str() {
                names.push(
                    store
                        .tag(&familiar(tag), &desc)
                        .map_err(|e| e.to_string())?,
                );
            }
        }
    }
    Ok(names)
}
