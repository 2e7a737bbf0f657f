//! The bearer-token flow: a loopback gate in front of a real registry that
//! answers 401 with a `Bearer` challenge and serves its own token endpoint.

mod common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use common::{Action, Head, Proxy, Registry, TestResult, image, random_bytes};
use strata_registry::{
    AuthSource, Client, ClientConfig, Error, MediaType, PushOptions, Reference, platform,
};

const TOKEN: &str = "tok-7f3a";
const BASIC: &str = "Basic dXNlcjpwYXNz"; // user:pass
const IDENTITY_TOKEN: &str = "refresh-9c1e";

struct Gate {
    proxy: Proxy,
    /// Query strings (GET) or form bodies (POST) the token endpoint received.
    token_requests: Arc<Mutex<Vec<String>>>,
}

fn gate(registry: &Registry) -> Result<Gate, Box<dyn std::error::Error>> {
    let own_port = Arc::new(AtomicU16::new(0));
    let port = Arc::clone(&own_port);
    let token_requests = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&token_requests);
    let proxy = Proxy::start(
        registry.port,
        Arc::new(move |head: &Head| {
            let json = || vec![("Content-Type".to_string(), "application/json".to_string())];
            if let Some(query) = head.path.strip_prefix("/token") {
                let form = String::from_utf8_lossy(&head.body).to_string();
                log.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(if head.method == "POST" {
                        form.clone()
                    } else {
                        query.to_string()
                    });
                let granted = match head.method.as_str() {
                    "GET" => head.header("authorization") == Some(BASIC),
                    "POST" => {
                        form.contains("grant_type=refresh_token")
                            && form.contains(&format!("refresh_token={IDENTITY_TOKEN}"))
                    }
                    _ => false,
                };
                let anonymous = head.method == "GET" && head.header("authorization").is_none();
                return if granted {
                    let body = format!(r#"{{"token":"{TOKEN}","access_token":"{TOKEN}"}}"#);
                    Action::Respond(200, json(), body.into_bytes())
                } else if anonymous {
                    // Anonymous tokens exist but grant nothing here.
                    let body = r#"{"token":"anonymous"}"#.to_string();
                    Action::Respond(200, json(), body.into_bytes())
                } else {
                    Action::Respond(401, Vec::new(), Vec::new())
                };
            }
            if head.header("authorization") == Some(&format!("Bearer {TOKEN}")) {
                return Action::Forward;
            }
            let challenge = format!(
                r#"Bearer realm="http://127.0.0.1:{}/token",service="gate.test",scope="repository:app:pull""#,
                port.load(Ordering::SeqCst)
            );
            Action::Respond(
                401,
                vec![("WWW-Authenticate".to_string(), challenge)],
                Vec::new(),
            )
        }),
    )?;
    own_port.store(proxy.port, Ordering::SeqCst);
    Ok(Gate {
        proxy,
        token_requests,
    })
}

fn client_with_config(
    dir: &std::path::Path,
    entry: &str,
    host: &str,
) -> Result<Client, Box<dyn std::error::Error>> {
    let config = dir.join("config.json");
    std::fs::write(&config, format!(r#"{{"auths":{{"{host}":{entry}}}}}"#))?;
    Ok(Client::new(ClientConfig {
        auth: AuthSource::DockerConfig(config),
        ..ClientConfig::default()
    }))
}

#[test]
fn basic_credentials_buy_a_bearer_token_for_push_and_pull() -> TestResult {
    let registry = Registry::start(None)?;
    let gate = gate(&registry)?;
    let dir = tempfile::tempdir()?;
    let client = client_with_config(dir.path(), r#"{"auth":"dXNlcjpwYXNz"}"#, &gate.proxy.host())?;
    let platform = platform::parse("linux/amd64")?;
    let img = image(&platform, vec![random_bytes(2048)]);
    let reference = Reference::parse(&format!("{}/app:1", gate.proxy.host()))?;
    client.push_image(
        &reference,
        &MediaType::ImageManifest,
        &img.manifest,
        &img.blobs,
        &PushOptions::default(),
    )?;
    let resolved = client.resolve(&reference, &platform)?;
    assert_eq!(resolved.manifest_digest, img.manifest_digest);
    let mut out = Vec::new();
    client.fetch_blob(&reference, &img.layers[0], &mut out)?;
    assert_eq!(out.len(), 2048);

    let requests = gate
        .token_requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    assert!(
        requests
            .iter()
            .any(|q| q.contains("scope=repository%3Aapp%3Apull%2Cpush")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|q| q.contains("scope=repository%3Aapp%3Apull")),
        "{requests:?}"
    );
    assert!(
        requests.iter().all(|q| q.contains("service=gate.test")),
        "{requests:?}"
    );
    // Tokens are cached per scope, not fetched for every request.
    assert!(requests.len() <= 3, "{requests:?}");
    Ok(())
}

#[test]
fn identity_token_is_exchanged_with_a_refresh_token_post() -> TestResult {
    let registry = Registry::start(None)?;
    let gate = gate(&registry)?;
    let dir = tempfile::tempdir()?;
    let entry = format!(r#"{{"identitytoken":"{IDENTITY_TOKEN}"}}"#);
    let client = client_with_config(dir.path(), &entry, &gate.proxy.host())?;
    let platform = platform::parse("linux/amd64")?;
    let img = image(&platform, vec![random_bytes(10)]);
    let reference = Reference::parse(&format!("{}/app:2", gate.proxy.host()))?;
    client.push_image(
        &reference,
        &MediaType::ImageManifest,
        &img.manifest,
        &img.blobs,
        &PushOptions::default(),
    )?;
    let requests = gate
        .token_requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    assert!(
        requests
            .iter()
            .all(|r| r.contains("grant_type=refresh_token")),
        "{requests:?}"
    );
    Ok(())
}

#[test]
fn refused_and_missing_credentials_through_the_token_endpoint() -> TestResult {
    let registry = Registry::start(None)?;
    let gate = gate(&registry)?;
    let dir = tempfile::tempdir()?;
    // user:wrong
    let client = client_with_config(
        dir.path(),
        r#"{"auth":"dXNlcjp3cm9uZw=="}"#,
        &gate.proxy.host(),
    )?;
    let reference = Reference::parse(&format!("{}/app:1", gate.proxy.host()))?;
    let err = client
        .resolve(&reference, &platform::host())
        .err()
        .ok_or("wrong credentials were accepted")?;
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&gate.proxy.host()) && msg.contains("config.json"),
        "{msg}"
    );
    assert!(
        !msg.contains("wrong") && !msg.contains("dXNlcjp3cm9uZw"),
        "{msg}"
    );

    let anonymous = Client::new(ClientConfig {
        auth: AuthSource::Anonymous,
        ..ClientConfig::default()
    });
    let err = anonymous
        .resolve(&reference, &platform::host())
        .err()
        .ok_or("an anonymous token was accepted")?;
    assert!(matches!(err, Error::NoCredentials { .. }), "{err}");
    Ok(())
}
