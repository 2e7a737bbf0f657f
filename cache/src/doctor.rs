//! `strata doctor`: consistency checks of a root, and `repair`.
//!
//! Inconsistencies (problems) are things a crash cannot leave behind: a
//! cache record naming a missing snapshot, unreadable or orphaned snapshot
//! metadata, a blob that does not hash to its name, a tagged image naming a
//! missing blob, and with `--deep` a base layer snapshot whose content or
//! blobs no longer match its identity (see [`crate::base_layers::verify`]).
//! Leftovers of killed builds (unlocked `tmp-*` entries, snapshot folders
//! whose commit never wrote metadata) are only reclaimable space.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::base_layers;
use crate::cache_error::{CacheError, io_err};
use crate::index::CacheIndex;
use crate::snapshots::{LayerRef, SnapshotId, Snapshots};
use crate::store::ContentStore;

/// What doctor found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Inconsistencies, one sentence each.
    pub problems: Vec<String>,
    /// Garbage that `repair` (or prune) removes, one sentence each.
    pub reclaimable: Vec<String>,
}

/// Checks the root; with `deep`, also hashes every blob and re-verifies
/// every base layer snapshot.
pub fn doctor(root: &Path, deep: bool) -> Result<Report, CacheError> {
    let mut report = Report::default();
    let index = CacheIndex::open(root)?;
    let snaps = index.snapshots();
    for (key, record) in index.iter()? {
        for layer in &record.layers {
            if !snaps.path(layer.id()).is_dir() {
                report.problems.push(format!(
                    "cache record {} names snapshot {} which does not exist",
                    hex::encode(key),
                    layer.id()
                ));
            } else if layer.id().is_step() && snaps.meta(layer.id()).is_err() {
                report.problems.push(format!(
                    "cache record {} names snapshot {} whose metadata is missing or unreadable",
                    hex::encode(key),
                    layer.id()
                ));
            }
        }
    }
    let content = ContentStore::open(root.join("store"))?;
    check_metadata(snaps, &content, deep, &mut report)?;
    for (path, size) in snaps.leftovers()? {
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("l-"));
        let why = if base {
            "is a base layer without verified metadata (an interrupted unpack, or an older strata's)"
        } else {
            "is left over from an interrupted build"
        };
        report
            .reclaimable
            .push(format!("{} ({size} bytes) {why}", path.display()));
    }
    check_store(&root.join("store"), deep, &mut report)?;
    Ok(report)
}

/// Every snapshot's metadata must parse, match its name and sit beside its
/// folder; base layers are re-verified (see [`base_layers::verify`]).
fn check_metadata(
    snaps: &Snapshots,
    content: &ContentStore,
    deep: bool,
    report: &mut Report,
) -> Result<(), CacheError> {
    for (id, meta_path) in metadata_files(snaps)? {
        let dir = snaps.path(&id);
        if !dir.is_dir() {
            report.problems.push(format!(
                "{} describes a snapshot folder that does not exist",
                meta_path.display()
            ));
            continue;
        }
        if !id.is_step() {
            report
                .problems
                .extend(base_layers::verify(snaps, content, &id, deep));
            continue;
        }
        match snaps.meta(&id) {
            Ok(meta) if meta.key.len() == 64 && meta.key.starts_with(&id.as_str()[2..]) => {}
            Ok(meta) => report.problems.push(format!(
                "{} records key {} which does not match its name",
                meta_path.display(),
                meta.key
            )),
            Err(e) => report
                .problems
                .push(format!("unreadable snapshot metadata: {e}")),
        }
    }
    Ok(())
}

