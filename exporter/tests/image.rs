//! Image config and manifest: canonical JSON, media types, reproducible digests.

mod common;

use common::*;
use serde_json::{Value, json};
use strata_cache::ContentStore;
use strata_exporter::{
    Compression, History, ImageInput, LayerBlob, MediaTypes, write_image, write_layers,
};

fn input(
    layers: Vec<LayerBlob>,
    media_types: MediaTypes,
) -> Result<ImageInput, strata_registry::Error> {
    let mut config = serde_json::Map::new();
    // Docker-only fields pass through untouched.
    config.insert("Env".into(), json!(["PATH=/usr/bin", "A=1"]));
    config.insert("Cmd".into(), json!(["/bin/sh"]));
    config.insert("WorkingDir".into(), json!("/app"));
    config.insert("OnBuild".into(), json!(["RUN true"]));
    config.insert(
        "Healthcheck".into(),
        json!({"Test": ["CMD", "true"], "Interval": 1000}),
    );
    config.insert("ExposedPorts".into(), json!({"80/tcp": {}}));
    Ok(ImageInput {
        platform: strata_registry::platform::parse("linux/amd64")?,
        created: Some("2023-11-14T22:13:20Z".into()),
        config: Value::Object(config),
        history: vec![
            History {
                created_by: "COPY lower /".into(),
                ..History::default()
            },
            History {
                created_by: "ENV A=1".into(),
                empty_layer: true,
                comment: Some("buildkit.dockerfile.v0".into()),
                ..History::default()
            },
            History {
                created_by: "RUN change".into(),
                ..History::default()
            },
        ],
        layers,
        media_types,
    })
}

#[test]
fn config_and_manifest_are_canonical_and_reproducible() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ContentStore::open(dir.path().join("store"))?;
    let (lower, upper) = (dir.path().join("lower"), dir.path().join("upper"));
    std::fs::create_dir(&lower)?;
    std::fs::create_dir(&upper)?;
    two_layers(&lower, &upper)?;
    let layers = write_layers(&[lower, upper], Compression::default(), &store, Some(0))?;

    let image = write_image(&store, &input(layers.clone(), MediaTypes::Oci)?)?;
    let again = write_image(&store, &input(layers.clone(), MediaTypes::Oci)?)?;
    assert_eq!(image, again);

    let manifest_bytes = store.read(&image.manifest_digest)?;
    assert_eq!(manifest_bytes.len() as u64, image.manifest.size());
    assert_eq!(
        image.manifest.media_type().to_string(),
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(image.manifest.digest(), image.manifest_digest.as_oci());
    let manifest: Value = serde_json::from_slice(&manifest_bytes)?;
    // Canonical: re-serializing the parsed value (sorted keys, compact) gives the same bytes.
    assert_eq!(serde_json::to_vec(&manifest)?, manifest_bytes);
    assert!(!manifest_bytes.contains(&b'\n') && !manifest_bytes.contains(&b' '));
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["config"]["digest"], image.config_digest.as_str());
    assert_eq!(manifest["layers"][1]["digest"], layers[1].digest.as_str());
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(manifest["layers"][0]["size"], layers[0].size);

    let config_bytes = store.read(&image.config_digest)?;
    let config: Value = serde_json::from_slice(&config_bytes)?;
    assert_eq!(serde_json::to_vec(&config)?, config_bytes);
    assert_eq!(config["rootfs"]["diff_ids"][1], layers[1].diff_id.as_str());
    assert_eq!(config["config"]["OnBuild"], json!(["RUN true"]));
    assert_eq!(config["history"][1]["empty_layer"], true);
    assert!(config["history"][0].get("empty_layer").is_none());

    // oci-spec reads both documents.
    let parsed = oci_spec::image::ImageManifest::from_reader(manifest_bytes.as_slice())?;
    assert_eq!(parsed.layers().len(), 2);
    let parsed = oci_spec::image::ImageConfiguration::from_reader(config_bytes.as_slice())?;
    assert_eq!(parsed.rootfs().diff_ids().len(), 2);

    // Docker media types on request, same config content.
    let docker = write_image(&store, &input(layers.clone(), MediaTypes::Docker)?)?;
    let manifest: Value = serde_json::from_slice(&store.read(&docker.manifest_digest)?)?;
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    assert_eq!(docker.config_digest, image.config_digest);
    assert_ne!(docker.manifest_digest, image.manifest_digest);

    // A history that does not match the layers is refused.
    let mut bad = input(layers, MediaTypes::Oci)?;
    bad.history.pop();
    assert!(write_image(&store, &bad).is_err_and(|e| e.to_string().contains("history")));
    Ok(())
}

#[test]
fn rebuilt_snapshots_give_the_same_manifest_with_source_date_epoch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut digests = Vec::new();
    for (build, build_time) in [1_800_000_000u64, 1_900_000_000].into_iter().enumerate() {
        // Separate stores: nothing is shared between the two builds.
        let store = ContentStore::open(dir.path().join(format!("store{build}")))?;
        let (lower, upper) = (
            dir.path().join(format!("lower{build}")),
            dir.path().join(format!("upper{build}")),
        );
        std::fs::create_dir(&lower)?;
        std::fs::create_dir(&upper)?;
        two_layers(&lower, &upper)?;
        for path in [lower.join("keep"), upper.join("top"), upper.join("dir/new")] {
            set_mtime(&path, build_time)?;
        }
        let layers = write_layers(
            &[lower, upper],
            Compression::default(),
            &store,
            Some(1_700_000_000),
        )?;
        digests.push(write_image(&store, &input(layers, MediaTypes::Oci)?)?.manifest_digest);
    }
    assert_eq!(digests[0], digests[1]);
    Ok(())
}
