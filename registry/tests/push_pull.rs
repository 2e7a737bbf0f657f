//! Push an image to a real registry and pull it back.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{Registry, TestResult, image, random_bytes};
use strata_registry::{
    AuthSource, BlobAction, BlobSource, Client, ClientConfig, Digest, MediaType, PushBlob,
    PushOptions, Reference, platform,
};

fn client() -> Client {
    Client::new(ClientConfig {
        auth: AuthSource::Anonymous,
        ..ClientConfig::default()
    })
}

#[test]
fn push_then_pull_round_trips_and_second_push_skips_every_blob() -> TestResult {
    let registry = Registry::start(None)?;
    let client = client();
    let platform = platform::parse("linux/amd64")?;
    let img = image(
        &platform,
        vec![random_bytes(1000), random_bytes(300_000), random_bytes(5)],
    );
    let reference = Reference::parse(&format!("{}/team/app:1.0", registry.host()))?;
    let options = PushOptions::default();

    let first = client.push_image(
        &reference,
        &MediaType::ImageManifest,
        &img.manifest,
        &img.blobs,
        &options,
    )?;
    assert_eq!(first.manifest_digest, img.manifest_digest);
    assert_eq!(first.count(&BlobAction::Uploaded), 4);

    let resolved = client.resolve(&reference, &platform)?;
    assert_eq!(resolved.manifest_digest, img.manifest_digest);
    assert_eq!(resolved.manifest_bytes, img.manifest);
    assert_eq!(resolved.media_type, MediaType::ImageManifest);
    assert_eq!(resolved.index_digest, None);
    assert_eq!(resolved.config, img.config);
    assert_eq!(resolved.layers, img.layers);
    for blob in &img.blobs {
        let mut out = Vec::new();
        client.fetch_blob(&reference, &blob.descriptor, &mut out)?;
        assert_eq!(Digest::of(&out), common::digest(&blob.descriptor)?);
        let BlobSource::Bytes(expected) = &blob.source else {
            return Err("test blobs are in memory".into());
        };
        assert_eq!(&out[..], &expected[..]);
    }

    // Pinned by digest, the manifest is fetched and verified again.
    let pinned = reference.with_digest(img.manifest_digest.clone());
    let raw = client.fetch_manifest_raw(&pinned)?;
    assert_eq!(raw.digest, img.manifest_digest);

    let started = Instant::now();
    let second = client.push_image(
        &reference,
        &MediaType::ImageManifest,
        &img.manifest,
        &img.blobs,
        &options,
    )?;
    eprintln!(
        "second push (all blobs present) took {:?}",
        started.elapsed()
    );
    assert_eq!(second.count(&BlobAction::Skipped), 4, "{:?}", second.blobs);
    assert_eq!(second.manifest_digest, img.manifest_digest);
    Ok(())
}

#[test]
fn large_blob_goes_up_in_chunks_and_comes_back_intact() -> TestResult {
    let registry = Registry::start(None)?;
    let client = client();
    let reference = Reference::parse(&format!("{}/big", registry.host()))?;
    let data = random_bytes(40 * 1024 * 1024);
    let digest = Digest::of(&data);
    client.push_blob(&reference, &digest, data.len() as u64, &mut &data[..])?;
    assert!(client.blob_exists(&reference, &digest)?);
    let desc = common::descriptor(MediaType::from("application/octet-stream"), &data);
    let mut out = Vec::new();
    client.fetch_blob(&reference, &desc, &mut out)?;
    assert!(out == data, "the 40 MB blob came back different");

    // A source whose bytes do not hash to the announced digest is refused before commit.
    let other = Digest::of(b"something else");
    let err = client
        .push_blob(&reference, &other, data.len() as u64, &mut &data[..])
        .err()
        .ok_or("a wrong digest was accepted")?;
    assert!(
        matches!(err, strata_registry::Error::DigestMismatch { .. }),
        "{err}"
    );
    assert!(!client.blob_exists(&reference, &other)?);
    Ok(())
}

#[test]
fn blobs_in_another_repository_are_mounted() -> TestResult {
    let registry = Registry::start(None)?;
    let client = client();
    let platform = platform::parse("linux/amd64")?;
    let base = image(&platform, vec![random_bytes(200_000)]);
    let base_ref = Reference::parse(&format!("{}/base:1", registry.host()))?;
    client.push_image(
        &base_ref,
        &MediaType::ImageManifest,
        &base.manifest,
        &base.blobs,
        &PushOptions::default(),
    )?;

    let shared = base.blobs[1].clone();
    let own = random_bytes(1234);
    let derived = image(&platform, vec![]);
    let mut blobs = derived.blobs.clone();
    blobs.push(shared.clone());
    blobs.push(PushBlob {
        descriptor: common::descriptor(MediaType::ImageLayer, &own),
        source: BlobSource::Bytes(Arc::from(own)),
    });
    let app_ref = Reference::parse(&format!("{}/app:1", registry.host()))?;
    let options = PushOptions {
        parallelism: 2,
        mount_from: vec!["base".to_string()],
    };
    let report = client.push_image(
        &app_ref,
        &MediaType::ImageManifest,
        &derived.manifest,
        &blobs,
        &options,
    )?;
    let shared_stat = report
        .blobs
        .iter()
        .find(|b| b.digest.as_oci() == shared.descriptor.digest())
        .ok_or("no stat for the shared blob")?;
    assert_eq!(shared_stat.action, BlobAction::Mounted("base".to_string()));
    assert_eq!(report.count(&BlobAction::Uploaded), 2, "{:?}", report.blobs);
    assert!(client.blob_exists(&app_ref, &common::digest(&shared.descriptor)?)?);
    Ok(())
}

#[test]
fn missing_manifest_and_blob_name_what_was_missing() -> TestResult {
    let registry = Registry::start(None)?;
    let client = client();
    let reference = Reference::parse(&format!("{}/nothing:here", registry.host()))?;
    let err = client
        .resolve(&reference, &platform::host())
        .err()
        .ok_or("resolving a missing tag succeeded")?;
    assert!(
        err.to_string()
            .contains(&format!("{}/nothing:here", registry.host())),
        "{err}"
    );
    let blob = common::descriptor(MediaType::from("application/octet-stream"), b"absent");
    let err = client
        .fetch_blob(&reference, &blob, &mut Vec::new())
        .err()
        .ok_or("fetching a missing blob succeeded")?;
    assert!(err.to_string().contains(blob.digest().as_ref()), "{err}");
    assert!(!client.blob_exists(&reference, &common::digest(&blob)?)?);
    Ok(())
}