/// The metadata files (`s-….json`, `l-….json`) of the snapshots folder.
fn metadata_files(snaps: &Snapshots) -> Result<Vec<(SnapshotId, std::path::PathBuf)>, CacheError> {
    let dir = snaps.dir();
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if let Ok(id) = SnapshotId::parse(stem) {
            out.push((id, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Blobs hash to their names (with `deep`) and tagged images name only
/// present blobs.
fn check_store(store: &Path, deep: bool, report: &mut Report) -> Result<(), CacheError> {
    if deep {
        for bad in corrupt_blobs(store)? {
            report
                .problems
                .push(format!("blob {} does not hash to its name", bad.display()));
        }
    }
    let missing = match image_blobs(store) {
        Ok((_, missing)) => missing,
        Err(e @ CacheError::Json { .. }) => {
            report.problems.push(format!("unreadable image index: {e}"));
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    for m in missing {
        report.problems.push(format!(
            "a tagged image in {}/index.json needs blob {m}, which is missing",
            store.display()
        ));
    }
    Ok(())
}

/// Blob files whose content does not hash to their name.
fn corrupt_blobs(store: &Path) -> Result<Vec<std::path::PathBuf>, CacheError> {
    let dir = store.join("blobs/sha256");
    let mut out = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io_err(&dir))?.path();
        let mut hasher = Sha256::new();
        let mut f = fs::File::open(&path).map_err(io_err(&path))?;
        io::copy(&mut f, &mut hasher).map_err(io_err(&path))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if hex::encode(hasher.finalize()) != name {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The digests (`sha256:…`) every tagged image of the image store at
/// `store` reaches (indexes, manifests, configs, layers), and those of
/// them that are missing.
pub(crate) fn image_blobs(store: &Path) -> Result<(HashSet<String>, Vec<String>), CacheError> {
    let index_path = store.join("index.json");
    let bytes = match fs::read(&index_path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((HashSet::new(), Vec::new())),
        Err(e) => return Err(io_err(&index_path)(e)),
    };
    let index: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|source| CacheError::Json {
            path: index_path.clone(),
            source,
        })?;
    let mut reached = HashSet::new();
    let mut missing = Vec::new();
    let mut queue: Vec<String> = descriptors(&index, "manifests");
    while let Some(digest) = queue.pop() {
        if !reached.insert(digest.clone()) {
            continue;
        }
        let path = store
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        let Ok(bytes) = fs::read(&path) else {
            missing.push(digest);
            continue;
        };
        // Layers are not JSON; indexes and manifests are.
        if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            queue.extend(descriptors(&doc, "manifests"));
            queue.extend(descriptors(&doc, "layers"));
            if let Some(d) = doc
                .get("config")
                .and_then(|c| c.get("digest"))
                .and_then(|d| d.as_str())
            {
                queue.push(d.to_string());
            }
        }
    }
    missing.sort();
    Ok((reached, missing))
}

fn descriptors(doc: &serde_json::Value, field: &str) -> Vec<String> {
    doc.get(field)
        .and_then(|v| v.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|d| d.get("digest").and_then(|d| d.as_str()))
                .filter(|d| d.starts_with("sha256:") && !d.contains('/'))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Fixes what can be fixed: removes leftovers, cache records naming
/// missing snapshots, orphaned or unreadable snapshot metadata (and the
/// snapshot it described), base layer snapshots that fail verification
/// (with `deep`: also a changed tree or blob) and the step snapshots built
/// on them, with `deep` corrupt blobs; then re-adds index records from
/// snapshot metadata. Returns what was done, one sentence each.
pub fn repair(root: &Path, deep: bool) -> Result<Vec<String>, CacheError> {
    let mut done = Vec::new();
    let index = CacheIndex::open(root)?;
    let snaps = index.snapshots();
    let content = ContentStore::open(root.join("store"))?;
    let (count, bytes) = snaps.remove_leftovers()?;
    if count > 0 {
        done.push(format!("removed {count} leftovers ({bytes} bytes)"));
    }
    let mut bad_bases = Vec::new();
    for (id, meta_path) in metadata_files(snaps)? {
        let dir = snaps.path(&id);
        let bad = if !id.is_step() {
            let problems = if dir.is_dir() {
                base_layers::verify(snaps, &content, &id, deep)
            } else {
                Vec::new()
            };
            if !problems.is_empty() {
                if snaps.remove(&id)? {
                    done.push(format!(
                        "removed {id}, to be unpacked again when needed: {}",
                        problems.join("; ")
                    ));
                }
                bad_bases.push(id);
                continue;
            }
            false
        } else {
            match snaps.meta(&id) {
                Ok(meta) => !meta.key.starts_with(&id.as_str()[2..]) || meta.key.len() != 64,
                Err(_) => true,
            }
        };
        if !dir.is_dir() {
            match fs::remove_file(&meta_path) {
                Ok(()) => done.push(format!("removed orphaned {}", meta_path.display())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&meta_path)(e)),
            }
        } else if bad && snaps.remove(&id)? {
            done.push(format!(
                "removed snapshot {id}: its metadata was unreadable"
            ));
        }
    }
    remove_built_on(snaps, &bad_bases, &mut done)?;
    for (key, record) in index.iter()? {
        if !record.layers.iter().all(|l| snaps.exists(l.id())) && index.remove(&key)? {
            done.push(format!(
                "dropped cache record {}: a snapshot is missing",
                hex::encode(key)
            ));
        }
    }
    let added = index.rebuild_from_snapshots()?;
    if added > 0 {
        done.push(format!("indexed {added} snapshots from their metadata"));
    }
    if deep {
        for blob in corrupt_blobs(&root.join("store"))? {
            fs::remove_file(&blob).map_err(io_err(&blob))?;
            done.push(format!("removed corrupt blob {}", blob.display()));
        }
    }
    Ok(done)
}

/// Removes the step snapshots whose parents include one of `bases`: they
/// were built on content that did not match its identity.
fn remove_built_on(
    snaps: &Snapshots,
    bases: &[SnapshotId],
    done: &mut Vec<String>,
) -> Result<(), CacheError> {
    if bases.is_empty() {
        return Ok(());
    }
    for id in snaps.list()?.into_iter().filter(SnapshotId::is_step) {
        let Ok(meta) = snaps.meta(&id) else { continue };
        let on = meta
            .parents
            .iter()
            .map(LayerRef::id)
            .find(|p| bases.contains(p));
        if let Some(base) = on
            && snaps.remove(&id)?
        {
            done.push(format!("removed snapshot {id}: it was built on {base}"));
        }
    }
    Ok(())
}
