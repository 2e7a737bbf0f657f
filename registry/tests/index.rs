//! Platform selection through an OCI index.

mod common;

use common::{Registry, TestResult, image, index, random_bytes};
use strata_registry::{
    AuthSource, Client, ClientConfig, Error, MediaType, PushOptions, Reference, platform,
};

#[test]
fn index_resolves_per_platform_and_lists_platforms_when_missing() -> TestResult {
    let registry = Registry::start(None)?;
    let client = Client::new(ClientConfig {
        auth: AuthSource::Anonymous,
        ..ClientConfig::default()
    });
    let amd64 = platform::parse("linux/amd64")?;
    let arm64 = platform::parse("linux/arm64/v8")?;
    let img_amd = image(&amd64, vec![random_bytes(100)]);
    let img_arm = image(&arm64, vec![random_bytes(100)]);
    let repo = Reference::parse(&format!("{}/multi", registry.host()))?;
    for img in [&img_amd, &img_arm] {
        let pinned = repo.with_digest(img.manifest_digest.clone());
        client.push_image(
            &pinned,
            &MediaType::ImageManifest,
            &img.manifest,
            &img.blobs,
            &PushOptions::default(),
        )?;
    }
    let idx = index(&[(&img_amd, &amd64), (&img_arm, &arm64)]);
    let tagged = repo.with_tag("latest")?;
    let idx_digest = client.push_manifest(&tagged, &MediaType::ImageIndex, &idx)?;

    let a = client.resolve(&tagged, &amd64)?;
    assert_eq!(a.manifest_digest, img_amd.manifest_digest);
    assert_eq!(a.layers, img_amd.layers);
    assert_eq!(a.index_digest.as_ref(), Some(&idx_digest));

    // "linux/arm64" without a variant matches the v8 entry.
    let b = client.resolve(&tagged, &platform::parse("linux/arm64")?)?;
    assert_eq!(b.manifest_digest, img_arm.manifest_digest);
    assert_eq!(b.config, img_arm.config);

    // By the index's digest too.
    let c = client.resolve(&repo.with_digest(idx_digest.clone()), &arm64)?;
    assert_eq!(c.manifest_digest, img_arm.manifest_digest);

    let raw = client.fetch_manifest_raw(&tagged)?;
    assert_eq!(raw.media_type, MediaType::ImageIndex);
    assert_eq!(raw.bytes, idx);

    let err = client
        .resolve(&tagged, &platform::parse("linux/s390x")?)
        .err()
        .ok_or("a platform the index lacks was resolved")?;
    assert!(matches!(err, Error::PlatformNotFound { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("linux/s390x"), "{msg}");
    assert!(msg.contains("linux/amd64, linux/arm64/v8"), "{msg}");
    assert!(msg.contains("/multi:latest"), "{msg}");
    Ok(())
}

#[test]
fn docker_manifest_list_and_schema2_manifests_resolve() -> TestResult {
    use strata_registry::{Digest, docker};
    let registry = Registry::start(None)?;
    let client = Client::new(ClientConfig {
        auth: AuthSource::Anonymous,
        ..ClientConfig::default()
    });
    let repo = Reference::parse(&format!("{}/legacy", registry.host()))?;
    let mut entries = Vec::new();
    let mut digests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let platform = platform::parse(&format!("linux/{arch}"))?;
        let mut img = image(&platform, vec![random_bytes(64)]);
        img.blobs[0].descriptor.set_media_type(docker::config());
        img.blobs[1].descriptor.set_media_type(docker::layer_gzip());
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": &docker::manifest(),
            "config": img.blobs[0].descriptor,
            "layers": [img.blobs[1].descriptor],
        }))?;
        let digest = Digest::of(&manifest);
        let pinned = repo.with_digest(digest.clone());
        client.push_image(
            &pinned,
            &docker::manifest(),
            &manifest,
            &img.blobs,
            &PushOptions::default(),
        )?;
        entries.push(serde_json::json!({
            "mediaType": &docker::manifest(),
            "digest": digest,
            "size": manifest.len(),
            "platform": {"os": "linux", "architecture": arch},
        }));
        digests.push((platform, digest, img.blobs[1].descriptor.clone()));
    }
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": &docker::manifest_list(),
        "manifests": entries,
    }))?;
    let tagged = repo.with_tag("v1")?;
    client.push_manifest(&tagged, &docker::manifest_list(), &list)?;
    assert_eq!(
        client.fetch_manifest_raw(&tagged)?.media_type,
        docker::manifest_list()
    );
    for (platform, digest, layer) in digests {
        let resolved = client.resolve(&tagged, &platform)?;
        assert_eq!(resolved.manifest_digest, digest, "{platform:?}");
        assert_eq!(resolved.media_type, docker::manifest());
        assert_eq!(resolved.layers, vec![layer]);
    }
    Ok(())
}
