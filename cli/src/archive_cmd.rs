//! `strata save` (OCI archive, or docker archive with `--format docker`) and
//! `strata load` (either kind back into the local store, names restored).

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;

use oci_spec::image::{Descriptor, MediaType};
use serde_json::{Value, json};
use strata_cache::{ContentStore, Digest, ImageStore, OciLayout};
use strata_exporter::ManifestRef;
use strata_exporter::output::{docker_archive, oci_archive};

use crate::build::{EXIT_ENVIRONMENT, EXIT_STEP_FAILED, EXIT_USAGE};

type Failure = (u8, String);

const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `strata save` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SaveArgs {
    /// The archive to write.
    #[arg(short, long)]
    pub output: std::path::PathBuf,
    /// `oci` (an OCI layout in a tar) or `docker` (what `docker save` writes).
    #[arg(long, default_value = "oci")]
    pub format: String,
    /// Images of the local store.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `strata load` options.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The archive to read (OCI or docker archive).
    #[arg(short, long)]
    pub input: std::path::PathBuf,
}

fn open_store(root: &Path) -> Result<ImageStore, Failure> {
    ImageStore::open(root.join("store")).map_err(|e| (EXIT_ENVIRONMENT, e.to_string()))
}

fn manifest_ref(store: &ImageStore, name: &str) -> Result<ManifestRef, Failure> {
    let desc = store
        .resolve(name)
        .map_err(|e| (EXIT_USAGE, e.to_string()))?
        .ok_or_else(|| (EXIT_STEP_FAILED, format!("no such image: {name}")))?;
    let digest: Digest = desc
        .digest()
        .to_string()
        .parse()
        .map_err(|e| (EXIT_STEP_FAILED, format!("{name}: {e}")))?;
    Ok(ManifestRef {
        digest,
        size: desc.size(),
        media_type: desc.media_type().to_string(),
    })
}

/// `strata save`.
pub fn save(root: &Path, args: &SaveArgs) -> Result<(), Failure> {
    let store = open_store(root)?;
    let mut images: Vec<(ManifestRef, Vec<String>)> = Vec::new();
    for name in &args.names {
        let m = manifest_ref(&store, name)?;
        let normalized =
            strata_cache::normalize_name(name).map_err(|e| (EXIT_USAGE, e.to_string()))?;
        match images.iter_mut().find(|(r, _)| r.digest == m.digest) {
            Some((_, names)) => names.push(normalized),
            None => images.push((m, vec![normalized])),
        }
    }
    let failed = |e: strata_exporter::ExportError| {
        (
            EXIT_STEP_FAILED,
            format!("save {}: {e}", args.output.display()),
        )
    };
    match args.format.as_str() {
        "oci" => oci_archive(store.content(), &images, &args.output).map_err(failed),
        "docker" => match images.as_slice() {
            [(m, names)] => {
                docker_archive(store.content(), &m.digest, names, &args.output).map_err(failed)
            }
            _ => Err((
                EXIT_USAGE,
                "--format docker holds one image: give names of the same image".to_string(),
            )),
        },
        other => Err((
            EXIT_USAGE,
            format!("--format={other}: expected oci or docker"),
        )),
    }
}

/// `strata load`: prints `Loaded image: NAME` for each name restored.
pub fn load(root: &Path, args: &LoadArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let store = open_store(root)?;
    let input = &args.input;
    let bad = |what: String| {
        (
            EXIT_STEP_FAILED,
            format!("load {}: {what}", input.display()),
        )
    };
    let file = File::open(input)
        .map_err(|e| (EXIT_USAGE, format!("cannot open {}: {e}", input.display())))?;
    let tmp = tempfile::Builder::new()
        .prefix("load-")
        .tempdir_in(store.layout().root())
        .map_err(|e| (EXIT_ENVIRONMENT, format!("temporary folder: {e}")))?;
    tar::Archive::new(BufReader::new(file))
        .unpack(tmp.path())
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    let dir = tmp.path();
    import_blobs(store.content(), &dir.join("blobs/sha256")).map_err(bad)?;
    let names = if dir.join("index.json").is_file() {
        tag_oci(&store, dir).map_err(bad)?
    } else if dir.join("manifest.json").is_file() {
        tag_docker(&store, dir).map_err(bad)?
    } else {
        return Err(bad(
            "neither index.json nor manifest.json: not an image archive".to_string(),
        ));
    };
    for name in names {
        let _ = writeln!(out, "Loaded image: {name}");
    }
    Ok(())
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
            digest
                .as_str()
                .parse::<oci_spec::image::Digest>()
                .map_err(|e| format!("{e}"))?,
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
