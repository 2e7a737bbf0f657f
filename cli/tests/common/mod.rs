//! The one harness of the cli's end-to-end tests: a temporary folder with
//! state roots, contexts and the busybox base image; the real `strata`
//! binary run with its output captured; which steps a build ran, read from
//! its progress output; images unpacked with umoci and inspected with skopeo.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

mod gate;
pub mod procs;
pub use gate::Gate;

/// A test's result.
pub type R = Result<(), Box<dyn std::error::Error>>;
/// A helper's result.
pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// `fixtures/dockerfiles`: the Dockerfiles and contexts of the tests.
pub fn fixtures() -> PathBuf {
    strata_fixtures::dir().join("dockerfiles")
}

/// Runs a tool we did not write; fails saying what to install when it is
/// missing, and with its output when it fails.
pub fn tool(program: &str, args: &[&str]) -> Res<Output> {
    let out = Command::new(program).args(args).output().map_err(|e| {
        format!("{program} is needed by this test (scripts/test.sh installs it): {e}")
    })?;
    if !out.status.success() {
        return Err(format!(
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(out)
}

/// The `strata` binary with no state root: for commands that need none.
pub fn strata(args: &[&str]) -> TestCommand {
    TestCommand::new(args)
}

/// A temporary folder holding state roots (`root` unless named), contexts,
/// a docker config (`docker/`) and the busybox base image.
pub struct Env {
    dir: tempfile::TempDir,
    /// `--build-context` for `FROM busybox` (the fixture image's layout).
    pub base: String,
}

impl Env {
    /// A folder with the busybox base image beside it.
    pub fn new() -> Res<Env> {
        let dir = tempfile::tempdir()?;
        let base = strata_fixtures::busybox_build_context(dir.path())?;
        Ok(Env { dir, base })
    }

    /// `rel` under the folder.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The default state root.
    pub fn root(&self) -> PathBuf {
        self.path("root")
    }

    /// `strata ARGS` on the default root, with credentials in `docker/`.
    pub fn strata(&self, args: &[&str]) -> TestCommand {
        self.strata_in("root", args)
    }

    /// `strata ARGS` on the state root `root` (a folder name under this one).
    pub fn strata_in(&self, root: &str, args: &[&str]) -> TestCommand {
        TestCommand::new(args)
            .env("STRATA_ROOT", self.path(root))
            .env("DOCKER_CONFIG", self.path("docker"))
    }

    /// `build --progress=plain --build-context busybox=… EXTRA… CTX` on the
    /// default root; fails on a non-zero exit; returns the progress output.
    pub fn build(&self, ctx: &Path, extra: &[&str]) -> Res<String> {
        Ok(self.build_command(ctx, extra)?.ok()?.stderr)
    }

    /// The command [`Env::build`] runs.
    pub fn build_command(&self, ctx: &Path, extra: &[&str]) -> Res<TestCommand> {
        self.build_command_from(&self.base, ctx, extra)
    }

    /// [`Env::build_command`] with `base` as its `--build-context` value
    /// (another image standing for `busybox`).
    pub fn build_command_from(&self, base: &str, ctx: &Path, extra: &[&str]) -> Res<TestCommand> {
        let ctx = ctx.to_str().ok_or("non-UTF-8 path")?;
        let mut args = vec!["build", "--progress=plain", "--build-context", base];
        args.extend_from_slice(extra);
        args.push(ctx);
        Ok(self.strata(&args))
    }

    /// A build context `name` whose Dockerfile is `dockerfile` and which
    /// holds `a.txt` (its text: the name).
    pub fn context(&self, name: &str, dockerfile: &str) -> Res<PathBuf> {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("Dockerfile"), dockerfile)?;
        std::fs::write(dir.join("a.txt"), name)?;
        Ok(dir)
    }

    /// `skopeo`'s name for an image of the default root's store.
    pub fn oci_ref(&self, name: &str) -> String {
        format!("oci:{}/store:{name}", self.root().display())
    }

    /// The image's raw config bytes, as skopeo reads them.
    pub fn config_bytes(&self, name: &str) -> Res<Vec<u8>> {
        Ok(tool(
            "skopeo",
            &["inspect", "--raw", "--config", &self.oci_ref(name)],
        )?
        .stdout)
    }

    /// The image's config, as skopeo reads it.
    pub fn config(&self, name: &str) -> Res<Value> {
        Ok(serde_json::from_slice(&self.config_bytes(name)?)?)
    }

    /// The image's manifest, as skopeo reads it.
    pub fn manifest(&self, name: &str) -> Res<Value> {
        let out = tool("skopeo", &["inspect", "--raw", &self.oci_ref(name)])?;
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// A blob of the default root's store.
    pub fn blob(&self, digest: &str) -> PathBuf {
        self.root()
            .join("store/blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// Unpacks the image with umoci into a runtime bundle; returns its path.
    pub fn unpack(&self, name: &str) -> Res<PathBuf> {
        let bundle = self.path(&format!("bundle-{}", name.replace([':', '/'], "-")));
        let image = format!("{}/store:{name}", self.root().display());
        let dest = bundle.to_str().ok_or("non-UTF-8 path")?;
        tool("umoci", &["unpack", "--image", &image, dest])?;
        Ok(bundle)
    }

    /// `strata doctor ARGS` on `root`: its exit code and what it printed.
    pub fn doctor(&self, root: &str, args: &[&str]) -> Res<Run> {
        let mut all = vec!["doctor"];
        all.extend_from_slice(args);
        self.strata_in(root, &all).output()
    }
}

/// One run of the `strata` binary, built up like a [`Command`].
pub struct TestCommand {
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

/// What a finished run gave.
#[derive(Debug)]
pub struct Run {
    /// The exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error (the progress output of a build).
    pub stderr: String,
}

impl TestCommand {
    fn new(args: &[&str]) -> TestCommand {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
        cmd.args(args);
        TestCommand { cmd, stdin: None }
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> TestCommand {
        self.cmd.env(key, value);
        self
    }

    /// Feeds `text` on standard input.
    pub fn stdin(mut self, text: &str) -> TestCommand {
        self.stdin = Some(text.as_bytes().to_vec());
        self
    }

    /// Runs to the end, capturing both outputs.
    pub fn output(mut self) -> Res<Run> {
        self.cmd
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn()?;
        if let (Some(mut input), Some(bytes)) = (child.stdin.take(), self.stdin) {
            input.write_all(&bytes)?;
        }
        let out = child.wait_with_output()?;
        Ok(Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs to the end; an error (with both outputs) unless it exits 0.
    pub fn ok(self) -> Res<Run> {
        let what = format!("{:?}", self.cmd);
        let run = self.output()?;
        if run.code != Some(0) {
            return Err(format!(
                "{what} failed ({:?}):\n{}{}",
                run.code, run.stdout, run.stderr
            )
            .into());
        }
        Ok(run)
    }

    /// Starts it with standard error piped (progress output) and standard
    /// output discarded.
    pub fn spawn(mut self) -> Res<Child> {
        Ok(self
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?)
    }
}

/// The progress number of the first step whose line contains `needle`.
pub fn step_number<'a>(log: &'a str, needle: &str) -> Option<&'a str> {
    log.lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split(' ').next())
}

/// Whether the step whose line contains `needle` hit the cache.
pub fn step_cached(log: &str, needle: &str) -> Res<bool> {
    let n = step_number(log, needle).ok_or_else(|| format!("no step `{needle}` in:\n{log}"))?;
    Ok(log.lines().any(|l| l == format!("{n} CACHED")))
}

/// Names of the steps (`[stage k/n] ...`) that ran rather than hit the
/// cache, sorted.
pub fn ran_steps(log: &str) -> Vec<String> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut cached = Vec::new();
    let mut done = Vec::new();
    for line in log.lines() {
        let Some((n, rest)) = line.split_once(' ') else {
            continue;
        };
        if rest == "CACHED" {
            cached.push(n.to_string());
        } else if rest.starts_with("DONE ") {
            done.push(n.to_string());
        } else if rest.starts_with('[') {
            names
                .entry(n.to_string())
                .or_insert_with(|| rest.to_string());
        }
    }
    let mut ran: Vec<String> = done
        .iter()
        .filter(|n| !cached.contains(n))
        .filter_map(|n| names.get(n).cloned())
        // Base images are unpacked once per root and are not steps.
        .filter(|name| !name.contains(" FROM "))
        .collect();
    ran.sort();
    ran
}

/// Runs an umoci bundle with crun and returns its standard output. crun
/// refuses a cgroup v2 mount that holds controllers beside v1 ones, so it
/// runs in a private mount namespace without that mount.
pub fn run_with_crun(bundle: &Path) -> Res<String> {
    let spec_path = bundle.join("config.json");
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&spec_path)?)?;
    spec["process"]["terminal"] = Value::Bool(false);
    // Root here may not raise rlimits (no CAP_SYS_RESOURCE).
    if let Some(p) = spec["process"].as_object_mut() {
        p.remove("rlimits");
    }
    std::fs::write(&spec_path, serde_json::to_vec(&spec)?)?;
    // Unique among the tests running at once in this process.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("strata-e2e-{}-{n}", std::process::id());
    let script = format!(
        "umount /sys/fs/cgroup/unified 2>/dev/null; exec crun --cgroup-manager=disabled run --bundle {} {id}",
        bundle.display()
    );
    let out = tool(
        "unshare",
        &["-m", "--propagation", "private", "sh", "-c", &script],
    )?;
    Ok(String::from_utf8(out.stdout)?)
}
