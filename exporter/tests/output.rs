//! Outputs checked with real tools: skopeo and umoci read the archives,
//! and the merged filesystem hides what the upper layer deleted.

mod common;

use std::fs;
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;
use strata_cache::ContentStore;
use strata_exporter::{
    Compression, CompressionKind, History, ImageInput, ImageRef, LayerBlob, MediaTypes,
    write_image, write_layers,
};
use strata_exporter::{docker_archive, local_dir, oci_archive, tar_stream};
use strata_registry::Digest;

/// Runs a tool and returns its stdout; a missing tool fails the test by name.
fn run(tool: &str, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {tool} (install it with apt-get install {tool}): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{tool} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: ContentStore,
    layer_dirs: Vec<PathBuf>,
    layers: Vec<LayerBlob>,
}

fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
    fixture_with(Compression::default())
}

fn fixture_with(compression: Compression) -> Result<Fixture, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().to_path_buf();
    let store = ContentStore::open(root.join("store"))?;
    let (lower, upper) = (root.join("lower"), root.join("upper"));
    fs::create_dir(&lower)?;
    fs::create_dir(&upper)?;
    two_layers(&lower, &upper)?;
    // Over 4 MiB: gzip layers hold several members, which the real
    // clients below must read.
    fs::write(lower.join("big.bin"), pseudo_random(BIG))?;
    let layer_dirs = vec![lower, upper];
    let layers = write_layers(&layer_dirs, compression, &store, None)?;
    Ok(Fixture {
        _dir: dir,
        root,
        store,
        layer_dirs,
        layers,
    })
}

fn image(f: &Fixture, media_types: MediaTypes) -> Result<ImageRef, Box<dyn std::error::Error>> {
    let history = ["COPY lower /", "RUN change"]
        .map(|c| History {
            created_by: c.into(),
            ..History::default()
        })
        .to_vec();
    Ok(write_image(
        &f.store,
        &ImageInput {
            platform: strata_registry::platform::parse("linux/amd64")?,
            created: None,
            config: serde_json::json!({"Cmd": ["/top"]}),
            history,
            layers: f.layers.clone(),
            media_types,
        },
    )?)
}

/// The merged filesystem of [`two_layers`], as checked in an unpacked rootfs.
/// Size of the fixture's incompressible file.
const BIG: usize = 10 << 20;

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn assert_merged_rootfs(rootfs: &Path) -> TestResult {
    assert_eq!(fs::read(rootfs.join("big.bin"))?, pseudo_random(BIG));
    assert_eq!(fs::read_to_string(rootfs.join("keep"))?, "keep");
    assert!(!rootfs.join("del").exists(), "whiteout hides del");
    assert!(!rootfs.join("dir/old").exists(), "opaque dir hides dir/old");
    assert!(!rootfs.join("dir/sub").exists(), "opaque dir hides dir/sub");
    assert_eq!(fs::read_to_string(rootfs.join("dir/new"))?, "new");
    assert_eq!(fs::metadata(rootfs.join("dir/new"))?.mode() & 0o7777, 0o600);
    assert_eq!(fs::metadata(rootfs.join("dir"))?.mode() & 0o7777, 0o700);
    let top = fs::metadata(rootfs.join("top"))?;
    assert_eq!((top.uid(), top.gid(), top.mode() & 0o7777), (7, 8, 0o755));
    assert_eq!(fs::read_to_string(rootfs.join("shared/low"))?, "low");
    assert_eq!(fs::read_to_string(rootfs.join("shared/high"))?, "high");
    assert_eq!(
        fs::read_link(rootfs.join("shared/to-keep"))?,
        Path::new("../keep")
    );
    assert_eq!(
        fs::metadata(rootfs.join("shared/top-link"))?.ino(),
        top.ino(),
        "hard link kept"
    );
    let names: Vec<_> = walk(rootfs)?;
    assert!(
        !names.iter().any(|n| n.contains(".wh.")),
        "no whiteout files: {names:?}"
    );
    Ok(())
}

