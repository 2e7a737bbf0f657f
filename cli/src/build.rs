//! `strata build`: flags into a [`BuildRequest`] for `strata_solver::solve`
//! and an [`ExportRequest`] for `strata_exporter::export`, with their progress
//! rendered here; failures go to [`crate::exit`] for their exit code.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use strata_exporter::{
    Compression, CompressionKind, ExportEvent, ExportRequest, Output, check_request, export,
};
use strata_solver::{BuildArgs as SolverBuildArgs, dockerfile_path, parse_build_context};
use strata_solver::{BuildRequest, ChannelSink, RuntimeChoice, SolveError, solve};
use strata_solver::{Entitlement, Entitlements, NetworkMode};

use crate::diagnostic::render_step_failure;
use crate::exit::{EXIT_OK, EXIT_USAGE, Failure, solve_failure};
use crate::progress::{ColorChoice, ProgressMode, Renderer, Step, StepLogs, Summary};

/// Shown after `strata build --help`.
pub const EXAMPLES: &str = "\
Examples:
  strata build -t app:1 .                      build ./Dockerfile, name the image app:1
  strata build -f build/Dockerfile --target test .
  strata build --build-arg VERSION=2 -o type=oci,dest=app.tar .
  strata build --progress=plain . 2> build.log  plain lines (as on a pipe)
  strata build --progress=rawjson . 2> events.jsonl  one JSON object per event
  strata build -q -t app .                      print only the image ID";

/// Options of `strata build`.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// Name (and tag) for the image; may be given several times.
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile; `-` reads standard input).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Build argument `NAME=value`.
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// The stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// `NAME=oci-layout:///path[:tag]` replacing a FROM or --from name.
    #[arg(long = "build-context")]
    pub build_contexts: Vec<String>,
    /// Network for RUN: default (a private network with outbound access, through
    /// slirp4netns, that cannot reach the host's loopback), none (loopback only) or
    /// host (the host's network; needs --allow network.host).
    #[arg(long, default_value = "default")]
    pub network: String,
    /// Allow an entitlement: network.host (--network=host, RUN --network=host) or
    /// security.insecure (RUN --security=insecure: no seccomp filter, every capability).
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_delimiter = ',')]
    pub allow: Vec<String>,
    /// Also write the image elsewhere: type=oci|docker|tar,dest=FILE or
    /// type=local,dest=DIR (a bare path means type=local).
    #[arg(short = 'o', long = "output")]
    pub outputs: Vec<String>,
    /// Write the image ID (`sha256:` of its config) to this file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Runtime for RUN: builtin (namespaces, no daemon), runc or crun.
    #[arg(long, default_value = "builtin")]
    pub runtime: String,
    /// Layer compression: gzip, zstd or uncompressed.
    #[arg(long, default_value = "gzip")]
    pub compression: String,
    /// Compression level (gzip 0-9, zstd 1-22).
    #[arg(long = "compression-level")]
    pub compression_level: Option<i32>,
    /// Run every step, reusing nothing from the cache (results are still recorded).
    #[arg(long)]
    pub no_cache: bool,
    /// Run the steps of these stages (comma-separated names) without the cache.
    #[arg(long = "no-cache-filter", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,
    /// Say why each step that ran could not reuse the previous build.
    #[arg(long = "explain-cache")]
    pub explain_cache: bool,
    /// Progress output: auto (live on a terminal, plain lines elsewhere),
    /// tty, plain, rawjson (one JSON object per event) or quiet.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// Colours on the terminal: auto (unless NO_COLOR is set), always or never.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorChoice,
    /// Print nothing but errors (and the image ID): `--progress=quiet`.
    #[arg(short, long)]
    pub quiet: bool,
    /// Always look for newer versions of tagged base images.
    #[arg(long)]
    pub pull: bool,
    /// Push every `-t` name to its registry after the export.
    #[arg(long)]
    pub push: bool,
    /// Platform of base images chosen in multi-platform images (default: the host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Write `containerimage.digest` and `image.name` as JSON to this file.
    #[arg(long = "metadata-file")]
    pub metadata_file: Option<PathBuf>,
    /// The most one base layer or one ADD archive may decompress to (e.g.
    /// 100GiB, 512MB); more fails the build naming the layer or archive.
    /// Stops decompression bombs; the default is far above any real layer.
    #[arg(
        long = "decompression-limit",
        env = "STRATA_DECOMPRESSION_LIMIT",
        default_value = "100GiB",
        value_name = "SIZE",
        value_parser = crate::cache_cmd::parse_size
    )]
    pub decompression_limit: u64,
    /// A secret for `RUN --mount=type=secret`: `id=ID[,src=PATH]` (a file),
    /// `id=ID,env=VAR` (an environment variable), `id=ID` (the variable ID).
    #[arg(long = "secret", value_name = "id=ID[,src=PATH|,env=VAR]")]
    pub secrets: Vec<String>,
    /// An ssh agent for `RUN --mount=type=ssh`: `default` ($SSH_AUTH_SOCK),
    /// `ID=SOCKET`, or `ID=KEY[,KEY…]` (key files loaded into an ssh-agent
    /// of the build's own).
    #[arg(long = "ssh", value_name = "default|ID[=SOCKET|KEY[,KEY…]]")]
    pub ssh: Vec<String>,
    /// Memory limit of each RUN step, swap included (e.g. 2g, 512m; at least 6m); a step
    /// over it is killed and the build fails saying so. Unlimited by default.
    #[arg(short = 'm', long, value_name = "BYTES", value_parser = strata_solver::parse_memory)]
    pub memory: Option<u64>,
    /// Most processes and threads in each RUN step; 0 or -1 for unlimited (the default).
    #[arg(
        long = "pids-limit",
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = pids_limit
    )]
    pub pids_limit: Option<u64>,
    /// Size of each RUN step's /dev/shm (default 64m, as docker).
    #[arg(long = "shm-size", value_name = "BYTES", value_parser = strata_solver::parse_shm_size)]
    pub shm_size: Option<u64>,
    /// A resource limit of RUN steps, NAME=SOFT[:HARD] (e.g. nofile=1024:2048, -1 for
    /// unlimited); may be given several times. nofile's soft limit is 1024 unless set,
    /// its hard limit strata's own.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]", value_parser = strata_solver::parse_ulimit)]
    pub ulimits: Vec<strata_solver::Ulimit>,
    #[command(flatten)]
    pub registry: crate::registry_cmd::RegistryArgs,
    /// The build context directory.
    pub context: PathBuf,
}

