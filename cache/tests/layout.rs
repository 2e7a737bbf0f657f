//! Reading OCI layouts (fixtures built from busybox-static), platform
//! selection, Docker media types, importing into the content store.

use std::fs;
use std::path::Path;

use oci_spec::image::Descriptor;
use serde_json::{Value, json};
use strata_cache::layout::LayoutError;
use strata_cache::{ContentStore, OciLayout, unpack_layer};
use strata_registry::{Digest, docker, platform};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn digest(desc: &Descriptor) -> Result<Digest, Box<dyn std::error::Error>> {
    Ok(Digest::try_from(desc.digest())?)
}

#[test]
fn resolves_tags_digests_and_the_only_image() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let layout = OciLayout::open(strata_fixtures::busybox_image(tmp.path())?)?;
    let host = platform::host();
    assert_eq!(
        platform::display(&host).to_string(),
        format!("linux/{}", strata_fixtures::host_arch())
    );

    let image = layout.resolve("latest", &host)?;
    assert_eq!(
        image.config.architecture().to_string(),
        strata_fixtures::host_arch()
    );
    let config = image
        .config
        .config()
        .as_ref()
        .ok_or("config has no config")?;
    assert_eq!(config.cmd().as_deref(), Some(&["sh".to_string()][..]));
    assert_eq!(image.manifest.layers().len(), 1);
    assert_eq!(image.config.rootfs().diff_ids().len(), 1);
    assert_eq!(Digest::of(&image.manifest_bytes), image.digest()?);

    let by_digest = layout.resolve(image.digest()?.as_str(), &host)?;
    assert_eq!(by_digest.manifest_bytes, image.manifest_bytes);
    let only = layout.resolve("", &host)?;
    assert_eq!(only.manifest_bytes, image.manifest_bytes);

    let err = layout.resolve("nope", &host).err().ok_or("nope resolved")?;
    assert!(matches!(err, LayoutError::NotFound { .. }));
    assert!(
        err.to_string().contains("\"nope\"") && err.to_string().contains("latest"),
        "{err}"
    );
    Ok(())
}

#[test]
fn selects_the_platform_in_an_index() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root =
        strata_fixtures::busybox_index(tmp.path(), &[("linux", "amd64"), ("linux", "arm64")])?;
    let layout = OciLayout::open(root)?;
    let amd = layout.resolve("latest", &platform::parse("linux/amd64")?)?;
    assert_eq!(amd.config.architecture().to_string(), "amd64");
    let arm = layout.resolve("latest", &platform::parse("linux/arm64")?)?;
    assert_eq!(arm.config.architecture().to_string(), "arm64");
    // arm64 images usually leave out their only variant, v8.
    let arm_v8 = layout.resolve("latest", &platform::parse("linux/arm64/v8")?)?;
    assert_eq!(arm_v8.manifest_bytes, arm.manifest_bytes);
    assert_ne!(amd.digest()?, arm.digest()?);
    assert_eq!(
        arm.descriptor
            .platform()
            .as_ref()
            .map(|p| p.architecture().to_string()),
        Some("arm64".to_string())
    );

    // A manifest named by digest is found inside the index.
    let nested = layout.resolve(arm.digest()?.as_str(), &platform::host())?;
    assert_eq!(nested.manifest_bytes, arm.manifest_bytes);

    let err = layout
        .resolve("latest", &platform::parse("linux/s390x")?)
        .err()
        .ok_or("s390x resolved")?;
    let msg = err.to_string();
    assert!(
        msg.contains("linux/s390x") && msg.contains("linux/arm64"),
        "{msg}"
    );
    Ok(())
}

