//! `strata du` and `strata prune`.
//!
//! What prune may remove, and what protects the rest:
//! - step snapshots and their cache records, least recently used first;
//!   a snapshot someone holds ([`crate::snapshots::Hold`], taken by builds
//!   for every layer they use, and by commit) is never removed, and a
//!   record is only dropped together with the snapshots it alone names;
//! - leftovers of killed builds, always;
//! - base-layer folders (`l-…`) no record names, with `all`, and blobs no
//!   tagged image (the image store's index.json → indexes → manifests →
//!   configs and layers) and no cache record names: only while no build
//!   runs (the exclusive side of [`crate::BuildLease`]), since builds use
//!   them without holding each;
//! - cache mounts (`$ROOT/cache-mounts/<id>`), with `all`, unless held
//!   (a RUN using one keeps a shared flock on its folder).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cache_error::{CacheError, io_err};
use crate::doctor::image_blobs;
use crate::index::{CacheIndex, CacheRecord};
use crate::locks::BuildLease;
use crate::snapshots::{LayerRef, SnapshotId, Snapshots, dir_size, now_secs, try_exclusive};

/// Space used by one kind of data.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UsageLine {
    /// How many entries.
    pub count: u64,
    /// Their bytes (regular files, hard links once).
    pub bytes: u64,
    /// Bytes `prune` with `all` would free now.
    pub reclaimable_bytes: u64,
}

/// Space used under a root.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Snapshot folders (steps, base layers and leftovers).
    pub snapshots: UsageLine,
    /// Blobs of the content store.
    pub blobs: UsageLine,
    /// Cache mounts (`RUN --mount=type=cache`).
    pub cache_mounts: UsageLine,
}

/// What to prune.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PruneOptions {
    /// Every unused cache entry, base layer and cache mount, not only
    /// garbage and what the other options select.
    pub all: bool,
    /// Stop once the snapshots take at most this many bytes.
    pub keep_storage: Option<u64>,
    /// Only cache entries not used for this long.
    pub until: Option<Duration>,
    /// Only cache mounts (`--filter type=exec.cachemount`): every one no
    /// running step holds, and nothing else.
    pub cache_mounts_only: bool,
}

/// What prune did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// What was removed: snapshot names, `blob sha256:…`, cache mount
    /// paths, leftover paths.
    pub removed: Vec<String>,
    /// Bytes freed.
    pub freed_bytes: u64,
}

