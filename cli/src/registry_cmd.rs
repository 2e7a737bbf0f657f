//! `strata push`, `strata pull`, `strata login` and `strata logout`, and the
//! registry client the build uses for `FROM` pulls and `--push`.

use std::io::{Read, Write};
use std::path::Path;

use strata_cache::{ImageStore, PlatformSelector};
use strata_registry::{
    AuthSource, BlobAction, BlobSource, Client, ClientConfig, Descriptor, Digest, Platform,
    PushBlob, PushOptions, PushReport, Reference,
};
use strata_solver::pull::{PullError, pull};

use crate::build::{EXIT_ENVIRONMENT, EXIT_STEP_FAILED, EXIT_USAGE};

type Failure = (u8, String);

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
            _ => Err((
                EXIT_USAGE,
                format!("{MIRRORS_VAR}: `{entry}` is not REGISTRY=HOST[:PORT]"),
            )),
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

/// The exit code for a registry failure: 3 when the environment is at
/// fault (unreachable, credentials), 1 otherwise.
pub fn exit_code(e: &strata_registry::Error) -> u8 {
    use strata_registry::Error as E;
    match e {
        E::InvalidReference { .. } | E::InvalidPlatform { .. } | E::InvalidDigest { .. } => {
            EXIT_USAGE
        }
        E::Unauthorized { .. } | E::NoCredentials { .. } | E::Credentials { .. } => {
            EXIT_ENVIRONMENT
        }
        e if e.is_transient() => EXIT_ENVIRONMENT,
        _ => EXIT_STEP_FAILED,
    }
}

fn registry_failure(e: strata_registry::Error) -> Failure {
    (exit_code(&e), e.to_string())
}

/// Parses `--platform` (default: the host's).
pub fn platform(arg: Option<&str>) -> Result<Platform, Failure> {
    match arg {
        None => Ok(Platform::host()),
        Some(p) => Platform::parse(p).map_err(|e| (EXIT_USAGE, e.to_string())),
    }
}

fn open_store(root: &Path) -> Result<ImageStore, Failure> {
    ImageStore::open(root.join("store")).map_err(|e| (EXIT_ENVIRONMENT, e.to_string()))
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
    let pulled = pull(&store, &client, &args.reference, &platform, &progress).map_err(
        |e: PullError| match e {
            PullError::Registry(e) => registry_failure(e),
            other => (EXIT_ENVIRONMENT, other.to_string()),
        },
    )?;
    let _ = writeln!(
        err,
        "pulled {} ({} blobs, {} downloaded)",
        pulled.name,
        pulled.fetched,
        strata_solver::pull::human_size(pulled.bytes)
    );
    let _ = writeln!(out, "{}", pulled.manifest.digest());
    Ok(())
}

/// Pushes the local image `name` to the registry it names.
pub fn push_image(store: &ImageStore, client: &Client, name: &str) -> Result<PushReport, Failure> {
    let reference = Reference::parse(name).map_err(registry_failure)?;
    let desc = store
        .resolve(name)
        .map_err(|e| (EXIT_USAGE, e.to_string()))?
        .ok_or_else(|| (EXIT_STEP_FAILED, format!("no such image: {name}")))?;
    let image = store
        .layout()
        .image(&desc, &PlatformSelector::host())
        .map_err(|e| (EXIT_ENVIRONMENT, format!("{name}: {e}")))?;
    let content = store.content();
    let mut blobs = Vec::new();
    for d in std::iter::once(image.manifest.config()).chain(image.manifest.layers()) {
        let digest = d.digest().to_string();
        let store_digest = digest
            .parse()
            .map_err(|_| (EXIT_STEP_FAILED, format!("{name}: bad digest {digest}")))?;
        blobs.push(PushBlob {
            descriptor: Descriptor {
                media_type: d.media_type().to_string(),
                digest: Digest::parse(&digest).map_err(registry_failure)?,
                size: d.size(),
                platform: None,
                annotations: None,
            },
            source: BlobSource::Path(content.blob_path(&store_digest)),
        });
    }
    let media_type = image.descriptor.media_type().to_string();
    let layers: Vec<String> = image
        .manifest
        .layers()
        .iter()
        .map(|l| l.digest().to_string())
        .collect();
    let options = PushOptions {
        mount_from: mount_sources(store, &reference, &layers),
        ..PushOptions::default()
    };
    client
        .push_image(
            &reference,
            &media_type,
            &image.manifest_bytes,
            &blobs,
            &options,
        )
        .map_err(registry_failure)
}

/// Repositories of the same registry that local images came from and that
/// share a layer with the image pushed (its base, typically): the registry
/// can link those blobs instead of receiving them again.
fn mount_sources(store: &ImageStore, target: &Reference, layers: &[String]) -> Vec<String> {
    let mut repos: Vec<String> = Vec::new();
    let Ok(list) = store.list() else {
        return repos;
    };
    for (name, desc) in list {
        let Ok(other) = Reference::parse(&name) else {
            continue;
        };
        if other.registry() != target.registry()
            || other.repository() == target.repository()
            || repos.iter().any(|r| r == other.repository())
        {
            continue;
        }
        let shares = store
            .layout()
            .image(&desc, &PlatformSelector::host())
            .is_ok_and(|img| {
                img.manifest
                    .layers()
                    .iter()
                    .any(|l| layers.contains(&l.digest().to_string()))
            });
        if shares {
            repos.push(other.repository().to_string());
        }
    }
    repos
}

/// One line: `pushed NAME sha256:… (uploaded 2, mounted 0, skipped 1)`.
pub fn describe_push(name: &str, report: &PushReport) -> String {
    format!(
        "pushed {name} {} (uploaded {}, mounted {}, skipped {})",
        report.manifest_digest,
        report.count(&BlobAction::Uploaded),
        report.count(&BlobAction::Mounted(String::new())),
        report.count(&BlobAction::Skipped)
    )
}

/// `strata push`: the counts on `err`, the manifest digest on `out`.
pub fn push_cmd(
    root: &Path,
    args: &PushArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Failure> {
    let store = open_store(root)?;
    let report = push_image(&store, &client(&args.registry)?, &args.name)?;
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
        .ok_or_else(|| (EXIT_USAGE, "login: --username is required".to_string()))?;
    if !args.password_stdin {
        return Err((
            EXIT_USAGE,
            "login: pass the password on standard input with --password-stdin".to_string(),
        ));
    }
    let mut password = String::new();
    stdin.read_to_string(&mut password).map_err(|e| {
        (
            EXIT_USAGE,
            format!("login: cannot read standard input: {e}"),
        )
    })?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err((EXIT_USAGE, "login: the password is empty".to_string()));
    }
    client(&args.registry)?
        .login(&host, &username, password)
        .map_err(registry_failure)?;
    let _ = writeln!(err, "Login Succeeded");
    Ok(())
}

/// `strata logout HOST`.
pub fn logout_cmd(host: Option<&str>, err: &mut dyn Write) -> Result<(), Failure> {
    let host = host.unwrap_or(strata_registry::DOCKER_HUB);
    let removed = client(&RegistryArgs::default())?
        .logout(host)
        .map_err(registry_failure)?;
    if removed {
        let _ = writeln!(err, "Removing login credentials for {host}");
    } else {
        let _ = writeln!(err, "Not logged in to {host}");
    }
    Ok(())
}
