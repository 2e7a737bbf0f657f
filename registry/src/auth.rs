//! Credentials from Docker's `config.json` (inline `auth`, `identitytoken`,
//! `credsStore` / `credHelpers` programs), and writing them for `login`.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::{Error, Result};
use crate::reference::DOCKER_HUB;

/// The key Docker uses for Docker Hub in `config.json` and helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Where the client looks for credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthSource {
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    DockerConfigDefault,
    /// This `config.json`.
    DockerConfig(PathBuf),
    /// Never send credentials.
    Anonymous,
}

impl AuthSource {
    /// The config file this source reads, if any.
    pub fn config_path(&self) -> Option<PathBuf> {
        match self {
            AuthSource::DockerConfigDefault => default_config_path(),
            AuthSource::DockerConfig(p) => Some(p.clone()),
            AuthSource::Anonymous => None,
        }
    }
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn default_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// A secret for one registry. `Debug` never shows it.
#[derive(Clone)]
pub(crate) enum Secret {
    Basic { username: String, password: String },
    IdentityToken(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Secret::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// A secret and where it came from (for error messages).
#[derive(Clone, Debug)]
pub(crate) struct Credential {
    pub(crate) secret: Secret,
    /// e.g. `from /root/.docker/config.json`.
    pub(crate) source: String,
}

impl Credential {
    /// `Authorization` value for basic auth, when the secret is a password.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match &self.secret {
            Secret::Basic { username, password } => Some(format!(
                "Basic {}",
                BASE64.encode(format!("{username}:{password}"))
            )),
            Secret::IdentityToken(_) => None,
        }
    }
}

#[derive(Default, serde::Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

#[derive(Default, serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The `config.json` key for a registry (Docker Hub has a legacy URL key).
fn server_key(registry: &str) -> &str {
    if registry == DOCKER_HUB || registry == crate::reference::DOCKER_HUB_API {
        DOCKER_HUB_KEY
    } else {
        registry
    }
}

/// `https://host:5000/v2/` → `host:5000`, for matching `auths` keys.
fn normalize_key(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

fn same_registry(key: &str, registry: &str) -> bool {
    let key = normalize_key(key);
    let registry = normalize_key(server_key(registry));
    key == registry
        || (registry == "index.docker.io" && matches!(key, "docker.io" | "registry-1.docker.io"))
}

/// Look up credentials for `registry` (as written in references).
pub(crate) fn lookup(source: &AuthSource, registry: &str) -> Result<Option<Credential>> {
    let Some(path) = source.config_path() else {
        return Ok(None);
    };
    let config = match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice::<ConfigFile>(&bytes).map_err(|e| Error::Credentials {
                registry: registry.to_string(),
                reason: format!("cannot parse {}: {e}", path.display()),
            })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Credentials {
                registry: registry.to_string(),
                reason: format!("cannot read {}: {e}", path.display()),
            });
        }
    };
    let helper = config
        .cred_helpers
        .iter()
        .find(|(k, _)| same_registry(k, registry))
        .map(|(_, v)| v.clone())
        .or(config.creds_store.clone());
    if let Some(helper) = helper.filter(|h| !h.is_empty())
        && let Some(cred) = run_helper(&helper, registry)?
    {
        return Ok(Some(cred));
    }
    let source_desc = format!("from {}", path.display());
    let Some(entry) = config
        .auths
        .iter()
        .find(|(k, _)| same_registry(k, registry))
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    if let Some(token) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential {
            secret: Secret::IdentityToken(token.clone()),
            source: source_desc,
        }));
    }
    if let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
        let bad = || Error::Credentials {
            registry: registry.to_string(),
            reason: format!(
                "the `auth` entry in {} is not base64 user:password",
                path.display()
            ),
        };
        let decoded = BASE64.decode(auth.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (username, password) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credential {
            secret: Secret::Basic {
                username: username.to_string(),
                password: password.to_string(),
            },
            source: source_desc,
        }));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(Credential {
            secret: Secret::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            source: source_desc,
        }));
    }
    Ok(None)
}

#[derive(serde::Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// `docker-credential-<helper> get`, found on `PATH`.
fn run_helper(helper: &str, registry: &str) -> Result<Option<Credential>> {
    run_helper_program(&format!("docker-credential-{helper}"), registry)
}

/// Run a credential helper: server URL on stdin, `{"Username","Secret"}` on stdout.
fn run_helper_program(program: &str, registry: &str) -> Result<Option<Credential>> {
    let fail = |reason: String| Error::Credentials {
        registry: registry.to_string(),
        reason: format!("{program}: {reason}"),
    };
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server_key(registry).as_bytes())
            .map_err(|e| fail(format!("cannot write server URL: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("failed: {e}")))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        // Helpers report a missing entry this way; it means "no credentials".
        if text.contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!("exited with {}", out.status)));
    }
    let answer: HelperAnswer =
        serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("bad JSON answer: {e}")))?;
    let source = format!("from {program}");
    let secret = if answer.username == "<token>" {
        Secret::IdentityToken(answer.secret)
    } else {
        Secret::Basic {
            username: answer.username,
            password: answer.secret,
        }
    };
    Ok(Some(Credential { secret, source }))
}