/// The cache mounts folder of a root.
pub fn cache_mounts_dir(root: &Path) -> PathBuf {
    root.join("cache-mounts")
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>, CacheError> {
    match fs::read_dir(dir) {
        Ok(rd) => {
            let mut out = Vec::new();
            for e in rd {
                out.push(e.map_err(io_err(dir))?.path());
            }
            out.sort();
            Ok(out)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// A snapshot's size: from its metadata, by walking when it has none.
fn snapshot_size(snaps: &Snapshots, id: &SnapshotId) -> u64 {
    let recorded = if id.is_step() {
        snaps.meta(id).map(|m| m.size)
    } else {
        snaps.base_meta(id).map(|m| m.size)
    };
    recorded.unwrap_or_else(|_| dir_size(&snaps.path(id)).unwrap_or(0))
}

/// Digests of the blobs of base layers that cache records name.
fn record_blobs<'a>(records: impl Iterator<Item = &'a CacheRecord>) -> HashSet<String> {
    records
        .flat_map(|r| r.layers.iter())
        .filter_map(|l| match l {
            LayerRef::Base { blob, .. } => Some(blob.digest.clone()),
            LayerRef::Step { .. } => None,
        })
        .collect()
}

/// Space used under `root`.
pub fn usage(root: &Path) -> Result<Usage, CacheError> {
    let index = CacheIndex::open(root)?;
    let snaps = index.snapshots();
    let builds_idle = BuildLease::try_exclusive(root)?.is_some();
    let mut u = Usage::default();
    for id in snaps.list()? {
        let size = snapshot_size(snaps, &id);
        u.snapshots.count += 1;
        u.snapshots.bytes += size;
        let free = (id.is_step() || builds_idle) && try_exclusive(&snaps.path(&id))?.is_some();
        if free {
            u.snapshots.reclaimable_bytes += size;
        }
    }
    for (_, size) in snaps.leftovers()? {
        u.snapshots.bytes += size;
        u.snapshots.reclaimable_bytes += size;
    }
    let store = root.join("store");
    let (tagged, _) = image_blobs(&store)?;
    for path in entries(&store.join("blobs/sha256"))? {
        let size = fs::symlink_metadata(&path).map_err(io_err(&path))?.len();
        u.blobs.count += 1;
        u.blobs.bytes += size;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if builds_idle && !tagged.contains(&format!("sha256:{name}")) {
            u.blobs.reclaimable_bytes += size;
        }
    }
    for path in entries(&cache_mounts_dir(root))? {
        let size = dir_size(&path)?;
        u.cache_mounts.count += 1;
        u.cache_mounts.bytes += size;
        if try_exclusive(&path)?.is_some() {
            u.cache_mounts.reclaimable_bytes += size;
        }
    }
    Ok(u)
}

/// Removes cache entries as `options` say (see the module documentation
/// for what is never removed).
pub fn prune(root: &Path, options: &PruneOptions) -> Result<PruneReport, CacheError> {
    let mut report = PruneReport::default();
    if options.cache_mounts_only {
        prune_cache_mounts(root, &mut report)?;
        return Ok(report);
    }
    let index = CacheIndex::open(root)?;
    let snaps = index.snapshots();
    // Held for the whole prune: no build starts while blobs and base layers
    // may go.
    let idle = BuildLease::try_exclusive(root)?;

    for (path, size) in snaps.leftovers()? {
        if let Some(lock) = try_exclusive(&path)? {
            drop(lock);
            if snaps.remove_leftover(&path)? {
                report.removed.push(path.display().to_string());
                report.freed_bytes += size;
            }
        }
    }

    let mut sizes: HashMap<SnapshotId, u64> = HashMap::new();
    for id in snaps.list()? {
        let size = snapshot_size(snaps, &id);
        sizes.insert(id, size);
    }
    let mut total: u64 = sizes.values().sum();
    let over = |total: u64| options.keep_storage.is_none_or(|keep| total > keep);

    let mut records = index.iter()?;
    records.sort_by_key(|(k, r)| (r.last_used, r.created, *k));
    let mut refs: HashMap<SnapshotId, usize> = HashMap::new();
    for (_, r) in &records {
        for l in &r.layers {
            *refs.entry(l.id().clone()).or_default() += 1;
        }
    }
    let selecting = options.all || options.keep_storage.is_some() || options.until.is_some();
    let cutoff = options
        .until
        .map(|u| now_secs().saturating_sub(u.as_secs()));
    let mut kept = Vec::new();
    for (key, record) in records {
        let eligible = selecting && cutoff.is_none_or(|c| record.last_used < c) && over(total);
        if !eligible {
            kept.push(record);
            continue;
        }
        // The snapshots only this record names go with it, all or none.
        let mut locks = Vec::new();
        let mut busy = false;
        for l in &record.layers {
            let id = l.id();
            let sole = refs.get(id) == Some(&1);
            if !sole || (!id.is_step() && idle.is_none()) {
                continue;
            }
            match try_exclusive(&snaps.path(id))? {
                Some(lock) => locks.push((id.clone(), lock)),
                None if !snaps.path(id).exists() => {}
                None => busy = true,
            }
        }
        if busy {
            kept.push(record);
            continue;
        }
        index.remove(&key)?;
        for l in &record.layers {
            if let Some(n) = refs.get_mut(l.id()) {
                *n -= 1;
            }
        }
        for (id, lock) in locks {
            snaps.delete_locked(&id, lock)?;
            let size = sizes.remove(&id).unwrap_or(0);
            total -= size;
            report.freed_bytes += size;
            report.removed.push(id.to_string());
        }
    }

    // Snapshots no remaining record names: interrupted between commit and
    // record, or orphaned base layers.
    let named: HashSet<&SnapshotId> = kept
        .iter()
        .flat_map(|r| r.layers.iter().map(LayerRef::id))
        .collect();
    let mut orphans: Vec<SnapshotId> = sizes
        .keys()
        .filter(|id| !named.contains(id))
        .filter(|id| id.is_step() || (idle.is_some() && options.all))
        .cloned()
        .collect();
    orphans.sort();
    for id in orphans {
        if snaps.remove(&id)? {
            let size = sizes.remove(&id).unwrap_or(0);
            report.freed_bytes += size;
            report.removed.push(id.to_string());
        }
    }

    crate::locks::remove_idle_key_locks(root)?;
    if idle.is_some() {
        prune_blobs(root, &kept, &mut report)?;
    }
    if options.all {
        prune_cache_mounts(root, &mut report)?;
    }
    Ok(report)
}

/// Removes every cache mount folder no running step holds.
fn prune_cache_mounts(root: &Path, report: &mut PruneReport) -> Result<(), CacheError> {
    for path in entries(&cache_mounts_dir(root))? {
        if let Some(lock) = try_exclusive(&path)? {
            let size = dir_size(&path)?;
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
            drop(lock);
            report.freed_bytes += size;
            report.removed.push(path.display().to_string());
        }
    }
    Ok(())
}

/// Removes blobs neither a tagged image nor a kept record names, and
/// leftover ingest files. Only called while no build runs.
fn prune_blobs(
    root: &Path,
    kept: &[CacheRecord],
    report: &mut PruneReport,
) -> Result<(), CacheError> {
    let store = root.join("store");
    let (mut keep, _) = image_blobs(&store)?;
    keep.extend(record_blobs(kept.iter()));
    for path in entries(&store.join("blobs/sha256"))? {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let digest = format!("sha256:{name}");
        if keep.contains(&digest) {
            continue;
        }
        let size = fs::symlink_metadata(&path).map_err(io_err(&path))?.len();
        fs::remove_file(&path).map_err(io_err(&path))?;
        report.freed_bytes += size;
        report.removed.push(format!("blob {digest}"));
    }
    for path in entries(&store.join("ingest"))? {
        let size = fs::symlink_metadata(&path).map_err(io_err(&path))?.len();
        fs::remove_file(&path).map_err(io_err(&path))?;
        report.freed_bytes += size;
        report.removed.push(path.display().to_string());
    }
    Ok(())
}
