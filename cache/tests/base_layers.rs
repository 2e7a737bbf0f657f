//! Base layer snapshots are recorded only under a verified diffID: a forged
//! blob claiming a genuine layer's diffID is refused whichever comes first,
//! and `doctor --deep` finds a snapshot whose content or blobs no longer
//! match its identity.

use std::fs;
use std::io::Write;
use std::path::Path;

use strata_cache::base_layers::{BaseLayerError, base_layer};
use strata_cache::{BlobRef, CacheIndex, ContentStore, SnapshotId, Snapshots, doctor, repair};

type R = Result<(), Box<dyn std::error::Error>>;
type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn tar(files: &[(&str, &[u8])]) -> Res<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)?;
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, *data)?;
    }
    Ok(b.into_inner()?)
}

fn gzip(bytes: &[u8]) -> Res<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes)?;
    Ok(gz.finish()?)
}

struct Root {
    tmp: tempfile::TempDir,
    snaps: Snapshots,
    content: ContentStore,
}

impl Root {
    fn new() -> Res<Root> {
        let tmp = tempfile::tempdir()?;
        // doctor reads the index; open it as a build does.
        CacheIndex::open(tmp.path())?;
        Ok(Root {
            snaps: Snapshots::open(tmp.path().join("snapshots"))?,
            content: ContentStore::open(tmp.path().join("store"))?,
            tmp,
        })
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Stores `blob` as a layer claiming `diff_id`.
    fn layer(&self, blob: &[u8], diff_id: &str) -> Res<BlobRef> {
        let digest = self.content.put(blob)?;
        Ok(BlobRef {
            digest: digest.to_string(),
            diff_id: diff_id.to_string(),
            size: blob.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        })
    }

    fn expect_refused(&self, forged: &BlobRef, actual: &str) -> R {
        match base_layer(&self.snaps, &self.content, forged, u64::MAX) {
            Err(BaseLayerError::DiffIdMismatch {
                blob,
                claimed,
                actual: got,
            }) => {
                assert_eq!(blob, forged.digest);
                assert_eq!(claimed, forged.diff_id);
                assert_eq!(got, actual);
                Ok(())
            }
            Ok((id, _)) => Err(format!("forged layer accepted as {id}").into()),
            Err(e) => Err(format!("forged layer refused for another reason: {e}").into()),
        }
    }
}

/// A genuine layer and a forgery of it: the same files plus `POISONED`,
/// claiming the genuine diffID.
struct Pair {
    genuine: Vec<u8>,
    forged: Vec<u8>,
}

fn pair() -> Res<Pair> {
    Ok(Pair {
        genuine: tar(&[("bin/sh", b"shell")])?,
        forged: tar(&[("bin/sh", b"shell"), ("POISONED", b"poison")])?,
    })
}

#[test]
fn a_forged_blob_is_refused_before_and_after_the_genuine_one() -> R {
    let root = Root::new()?;
    let p = pair()?;
    let diff_id = sha256(&p.genuine);
    let genuine = root.layer(&gzip(&p.genuine)?, &diff_id)?;
    let forged = root.layer(&gzip(&p.forged)?, &diff_id)?;

    // Forged first: refused, nothing recorded, nothing left behind.
    root.expect_refused(&forged, &sha256(&p.forged))?;
    assert!(fs::read_dir(root.snaps.dir())?.next().is_none());

    let (id, _hold) = base_layer(&root.snaps, &root.content, &genuine, u64::MAX)?;
    assert_eq!(id, SnapshotId::for_diff_id(&diff_id)?);
    assert!(!root.snaps.path(&id).join("POISONED").exists());
    assert_eq!(fs::read(root.snaps.path(&id).join("bin/sh"))?, b"shell");
    let meta = root.snaps.base_meta(&id)?;
    assert_eq!(meta.diff_id, diff_id);
    assert_eq!(meta.blobs, vec![genuine.digest.clone()]);

    // Forged after the genuine snapshot exists: its blob is checked too.
    root.expect_refused(&forged, &sha256(&p.forged))?;
    assert_eq!(root.snaps.base_meta(&id)?, meta);

    // Another genuine blob of the same diffID (uncompressed here) is
    // verified once, then remembered.
    let plain = root.layer(&p.genuine, &diff_id)?;
    let (again, _hold) = base_layer(&root.snaps, &root.content, &plain, u64::MAX)?;
    assert_eq!(again, id);
    assert_eq!(
        root.snaps.base_meta(&id)?.blobs,
        vec![genuine.digest.clone(), plain.digest.clone()]
    );
    assert_eq!(doctor(root.path(), true)?, Default::default());
    Ok(())
}

#[test]
fn doctor_deep_finds_a_changed_snapshot_and_repair_removes_it() -> R {
    let root = Root::new()?;
    let p = pair()?;
    let diff_id = sha256(&p.genuine);
    let genuine = root.layer(&gzip(&p.genuine)?, &diff_id)?;
    let (id, hold) = base_layer(&root.snaps, &root.content, &genuine, u64::MAX)?;
    drop(hold);
    assert_eq!(doctor(root.path(), true)?, Default::default());

    fs::write(root.snaps.path(&id).join("POISONED"), b"poison")?;
    // Only the deep check reads the content.
    assert!(doctor(root.path(), false)?.problems.is_empty());
    let report = doctor(root.path(), true)?;
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(
        report.problems[0].contains(id.as_str()) && report.problems[0].contains("content changed"),
        "{report:?}"
    );

    let done = repair(root.path(), true)?;
    assert!(
        done.iter().any(|d| d.starts_with(&format!("removed {id}"))),
        "{done:?}"
    );
    assert!(!root.snaps.path(&id).exists());
    assert_eq!(doctor(root.path(), true)?, Default::default());

    // Unpacked again, clean, from the verified blob.
    let (again, _hold) = base_layer(&root.snaps, &root.content, &genuine, u64::MAX)?;
    assert!(!root.snaps.path(&again).join("POISONED").exists());
    assert_eq!(doctor(root.path(), true)?, Default::default());
    Ok(())
}

#[test]
fn doctor_deep_rehashes_the_recorded_blobs() -> R {
    let root = Root::new()?;
    let p = pair()?;
    let diff_id = sha256(&p.genuine);
    let genuine = root.layer(&gzip(&p.genuine)?, &diff_id)?;
    let forged = root.layer(&gzip(&p.forged)?, &diff_id)?;
    let (id, hold) = base_layer(&root.snaps, &root.content, &genuine, u64::MAX)?;
    drop(hold);
    // Metadata claiming the forged blob was verified (as a bug or a hand
    // edit could leave it).
    let meta_path = root.snaps.dir().join(format!("{id}.json"));
    let mut meta = root.snaps.base_meta(&id)?;
    meta.blobs.push(forged.digest.clone());
    fs::write(&meta_path, serde_json::to_vec(&meta)?)?;

    let report = doctor(root.path(), true)?;
    assert_eq!(report.problems.len(), 1, "{report:?}");
    let problem = &report.problems[0];
    assert!(
        problem.contains(id.as_str())
            && problem.contains(&forged.digest)
            && problem.contains(&sha256(&p.forged)),
        "{problem}"
    );
    Ok(())
}

#[test]
fn a_short_name_holding_another_diff_id_is_not_reused() -> R {
    let root = Root::new()?;
    let p = pair()?;
    let diff_id = sha256(&p.genuine);
    let genuine = root.layer(&gzip(&p.genuine)?, &diff_id)?;
    // A snapshot of another diffID sharing the first 16 hex digits (a
    // forger's 2^64 search), made by unpacking the forged tar under it.
    let short = SnapshotId::for_diff_id(&diff_id)?;
    let other = format!("{}{}", &diff_id[..7 + 16], "0".repeat(48));
    assert_ne!(other, diff_id);
    let prepared = root.snaps.prepare()?;
    strata_cache::unpack_layer(p.forged.as_slice(), prepared.path())?;
    let meta = strata_cache::snapshots::BaseMeta {
        diff_id: other,
        blobs: Vec::new(),
        tree: String::new(),
        size: 0,
        created: 0,
    };
    drop(root.snaps.commit_base(prepared, &short, &meta)?);

    let (id, _hold) = base_layer(&root.snaps, &root.content, &genuine, u64::MAX)?;
    assert_eq!(id, SnapshotId::for_diff_id_long(&diff_id)?);
    assert_eq!(id.as_str().len(), 2 + 64);
    assert!(!root.snaps.path(&id).join("POISONED").exists());
    assert_eq!(root.snaps.base_meta(&id)?.diff_id, diff_id);
    Ok(())
}
