//! Snapshots and the cache index: commit/get round trips, misses for
//! missing layers, rebuilding a deleted or corrupt index, concurrent use.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use strata_cache::snapshots::BaseMeta;
use strata_cache::{BlobRef, CacheError, CacheIndex, CacheRecord, LayerRef, SnapshotId, Snapshots};

type R = Result<(), Box<dyn std::error::Error>>;

fn key(n: u8) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[0] = n;
    k[31] = 0xab;
    k
}

fn base_layer(root: &Path) -> Result<LayerRef, Box<dyn std::error::Error>> {
    let diff_id = format!("sha256:{}", "1".repeat(64));
    let id = SnapshotId::for_diff_id(&diff_id)?;
    let snapshots = root.join("snapshots");
    fs::create_dir_all(snapshots.join(id.as_str()).join("etc"))?;
    let digest = format!("sha256:{}", "2".repeat(64));
    let meta = base_meta(&diff_id, &digest);
    fs::write(
        snapshots.join(format!("{id}.json")),
        serde_json::to_vec(&meta)?,
    )?;
    Ok(LayerRef::Base {
        id,
        blob: BlobRef {
            digest,
            diff_id,
            size: 10,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        },
    })
}

fn base_meta(diff_id: &str, blob: &str) -> BaseMeta {
    BaseMeta {
        diff_id: diff_id.to_string(),
        blobs: vec![blob.to_string()],
        tree: "0".repeat(64),
        size: 5,
        created: 1,
    }
}

/// Commits a step writing `content` to `file`, stacked on `parents`, and
/// records it.
fn step(
    index: &CacheIndex,
    k: &[u8; 32],
    parents: &[LayerRef],
    content: &[u8],
) -> Result<CacheRecord, Box<dyn std::error::Error>> {
    let snaps = index.snapshots();
    let p = snaps.prepare()?;
    fs::write(p.path().join("file"), content)?;
    let (id, _hold) = snaps.commit(p, k, parents)?;
    let mut layers = parents.to_vec();
    layers.push(LayerRef::Step { id });
    let record = CacheRecord::new(layers);
    index.put(k, &record)?;
    Ok(record)
}

#[test]
fn commit_get_round_trip() -> R {
    let root = tempfile::tempdir()?;
    let index = CacheIndex::open(root.path())?;
    let base = base_layer(root.path())?;
    let r1 = step(&index, &key(1), std::slice::from_ref(&base), b"one")?;
    let r2 = step(&index, &key(2), &r1.layers, b"two!")?;

    assert_eq!(index.get(&key(1))?, Some(r1.clone()));
    assert_eq!(index.get(&key(2))?, Some(r2.clone()));
    assert_eq!(index.get(&key(3))?, None);
    assert_eq!(r2.layers.len(), 3);
    let top = r2.layers[2].id();
    assert_eq!(top.as_str(), format!("s-{}", &hex::encode(key(2))[..16]));
    let snaps = index.snapshots();
    assert_eq!(fs::read(snaps.path(top).join("file"))?, b"two!");
    let meta = snaps.meta(top)?;
    assert_eq!(meta.key, hex::encode(key(2)));
    assert_eq!(meta.parents, r1.layers);
    assert_eq!(meta.size, 4);
    // No work folders remain.
    let names: Vec<String> = fs::read_dir(snaps.dir())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    assert!(names.iter().all(|n| !n.starts_with("tmp-")), "{names:?}");

    let (hit, holds) = index.lookup(&key(2))?.ok_or("lookup missed")?;
    assert_eq!(hit.layers, r2.layers);
    assert!(hit.last_used >= r2.last_used);
    let held: Vec<_> = holds.iter().map(|h| h.id().clone()).collect();
    let ids: Vec<_> = r2.layers.iter().map(|l| l.id().clone()).collect();
    assert_eq!(held, ids);
    // Held layers cannot be removed.
    assert!(!snaps.remove(top)?);
    drop(holds);
    assert!(index.lookup(&key(3))?.is_none());

    index.touch(&key(1))?;
    assert!(index.remove(&key(1))?);
    assert!(!index.remove(&key(1))?);
    assert_eq!(index.get(&key(1))?, None);
    assert_eq!(index.iter()?.len(), 1);
    Ok(())
}

#[test]
fn record_with_a_missing_layer_is_a_miss() -> R {
    let root = tempfile::tempdir()?;
    let index = CacheIndex::open(root.path())?;
    let base = base_layer(root.path())?;
    let r1 = step(&index, &key(1), std::slice::from_ref(&base), b"one")?;
    let r2 = step(&index, &key(2), &r1.layers, b"two")?;
    fs::remove_dir_all(index.snapshots().path(r1.layers[1].id()))?;
    assert_eq!(index.get(&key(1))?, None);
    assert_eq!(index.get(&key(2))?, None);

    // A missing base layer folder is a miss too.
    let r3 = step(&index, &key(3), std::slice::from_ref(&base), b"three")?;
    assert!(index.get(&key(3))?.is_some());
    fs::remove_dir_all(index.snapshots().path(base.id()))?;
    assert_eq!(index.get(&key(3))?, None);
    assert_ne!(r2, r3);
    Ok(())
}

