//! `strata push`, `strata pull`, `strata login` and `strata logout`, and the
//! registry client the build uses for `FROM` pulls and `--push`.

use std::io::{Read, Write};
use std::path::Path;

use strata_cache::ImageStore;
use strata_exporter::{describe_push, push};
use strata_registry::platform as platforms;
use strata_registry::{AuthSource, Client, ClientConfig, Platform, Reference};
use strata_solver::pull;

use crate::exit::Failure;

/// Options shared by the commands that talk to a registry.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryArgs {
    /// Registry (`host[:port]`) reached over plain HTTP (loopback ones always are).
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
}

/// `strata push` options.
#[derive(Debug, Clone, clap::Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Image of the local store, named as it is pushed (`host/repo:tag`).
    pub name: String,
}

/// `strata pull` options.
#[derive(Debug, Clone, clap::Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Platform chosen in multi-platform images (default: the host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// The image (`name[:tag]`, `name@sha256:…`).
    pub reference: String,
}

/// `strata login` options (docker's).
#[derive(Debug, Clone, clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// User name.
    #[arg(short, long)]
    pub username: Option<String>,
    /// Read the password from standard input.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// Registry host (`host[:port]`, default docker.io).
    pub host: Option<String>,
}

/// Registry mirrors: `REGISTRY=HOST[:PORT]` pairs separated by commas
/// (`docker.io=127.0.0.1:5000` serves Docker Hub names from there).
const MIRRORS_VAR: &str = "STRATA_REGISTRY_MIRRORS";

/// The mirrors `STRATA_REGISTRY_MIRRORS` names.
fn mirrors() -> Result<Vec<(String, String)>, Failure> {
    let Some(value) = std::env::var_os(MIRRORS_VAR) else {
        return Ok(Vec::new());
    };
    let value = value.to_string_lossy();
    value
        .split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| match entry.trim().split_once('=') {
            Some((registry, host)) if !registry.is_empty() && !host.is_empty() => {
                Ok((registry.to_string(), host.to_string()))
            }
            _ => Err(Failure::Usage(format!(
                "{MIRRORS_VAR}: `{entry}` is not REGISTRY=HOST[:PORT]"
            ))),
        })
        .collect()
}

/// The client for these options, with credentials from the docker config
/// and the mirrors of `STRATA_REGISTRY_MIRRORS`.
pub fn client(args: &RegistryArgs) -> Result<Client, Failure> {
    Ok(Client::new(ClientConfig {
        insecure_registries: args.insecure_registries.clone(),
        mirrors: mirrors()?,
        auth: AuthSource::DockerConfigDefault,
        ..ClientConfig::default()
    }))
}

/// Parses `--platform` (default: the host's).
pub fn platform(arg: Option<&str>) -> Result<Platform, Failure> {
    match arg {
        None => Ok(platforms::host()),
        Some(p) => platforms::parse(p).map_err(|e| Failure::Usage(e.to_string())),
    }
}

fn open_store(root: &Path) -> Result<ImageStore, Failure> {
    ImageStore::open(root.join("store")).map_err(|e| Failure::Environment(e.to_string()))
}

/// `strata pull`: prints progress on `err` and the manifest digest on `out`.
pub fn pull_cmd(
    root: &Path,
    args: &PullArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Failure> {
    let platform = platform(args.platform.as_deref())?;
    let store = open_store(root)?;
    let client = client(&args.registry)?;
    let progress = |line: &str| eprintln!("{line}");
    let pulled = pull(&store, &client, &args.reference, &platform, &progress)?;
    let _ = writeln!(
        err,
        "pulled {} ({} blobs, {} downloaded)",
        pulled.name,
        pulled.fetched,
        strata_solver::human_size(pulled.bytes)
    );
    let _ = writeln!(out, "{}", pulled.manifest.digest());
    Ok(())
}

/// `strata push`: the counts on `err`, the manifest digest on `out`.
pub fn push_cmd(
    root: &Path,
    args: &PushArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Failure> {
    let store = open_store(root)?;
    Reference::parse(&args.name)?;
    let desc = store
        .resolve(&args.name)
        .map_err(|e| Failure::Usage(e.to_string()))?
        .ok_or_else(|| Failure::Failed(format!("no such image: {}", args.name)))?;
    let report = push(&store, &client(&args.registry)?, &args.name, &desc)?;
    let _ = writeln!(err, "{}", describe_push(&args.name, &report));
    let _ = writeln!(out, "{}", report.manifest_digest);
    Ok(())
}

/// `strata login`: the password comes from standard input (with
/// `--password-stdin`) and is never echoed nor printed.
pub fn login_cmd(
    args: &LoginArgs,
    stdin: &mut dyn Read,
    err: &mut dyn Write,
) -> Result<(), Failure> {
    let host = args
        .host
        .clone()
        .unwrap_or_else(|| strata_registry::DOCKER_HUB.to_string());
    let username = args
        .username
        .clone()
        .ok_or_else(|| Failure::Usage("login: --username is required".to_string()))?;
    if !args.password_stdin {
        return Err(Failure::Usage(
            "login: pass the password on standard input with --password-stdin".to_string(),
        ));
    }
    let mut password = String::new();
    stdin
        .read_to_string(&mut password)
        .map_err(|e| Failure::Usage(format!("login: cannot read standard input: {e}")))?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(Failure::Usage("login: the password is empty".to_string()));
    }
    client(&args.registry)?.login(&host, &username, password)?;
    let _ = writeln!(err, "Login Succeeded");
    Ok(())
}

/// `strata logout HOST`.
pub fn logout_cmd(host: Option<&str>, err: &mut dyn Write) -> Result<(), Failure> {
    let host = host.unwrap_or(strata_registry::DOCKER_HUB);
    let removed = client(&RegistryArgs::default())?.logout(host)?;
    if removed {
        let _ = writeln!(err, "Removing login credentials for {host}");
    } else {
        let _ = writeln!(err, "Not logged in to {host}");
    }
    Ok(())
}
