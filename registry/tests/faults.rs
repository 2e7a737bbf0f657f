//! Faults between the client and a real registry: corrupted bodies, 503s,
//! a registry killed mid-upload, and a registry that is not there.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{Action, Head, Proxy, Registry, TestResult, free_port, image, random_bytes};
use strata_registry::{
    AuthSource, BlobAction, Client, ClientConfig, Error, MediaType, PushOptions, Reference,
    platform,
};

fn client() -> Client {
    Client::new(ClientConfig {
        auth: AuthSource::Anonymous,
        ..ClientConfig::default()
    })
}

fn is_blob_get(head: &Head) -> bool {
    head.method == "GET" && head.path.contains("/blobs/sha256:")
}

#[test]
fn corrupted_blob_body_is_a_digest_mismatch() -> TestResult {
    let registry = Registry::start(None)?;
    let platform = platform::parse("linux/amd64")?;
    let img = image(&platform, vec![random_bytes(70_000)]);
    let direct = Reference::parse(&format!("{}/app:1", registry.host()))?;
    client().push_image(
        &direct,
        &MediaType::ImageManifest,
        &img.manifest,
        &img.blobs,
        &PushOptions::default(),
    )?;

    let corrupted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&corrupted);
    let proxy = Proxy::start(
        registry.port,
        Arc::new(move |head: &Head| {
            if is_blob_get(head) {
                counter.fetch_add(1, Ordering::SeqCst);
                Action::CorruptBody
            } else {
                Action::Forward
            }
        }),
    )?;
    let via_proxy = Reference::parse(&format!("{}/app:1", proxy.host()))?;
    let client = client();
    // Manifests pass through untouched.
    let resolved = client.resolve(&via_proxy, &platform)?;
    assert_eq!(resolved.manifest_digest, img.manifest_digest);

    let mut out = Vec::new();
    let err = client
        .fetch_blob(&via_proxy, &img.layers[0], &mut out)
        .err()
        .ok_or("a corrupted blob was accepted")?;
    match &err {
        Error::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(*expected, img.layers[0].digest().to_string());
            assert_ne!(expected, actual);
        }
        other => return Err(format!("expected a digest mismatch, got: {other}").into()),
    }
    assert!(
        err.to_string().contains(img.layers[0].digest().as_ref()),
        "{err}"
    );
    assert_eq!(
        corrupted.load(Ordering::SeqCst),
        1,
        "the blob was fetched more than once"
    );
    Ok(())
}

#[test]
fn two_503s_are_retried() -> TestResult {
    let registry = Registry::start(None)?;
    let platform = platform::parse("linux/amd64")?;
    let img = image(&platform, vec![random_bytes(1000)]);
    let direct = Reference::parse(&format!("{}/app:1", registry.host()))?;
    client().push_image(
        &direct,
        &MediaType::ImageManifest,
        &img.manifest,
        &img.blobs,
        &PushOptions::default(),
    )?;

    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let proxy = Proxy::start(
        registry.port,
        Arc::new(move |_: &Head| {
            if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                Action::ServiceUnavailable
            } else {
                Action::Forward
            }
        }),
    )?;
    let via_proxy = Reference::parse(&format!("{}/app:1", proxy.host()))?;
    let resolved = client().resolve(&via_proxy, &platform)?;
    assert_eq!(resolved.manifest_digest, img.manifest_digest);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "two 503s then one forwarded manifest request"
    );

    // Three 503s in a row with 2 tries allowed is a one-line 503 error.
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let proxy = Proxy::start(
        registry.port,
        Arc::new(move |_: &Head| {
            counter.fetch_add(1, Ordering::SeqCst);
            Action::ServiceUnavailable
        }),
    )?;
    let client = Client::new(ClientConfig {
        auth: AuthSource::Anonymous,
        attempts: 2,
        ..ClientConfig::default()
    });
    let via_proxy = Reference::parse(&format!("{}/app:1", proxy.host()))?;
    let err = client
        .resolve(&via_proxy, &platform)
        .err()
        .ok_or("a 503 was accepted")?;
    assert!(matches!(err, Error::Http { status: 503, .. }), "{err}");
    assert!(err.to_string().contains(&via_proxy.to_string()), "{err}");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    Ok(())
}