fn walk(root: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            out.push(entry.path().strip_prefix(root)?.display().to_string());
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

#[test]
fn oci_archive_reads_with_skopeo_and_unpacks_with_umoci() -> TestResult {
    let f = fixture()?;
    let image = image(&f, MediaTypes::Oci)?;
    let archive = f.root.join("image.tar");
    oci_archive(
        &f.store,
        &[(
            image.manifest.clone(),
            vec!["example.com/team/app:v1".into()],
        )],
        &archive,
    )?;

    let inspect: Value = serde_json::from_str(&run(
        "skopeo",
        &["inspect", &format!("oci-archive:{}", archive.display())],
    )?)?;
    assert_eq!(inspect["Digest"], image.manifest_digest.as_str());
    let layer_digests: Vec<&str> = f.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(inspect["Layers"], serde_json::json!(layer_digests));
    assert_eq!(inspect["Architecture"], "amd64");

    let layout = f.root.join("layout");
    fs::create_dir(&layout)?;
    run(
        "tar",
        &[
            "-xf",
            &archive.display().to_string(),
            "-C",
            &layout.display().to_string(),
        ],
    )?;
    let index: Value = serde_json::from_slice(&fs::read(layout.join("index.json"))?)?;
    let annotations = &index["manifests"][0]["annotations"];
    assert_eq!(annotations["org.opencontainers.image.ref.name"], "v1");
    assert_eq!(
        annotations["io.containerd.image.name"],
        "example.com/team/app:v1"
    );
    assert_eq!(
        fs::read_to_string(layout.join("oci-layout"))?,
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );

    let bundle = f.root.join("bundle");
    run(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:v1", layout.display()),
            &bundle.display().to_string(),
        ],
    )?;
    assert_merged_rootfs(&bundle.join("rootfs"))
}

#[test]
fn docker_archive_reads_with_skopeo_and_keeps_diff_ids() -> TestResult {
    let f = fixture()?;
    for media_types in [MediaTypes::Docker, MediaTypes::Oci] {
        let image = image(&f, media_types)?;
        let archive = f.root.join(format!("docker-{media_types:?}.tar"));
        docker_archive(
            &f.store,
            &image.manifest_digest,
            &["app".into(), "app:v2".into()],
            &archive,
        )?;
        let source = format!("docker-archive:{}", archive.display());

        let inspect: Value = serde_json::from_str(&run("skopeo", &["inspect", &source])?)?;
        let diff_ids: Vec<&str> = f.layers.iter().map(|l| l.diff_id.as_str()).collect();
        assert_eq!(inspect["Layers"], serde_json::json!(diff_ids));

        let oci = f.root.join(format!("copied-{media_types:?}"));
        run(
            "skopeo",
            &[
                "copy",
                "--quiet",
                &source,
                &format!("oci:{}:copied", oci.display()),
            ],
        )?;
        let index: Value = serde_json::from_slice(&fs::read(oci.join("index.json"))?)?;
        let manifest_digest: Digest = index["manifests"][0]["digest"]
            .as_str()
            .ok_or("no manifest in index")?
            .parse()?;
        let blob = |d: &Digest| fs::read(oci.join("blobs/sha256").join(d.hex()));
        let manifest: Value = serde_json::from_slice(&blob(&manifest_digest)?)?;
        let config_digest: Digest = manifest["config"]["digest"]
            .as_str()
            .ok_or("no config")?
            .parse()?;
        // skopeo converts the config for the OCI layout; its content stays.
        let config: Value = serde_json::from_slice(&blob(&config_digest)?)?;
        assert_eq!(config["config"]["Cmd"], serde_json::json!(["/top"]));
        assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
        // Each copied layer, uncompressed, hashes to its diff_id.
        for (layer, diff_id) in manifest["layers"]
            .as_array()
            .ok_or("no layers")?
            .iter()
            .zip(&diff_ids)
        {
            let digest: Digest = layer["digest"].as_str().ok_or("no digest")?.parse()?;
            let bytes = blob(&digest)?;
            let mut plain = Vec::new();
            if bytes.starts_with(&[0x1f, 0x8b]) {
                flate2::read::MultiGzDecoder::new(bytes.as_slice()).read_to_end(&mut plain)?;
            } else {
                plain = bytes;
            }
            assert_eq!(Digest::of(&plain).as_str(), *diff_id);
        }

        // manifest.json names the tags docker load will apply.
        let listing = run(
            "tar",
            &["-xOf", &archive.display().to_string(), "manifest.json"],
        )?;
        let docker_manifest: Value = serde_json::from_str(&listing)?;
        assert_eq!(
            docker_manifest[0]["RepoTags"],
            serde_json::json!(["app:latest", "app:v2"])
        );
        // The archive's config is ours, byte for byte.
        let config_path = docker_manifest[0]["Config"].as_str().ok_or("no Config")?;
        assert_eq!(
            config_path,
            format!("blobs/sha256/{}", image.config_digest.hex())
        );
        let config_bytes = Command::new("tar")
            .args(["-xOf", &archive.display().to_string(), config_path])
            .output()?
            .stdout;
        assert_eq!(Digest::of(&config_bytes), image.config_digest);
    }
    Ok(())
}

