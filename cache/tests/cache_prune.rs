//! du, prune and doctor on a real root: sizes, keep-storage, until, LRU
//! order, held snapshots, tagged images' blobs, cache mounts, repairs.

use std::fs;
use std::path::Path;
use std::time::Duration;

use oci_spec::image::Descriptor;
use strata_cache::{
    BuildLease, CacheIndex, CacheRecord, ImageStore, LayerRef, PruneOptions, SnapshotId, doctor,
    prune, repair, usage,
};

type R = Result<(), Box<dyn std::error::Error>>;
type E = Box<dyn std::error::Error>;

fn key(n: u8) -> [u8; 32] {
    [n; 32]
}

/// A one-layer record of `bytes` bytes of files, last used at `last_used`.
fn entry(index: &CacheIndex, n: u8, bytes: usize, last_used: u64) -> Result<SnapshotId, E> {
    let snaps = index.snapshots();
    let p = snaps.prepare()?;
    // Two files and a hard link (counted once) and a symlink (not a file).
    fs::write(p.path().join("a"), vec![b'a'; bytes / 2])?;
    fs::write(p.path().join("b"), vec![b'b'; bytes - bytes / 2])?;
    fs::hard_link(p.path().join("a"), p.path().join("a2"))?;
    std::os::unix::fs::symlink("a", p.path().join("link"))?;
    let (id, _hold) = snaps.commit(p, &key(n), &[])?;
    index.put(
        &key(n),
        &CacheRecord {
            layers: vec![LayerRef::Step { id: id.clone() }],
            created: last_used,
            last_used,
        },
    )?;
    Ok(id)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[test]
fn keep_storage_prunes_least_recently_used_first_and_spares_held() -> R {
    let root = tempfile::tempdir()?;
    let index = CacheIndex::open(root.path())?;
    let a = entry(&index, 1, 1000, 100)?;
    let b = entry(&index, 2, 2000, 300)?;
    let c = entry(&index, 3, 4000, 200)?;

    let u = usage(root.path())?;
    assert_eq!(u.snapshots.count, 3);
    assert_eq!(u.snapshots.bytes, 7000);
    assert_eq!(u.snapshots.reclaimable_bytes, 7000);

    // Least recently used first: a (100), then c (200).
    let r = prune(
        root.path(),
        &PruneOptions {
            keep_storage: Some(6500),
            ..Default::default()
        },
    )?;
    assert_eq!(r.removed, vec![a.to_string()]);
    assert_eq!(r.freed_bytes, 1000);
    assert_eq!(index.get(&key(1))?, None);
    assert!(!index.snapshots().path(&a).exists());

    // c is in use: b goes instead, and c stays even below the limit.
    let held = index.snapshots().hold(&c)?;
    assert_eq!(usage(root.path())?.snapshots.reclaimable_bytes, 2000);
    let r = prune(
        root.path(),
        &PruneOptions {
            keep_storage: Some(0),
            ..Default::default()
        },
    )?;
    assert_eq!(r.removed, vec![b.to_string()]);
    assert_eq!(r.freed_bytes, 2000);
    assert!(index.get(&key(3))?.is_some());
    assert!(index.snapshots().path(&c).join("b").is_file());

    drop(held);
    let r = prune(
        root.path(),
        &PruneOptions {
            all: true,
            ..Default::default()
        },
    )?;
    assert_eq!(r.removed, vec![c.to_string()]);
    assert_eq!(r.freed_bytes, 4000);
    assert_eq!(usage(root.path())?.snapshots.count, 0);
    assert!(doctor(root.path(), true)?.problems.is_empty());
    Ok(())
}

#[test]
fn until_keeps_recently_used_entries_and_shared_parents() -> R {
    let root = tempfile::tempdir()?;
    let index = CacheIndex::open(root.path())?;
    let old = entry(&index, 1, 10, 1000)?;
    let recent = entry(&index, 2, 10, now())?;
    // A child of `old`, used recently, keeps `old`'s folder alive.
    let snaps = index.snapshots();
    let p = snaps.prepare()?;
    fs::write(p.path().join("c"), b"child")?;
    let parents = vec![LayerRef::Step { id: old.clone() }];
    let (child, hold) = snaps.commit(p, &key(3), &parents)?;
    drop(hold);
    let mut layers = parents;
    layers.push(LayerRef::Step { id: child.clone() });
    index.put(&key(3), &CacheRecord::new(layers))?;

    let r = prune(
        root.path(),
        &PruneOptions {
            until: Some(Duration::from_secs(3600)),
            ..Default::default()
        },
    )?;
    // The old record is dropped but its folder is still a parent of key 3.
    assert!(r.removed.is_empty(), "{:?}", r.removed);
    assert_eq!(index.iter()?.len(), 2);
    assert!(index.get(&key(1))?.is_none());
    assert!(index.get(&key(3))?.is_some());
    assert!(snaps.path(&old).is_dir() && snaps.path(&recent).is_dir());
    Ok(())
}

/// Tags a one-layer image built from `layer`; returns its blobs' digests.
fn tag_image(root: &Path, layer: &[u8]) -> Result<Vec<String>, E> {
    let store = ImageStore::open(root.join("store"))?;
    let content = store.content();
    let layer = content.put(layer)?;
    let config = content.put(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    )?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.as_str(), "size": 1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.as_str(), "size": 1}],
    });
    let bytes = serde_json::to_vec(&manifest)?;
    let m = content.put(&bytes)?;
    let desc: Descriptor = serde_json::from_value(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": m.as_str(),
        "size": bytes.len(),
    }))?;
    store.tag("demo", &desc)?;
    Ok(vec![m.to_string(), config.to_string(), layer.to_string()])
}

