//! `strata build`: read and parse the Dockerfile, lower it, run the graph,
//! render progress, map failures to exit codes (0 ok, 1 step failed, 2 bad
//! usage or Dockerfile, 3 environment).
//!
//! The ops that need the sandbox (RUN), the image store (FROM an image) and
//! the exporter (writing the image) are not available yet: such steps fail
//! with a message saying so, and nothing is exported.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use strata_cache::DockerIgnore;
use strata_solver::args::BuildArgs as SolverBuildArgs;
use strata_solver::graph::NetworkMode;
use strata_solver::lower::{LowerOptions, lower};
use strata_solver::ops::FileExecutor;
use strata_solver::stages::parse_build_context;
use strata_solver::{OpError, ProgressSink, ScheduleError, Scheduler};

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
    /// Name (and tag) for the image.
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
    /// Network for RUN: default, none or host.
    #[arg(long, default_value = "default")]
    pub network: String,
    /// Progress output: plain or auto.
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
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
    let ignore = read_ignore(args)?;
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
    let build_contexts = args
        .build_contexts
        .iter()
        .map(|c| parse_build_context(c).map_err(|e| usage(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = LowerOptions {
        build_args: SolverBuildArgs::parse(&args.build_args).map_err(|e| usage(e.to_string()))?,
        target: args.target.clone(),
        build_contexts,
        network,
        platform: None,
    };
    let lowered = lower(&df, &src, &opts).map_err(|e| usage(format!("{file_name}: {e}")))?;
    let unused = opts.build_args.unconsumed();
    if !unused.is_empty() && !args.quiet {
        let _ = writeln!(
            err,
            "[Warning] One or more build-args [{}] were not consumed",
            unused.join(" ")
        );
    }

    let work = root
        .join("tmp")
        .join(format!("build-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| {
        (
            EXIT_ENVIRONMENT,
            format!("cannot create {}: {e}", work.display()),
        )
    })?;
    let (tx, rx) = mpsc::channel();
    let sink = if args.quiet {
        ProgressSink::discard()
    } else {
        ProgressSink::new(tx)
    };
    let executor = Arc::new(FileExecutor::new(&work, &args.context).with_ignore(ignore));
    let graph = &lowered.graph;
    let target = lowered.target;
    // Progress is rendered on this thread while the scheduler runs on another.
    let result = std::thread::scope(|s| {
        let handle = s.spawn(move || {
            Scheduler::with_available_parallelism(sink).run(graph, &[target], executor)
        });
        let mut renderer = PlainRenderer::new(&mut *err);
        for event in rx {
            let _ = renderer.render(&event);
        }
        handle.join()
    });
    let _ = std::fs::remove_dir_all(&work);
    match result {
        Ok(Ok(_)) => {
            if !args.quiet {
                let _ = writeln!(
                    err,
                    "note: the build ran; exporting an image is not available yet{}",
                    if args.tags.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} not written)", args.tags.join(", "))
                    }
                );
            }
            Ok(EXIT_OK)
        }
        Ok(Err(ScheduleError::StepFailed {
            name,
            error: OpError::Unavailable(why),
            ..
        })) => Err((
            EXIT_ENVIRONMENT,
            format!("failed to solve: step {name}: {why}"),
        )),
        Ok(Err(ScheduleError::StepFailed {
            name,
            error,
            last_lines,
            ..
        })) => {
            for line in &last_lines {
                let _ = writeln!(err, "  > {line}");
            }
            Err((
                EXIT_STEP_FAILED,
                format!("failed to solve: step {name}: {error}"),
            ))
        }
        Ok(Err(e)) => Err((EXIT_ENVIRONMENT, e.to_string())),
        Err(_) => Err((EXIT_ENVIRONMENT, "the scheduler thread panicked".into())),
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
            let path = other
                .clone()
                .unwrap_or_else(|| args.context.join("Dockerfile"));
            let src = std::fs::read_to_string(&path)
                .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
            Ok((path.display().to_string(), src))
        }
    }
}

/// The context's ignore file: `<Dockerfile>.dockerignore` beside the
/// Dockerfile wins over `CONTEXT/.dockerignore`, as in BuildKit.
fn read_ignore(args: &BuildArgs) -> Result<DockerIgnore, Failure> {
    let beside_dockerfile = args
        .file
        .as_ref()
        .filter(|p| *p != Path::new("-"))
        .map(|p| {
            let mut name = p.as_os_str().to_owned();
            name.push(".dockerignore");
            PathBuf::from(name)
        });
    let path = beside_dockerfile
        .into_iter()
        .chain(std::iter::once(args.context.join(".dockerignore")))
        .find(|p| p.is_file());
    let Some(path) = path else {
        return Ok(DockerIgnore::default());
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    DockerIgnore::parse(&text).map_err(|e| usage(format!("{}: {e}", path.display())))
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
