//! Layer tars: order, whiteouts, metadata, compression and reproducibility.

mod common;

use std::io::Read as _;

use common::*;
use strata_cache::ContentStore;
use strata_exporter::{Compression, CompressionKind, LayerBlob, write_layer, write_layers};
use strata_registry::Digest;
use tar::EntryType;

#[derive(Debug, PartialEq)]
struct Seen {
    path: String,
    kind: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    link: Option<String>,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// An entry, its modification time and its content.
type ReadEntry = (Seen, i64, Vec<u8>);

fn read_tar(bytes: &[u8]) -> Result<Vec<ReadEntry>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions()? {
            for ext in pax {
                let ext = ext?;
                if let Some(name) = ext.key()?.strip_prefix("SCHILY.xattr.") {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        let h = entry.header();
        let seen = Seen {
            path: String::from_utf8(entry.path_bytes().into_owned())?,
            kind: h.entry_type(),
            mode: h.mode()?,
            uid: h.uid()?,
            gid: h.gid()?,
            size: h.size()?,
            link: entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned()),
            xattrs,
        };
        let mtime = h.mtime()? as i64;
        assert!(h.username_bytes().is_none_or(|u| u.is_empty()));
        assert!(h.groupname_bytes().is_none_or(|g| g.is_empty()));
        let mut content = Vec::new();
        entry.read_to_end(&mut content)?;
        out.push((seen, mtime, content));
    }
    Ok(out)
}

fn seen(path: &str, kind: EntryType, mode: u32) -> Seen {
    Seen {
        path: path.to_string(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        size: 0,
        link: None,
        xattrs: Vec::new(),
    }
}

fn uncompressed(
    layer: &LayerBlob,
    store: &ContentStore,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let blob = store.read(&layer.digest)?;
    let mut out = Vec::new();
    match layer.media_type.as_ref() {
        "application/vnd.oci.image.layer.v1.tar+gzip" => {
            flate2::read::MultiGzDecoder::new(blob.as_slice()).read_to_end(&mut out)?;
        }
        "application/vnd.oci.image.layer.v1.tar+zstd" => {
            zstd::stream::read::Decoder::new(blob.as_slice())?.read_to_end(&mut out)?;
        }
        "application/vnd.oci.image.layer.v1.tar" => out = blob,
        other => return Err(format!("unexpected media type {other}").into()),
    }
    Ok(out)
}

const PLAIN: Compression = Compression {
    kind: CompressionKind::Uncompressed,
    level: None,
};

#[test]
fn entries_are_sorted_with_oci_whiteouts_and_metadata() -> TestResult {
    let dir = tempfile::tempdir()?;
    let layer = dir.path().join("layer");
    std::fs::create_dir(&layer)?;
    rich_layer(&layer)?;
    let store = ContentStore::open(dir.path().join("store"))?;

    let blob = write_layer(&layer, PLAIN, &store, None)?;
    let tar_bytes = store.read(&blob.digest)?;
    assert_eq!(blob.diff_id, Digest::of(&tar_bytes));
    assert_eq!(blob.digest, blob.diff_id);
    assert_eq!(blob.size, tar_bytes.len() as u64);
    let entries = read_tar(&tar_bytes)?;
    let got: Vec<&Seen> = entries.iter().map(|e| &e.0).collect();

    let long_path = format!("long/{}", long_name());
    let expected = vec![
        seen(".wh.gone", EntryType::Regular, 0o600),
        seen("a/", EntryType::Directory, 0o755),
        Seen {
            uid: 1000,
            gid: 1001,
            size: 5,
            xattrs: vec![("user.note".to_string(), b"hi".to_vec())],
            ..seen("a/f", EntryType::Regular, 0o640)
        },
        Seen {
            uid: 1000,
            gid: 1001,
            link: Some("a/f".to_string()),
            xattrs: vec![("user.note".to_string(), b"hi".to_vec())],
            ..seen("a/hard", EntryType::Link, 0o640)
        },
        Seen {
            link: Some("f".to_string()),
            ..seen("a/link", EntryType::Symlink, 0o777)
        },
        Seen {
            size: 10,
            ..seen("a/suid", EntryType::Regular, 0o4755)
        },
        seen("b/", EntryType::Directory, 0o1777),
        seen("dev/", EntryType::Directory, 0o755),
        seen("dev/null", EntryType::Char, 0o666),
        seen("fifo", EntryType::Fifo, 0o644),
        seen("long/", EntryType::Directory, 0o755),
        Seen {
            size: 4,
            ..seen(&long_path, EntryType::Regular, 0o644)
        },
        seen("op/", EntryType::Directory, 0o750),
        seen("op/.wh..wh..opq", EntryType::Regular, 0o750),
        Seen {
            size: 1,
            ..seen("op/new", EntryType::Regular, 0o644)
        },
    ];
    assert_eq!(got, expected.iter().collect::<Vec<_>>());

    // Device numbers and content come through.
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    for entry in archive.entries()? {
        let entry = entry?;
        if entry.path_bytes().as_ref() == b"dev/null" {
            assert_eq!(entry.header().device_major()?, Some(1));
            assert_eq!(entry.header().device_minor()?, Some(3));
        }
    }
    let content = |p: &str| entries.iter().find(|e| e.0.path == p).map(|e| e.2.clone());
    assert_eq!(content("a/f"), Some(b"hello".to_vec()));
    assert_eq!(content(&long_path), Some(b"long".to_vec()));
    Ok(())
}

#[test]
fn every_compression_decompresses_to_the_same_diff_id() -> TestResult {
    let dir = tempfile::tempdir()?;
    let layer = dir.path().join("layer");
    std::fs::create_dir(&layer)?;
    rich_layer(&layer)?;
    // Some bulk so the compressors have real work.
    let bulk: String = (0..200_000).map(|i| format!("{i} ")).collect();
    write(&layer.join("bulk"), &bulk, 0o644)?;
    let store = ContentStore::open(dir.path().join("store"))?;

    let mut diff_ids = Vec::new();
    for (kind, media_type) in [
        (
            CompressionKind::Uncompressed,
            "application/vnd.oci.image.layer.v1.tar",
        ),
        (
            CompressionKind::Gzip,
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        (
            CompressionKind::Zstd,
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    ] {
        let blob = write_layer(&layer, Compression { kind, level: None }, &store, None)?;
        assert_eq!(blob.media_type.as_ref(), media_type);
        assert_eq!(blob.size, store.size(&blob.digest)?);
        let tar_bytes = uncompressed(&blob, &store)?;
        assert_eq!(Digest::of(&tar_bytes), blob.diff_id, "{media_type}");
        if kind != CompressionKind::Uncompressed {
            assert_ne!(blob.digest, blob.diff_id);
            assert!(
                blob.size < tar_bytes.len() as u64 / 2,
                "{media_type} compresses"
            );
        }
        diff_ids.push(blob.diff_id);
    }
    assert!(diff_ids.windows(2).all(|w| w[0] == w[1]));

    // Levels change the blob, never the diff_id; out-of-range levels fail.
    let fast = write_layer(
        &layer,
        Compression {
            kind: CompressionKind::Gzip,
            level: Some(1),
        },
        &store,
        None,
    )?;
    assert_eq!(fast.diff_id, diff_ids[0]);
    let bad = write_layer(
        &layer,
        Compression {
            kind: CompressionKind::Gzip,
            level: Some(10),
        },
        &store,
        None,
    );
    assert!(bad.is_err_and(|e| e.to_string().contains("gzip")));
    Ok(())
}

#[test]
fn source_date_epoch_makes_layers_reproducible() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ContentStore::open(dir.path().join("store"))?;
    let epoch = 1_700_000_000;
    let mut results = Vec::new();
    for (i, build_time) in [1_800_000_000u64, 1_900_000_000].into_iter().enumerate() {
        let layer = dir.path().join(format!("layer{i}"));
        std::fs::create_dir(&layer)?;
        rich_layer(&layer)?;
        write(&layer.join("old"), "old", 0o644)?;
        set_mtime(&layer.join("old"), 1_000_000_000)?;
        for p in ["a/f", "a/suid", "a", "op/new", "op", "b", "long", "dev"] {
            set_mtime(&layer.join(p), build_time)?;
        }
        set_mtime(&layer.join("long").join(long_name()), build_time)?;
        let mut per_kind = Vec::new();
        for kind in [CompressionKind::Gzip, CompressionKind::Zstd] {
            per_kind.push(write_layer(
                &layer,
                Compression { kind, level: None },
                &store,
                Some(epoch),
            )?);
        }
        results.push(per_kind);
        let plain = write_layer(&layer, PLAIN, &store, Some(epoch))?;
        for (seen, mtime, _) in read_tar(&store.read(&plain.digest)?)? {
            if seen.path == "old" {
                assert_eq!(mtime, 1_000_000_000, "older times are kept");
            } else {
                assert!(mtime <= epoch, "{} has mtime {mtime}", seen.path);
            }
        }
    }
    assert_eq!(results[0], results[1]);

    // Without the clamp, the build times show.
    let a = write_layer(&dir.path().join("layer0"), PLAIN, &store, None)?;
    let b = write_layer(&dir.path().join("layer1"), PLAIN, &store, None)?;
    assert_ne!(a.diff_id, b.diff_id);
    Ok(())
}

#[test]
fn empty_layers_and_parallel_writes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ContentStore::open(dir.path().join("store"))?;
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty)?;
    let blob = write_layer(&empty, PLAIN, &store, None)?;
    let bytes = store.read(&blob.digest)?;
    assert_eq!(bytes, vec![0u8; 1024], "an empty tar is two zero blocks");
    assert_eq!(read_tar(&bytes)?.len(), 0);

    let lower = dir.path().join("lower");
    let upper = dir.path().join("upper");
    std::fs::create_dir(&lower)?;
    std::fs::create_dir(&upper)?;
    two_layers(&lower, &upper)?;
    let gz = Compression::default();
    let dirs = vec![lower.clone(), empty.clone(), upper.clone()];
    let all = write_layers(&dirs, gz, &store, Some(0))?;
    let one_by_one = dirs
        .iter()
        .map(|d| write_layer(d, gz, &store, Some(0)))
        .collect::<Result<Vec<_>, _>>()?;
    assert_eq!(all, one_by_one);
    assert_ne!(all[0], all[2]);

    let missing = write_layer(&dir.path().join("nope"), gz, &store, None);
    assert!(missing.is_err_and(|e| e.to_string().contains("nope")));
    Ok(())
}

#[test]
fn long_link_targets_and_large_ids_go_to_pax_records() -> TestResult {
    let dir = tempfile::tempdir()?;
    let layer = dir.path().join("layer");
    std::fs::create_dir(&layer)?;
    let target = format!("/{}", "t".repeat(200));
    std::os::unix::fs::symlink(&target, layer.join("link"))?;
    write(&layer.join("big-ids"), "x", 0o644)?;
    std::os::unix::fs::lchown(layer.join("big-ids"), Some(3_000_000), Some(4_000_000))?;
    let store = ContentStore::open(dir.path().join("store"))?;
    let blob = write_layer(&layer, PLAIN, &store, None)?;
    let entries = read_tar(&store.read(&blob.digest)?)?;
    assert_eq!(entries[1].0.link.as_deref(), Some(target.as_str()));

    // GNU tar applies the PAX uid and gid.
    let tar_file = dir.path().join("layer.tar");
    std::fs::write(&tar_file, store.read(&blob.digest)?)?;
    let listing = std::process::Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(&tar_file)
        .output()?;
    let listing = String::from_utf8(listing.stdout)?;
    assert!(listing.contains("3000000/4000000"), "{listing}");
    assert!(listing.contains(&target), "{listing}");
    Ok(())
}