/// `--pids-limit`: a count, 0 for unlimited (docker's `0` and `-1`).
fn pids_limit(value: &str) -> Result<u64, strata_solver::LimitError> {
    Ok(strata_solver::parse_pids(value)?.unwrap_or(0))
}

/// The limits of RUN steps the flags ask for, Docker's defaults for the others.
fn limits(args: &BuildArgs) -> strata_solver::Limits {
    let mut limits = strata_solver::Limits {
        memory: args.memory,
        pids: args.pids_limit.filter(|&n| n > 0),
        ..strata_solver::Limits::default()
    };
    if let Some(size) = args.shm_size {
        limits.shm_size = size;
    }
    for ulimit in &args.ulimits {
        limits.set_ulimit(*ulimit);
    }
    limits
}

/// Where strata keeps its state: `$STRATA_ROOT`, else /var/lib/strata as
/// root, else `$XDG_DATA_HOME/strata` (or ~/.local/share/strata).
pub fn strata_root() -> PathBuf {
    if let Some(r) = std::env::var_os("STRATA_ROOT") {
        return PathBuf::from(r);
    }
    if is_root() {
        return PathBuf::from("/var/lib/strata");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(x).join("strata");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".local/share/strata")
}

/// Creates a rootless state root that only its user can enter (mode 0700, as
/// Podman does): its snapshots hold files of the user's subordinate ids,
/// setuid programs among them, that no other user may run. An existing
/// folder is left as it is.
pub fn create_private_root(root: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt;
    let failed = |e: std::io::Error| {
        Failure::Environment(format!(
            "cannot create the state root {}: {e}",
            root.display()
        ))
    };
    if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(root) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(failed(e)),
        _ => Ok(()),
    }
}