#[test]
fn a_base_layer_that_lost_its_identity_is_a_miss() -> R {
    let root = tempfile::tempdir()?;
    let index = CacheIndex::open(root.path())?;
    let base = base_layer(root.path())?;
    step(&index, &key(1), std::slice::from_ref(&base), b"one")?;
    assert!(index.lookup(&key(1))?.is_some());
    let snaps = index.snapshots();
    let meta_path = snaps.dir().join(format!("{}.json", base.id()));

    // The folder now holds another diffID with the same short name.
    let mut meta = snaps.base_meta(base.id())?;
    meta.diff_id = format!("sha256:{}{}", "1".repeat(16), "f".repeat(48));
    fs::write(&meta_path, serde_json::to_vec(&meta)?)?;
    assert!(index.lookup(&key(1))?.is_none());

    // Or its metadata is gone: the folder is unverified.
    fs::remove_file(&meta_path)?;
    assert!(index.lookup(&key(1))?.is_none());
    Ok(())
}

#[test]
fn deleted_index_is_rebuilt_from_metadata() -> R {
    let root = tempfile::tempdir()?;
    let index = CacheIndex::open(root.path())?;
    let base = base_layer(root.path())?;
    let r1 = step(&index, &key(1), std::slice::from_ref(&base), b"one")?;
    let r2 = step(&index, &key(2), &r1.layers, b"two")?;
    let before = index.iter()?;
    assert_eq!(before.len(), 2);

    fs::remove_file(index.db_path())?;
    let after = CacheIndex::open(root.path())?.iter()?;
    let layers = |v: &[([u8; 32], CacheRecord)]| -> Vec<_> {
        v.iter().map(|(k, r)| (*k, r.layers.clone())).collect()
    };
    assert_eq!(layers(&after), layers(&before));
    assert_eq!(index.get(&key(2))?.map(|r| r.layers), Some(r2.layers));
    Ok(())
}

#[test]
fn corrupt_index_is_rebuilt() -> R {
    for damage in 0..3 {
        let root = tempfile::tempdir()?;
        let index = CacheIndex::open(root.path())?;
        let r1 = step(&index, &key(1), &[], b"one")?;
        for n in 10..40 {
            step(&index, &key(n), &r1.layers, &[n])?;
        }
        let len = fs::metadata(index.db_path())?.len();
        let mut f = fs::OpenOptions::new().write(true).open(index.db_path())?;
        match damage {
            // The header.
            0 => f.write_all(&[0x5a; 512])?,
            // Every page after the header.
            1 => {
                f.seek(SeekFrom::Start(4096))?;
                f.write_all(&vec![0xff; (len - 4096) as usize])?;
            }
            // Cut short.
            _ => f.set_len(100)?,
        }
        drop(f);
        let index = CacheIndex::open(root.path())?;
        assert_eq!(
            index.get(&key(1))?.map(|r| r.layers),
            Some(r1.layers.clone()),
            "damage {damage}"
        );
        let all = index.iter()?;
        assert_eq!(all.len(), 31, "damage {damage}");
        assert_eq!(
            index.get(&key(20))?.map(|r| r.layers.len()),
            Some(2),
            "damage {damage}"
        );
    }
    Ok(())
}

