//! Crash safety: `strata build` killed with SIGKILL at many points (during
//! RUN, COPY, export and index writes) leaves a root that `strata doctor`
//! finds consistent, and the next build succeeds, reuses what had finished
//! and gives the same image as a clean build.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

type R = Result<(), Box<dyn std::error::Error>>;

const DOCKERFILE: &str = "FROM busybox
RUN i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; echo one > /one
COPY payload/ /payload/
RUN cat /payload/* | wc -c > /size
RUN echo three > /three
";

struct Env {
    dir: tempfile::TempDir,
    base: String,
}

impl Env {
    fn new() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let base = strata_fixtures::busybox_build_context(dir.path())?;
        let ctx = dir.path().join("ctx");
        fs::create_dir_all(ctx.join("payload"))?;
        fs::write(ctx.join("Dockerfile"), DOCKERFILE)?;
        // A few MB of incompressible-looking data, the same every run.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for f in 0..8 {
            let bytes: Vec<u8> = (0..512 * 1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            fs::write(ctx.join(format!("payload/part{f}.bin")), bytes)?;
        }
        Ok(Env { dir, base })
    }

    fn root(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, root: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.env("STRATA_ROOT", self.root(root))
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(args);
        c
    }

    fn build_args(&self, extra: &[&'static str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "build",
            "--progress=plain",
            "--build-context",
            &self.base,
            "-t",
            "crash",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v.push(self.dir.path().join("ctx").display().to_string());
        v
    }

    fn run(&self, root: &str, args: &[String]) -> Result<Output, std::io::Error> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.command(root, &args).output()
    }

    fn spawn(&self, root: &str, args: &[String]) -> Result<Child, std::io::Error> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.command(root, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
    }

    fn digest(&self, root: &str) -> Result<String, Box<dyn std::error::Error>> {
        let out = self
            .command(root, &["inspect", "--format", "{{.Digest}}", "crash"])
            .output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    fn doctor_is_clean(&self, root: &str, context: &str) -> R {
        let out = self.command(root, &["doctor", "--deep"]).output()?;
        assert!(
            out.status.success(),
            "{context}: doctor found problems:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

fn kill9(child: &mut Child) -> R {
    let status = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()?;
    // The build may have ended by itself just before.
    let _ = status;
    child.wait()?;
    Ok(())
}

#[test]
fn killed_builds_leave_a_consistent_root_and_the_next_build_matches_a_clean_one() -> R {
    let env = Env::new()?;
    let args = env.build_args(&[]);
    let clean = env.run("clean", &args)?;
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let want = env.digest("clean")?;

    // Kill at 24 points spread over a whole build (cold: every step runs;
    // such a build takes 0.2-0.4 s here).
    let no_cache = env.build_args(&["--no-cache"]);
    for i in 0..24u64 {
        let delay = Duration::from_millis(10 + i * 14);
        let mut child = env.spawn("shared", &no_cache)?;
        std::thread::sleep(delay);
        kill9(&mut child)?;
        let context = format!("kill after {delay:?}");
        env.doctor_is_clean("shared", &context)?;
        let out = env.run("shared", &args)?;
        assert!(
            out.status.success(),
            "{context}: the next build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            env.digest("shared")?,
            want,
            "{context}: image differs from a clean build"
        );
    }
    Ok(())
}

#[test]
fn steps_finished_before_a_kill_are_reused() -> R {
    let env = Env::new()?;
    let args = env.build_args(&[]);
    let mut child = env.spawn("root", &args)?;
    // Kill as soon as the first RUN reports DONE.
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut first_run = None;
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        if line.contains("RUN i=0") {
            first_run = line.split(' ').next().map(str::to_string);
        }
        if let Some(n) = &first_run
            && line.starts_with(&format!("{n} DONE"))
        {
            break;
        }
    }
    kill9(&mut child)?;
    first_run.ok_or("the first RUN never started")?;
    env.doctor_is_clean("root", "after a kill")?;
    let out = env.run("root", &args)?;
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let step = log
        .lines()
        .find(|l| l.contains("RUN i=0"))
        .and_then(|l| l.split(' ').next())
        .ok_or("no first RUN in the second build")?;
    assert!(
        log.lines().any(|l| l == format!("{step} CACHED")),
        "the step finished before the kill ran again:\n{log}"
    );
    Ok(())
}