/// Write or remove the `auths` entry for `registry`, keeping everything else.
pub(crate) fn store(path: &Path, registry: &str, basic: Option<(&str, &str)>) -> Result<bool> {
    let fail = |reason: String| Error::Credentials {
        registry: registry.to_string(),
        reason: format!("{}: {reason}", path.display()),
    };
    let mut doc: serde_json::Value = match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| fail(format!("cannot parse: {e}")))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    };
    let root = doc
        .as_object_mut()
        .ok_or_else(|| fail("not a JSON object".to_string()))?;
    let auths = root
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or_else(|| fail("`auths` is not an object".to_string()))?;
    let existing: Vec<String> = auths
        .keys()
        .filter(|k| same_registry(k, registry))
        .cloned()
        .collect();
    let changed = !existing.is_empty() || basic.is_some();
    for k in existing {
        auths.remove(&k);
    }
    if let Some((user, password)) = basic {
        auths.insert(
            server_key(registry).to_string(),
            serde_json::json!({ "auth": BASE64.encode(format!("{user}:{password}")) }),
        );
    }
    let text =
        serde_json::to_vec_pretty(&doc).map_err(|e| fail(format!("cannot serialize: {e}")))?;
    write_private(path, &text).map_err(|e| fail(format!("cannot write: {e}")))?;
    Ok(changed)
}

/// Write `data` to `path` atomically with mode 0600.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(data)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parse `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(params);
            let realm = params.get("realm")?.clone();
            Some(Challenge::Bearer {
                realm,
                service: params.get("service").cloned(),
            })
        }
        _ => None,
    }
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, value.to_string());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_parses() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".to_string(),
                service: Some("registry.docker.io".to_string()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn hub_keys_match() {
        assert!(same_registry("https://index.docker.io/v1/", "docker.io"));
        assert!(same_registry("http://127.0.0.1:5000", "127.0.0.1:5000"));
        assert!(!same_registry("127.0.0.1:5001", "127.0.0.1:5000"));
    }

    #[test]
    fn credential_helper_answers_are_parsed() -> std::result::Result<(), Box<dyn std::error::Error>>
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let helper = dir.path().join("docker-credential-test");
        std::fs::write(
            &helper,
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread url\ncase \"$url\" in\n  \
             127.0.0.1:5000) echo '{\"ServerURL\":\"127.0.0.1:5000\",\"Username\":\"u\",\"Secret\":\"p\"}' ;;\n  \
             https://index.docker.io/v1/) echo '{\"ServerURL\":\"x\",\"Username\":\"<token>\",\"Secret\":\"idt\"}' ;;\n  \
             *) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n",
        )?;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755))?;
        let program = helper.to_string_lossy().to_string();

        let basic = run_helper_program(&program, "127.0.0.1:5000")?
            .ok_or("no answer for 127.0.0.1:5000")?;
        assert_eq!(basic.basic_header().as_deref(), Some("Basic dTpw"));
        assert!(
            basic.source.contains("docker-credential-test"),
            "{}",
            basic.source
        );

        let hub = run_helper_program(&program, "docker.io")?.ok_or("no answer for docker.io")?;
        assert!(matches!(&hub.secret, Secret::IdentityToken(t) if t == "idt"));

        assert!(run_helper_program(&program, "other.example")?.is_none());
        let missing = run_helper_program("/nonexistent/docker-credential-x", "h").err();
        assert!(
            missing.is_some_and(|e| e.to_string().contains("docker-credential-x")),
            "a missing helper must be named"
        );
        Ok(())
    }

    #[test]
    fn config_entries_are_read() -> std::result::Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"aHViOnB3"},"reg.example:5000":{"identitytoken":"it"}}}"#,
        )?;
        let source = AuthSource::DockerConfig(path.clone());
        let hub = lookup(&source, "docker.io")?.ok_or("no Docker Hub entry")?;
        assert_eq!(hub.basic_header().as_deref(), Some("Basic aHViOnB3"));
        assert_eq!(hub.source, format!("from {}", path.display()));
        let other = lookup(&source, "reg.example:5000")?.ok_or("no reg.example entry")?;
        assert!(matches!(other.secret, Secret::IdentityToken(_)));
        assert!(lookup(&source, "elsewhere.example")?.is_none());
        assert!(lookup(&AuthSource::Anonymous, "docker.io")?.is_none());

        assert!(store(&path, "docker.io", None)?);
        assert!(lookup(&source, "docker.io")?.is_none());
        assert!(
            lookup(&source, "reg.example:5000")?.is_some(),
            "logout removed another entry"
        );
        Ok(())
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let c = Credential {
            secret: Secret::Basic {
                username: "u".into(),
                password: "hunter2".into(),
            },
            source: "test".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