#[test]
fn local_dir_and_tar_show_the_merged_filesystem() -> TestResult {
    let f = fixture()?;
    let dest = f.root.join("out/fs");
    local_dir(&f.layer_dirs, &dest)?;
    assert_merged_rootfs(&dest)?;

    // An existing destination keeps what the export does not replace.
    let existing = f.root.join("existing");
    fs::create_dir_all(existing.join("shared"))?;
    fs::write(existing.join("mine"), "mine")?;
    fs::write(existing.join("keep"), "stale")?;
    fs::write(existing.join("shared/extra"), "extra")?;
    local_dir(&f.layer_dirs, &existing)?;
    assert_merged_rootfs(&existing)?;
    assert_eq!(fs::read_to_string(existing.join("mine"))?, "mine");
    assert_eq!(fs::read_to_string(existing.join("shared/extra"))?, "extra");
    assert!(walk(&existing)?.iter().all(|n| !n.starts_with(".strata")));

    let tar_file = f.root.join("fs.tar");
    tar_stream(&f.layer_dirs, &tar_file)?;
    let mut names = Vec::new();
    let mut kinds = Vec::new();
    let bytes = fs::read(&tar_file)?;
    let mut archive = tar::Archive::new(bytes.as_slice());
    for entry in archive.entries()? {
        let entry = entry?;
        names.push(String::from_utf8(entry.path_bytes().into_owned())?);
        kinds.push(entry.header().entry_type());
    }
    assert_eq!(
        names,
        [
            "big.bin",
            "dir/",
            "dir/new",
            "keep",
            "shared/",
            "shared/high",
            "shared/low",
            "shared/to-keep",
            "shared/top-link",
            "top"
        ]
    );
    assert_eq!(
        kinds[9],
        tar::EntryType::Link,
        "top links to shared/top-link"
    );

    // Unpacked by tar, the stream gives the same tree.
    let unpacked = f.root.join("unpacked");
    fs::create_dir(&unpacked)?;
    run(
        "tar",
        &[
            "-xpf",
            &tar_file.display().to_string(),
            "-C",
            &unpacked.display().to_string(),
        ],
    )?;
    assert_merged_rootfs(&unpacked)
}

#[test]
fn errors_name_the_destination() -> TestResult {
    let f = fixture()?;
    let image = image(&f, MediaTypes::Oci)?;
    let dest = f.root.join("no/such/dir/image.tar");
    let err = oci_archive(&f.store, &[(image.manifest.clone(), vec![])], &dest)
        .err()
        .ok_or("no error")?;
    assert!(err.to_string().contains("no/such/dir"), "{err}");
    Ok(())
}

#[test]
fn docker_archive_uncompresses_zstd_layers() -> TestResult {
    let f = fixture_with(Compression {
        kind: CompressionKind::Zstd,
        level: None,
    })?;
    let image = image(&f, MediaTypes::Oci)?;
    let archive = f.root.join("docker.tar");
    docker_archive(
        &f.store,
        &image.manifest_digest,
        &["app:zstd".into()],
        &archive,
    )?;
    let inspect: Value = serde_json::from_str(&run(
        "skopeo",
        &["inspect", &format!("docker-archive:{}", archive.display())],
    )?)?;
    let diff_ids: Vec<&str> = f.layers.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(inspect["Layers"], serde_json::json!(diff_ids));
    // Docker media types cannot name zstd layers.
    assert!(self::image(&f, MediaTypes::Docker).is_err());
    Ok(())
}

#[test]
fn local_dir_keeps_every_kind_of_entry() -> TestResult {
    let dir = tempfile::tempdir()?;
    let layer = dir.path().join("layer");
    fs::create_dir(&layer)?;
    rich_layer(&layer)?;
    set_mtime(&layer.join("a/f"), 1_234_567_890)?;
    let dest = dir.path().join("out");
    local_dir(std::slice::from_ref(&layer), &dest)?;

    let f = fs::symlink_metadata(dest.join("a/f"))?;
    assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (1000, 1001, 0o640));
    assert_eq!(f.mtime(), 1_234_567_890);
    assert_eq!(
        xattr::get(dest.join("a/f"), "user.note")?,
        Some(b"hi".to_vec())
    );
    assert_eq!(
        xattr::get(dest.join("a/f"), "trusted.overlay.origin")?,
        None
    );
    assert_eq!(fs::metadata(dest.join("a/hard"))?.ino(), f.ino());
    assert_eq!(fs::read_link(dest.join("a/link"))?, Path::new("f"));
    assert_eq!(fs::metadata(dest.join("a/suid"))?.mode() & 0o7777, 0o4755);
    assert_eq!(fs::metadata(dest.join("b"))?.mode() & 0o7777, 0o1777);
    let null = fs::symlink_metadata(dest.join("dev/null"))?;
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert!(
        fs::symlink_metadata(dest.join("fifo"))?
            .file_type()
            .is_fifo()
    );
    assert!(!dest.join("sock").exists(), "sockets are not exported");
    assert!(
        !dest.join("gone").exists(),
        "a whiteout with nothing below shows nothing"
    );
    assert_eq!(xattr::get(dest.join("op"), "trusted.overlay.opaque")?, None);
    assert_eq!(
        fs::read_to_string(dest.join("long").join(long_name()))?,
        "long"
    );
    Ok(())
}