/// Whether strata runs as root (real uid 0, in the namespace it was started in).
pub fn is_root() -> bool {
    // Avoids a libc dependency: /proc/self/status has the real uid first.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Runs a build with state under `root` (see [`strata_root`]); writes
/// progress and errors to `err`, returns the exit code.
pub fn run(
    args: &BuildArgs,
    root: &Path,
    stdin: &mut dyn Read,
    err: &mut (dyn Write + Send),
) -> u8 {
    match run_inner(args, root, stdin, err) {
        Ok(code) => code,
        Err(f) => {
            let _ = writeln!(err, "ERROR: {}", f.message());
            f.code()
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::Usage(message.into())
}

/// The build the flags ask for.
fn request(
    args: &BuildArgs,
    root: &Path,
    (file_name, src): (String, String),
    secrets: strata_solver::BuildSecrets,
) -> Result<BuildRequest, Failure> {
    let network = match args.network.as_str() {
        "default" => NetworkMode::Default,
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        other => {
            return Err(usage(format!(
                "--network={other}: expected default, none or host"
            )));
        }
    };
    let entitlements = args
        .allow
        .iter()
        .map(|name| name.parse().map_err(|e| usage(format!("--allow: {e}"))))
        .collect::<Result<Vec<Entitlement>, _>>()?;
    let build_contexts = args
        .build_contexts
        .iter()
        .map(|c| parse_build_context(c).map_err(|e| usage(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let platform = args
        .platform
        .as_deref()
        .map(strata_registry::platform::parse)
        .transpose()
        .map_err(|e| usage(format!("--platform: {e}")))?;
    Ok(BuildRequest {
        dockerfile: src.into_bytes(),
        dockerfile_name: file_name,
        dockerfile_path: args.file.clone(),
        context: args.context.clone(),
        build_args: SolverBuildArgs::parse(&args.build_args).map_err(|e| usage(e.to_string()))?,
        target: args.target.clone(),
        platform,
        build_contexts,
        network,
        entitlements: Entitlements::new(entitlements),
        runtime: runtime(&args.runtime)?,
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        registry: crate::registry_cmd::client(&args.registry)?,
        pull: args.pull,
        root: root.to_path_buf(),
        explain: args.explain_cache && !quiet(args),
        decompression_limit: args.decompression_limit,
        secrets,
        limits: limits(args),
    })
}

fn run_inner(
    args: &BuildArgs,
    root: &Path,
    stdin: &mut dyn Read,
    err: &mut (dyn Write + Send),
) -> Result<u8, Failure> {
    if !args.context.is_dir() {
        return Err(usage(format!(
            "build context {} is not a directory",
            args.context.display()
        )));
    }
    let (file_name, src) = read_dockerfile(args, stdin)?;
    let outputs = args
        .outputs
        .iter()
        .map(|o| Output::parse(o).map_err(|e| usage(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let compression = compression(args)?;
    // Names and levels are refused now, not after the whole build.
    check_request(&args.tags, &outputs, compression)?;
    let epoch = source_date_epoch()?;
    // The agents started for `--ssh ID=KEYFILE` live until the build ends.
    let (secrets, _agents) = crate::build_secrets::parse(&args.secrets, &args.ssh, root)?;
    let req = request(args, root, (file_name.clone(), src.clone()), secrets)?;

    let (tx, rx) = mpsc::channel();
    let sink = ChannelSink::new(tx);
    let mode = if quiet(args) {
        ProgressMode::Quiet
    } else {
        args.progress
    };
    let mut renderer = crate::progress::pick(mode, args.color, err);
    // Progress is rendered on its own thread while the build runs on this one.
    let (result, logs) = std::thread::scope(|s| {
        let renderer = &mut renderer;
        let render = s.spawn(move || {
            let mut logs = StepLogs::new(root);
            for event in rx {
                logs.on(&event);
                let _ = renderer.render(&event);
            }
            logs
        });
        let result = solve(req, &sink);
        drop(sink);
        (result, render.join())
    });
    let Ok(logs) = logs else {
        return Err(Failure::Environment("the progress thread panicked".into()));
    };
    let failed_log = logs.finish();
    // Errors that point into the Dockerfile are shown like parse errors.
    if let Err(SolveError::Lower { source, .. }) = &result
        && let Some((span, message)) = source.at()
    {
        let e = strata_parser::ParseError::new(message, span);
        let text = strata_parser::render(&e, &file_name, &src);
        let _ = renderer.note(text.trim_end_matches('\n'));
        return Ok(EXIT_USAGE);
    }
    let solved = match result {
        Ok(solved) => solved,
        Err(SolveError::Parse(e)) => {
            let text = strata_parser::render(&e, &file_name, &src);
            let _ = renderer.note(text.trim_end_matches('\n'));
            return Ok(EXIT_USAGE);
        }
        Err(SolveError::Step(step)) => {
            if let Some(report) = render_step_failure(&step, &file_name, &src) {
                let _ = renderer.note(report.trim_end_matches('\n'));
            }
            if let Some(path) = failed_log {
                let _ = renderer.note(&format!("full log of the step: {}", path.display()));
            }
            return Err(solve_failure(SolveError::Step(step), root));
        }
        Err(e) => return Err(solve_failure(e, root)),
    };
    if let Some(lines) = &solved.explain {
        let step = renderer.begin("explaining the cache");
        for line in lines {
            renderer.line(&step, line);
        }
        renderer.done(step);
    }

    let mut steps = ExportSteps {
        step: renderer.begin("exporting to image"),
        renderer: &mut *renderer,
    };
    let exported = export(
        &solved,
        ExportRequest {
            tags: args.tags.clone(),
            outputs,
            push: args.push,
            compression,
            epoch,
            root: root.to_path_buf(),
            registry: crate::registry_cmd::client(&args.registry)?,
            iidfile: args.iidfile.clone(),
            metadata_file: args.metadata_file.clone(),
            progress: &mut |event| steps.on(event),
        },
    )?;
    steps.renderer.done(steps.step);
    let image = exported.image;
    renderer.summary(&Summary {
        name: exported.names.first().cloned(),
        id: image.config_digest.to_string(),
        digest: image.manifest_digest.to_string(),
        // The image was just written: a store that cannot be read shows 0B.
        size: crate::images_cmd::image_size(root, &image.manifest_digest.to_string()).unwrap_or(0),
    });
    if quiet(args) {
        // docker build -q prints the image ID on standard output.
        println!("{}", image.config_digest);
    }
    Ok(EXIT_OK)
}

/// The export's progress as plain steps: "exporting to image", then
/// "pushing" when there are pushes.
struct ExportSteps<'r> {
    renderer: &'r mut dyn Renderer,
    step: Step,
}

impl ExportSteps<'_> {
    fn on(&mut self, event: ExportEvent) {
        let line = match event {
            ExportEvent::ImageWritten(id) => format!("writing image {id}"),
            ExportEvent::Tagged(name) => format!("naming to {name}"),
            ExportEvent::OutputWritten(what) => format!("exported {what}"),
            ExportEvent::Pushed(line) => line,
            ExportEvent::Pushing => {
                let pushing = self.renderer.begin("pushing");
                let export = std::mem::replace(&mut self.step, pushing);
                self.renderer.done(export);
                return;
            }
        };
        self.renderer.line(&self.step, &line);
    }
}

/// `-q` or `--progress=quiet`.
fn quiet(args: &BuildArgs) -> bool {
    args.quiet || args.progress == ProgressMode::Quiet
}

fn runtime(name: &str) -> Result<RuntimeChoice, Failure> {
    match name {
        "builtin" => Ok(RuntimeChoice::Builtin),
        "runc" => Ok(RuntimeChoice::Runc),
        "crun" => Ok(RuntimeChoice::Crun),
        other => Err(usage(format!(
            "--runtime={other}: expected builtin, runc or crun"
        ))),
    }
}

fn compression(args: &BuildArgs) -> Result<Compression, Failure> {
    let kind = match args.compression.as_str() {
        "gzip" => CompressionKind::Gzip,
        "zstd" => CompressionKind::Zstd,
        "uncompressed" => CompressionKind::Uncompressed,
        other => {
            return Err(usage(format!(
                "--compression={other}: expected gzip, zstd or uncompressed"
            )));
        }
    };
    Ok(Compression {
        kind,
        level: args.compression_level,
    })
}

/// `SOURCE_DATE_EPOCH` (seconds), as BuildKit reads it.
fn source_date_epoch() -> Result<Option<i64>, Failure> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(None),
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => v.trim().parse().map(Some).map_err(|_| {
            usage(format!(
                "SOURCE_DATE_EPOCH={v}: expected a number of seconds since 1970"
            ))
        }),
    }
}

fn read_dockerfile(args: &BuildArgs, stdin: &mut dyn Read) -> Result<(String, String), Failure> {
    match &args.file {
        Some(p) if p == Path::new("-") => {
            let mut src = String::new();
            stdin.read_to_string(&mut src).map_err(|e| {
                usage(format!(
                    "cannot read the Dockerfile from standard input: {e}"
                ))
            })?;
            Ok(("-".to_string(), src))
        }
        other => {
            let path = dockerfile_path(&args.context, other.as_deref());
            let src = std::fs::read_to_string(&path)
                .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
            Ok((path.display().to_string(), src))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::EXIT_STEP_FAILED;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        build: BuildArgs,
    }

    fn build(dir: &Path, extra: &[&str], stdin: &str) -> (u8, String) {
        let root = dir.join("root");
        let mut argv = vec!["strata".to_string()];
        argv.extend(extra.iter().map(|s| s.to_string()));
        argv.push(dir.join("ctx").display().to_string());
        let cli = match Cli::try_parse_from(argv) {
            Ok(c) => c,
            Err(e) => return (EXIT_USAGE, e.to_string()),
        };
        let _ = std::fs::create_dir_all(&root);
        let mut err = Vec::new();
        let code = run(&cli.build, &root, &mut stdin.as_bytes(), &mut err);
        (code, String::from_utf8_lossy(&err).into_owned())
    }

    fn context(files: &[(&str, &str)]) -> Result<tempfile::TempDir, std::io::Error> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("ctx"))?;
        for (name, content) in files {
            std::fs::write(dir.path().join("ctx").join(name), content)?;
        }
        Ok(dir)
    }

    #[test]
    fn copy_build_succeeds_with_plain_progress() -> Result<(), Box<dyn std::error::Error>> {
        let dir = context(&[
            ("Dockerfile", "FROM scratch\nWORKDIR /app\nCOPY a.txt .\n"),
            ("a.txt", "A"),
        ])?;
        let (code, out) = build(dir.path(), &["--progress=plain"], "");
        assert_eq!(code, EXIT_OK, "{out}");
        assert!(out.contains("[stage-0 3/3] COPY a.txt ."), "{out}");
        assert!(out.contains(" DONE "), "{out}");
        Ok(())
    }

    #[test]
    fn dockerfile_error_exits_2_with_diagnostic() -> Result<(), Box<dyn std::error::Error>> {
        let dir = context(&[])?;
        let (code, out) = build(dir.path(), &["-f", "-"], "FROM scratch\nCOPY --frm=x a b\n");
        assert_eq!(code, EXIT_USAGE, "{out}");
        assert!(out.contains("-:2"), "{out}");
        Ok(())
    }

    #[test]
    fn failing_step_exits_1_naming_it() -> Result<(), Box<dyn std::error::Error>> {
        let dir = context(&[("Dockerfile", "FROM scratch\nCOPY missing.txt /\n")])?;
        let (code, out) = build(dir.path(), &[], "");
        assert_eq!(code, EXIT_STEP_FAILED, "{out}");
        assert!(out.contains("COPY missing.txt /"), "{out}");
        Ok(())
    }
}