#[test]
fn push_interrupted_by_a_dead_registry_resumes_with_only_missing_blobs() -> TestResult {
    let mut registry = Registry::start(None)?;
    let platform = platform::parse("linux/amd64")?;
    // Small blobs first, the 40 MB one last, one at a time: the kill lands in the big one.
    let img = image(
        &platform,
        vec![
            random_bytes(10_000),
            random_bytes(20_000),
            random_bytes(40 * 1024 * 1024),
        ],
    );
    let big = common::digest(&img.layers[2])?;

    // On the third PATCH the proxy lets the test kill the registry, then forwards into nothing.
    let (reached, wait_reached) = mpsc::channel::<()>();
    let (killed, wait_killed) = mpsc::channel::<()>();
    let reached = Mutex::new(reached);
    let wait_killed = Mutex::new(wait_killed);
    let patches = AtomicUsize::new(0);
    let proxy = Proxy::start(
        registry.port,
        Arc::new(move |head: &Head| {
            if head.method == "PATCH" && patches.fetch_add(1, Ordering::SeqCst) == 2 {
                let _ = reached.lock().map(|tx| tx.send(()));
                let _ = wait_killed
                    .lock()
                    .map(|rx| rx.recv_timeout(Duration::from_secs(30)));
            }
            Action::Forward
        }),
    )?;
    let client = Client::new(ClientConfig {
        auth: AuthSource::Anonymous,
        chunk_size: 4 * 1024 * 1024,
        ..ClientConfig::default()
    });
    let reference = Reference::parse(&format!("{}/app:1", proxy.host()))?;
    let options = PushOptions {
        parallelism: 1,
        mount_from: Vec::new(),
    };
    let first = std::thread::scope(|s| {
        let push = s.spawn(|| {
            client.push_image(
                &reference,
                &MediaType::ImageManifest,
                &img.manifest,
                &img.blobs,
                &options,
            )
        });
        let got_there = wait_reached.recv_timeout(Duration::from_secs(60)).is_ok();
        registry.kill();
        let _ = killed.send(());
        (got_there, push.join())
    });
    let (got_there, joined) = first;
    assert!(got_there, "the push never reached its third chunk");
    let first = joined.map_err(|_| "the push thread panicked")?;
    let err = first
        .err()
        .ok_or("a push into a killed registry succeeded")?;
    assert!(err.to_string().contains(&proxy.host()), "{err}");

    registry.restart()?;
    let report = client.push_image(
        &reference,
        &MediaType::ImageManifest,
        &img.manifest,
        &img.blobs,
        &options,
    )?;
    assert_eq!(report.manifest_digest, img.manifest_digest);
    for stat in &report.blobs {
        let expected = if stat.digest == big {
            BlobAction::Uploaded
        } else {
            BlobAction::Skipped
        };
        assert_eq!(stat.action, expected, "{:?}", report.blobs);
    }
    let direct = Reference::parse(&format!("{}/app:1", registry.host()))?;
    let mut out = Vec::new();
    client.fetch_blob(&direct, &img.layers[2], &mut out)?;
    assert_eq!(out.len(), 40 * 1024 * 1024);
    Ok(())
}

#[test]
fn unreachable_registry_fails_fast_naming_host_and_port() -> TestResult {
    let port = free_port()?;
    let reference = Reference::parse(&format!("127.0.0.1:{port}/app:1"))?;
    let started = Instant::now();
    let err = client()
        .resolve(&reference, &platform::host())
        .err()
        .ok_or("resolving against a closed port succeeded")?;
    let elapsed = started.elapsed();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    // Bounded retries (4 tries, 200 ms doubling), not a retry storm.
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    Ok(())
}

