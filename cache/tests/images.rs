//! The local image store: tags in index.json readable by skopeo and umoci,
//! concurrent taggers.

use std::path::Path;
use std::process::Command;

use strata_cache::{ImageStore, OciLayout, normalize_name};
use strata_registry::platform;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn run(cmd: &mut Command) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let name = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("{name}: {e} (apt-get install umoci skopeo)"))?;
    if !out.status.success() {
        return Err(format!("{name}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(out.stdout)
}

/// A store at `root` holding the busybox fixture, imported but untagged.
fn store_with_busybox(
    tmp: &Path,
) -> Result<(ImageStore, oci_spec::image::Descriptor), Box<dyn std::error::Error>> {
    let layout = OciLayout::open(strata_fixtures::busybox_image(&tmp.join("fixture"))?)?;
    let image = layout.resolve("latest", &platform::host())?;
    let store = ImageStore::open(tmp.join("store"))?;
    layout.import(&image, store.content())?;
    Ok((store, image.descriptor))
}

#[test]
fn names_are_normalized_like_docker() -> TestResult {
    for (given, want) in [
        ("demo", "demo:latest"),
        ("demo:1.0", "demo:1.0"),
        ("a/b:1", "a/b:1"),
        ("a/b", "a/b:latest"),
        ("host:5000/x", "host:5000/x:latest"),
        ("host:5000/x:v2", "host:5000/x:v2"),
        ("x@sha256:abc", "x@sha256:abc"),
    ] {
        assert_eq!(normalize_name(given)?, want, "{given}");
    }
    for bad in ["", "demo:", "a/", "a b", ":tag"] {
        assert!(normalize_name(bad).is_err(), "{bad:?} was accepted");
    }
    Ok(())
}

#[test]
fn tags_are_readable_by_skopeo_and_umoci() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (store, manifest) = store_with_busybox(tmp.path())?;
    assert_eq!(store.tag("demo", &manifest)?, "demo:latest");
    store.tag("other/img:1", &manifest)?;
    let root = tmp.path().join("store");

    let info: serde_json::Value = serde_json::from_slice(&run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:demo:latest", root.display())))?)?;
    assert_eq!(info["Digest"], manifest.digest().to_string());

    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:other/img:1", root.display()))
        .arg(&bundle))?;
    assert!(bundle.join("rootfs/bin/busybox").is_file());

    let names: Vec<String> = store.list()?.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["demo:latest", "other/img:1"]);
    let found = store.resolve("demo")?.ok_or("demo not found")?;
    assert_eq!(found.digest(), manifest.digest());
    assert!(store.resolve(manifest.digest().as_ref())?.is_some());
    // The store reads back as a layout.
    let image = store
        .image("demo", &platform::host())?
        .ok_or("no demo image")?;
    assert_eq!(image.descriptor.digest(), manifest.digest());

    assert!(store.untag("demo:latest")?);
    assert!(!store.untag("demo")?);
    assert!(store.resolve("demo")?.is_none());
    assert_eq!(store.list()?.len(), 1);
    Ok(())
}

#[test]
fn retagging_replaces_and_missing_manifests_are_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (store, manifest) = store_with_busybox(tmp.path())?;
    store.tag("demo", &manifest)?;
    store.tag("demo", &manifest)?;
    assert_eq!(store.list()?.len(), 1);

    let mut absent = manifest.clone();
    absent.set_digest(strata_registry::Digest::of(b"absent").into());
    let err = store
        .tag("ghost", &absent)
        .err()
        .ok_or("tagged a missing manifest")?;
    assert!(err.to_string().contains("ghost:latest"), "{err}");
    Ok(())
}

#[test]
fn concurrent_taggers_lose_no_tag() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (_, manifest) = store_with_busybox(tmp.path())?;
    let root = tmp.path().join("store");
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (root, manifest) = (&root, &manifest);
                s.spawn(move || -> Result<(), String> {
                    // Each thread opens its own store, so each flock is taken
                    // on its own open file, as separate processes would.
                    let store = ImageStore::open(root).map_err(|e| e.to_string())?;
                    for i in 0..10 {
                        store
                            .tag(&format!("t{t}:{i}"), manifest)
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "a tagger panicked".to_string())?)
            .collect::<Result<Vec<()>, String>>()
    })?;
    assert_eq!(ImageStore::open(&root)?.list()?.len(), 80);
    Ok(())
}