#[test]
fn blobs_of_tagged_images_survive_and_running_builds_block_blob_gc() -> R {
    let root = tempfile::tempdir()?;
    let tagged = tag_image(root.path(), b"layer bytes")?;
    let store = ImageStore::open(root.path().join("store"))?;
    let loose = store.content().put(b"nobody uses this")?;

    let u = usage(root.path())?;
    assert_eq!(u.blobs.count, 4);
    assert_eq!(u.blobs.reclaimable_bytes, 16);

    // A running build: blobs are left alone.
    let lease = BuildLease::acquire(root.path())?;
    let r = prune(
        root.path(),
        &PruneOptions {
            all: true,
            ..Default::default()
        },
    )?;
    assert!(r.removed.is_empty(), "{:?}", r.removed);
    assert!(store.content().has(&loose));
    drop(lease);

    let r = prune(root.path(), &PruneOptions::default())?;
    assert_eq!(r.removed, vec![format!("blob {loose}")]);
    assert_eq!(r.freed_bytes, 16);
    for d in tagged {
        assert!(store.content().has(&d.parse()?), "{d} was removed");
    }
    assert!(doctor(root.path(), true)?.problems.is_empty());
    Ok(())
}

#[test]
fn cache_mounts_go_with_all_unless_in_use() -> R {
    let root = tempfile::tempdir()?;
    let mounts = root.path().join("cache-mounts");
    for id in ["apt", "npm"] {
        fs::create_dir_all(mounts.join(id))?;
        fs::write(mounts.join(id).join("f"), vec![0u8; 300])?;
    }
    let u = usage(root.path())?;
    assert_eq!((u.cache_mounts.count, u.cache_mounts.bytes), (2, 600));

    prune(root.path(), &PruneOptions::default())?;
    assert!(mounts.join("apt").is_dir() && mounts.join("npm").is_dir());

    // A RUN using a cache mount holds a shared flock on its folder.
    let used = fs::File::open(mounts.join("npm"))?;
    rustix::fs::flock(&used, rustix::fs::FlockOperation::LockShared)?;
    let r = prune(
        root.path(),
        &PruneOptions {
            all: true,
            ..Default::default()
        },
    )?;
    assert_eq!(r.freed_bytes, 300);
    assert!(!mounts.join("apt").exists());
    assert!(mounts.join("npm/f").is_file());
    Ok(())
}

#[test]
fn doctor_finds_and_repair_fixes_inconsistencies() -> R {
    let root = tempfile::tempdir()?;
    let index = CacheIndex::open(root.path())?;
    let a = entry(&index, 1, 10, 100)?;
    let b = entry(&index, 2, 10, 100)?;
    let c = entry(&index, 3, 10, 100)?;
    assert_eq!(doctor(root.path(), true)?, Default::default());
    let snaps = index.snapshots();

    // A record naming a deleted folder; metadata without its folder.
    fs::remove_dir_all(snaps.path(&a))?;
    // Unreadable metadata.
    fs::write(snaps.dir().join(format!("{b}.json")), b"{not json")?;
    // A leftover of a killed build, and an unused prepared folder.
    fs::create_dir(snaps.dir().join("tmp-killed"))?;
    fs::write(snaps.dir().join("tmp-killed/x"), b"12345")?;
    let in_progress = snaps.prepare()?;
    // A blob whose content does not match its name.
    let tagged = tag_image(root.path(), b"layer")?;
    let layer_hex = tagged[2].trim_start_matches("sha256:").to_string();
    fs::write(
        root.path().join("store/blobs/sha256").join(&layer_hex),
        b"tampered",
    )?;

    let report = doctor(root.path(), true)?;
    let problems = report.problems.join("\n");
    assert!(
        problems.contains(&format!("names snapshot {a} which does not exist")),
        "{problems}"
    );
    assert!(
        problems.contains(&format!("{a}.json describes a snapshot folder")),
        "{problems}"
    );
    assert!(problems.contains(&format!("{b}.json")), "{problems}");
    assert!(problems.contains(&layer_hex), "{problems}");
    assert_eq!(report.reclaimable.len(), 1, "{:?}", report.reclaimable);
    assert!(report.reclaimable[0].contains("tmp-killed (5 bytes)"));
    // Without --deep blobs are not hashed.
    assert!(
        !doctor(root.path(), false)?
            .problems
            .join("\n")
            .contains(&layer_hex)
    );

    let done = repair(root.path(), true)?;
    assert!(!done.is_empty());
    let report = doctor(root.path(), true)?;
    // The tagged image now misses its (corrupt, removed) layer: that cannot
    // be repaired, only reported.
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains(&tagged[2]));
    assert!(report.reclaimable.is_empty());
    assert!(
        in_progress.path().is_dir(),
        "a prepared folder in use was removed"
    );
    assert!(index.get(&key(3))?.is_some_and(|r| r.layers[0].id() == &c));
    assert!(index.get(&key(1))?.is_none() && index.get(&key(2))?.is_none());
    Ok(())
}
