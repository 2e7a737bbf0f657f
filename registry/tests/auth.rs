//! A registry behind htpasswd basic auth: login, wrong passwords, no credentials.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Registry, TestResult, image, random_bytes};
use strata_registry::{
    AuthSource, Client, ClientConfig, Error, MediaType, PushOptions, Reference, platform,
};

const USER: &str = "builder";
const PASSWORD: &str = "s3cret-Pa55word";
const WRONG: &str = "not-the-Pa55word";

fn client_with(config: &std::path::Path) -> Client {
    Client::new(ClientConfig {
        auth: AuthSource::DockerConfig(config.to_path_buf()),
        ..ClientConfig::default()
    })
}

#[test]
fn login_stores_credentials_that_push_and_pull_use() -> TestResult {
    let registry = Registry::start(Some((USER, PASSWORD)))?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("docker").join("config.json");
    let client = client_with(&config);
    client.login(&registry.host(), USER, PASSWORD)?;

    let text = std::fs::read_to_string(&config)?;
    let doc: serde_json::Value = serde_json::from_str(&text)?;
    assert!(doc["auths"][registry.host()]["auth"].is_string(), "{text}");
    assert!(
        !text.contains(PASSWORD),
        "the password is stored in clear: {text}"
    );
    let mode = std::fs::metadata(&config)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "config.json mode {mode:o}");

    // A fresh client reads the stored credentials.
    let client = client_with(&config);
    let platform = platform::parse("linux/amd64")?;
    let img = image(&platform, vec![random_bytes(4096)]);
    let reference = Reference::parse(&format!("{}/private/app:1", registry.host()))?;
    let report = client.push_image(
        &reference,
        &MediaType::ImageManifest,
        &img.manifest,
        &img.blobs,
        &PushOptions::default(),
    )?;
    assert_eq!(report.manifest_digest, img.manifest_digest);
    let resolved = client.resolve(&reference, &platform)?;
    assert_eq!(resolved.layers, img.layers);
    let mut out = Vec::new();
    client.fetch_blob(&reference, &img.layers[0], &mut out)?;
    assert_eq!(out.len(), 4096);

    assert!(client.logout(&registry.host())?);
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config)?)?;
    assert!(doc["auths"].get(registry.host()).is_none());
    assert!(
        !client.logout(&registry.host())?,
        "a second logout found credentials"
    );
    Ok(())
}

#[test]
fn wrong_password_names_registry_and_source_but_not_the_secret() -> TestResult {
    let registry = Registry::start(Some((USER, PASSWORD)))?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.json");
    let client = client_with(&config);

    let err = client
        .login(&registry.host(), USER, WRONG)
        .err()
        .ok_or("login with a wrong password succeeded")?;
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{msg}"
    );
    assert!(msg.contains(&registry.host()), "{msg}");
    assert!(!msg.contains(WRONG), "{msg}");
    assert!(
        !config.exists(),
        "a failed login wrote {}",
        config.display()
    );

    // Wrong credentials stored in config.json by hand.
    let auth = base64_encode(&format!("{USER}:{WRONG}"));
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"http://{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    )?;
    let reference = Reference::parse(&format!("{}/private/app:1", registry.host()))?;
    let err = client
        .resolve(&reference, &platform::host())
        .err()
        .ok_or("a wrong stored password was accepted")?;
    let msg = err.to_string();
    assert!(matches!(err, Error::Unauthorized { .. }), "{msg}");
    assert!(msg.contains(&registry.host()), "{msg}");
    assert!(msg.contains(&format!("from {}", config.display())), "{msg}");
    assert!(!msg.contains(WRONG) && !msg.contains(&auth), "{msg}");
    assert!(!format!("{err:?}").contains(WRONG), "{err:?}");
    Ok(())
}

#[test]
fn no_credentials_is_a_clear_error() -> TestResult {
    let registry = Registry::start(Some((USER, PASSWORD)))?;
    let dir = tempfile::tempdir()?;
    let reference = Reference::parse(&format!("{}/private/app:1", registry.host()))?;
    for client in [
        client_with(&dir.path().join("absent.json")),
        Client::new(ClientConfig {
            auth: AuthSource::Anonymous,
            ..ClientConfig::default()
        }),
    ] {
        let err = client
            .resolve(&reference, &platform::host())
            .err()
            .ok_or("an anonymous pull from an authenticated registry succeeded")?;
        assert!(matches!(err, Error::NoCredentials { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&registry.host()) && msg.contains("anonymous"),
            "{msg}"
        );
    }
    Ok(())
}

/// Standard base64 (what `docker login` writes), done by hand to keep the test independent.
fn base64_encode(s: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
