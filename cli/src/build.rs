//! `strata build`: read and parse the Dockerfile, lower it, run the graph,
//! render progress, export the image to the local store and the requested
//! outputs, and map failures to exit codes (0 ok, 1 step failed, 2 bad usage
//! or Dockerfile, 3 environment).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use strata_cache::{BuildLease, DockerIgnore, ImageStore};
use strata_exporter::{Compression, CompressionKind};
use strata_sandbox::{Builtin, OciRuntime, OciRuntimeKind, Runtime};
use strata_solver::dockerfile::{
    BuildArgs as SolverBuildArgs, LowerError, LowerOptions, dockerfile_path, lower,
    parse_build_context, read_ignore,
};
use strata_solver::explain;
use strata_solver::graph::NetworkMode;
use strata_solver::images::LocalImages;
use strata_solver::ops::StackExecutor;
use strata_solver::ops::context::ContextDigests;
use strata_solver::ops::view::private_mount_namespace;
use strata_solver::progress::ProgressEvent;
use strata_solver::{Op, OpError, ProgressSink, ScheduleError, Scheduler};

use crate::export::{self, ExportRequest};
use crate::output_spec::OutputSpec;
use crate::progress::PlainRenderer;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: a build step failed.
pub const EXIT_STEP_FAILED: u8 = 1;
/// Exit code: bad usage or bad Dockerfile.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the environment is missing something.
pub const EXIT_ENVIRONMENT: u8 = 3;

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
    /// Network for RUN: default (the host's), none or host.
    #[arg(long, default_value = "default")]
    pub network: String,
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
    /// Progress output: plain, or auto/tty (plain lines for now).
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "tty"])]
    pub progress: String,
    /// Print nothing but errors (and the image ID).
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
    #[command(flatten)]
    pub registry: crate::registry_cmd::RegistryArgs,
    /// The build context directory.
    pub context: PathBuf,
}

