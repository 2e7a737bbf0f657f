//! Platform selection through an OCI index.

mod common;

use common::{Registry, TestResult, image, index, random_bytes};
use strata_registry::{
    AuthSource, Client, ClientConfig, Error, OCI_INDEX, OCI_MANIFEST, Platform, PushOptions,
    Reference,
};

#[test]
fn index_resolves_per_platform_and_lists_platforms_when_missing() -> TestResult {
    let registry = Registry::start(None)?;
    let client = Client::new(ClientConfig {
        auth: AuthSource::Anonymous,
        ..ClientConfig::default()
    });
    let amd64 = Platform::parse("linux/amd64")?;
    let arm64 = Platform::parse("linux/arm64/v8")?;
    let img_amd = image(&amd64, vec![random_bytes(100)]);
    let img_arm = image(&arm64, vec![random_bytes(100)]);
    let repo = Reference::parse(&format!("{}/multi", registry.host()))?;
    for img in [&img_amd, &img_arm] {
        let pinned = repo.with_digest(img.manifest_digest.clone());
        client.push_image(
            &pinned,
            OCI_MANIFEST,
            &img.manifest,
            &img.blobs,
            &PushOptions::default(),
        )?;
    }
    let idx = index(&[(&img_amd, &amd64), (&img_arm, &arm64)]);
    let tagged = repo.with_tag("latest")?;
    let idx_digest = client.push_manifest(&tagged, OCI_INDEX, &idx)?;

    let a = client.resolve(&tagged, &amd64)?;
    assert_eq!(a.manifest_digest, img_amd.manifest_digest);
    assert_eq!(a.layers, img_amd.layers);
    assert_eq!(a.index_digest.as_ref(), Some(&idx_digest));

    // "linux/arm64" without a variant matches the v8 entry.
    let b = client.resolve(&tagged, &Platform::parse("linux/arm64")?)?;
    assert_eq!(b.manifest_digest, img_arm.manifest_digest);
    assert_eq!(b.config, img_arm.config);

    // By the index's digest too.
    let c = client.resolve(&repo.with_digest(idx_digest.clone()), &arm64)?;
    assert_eq!(c.manifest_digest, img_arm.manifest_digest);

    let raw = client.fetch_manifest_raw(&tagged)?;
    assert_eq!(raw.media_type, OCI_INDEX);
    assert_eq!(raw.bytes, idx);

    let err = client
        .resolve(&tagged, &Platform::parse("linux/s390x")?)
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
    use strata_registry::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Digest};
    let registry = Registry::start(None)?;
    let client = Client::new(ClientConfig {
        auth: AuthSource::Anonymous,
        ..ClientConfig::default()
    });
    let repo = Reference::parse(&format!("{}/legacy", registry.host()))?;
    let mut entries = Vec::new();
    let mut digests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let platform = Platform::parse(&format!("linux/{arch}"))?;
        let mut img = image(&platform, vec![random_bytes(64)]);
        img.blobs[0].descriptor.media_type =
            "application/vnd.docker.container.image.v1+json".to_string();
        img.blobs[1].descriptor.media_type =
            "application/vnd.docker.image.rootfs.diff.tar.gzip".to_string();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": img.blobs[0].descriptor,
            "layers": [img.blobs[1].descriptor],
        }))?;
        let digest = Digest::of(&manifest);
        let pinned = repo.with_digest(digest.clone());
        client.push_image(
            &pinned,
            DOCKER_MANIFEST,
            &manifest,
            &img.blobs,
            &PushOptions::default(),
        )?;
        entries.push(serde_json::json!({
            "mediaType": DOCKER_MANIFEST,
            "digest": digest,
            "size": manifest.len(),
            "platform": {"os": "linux", "architecture": arch},
        }));
        digests.push((platform, digest, img.blobs[1].descriptor.clone()));
    }
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": entries,
    }))?;
    let tagged = repo.with_tag("v1")?;
    client.push_manifest(&tagged, DOCKER_MANIFEST_LIST, &list)?;
    assert_eq!(
        client.fetch_manifest_raw(&tagged)?.media_type,
        DOCKER_MANIFEST_LIST
    );
    for (platform, digest, layer) in digests {
        let resolved = client.resolve(&tagged, &platform)?;
        assert_eq!(resolved.manifest_digest, digest, "{platform}");
        assert_eq!(resolved.media_type, DOCKER_MANIFEST);
        assert_eq!(resolved.layers, vec![layer]);
    }
    Ok(())
}