#[test]
fn blob_cut_off_mid_body_resumes_with_a_range_request() -> TestResult {
    let registry = Registry::start(None)?;
    let platform = platform::parse("linux/amd64")?;
    let img = image(&platform, vec![random_bytes(3 * 1024 * 1024)]);
    let direct = Reference::parse(&format!("{}/app:1", registry.host()))?;
    client().push_image(
        &direct,
        &MediaType::ImageManifest,
        &img.manifest,
        &img.blobs,
        &PushOptions::default(),
    )?;

    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ranges);
    let proxy = Proxy::start(
        registry.port,
        Arc::new(move |head: &Head| {
            if !is_blob_get(head) {
                return Action::Forward;
            }
            let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.push(head.header("range").map(str::to_string));
            if seen.len() == 1 {
                Action::TruncateBody
            } else {
                Action::Forward
            }
        }),
    )?;
    let via_proxy = Reference::parse(&format!("{}/app:1", proxy.host()))?;
    let mut out = Vec::new();
    client().fetch_blob(&via_proxy, &img.layers[0], &mut out)?;
    assert_eq!(
        strata_registry::Digest::of(&out),
        common::digest(&img.layers[0])?
    );
    let ranges = ranges.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_eq!(ranges[0], None);
    let resumed = ranges[1]
        .clone()
        .ok_or("the second request had no Range header")?;
    let offset: u64 = resumed
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .ok_or(format!("unexpected range {resumed}"))?
        .parse()?;
    assert!(offset > 0 && offset < img.layers[0].size(), "{resumed}");
    Ok(())
}

#[test]
fn manifest_not_matching_the_registry_digest_is_rejected() -> TestResult {
    let registry = Registry::start(None)?;
    let platform = platform::parse("linux/amd64")?;
    let img = image(&platform, vec![random_bytes(10)]);
    let direct = Reference::parse(&format!("{}/app:1", registry.host()))?;
    client().push_image(
        &direct,
        &MediaType::ImageManifest,
        &img.manifest,
        &img.blobs,
        &PushOptions::default(),
    )?;
    let proxy = Proxy::start(
        registry.port,
        Arc::new(|head: &Head| {
            if head.path.contains("/manifests/") {
                Action::CorruptBody
            } else {
                Action::Forward
            }
        }),
    )?;
    let client = client();
    for reference in [
        Reference::parse(&format!("{}/app:1", proxy.host()))?,
        Reference::parse(&format!("{}/app@{}", proxy.host(), img.manifest_digest))?,
    ] {
        let err = client
            .resolve(&reference, &platform)
            .err()
            .ok_or("a corrupted manifest was accepted")?;
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(err.to_string().contains(&reference.to_string()), "{err}");
    }
    Ok(())
}

#[test]
fn too_many_requests_waits_for_retry_after() -> TestResult {
    let registry = Registry::start(None)?;
    let platform = platform::parse("linux/amd64")?;
    let img = image(&platform, vec![random_bytes(10)]);
    let direct = Reference::parse(&format!("{}/app:1", registry.host()))?;
    client().push_image(
        &direct,
        &MediaType::ImageManifest,
        &img.manifest,
        &img.blobs,
        &PushOptions::default(),
    )?;
    // When each request reached the proxy; the first one gets a 429.
    let seen: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let log = Arc::clone(&seen);
    let proxy = Proxy::start(
        registry.port,
        Arc::new(move |_: &Head| {
            let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
            log.push(Instant::now());
            if log.len() == 1 {
                Action::Respond(
                    429,
                    vec![("Retry-After".to_string(), "1".to_string())],
                    Vec::new(),
                )
            } else {
                Action::Forward
            }
        }),
    )?;
    // A backoff far shorter than Retry-After, so only honouring the header
    // makes the client wait a whole second.
    let fast = Client::new(ClientConfig {
        auth: AuthSource::Anonymous,
        backoff_base: Duration::from_millis(20),
        ..ClientConfig::default()
    });
    let via_proxy = Reference::parse(&format!("{}/app:1", proxy.host()))?;
    let resolved = fast.resolve(&via_proxy, &platform)?;
    assert_eq!(resolved.manifest_digest, img.manifest_digest);
    let times = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(times.len(), 2, "one 429, then one retry");
    let waited = times[1] - times[0];
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
        "the retry came {waited:?} after a 429 with Retry-After: 1"
    );
    Ok(())
}