/// Where strata keeps its state: `$STRATA_ROOT`, else /var/lib/strata as
/// root, else `$XDG_DATA_HOME/strata` (or ~/.local/share/strata).
pub fn strata_root() -> PathBuf {
    if let Some(r) = std::env::var_os("STRATA_ROOT") {
        return PathBuf::from(r);
    }
    if nix_is_root() {
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

fn nix_is_root() -> bool {
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
pub fn run(args: &BuildArgs, root: &Path, stdin: &mut dyn Read, err: &mut dyn Write) -> u8 {
    match run_inner(args, root, stdin, err) {
        Ok(code) => code,
        Err((code, message)) => {
            let _ = writeln!(err, "ERROR: {message}");
            code
        }
    }
}

type Failure = (u8, String);

fn usage(message: impl Into<String>) -> Failure {
    (EXIT_USAGE, message.into())
}

fn run_inner(
    args: &BuildArgs,
    root: &Path,
    stdin: &mut dyn Read,
    err: &mut dyn Write,
) -> Result<u8, Failure> {
    if !args.context.is_dir() {
        return Err(usage(format!(
            "build context {} is not a directory",
            args.context.display()
        )));
    }
    let (file_name, src) = read_dockerfile(args, stdin)?;
    let ignore =
        read_ignore(&args.context, args.file.as_deref()).map_err(|e| usage(e.to_string()))?;
    let df = match strata_parser::parse(&src) {
        Ok(df) => df,
        Err(e) => {
            let _ = write!(err, "{}", strata_parser::render(&e, &file_name, &src));
            return Ok(EXIT_USAGE);
        }
    };
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
    let outputs = args
        .outputs
        .iter()
        .map(|o| OutputSpec::parse(o).map_err(usage))
        .collect::<Result<Vec<_>, _>>()?;
    let compression = compression(args)?;
    let runtime = runtime(&args.runtime)?;
    let epoch = source_date_epoch()?;
    let build_contexts = args
        .build_contexts
        .iter()
        .map(|c| parse_build_context(c).map_err(|e| usage(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;

    private_mount_namespace().map_err(environment)?;
    let store = ImageStore::open(root.join("store")).map_err(|e| environment(e.to_string()))?;
    // Held for the whole build: prune leaves alone what a running build uses.
    let _lease = BuildLease::acquire(root).map_err(|e| environment(e.to_string()))?;
    let (platform, pulls) = crate::build_registry::base_images(args)?;
    let images = Arc::new(
        LocalImages::new(store.clone(), root, platform)
            .map_err(environment)?
            .with_registry(pulls),
    );
    let context = Arc::new(ContextDigests::new(
        &args.context,
        ignore.clone(),
        &root.join("context-hash.bin"),
    ));
    let opts = LowerOptions {
        build_args: SolverBuildArgs::parse(&args.build_args).map_err(|e| usage(e.to_string()))?,
        target: args.target.clone(),
        build_contexts,
        network,
        platform: crate::build_registry::target_platform(args)?,
        images: Some(images.clone()),
        context: Some(context.clone()),
    };
    let lowered = lower(&df, &src, &opts).map_err(|e| match e {
        // A base image that cannot be found fails the build, as in docker.
        LowerError::Image { .. } if images.environment_failure() => {
            (EXIT_ENVIRONMENT, format!("{file_name}: {e}"))
        }
        LowerError::Image { .. } => (EXIT_STEP_FAILED, format!("{file_name}: {e}")),
        e => usage(format!("{file_name}: {e}")),
    })?;
    context.save();
    let unused = opts.build_args.unconsumed();
    if !unused.is_empty() && !args.quiet {
        let _ = writeln!(
            err,
            "[Warning] One or more build-args [{}] were not consumed",
            unused.join(" ")
        );
    }

    let scratch = root.join("tmp").join(format!(
        "build-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    ));
    std::fs::create_dir_all(&scratch)
        .map_err(|e| environment(format!("cannot create {}: {e}", scratch.display())))?;
    let result = build_and_export(
        args,
        root,
        &lowered,
        &store,
        images,
        runtime,
        ignore,
        &scratch,
        compression,
        epoch,
        &outputs,
        err,
    );
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Runs the graph and exports its target; `scratch` holds the build's own
/// layers until they are packed.
#[allow(clippy::too_many_arguments)]
fn build_and_export(
    args: &BuildArgs,
    root: &Path,
    lowered: &strata_solver::dockerfile::Lowered,
    store: &ImageStore,
    images: Arc<LocalImages>,
    runtime: Arc<dyn Runtime>,
    ignore: DockerIgnore,
    scratch: &Path,
    compression: Compression,
    epoch: Option<i64>,
    outputs: &[OutputSpec],
    err: &mut dyn Write,
) -> Result<u8, Failure> {
    let (tx, rx) = mpsc::channel();
    // With -q nothing sends: the receiver must not wait on a live sender.
    let sink = if args.quiet {
        drop(tx);
        ProgressSink::discard()
    } else {
        ProgressSink::new(tx)
    };
    let no_cache = no_cache_vertices(args, lowered)?;
    let executor = Arc::new(
        StackExecutor::new(root, scratch, &args.context, ignore, runtime, images)
            .map_err(|e| environment(e.to_string()))?
            .with_no_cache(no_cache),
    );
    let graph = &lowered.graph;
    let target = lowered.target;
    let mut ran = Vec::new();
    executor.prefetch(graph);
    let cache = executor.clone();
    // Progress is rendered on this thread while the scheduler runs on another.
    let (result, mut renderer) = std::thread::scope(|s| {
        let handle = s.spawn(move || {
            Scheduler::with_available_parallelism(sink).run(graph, &[target], executor)
        });
        let mut renderer = PlainRenderer::new(&mut *err);
        for event in rx {
            if let ProgressEvent::VertexStarted { vertex, .. } = &event {
                ran.push(*vertex);
            }
            let _ = renderer.render(&event);
        }
        (handle.join(), renderer)
    });
    let outputs_by_vertex = match result {
        Ok(Ok(out)) => out,
        Ok(Err(ScheduleError::StepFailed {
            name,
            error: OpError::Unavailable(why),
            ..
        })) => {
            return Err((
                EXIT_ENVIRONMENT,
                format!("failed to solve: step {name}: {why}"),
            ));
        }
        Ok(Err(ScheduleError::StepFailed { name, error, .. }))
            if is_disk_full(&error.to_string()) =>
        {
            return Err(disk_full(root, &format!("step {name}: {error}")));
        }
        Ok(Err(ScheduleError::StepFailed {
            name,
            error,
            last_lines,
            ..
        })) => {
            for line in &last_lines {
                let _ = renderer.note(&format!("  > {line}"));
            }
            return Err((
                EXIT_STEP_FAILED,
                format!("failed to solve: step {name}: {error}"),
            ));
        }
        Ok(Err(e)) => return Err((EXIT_ENVIRONMENT, e.to_string())),
        Err(_) => return Err((EXIT_ENVIRONMENT, "the scheduler thread panicked".into())),
    };
    let stack = outputs_by_vertex
        .get(&target)
        .ok_or_else(|| environment("the target step produced no filesystem".into()))?;
    cache.finish();
    explain_cache(args, root, lowered, &ran, &mut renderer);

    let quiet = args.quiet;
    let step = renderer.begin("exporting to image", quiet);
    let req = ExportRequest {
        store,
        stack,
        config: &lowered.config,
        compression,
        epoch,
        memo_dir: root.join("layer-blobs"),
        platform: crate::build_registry::selector(args)?,
    };
    let image =
        export::write_image(&req).map_err(|e| (EXIT_STEP_FAILED, format!("export: {e}")))?;
    step.line(
        &mut renderer,
        &format!("writing image {}", image.config_digest),
    );
    for name in export::tag(store, &image, &args.tags).map_err(|e| (EXIT_STEP_FAILED, e))? {
        step.line(&mut renderer, &format!("naming to {name}"));
    }
    for output in outputs {
        export::write_output(store, &image, stack, &args.tags, output)
            .map_err(|e| (EXIT_STEP_FAILED, format!("export: {e}")))?;
        step.line(&mut renderer, &format!("exported {}", output.describe()));
    }
    step.done(&mut renderer);
    crate::build_registry::after_export(args, store, &image, &mut renderer)?;
    if let Some(path) = &args.iidfile {
        std::fs::write(path, image.config_digest.as_str())
            .map_err(|e| environment(format!("cannot write {}: {e}", path.display())))?;
    }
    if quiet {
        // docker build -q prints the image ID on standard output.
        println!("{}", image.config_digest);
    }
    Ok(EXIT_OK)
}

/// Says why each step that ran could not reuse the previous build of the
/// same Dockerfile, context and target (`--explain-cache`), and saves this
/// build's summary for the next one.
fn explain_cache<W: Write>(
    args: &BuildArgs,
    root: &Path,
    lowered: &strata_solver::dockerfile::Lowered,
    ran: &[strata_solver::VertexId],
    renderer: &mut PlainRenderer<W>,
) {
    let ids = lowered.graph.ancestors(&[lowered.target]);
    let now = explain::summarize(&lowered.graph, &ids);
    let identity = format!(
        "{}\0{}\0{}",
        args.context
            .canonicalize()
            .unwrap_or_else(|_| args.context.clone())
            .display(),
        args.file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_default(),
        args.target.as_deref().unwrap_or_default()
    );
    let path = root.join("explain").join(format!(
        "{}.json",
        &blake3::hash(identity.as_bytes()).to_hex()[..32]
    ));
    if args.explain_cache && !args.quiet {
        let before = explain::load(&path);
        let no_cache = no_cache_vertices(args, lowered).unwrap_or_default();
        let step = renderer.begin("explaining the cache", false);
        for &id in ran {
            let Some(v) = lowered.graph.vertex(id) else {
                continue;
            };
            if matches!(v.op, Op::SourceImage(_) | Op::SourceScratch) {
                continue;
            }
            let Some(pos) = v.origin.as_ref().map(|o| o.position()) else {
                continue;
            };
            let Some(summary) = now.get(&pos) else {
                continue;
            };
            let why = explain::reason(before.get(&pos), summary, no_cache.contains(&id));
            step.line(renderer, &format!("{}: {why}", v.name));
        }
        step.done(renderer);
    }
    // The next build compares with this one; losing it only loses an explanation.
    let _ = explain::save(&path, &now);
}

/// The vertices `--no-cache` or `--no-cache-filter` say must run.
fn no_cache_vertices(
    args: &BuildArgs,
    lowered: &strata_solver::dockerfile::Lowered,
) -> Result<Vec<strata_solver::VertexId>, Failure> {
    if args.no_cache {
        return Ok(lowered.graph.ids());
    }
    let mut out = Vec::new();
    for wanted in &args.no_cache_filter {
        let stage = lowered
            .stages
            .iter()
            .find(|(name, _)| {
                name.as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(wanted))
            })
            .ok_or_else(|| usage(format!("--no-cache-filter: no stage named {wanted}")))?;
        out.extend(stage.1.iter().copied());
    }
    Ok(out)
}

/// ENOSPC, as the io errors that reach a step's message spell it.
fn is_disk_full(message: &str) -> bool {
    message.contains("(os error 28)")
}

/// A full disk is the environment's failure (exit 3), said first.
fn disk_full(root: &Path, detail: &str) -> Failure {
    (
        EXIT_ENVIRONMENT,
        format!("no space left on device under {}: {detail}", root.display()),
    )
}

fn environment(message: String) -> Failure {
    (EXIT_ENVIRONMENT, message)
}

fn runtime(name: &str) -> Result<Arc<dyn Runtime>, Failure> {
    let kind = match name {
        "builtin" => return Ok(Arc::new(Builtin)),
        "runc" => OciRuntimeKind::Runc,
        "crun" => OciRuntimeKind::Crun,
        other => {
            return Err(usage(format!(
                "--runtime={other}: expected builtin, runc or crun"
            )));
        }
    };
    let rt = OciRuntime::new(kind).map_err(|e| environment(e.to_string()))?;
    Ok(Arc::new(rt))
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
