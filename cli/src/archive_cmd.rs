//! `strata save` (OCI archive, or docker archive with `--format docker`) and
//! `strata load` (either kind back into the local store, names restored, by
//! the exporter's import).

use std::io::Write;
use std::path::Path;

use strata_cache::ImageStore;
use strata_exporter::{docker_archive, oci_archive};
use strata_registry::{Descriptor, Digest};

use crate::exit::Failure;

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
    ImageStore::open(root.join("store")).map_err(|e| Failure::Environment(e.to_string()))
}

/// The manifest `name` tags, its digest checked to be a sha256.
fn manifest_ref(store: &ImageStore, name: &str) -> Result<Descriptor, Failure> {
    let desc = store
        .resolve(name)
        .map_err(|e| Failure::Usage(e.to_string()))?
        .ok_or_else(|| Failure::Failed(format!("no such image: {name}")))?;
    Digest::try_from(desc.digest()).map_err(|e| Failure::Failed(format!("{name}: {e}")))?;
    Ok(desc)
}

/// `strata save`.
pub fn save(root: &Path, args: &SaveArgs) -> Result<(), Failure> {
    let store = open_store(root)?;
    let mut images: Vec<(Descriptor, Vec<String>)> = Vec::new();
    for name in &args.names {
        let m = manifest_ref(&store, name)?;
        let normalized =
            strata_cache::normalize_name(name).map_err(|e| Failure::Usage(e.to_string()))?;
        match images.iter_mut().find(|(r, _)| r.digest() == m.digest()) {
            Some((_, names)) => names.push(normalized),
            None => images.push((m, vec![normalized])),
        }
    }
    let failed = |e: strata_exporter::ExportError| {
        Failure::Failed(format!("save {}: {e}", args.output.display()))
    };
    match args.format.as_str() {
        "oci" => oci_archive(store.content(), &images, &args.output).map_err(failed),
        "docker" => match images.as_slice() {
            [(m, names)] => {
                let digest =
                    Digest::try_from(m.digest()).map_err(|e| Failure::Failed(e.to_string()))?;
                docker_archive(store.content(), &digest, names, &args.output).map_err(failed)
            }
            _ => Err(Failure::Usage(
                "--format docker holds one image: give names of the same image".to_string(),
            )),
        },
        other => Err(Failure::Usage(format!(
            "--format={other}: expected oci or docker"
        ))),
    }
}

/// `strata load`: prints `Loaded image: NAME` for each name restored.
pub fn load(root: &Path, args: &LoadArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let store = open_store(root)?;
    let names = strata_exporter::load(&store, &args.input)?;
    for name in names {
        let _ = writeln!(out, "Loaded image: {name}");
    }
    Ok(())
}
