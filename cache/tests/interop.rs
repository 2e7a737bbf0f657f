//! Layouts written by other tools (skopeo, umoci) read and unpacked by
//! strata: zstd layers, Docker v2s2 manifests, and whiteouts umoci writes,
//! checked by mounting the unpacked snapshots with overlayfs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_cache::{ContentStore, OciLayout, unpack_layer};
use strata_registry::Digest;
use strata_registry::{docker, platform};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn run(cmd: &mut Command) -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("{name}: {e} (apt-get install umoci skopeo)"))?;
    if !out.status.success() {
        return Err(format!("{name}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// Resolves `tag` in `layout`, imports it into a fresh content store and
/// unpacks each layer into its own snapshot folder under `into`.
fn unpack_all(
    layout: &Path,
    tag: &str,
    into: &Path,
) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let layout = OciLayout::open(layout)?;
    let image = layout.resolve(tag, &platform::host())?;
    let store = ContentStore::open(into.join("store"))?;
    layout.import(&image, &store)?;
    let mut snapshots = Vec::new();
    for (i, layer) in image.manifest.layers().iter().enumerate() {
        let digest = Digest::try_from(layer.digest())?;
        let dir = into.join(format!("snap{i}"));
        unpack_layer(store.open_blob(&digest)?, &dir)?;
        snapshots.push(dir);
    }
    Ok(snapshots)
}

#[test]
fn skopeo_zstd_and_docker_v2s2_layouts_unpack() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let fixture = strata_fixtures::busybox_image(&tmp.path().join("fixture"))?;
    let src = format!("oci:{}:latest", fixture.display());
    let zst = tmp.path().join("zst");
    run(Command::new("skopeo")
        .args(["copy", "--dest-compress-format", "zstd", &src])
        .arg(format!("oci:{}:z", zst.display())))?;
    let v2 = tmp.path().join("v2");
    run(Command::new("skopeo")
        .args(["copy", "--format", "v2s2", &src])
        .arg(format!("oci:{}:d", v2.display())))?;

    let image = OciLayout::open(&zst)?.resolve("z", &platform::host())?;
    assert!(
        image.manifest.layers()[0]
            .media_type()
            .to_string()
            .ends_with("zstd")
    );
    let snaps = unpack_all(&zst, "z", &tmp.path().join("u1"))?;
    assert_eq!(
        fs::read_link(snaps[0].join("bin/sh"))?,
        Path::new("busybox")
    );

    let image = OciLayout::open(&v2)?.resolve("d", &platform::host())?;
    assert_eq!(*image.descriptor.media_type(), docker::manifest());
    let snaps = unpack_all(&v2, "d", &tmp.path().join("u2"))?;
    assert!(snaps[0].join("bin/busybox").is_file());
    Ok(())
}

#[test]
fn umoci_whiteouts_hide_files_in_the_overlay() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let layout = strata_fixtures::busybox_image(&tmp.path().join("layout"))?;
    let bundle = tmp.path().join("bundle");
    let image = format!("{}:latest", layout.display());
    run(Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(&bundle))?;
    let rootfs = bundle.join("rootfs");
    fs::remove_file(rootfs.join("etc/group"))?;
    fs::remove_dir_all(rootfs.join("home"))?;
    fs::write(rootfs.join("etc/added"), "new")?;
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle))?;

    let snaps = unpack_all(&layout, "latest", &tmp.path().join("u"))?;
    assert_eq!(snaps.len(), 2);
    let merged = tmp.path().join("merged");
    fs::create_dir(&merged)?;
    let opts = format!("lowerdir={}:{}", snaps[1].display(), snaps[0].display());
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&merged))?;
    let seen = (
        merged.join("etc/group").exists(),
        merged.join("home").exists(),
        fs::read_to_string(merged.join("etc/added")).ok(),
        merged.join("etc/passwd").is_file(),
    );
    run(Command::new("umount").arg(&merged))?;
    assert_eq!(seen, (false, false, Some("new".to_string()), true));
    Ok(())
}