/// Rewrites the busybox layout with Docker v2 schema 2 media types, a
/// manifest list on top, and Docker-only config fields.
fn dockerize(root: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let layout = OciLayout::open(root)?;
    let image = layout.resolve("latest", &platform::host())?;
    let put = |bytes: &[u8]| -> Result<Value, Box<dyn std::error::Error>> {
        let d = Digest::of(bytes);
        fs::write(root.join("blobs/sha256").join(d.hex()), bytes)?;
        Ok(json!({ "digest": d.as_str(), "size": bytes.len() }))
    };
    let mut config: Value = serde_json::from_slice(&image.config_bytes)?;
    config["config"]["Healthcheck"] =
        json!({ "Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000u64, "Retries": 3 });
    config["config"]["OnBuild"] = json!(["RUN echo child"]);
    config["config"]["Shell"] = json!(["/bin/sh", "-ec"]);
    let mut config_desc = put(&serde_json::to_vec(&config)?)?;
    config_desc["mediaType"] = json!("application/vnd.docker.container.image.v1+json");
    let layer = &image.manifest.layers()[0];
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": docker::manifest(),
        "config": config_desc,
        "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "digest": layer.digest().to_string(),
            "size": layer.size(),
        }],
    });
    let mut manifest_desc = put(&serde_json::to_vec(&manifest)?)?;
    manifest_desc["mediaType"] = json!(docker::manifest());
    manifest_desc["platform"] =
        json!({ "os": "linux", "architecture": strata_fixtures::host_arch() });
    let list = json!({
        "schemaVersion": 2,
        "mediaType": docker::manifest_list(),
        "manifests": [manifest_desc],
    });
    let mut list_desc = put(&serde_json::to_vec(&list)?)?;
    list_desc["mediaType"] = json!(docker::manifest_list());
    list_desc["annotations"] = json!({
        "org.opencontainers.image.ref.name": "docker",
        "io.containerd.image.name": "docker.io/library/busybox:docker",
    });
    let index = json!({ "schemaVersion": 2, "manifests": [list_desc] });
    fs::write(root.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(())
}

#[test]
fn reads_docker_media_types_and_docker_only_config_fields() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = strata_fixtures::busybox_image(tmp.path())?;
    dockerize(&root)?;
    let layout = OciLayout::open(&root)?;
    let image = layout.resolve("docker", &platform::host())?;
    assert_eq!(*image.descriptor.media_type(), docker::manifest());
    let by_full_name = layout.resolve("docker.io/library/busybox:docker", &platform::host())?;
    assert_eq!(by_full_name.manifest_bytes, image.manifest_bytes);
    let extras = strata_cache::docker_extras(&image.config_bytes)?;
    let health = extras.healthcheck.ok_or("no healthcheck")?;
    assert_eq!(health.test, ["CMD-SHELL", "true"]);
    assert_eq!(
        (health.interval, health.retries, health.timeout),
        (Some(5_000_000_000), Some(3), None)
    );
    assert_eq!(extras.on_build, ["RUN echo child"]);
    assert_eq!(
        extras.shell,
        Some(vec!["/bin/sh".to_string(), "-ec".to_string()])
    );
    Ok(())
}

#[test]
fn imports_verified_blobs_into_the_content_store() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = strata_fixtures::busybox_image(&tmp.path().join("layout"))?;
    let layout = OciLayout::open(&root)?;
    let image = layout.resolve("latest", &platform::host())?;
    let store = ContentStore::open(tmp.path().join("store"))?;
    layout.import(&image, &store)?;
    let layer = digest(&image.manifest.layers()[0])?;
    for d in [
        image.digest()?,
        digest(image.manifest.config())?,
        layer.clone(),
    ] {
        assert!(store.has(&d), "{d} was not imported");
    }

    // The imported layer unpacks into a usable root.
    let rootfs = tmp.path().join("rootfs");
    unpack_layer(store.open_blob(&layer)?, &rootfs)?;
    assert_eq!(fs::read_link(rootfs.join("bin/sh"))?, Path::new("busybox"));
    assert!(fs::read_to_string(rootfs.join("etc/passwd"))?.starts_with("root:x:0:0:"));

    // A corrupted layer is refused, and the error names it.
    let blob = layout.blob_path(&layer);
    let mut bytes = fs::read(&blob)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&blob, &bytes)?;
    let fresh = ContentStore::open(tmp.path().join("fresh"))?;
    let err = layout
        .import(&image, &fresh)
        .err()
        .ok_or("corrupt layer imported")?;
    assert!(err.to_string().contains(layer.as_str()), "{err}");
    assert!(!fresh.has(&layer));

    // So is a missing one.
    fs::remove_file(&blob)?;
    let err = layout
        .import(&image, &fresh)
        .err()
        .ok_or("missing layer imported")?;
    assert!(matches!(err, LayoutError::BlobMissing { .. }), "{err}");
    assert!(err.to_string().contains(layer.as_str()), "{err}");
    Ok(())
}

#[test]
fn refuses_folders_that_are_not_layouts() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let err = OciLayout::open(tmp.path())
        .err()
        .ok_or("opened an empty folder")?;
    assert!(err.to_string().contains("not an OCI image layout"), "{err}");
    fs::write(
        tmp.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"2.0.0"}"#,
    )?;
    let err = OciLayout::open(tmp.path())
        .err()
        .ok_or("opened a v2 layout")?;
    assert!(err.to_string().contains("2.0.0"), "{err}");
    Ok(())
}