#[test]
fn threads_share_the_index() -> R {
    let root = tempfile::tempdir()?;
    let index = Arc::new(CacheIndex::open(root.path())?);
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let index = Arc::clone(&index);
            std::thread::spawn(move || -> Result<(), String> {
                for i in 0..25u8 {
                    let k = key(t * 50 + i);
                    let r = step(&index, &k, &[], &[t, i]).map_err(|e| e.to_string())?;
                    let got = index.get(&k).map_err(|e| e.to_string())?;
                    if got != Some(r) {
                        return Err(format!("thread {t} record {i}: {got:?}"));
                    }
                    index.touch(&k).map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "thread panicked")??;
    }
    assert_eq!(index.iter()?.len(), 100);
    Ok(())
}

#[test]
fn concurrent_commits_of_one_key_keep_one_snapshot() -> R {
    let root = tempfile::tempdir()?;
    let snaps = Snapshots::open(root.path().join("snapshots"))?;
    let k = key(7);
    let first = snaps.prepare()?;
    fs::write(first.path().join("f"), b"first")?;
    let second = snaps.prepare()?;
    fs::write(second.path().join("f"), b"second")?;
    let (a, _ha) = snaps.commit(first, &k, &[])?;
    let (b, _hb) = snaps.commit(second, &k, &[])?;
    assert_eq!(a, b);
    assert_eq!(fs::read(snaps.path(&a).join("f"))?, b"first");
    assert_eq!(snaps.list()?, vec![a]);
    assert!(snaps.leftovers()?.is_empty());
    Ok(())
}

#[test]
fn base_layers_commit_once_and_prepared_folders_are_0755() -> R {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir()?;
    let snaps = Snapshots::open(root.path().join("snapshots"))?;
    let diff_id = format!("sha256:{}", "ab".repeat(32));
    let first = snaps.prepare()?;
    assert_eq!(
        fs::metadata(first.path())?.permissions().mode() & 0o7777,
        0o755
    );
    fs::write(first.path().join("f"), b"first")?;
    let second = snaps.prepare()?;
    let second_path = second.path().to_path_buf();
    let id = SnapshotId::for_diff_id(&diff_id)?;
    assert_eq!(id.as_str(), "l-abababababababab");
    let meta = base_meta(&diff_id, "sha256:first");
    let (_ha, a) = snaps.commit_base(first, &id, &meta)?;
    assert_eq!(a, meta);
    // The second commit gets the first's snapshot and metadata.
    let (hb, b) = snaps.commit_base(second, &id, &base_meta(&diff_id, "sha256:second"))?;
    assert_eq!(b, meta);
    assert_eq!(hb.id(), &id);
    assert_eq!(fs::read(snaps.path(&id).join("f"))?, b"first");
    assert!(!second_path.exists());
    assert_eq!(snaps.list()?, vec![id.clone()]);
    assert_eq!(snaps.base_meta(&id)?, meta);

    // Another diffID with the same first 16 hex digits is not taken for it.
    let other = format!("sha256:{}{}", "ab".repeat(8), "cd".repeat(24));
    let third = snaps.prepare()?;
    match snaps.commit_base(third, &id, &base_meta(&other, "sha256:third")) {
        Err(CacheError::DiffIdCollision {
            existing, wanted, ..
        }) => assert_eq!((existing, wanted), (diff_id, other)),
        r => panic!("committed over another diffID: {r:?}"),
    }
    Ok(())
}

#[test]
fn unverified_base_folders_are_never_held_and_get_replaced() -> R {
    let root = tempfile::tempdir()?;
    let snaps = Snapshots::open(root.path().join("snapshots"))?;
    let diff_id = format!("sha256:{}", "cd".repeat(32));
    let id = SnapshotId::for_diff_id(&diff_id)?;
    // As an older strata (or an unpack killed before its metadata) left it.
    fs::create_dir_all(snaps.path(&id))?;
    fs::write(snaps.path(&id).join("POISONED"), b"x")?;
    assert!(matches!(snaps.hold(&id), Err(CacheError::NotFound(_))));
    assert!(!snaps.exists(&id));
    assert_eq!(snaps.leftovers()?.len(), 1);

    let fresh = snaps.prepare()?;
    fs::write(fresh.path().join("f"), b"verified")?;
    let meta = base_meta(&diff_id, "sha256:blob");
    let (_hold, got) = snaps.commit_base(fresh, &id, &meta)?;
    assert_eq!(got, meta);
    assert!(!snaps.path(&id).join("POISONED").exists());
    assert_eq!(fs::read(snaps.path(&id).join("f"))?, b"verified");
    assert!(snaps.leftovers()?.is_empty());
    Ok(())
}

#[test]
fn dropped_prepared_snapshots_and_work_folders_are_removed() -> R {
    let root = tempfile::tempdir()?;
    let snaps = Snapshots::open(root.path().join("snapshots"))?;
    let mut p = snaps.prepare()?;
    let work = p.work_dir()?;
    fs::write(p.path().join("f"), b"x")?;
    let path = p.path().to_path_buf();
    assert!(work.is_dir() && work.parent() == path.parent());
    // In use: not garbage.
    assert!(snaps.leftovers()?.is_empty());
    drop(p);
    assert!(!path.exists() && !work.exists());
    assert_eq!(fs::read_dir(snaps.dir())?.count(), 0);
    Ok(())
}

#[test]
fn the_snapshots_folder_is_private_to_its_owner() -> R {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let snapshots = dir.path().join("snapshots");
    std::fs::create_dir(&snapshots)?;
    std::fs::set_permissions(&snapshots, std::fs::Permissions::from_mode(0o755))?;
    Snapshots::open(&snapshots)?;
    let mode = std::fs::metadata(&snapshots)?.permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o700,
        "base layers' device nodes must not be reachable by others"
    );
    Ok(())
}
