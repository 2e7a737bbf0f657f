//! The build cache reruns exactly the steps whose inputs changed: each test
//! builds `fixtures/dockerfiles/cache-steps` twice on one state root with one
//! change between, and asserts from the progress output which steps ran.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

type R = Result<(), Box<dyn std::error::Error>>;

struct Env {
    dir: tempfile::TempDir,
    base: String,
}

impl Env {
    fn new() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let base = strata_fixtures::busybox_build_context(dir.path())?;
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/dockerfiles/cache-steps");
        let status = Command::new("cp")
            .args([
                "-a",
                &src.to_string_lossy(),
                &dir.path().join("ctx").to_string_lossy(),
            ])
            .status()?;
        assert!(status.success(), "cannot copy the fixture");
        Ok(Env { dir, base })
    }

    fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    fn strata(&self, args: &[&str]) -> Result<std::process::Output, std::io::Error> {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .env("STRATA_ROOT", self.dir.path().join("root"))
            .args(args)
            .output()
    }

    /// Builds; returns the steps that ran (not CACHED), by their progress name.
    fn build(&self, extra: &[&str]) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let ctx = self.ctx();
        let mut args = vec!["build", "--progress=plain", "--build-context", &self.base];
        args.extend_from_slice(extra);
        let ctx = ctx.to_str().ok_or("path")?;
        args.push(ctx);
        let out = self.strata(&args)?;
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(format!("build failed:\n{log}").into());
        }
        Ok(ran_steps(&log))
    }

    fn write(&self, rel: &str, text: &str) -> R {
        fs::write(self.ctx().join(rel), text)?;
        Ok(())
    }

    fn edit_dockerfile(&self, from: &str, to: &str) -> R {
        let p = self.ctx().join("Dockerfile");
        let text = fs::read_to_string(&p)?;
        assert!(text.contains(from), "the fixture has no `{from}`");
        fs::write(&p, text.replace(from, to))?;
        Ok(())
    }
}

/// Names of the steps (`[stage k/n] ...`) that ran rather than hit the cache.
fn ran_steps(log: &str) -> Vec<String> {
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

const BASE_STEP: &str = "[main 2/6] RUN echo base-step > /base.txt";
const COPY_FIRST: &str = "[main 3/6] COPY first.txt /app/first.txt";
const RUN_VERSION: &str = "[main 4/6] RUN echo \"version $VERSION\" > /app/version.txt";
const COPY_SRC: &str = "[main 5/6] COPY src/ /app/src/";
const RUN_ALL: &str =
    "[main 6/6] RUN cat /app/src/*.sh > /app/all.txt && echo \"$MODE\" >> /app/all.txt";

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn unchanged_rebuild_runs_nothing_and_a_first_build_runs_everything() -> R {
    let env = Env::new()?;
    assert_eq!(
        env.build(&[])?,
        sorted(&[BASE_STEP, COPY_FIRST, RUN_VERSION, COPY_SRC, RUN_ALL])
    );
    assert_eq!(env.build(&[])?, Vec::<String>::new());
    Ok(())
}

#[test]
fn editing_a_copied_file_reruns_from_its_copy() -> R {
    let env = Env::new()?;
    env.build(&[])?;
    env.write("first.txt", "changed\n")?;
    assert_eq!(
        env.build(&[])?,
        sorted(&[COPY_FIRST, RUN_VERSION, COPY_SRC, RUN_ALL])
    );
    env.write("src/two.sh", "echo deux\n")?;
    assert_eq!(env.build(&[])?, sorted(&[COPY_SRC, RUN_ALL]));
    Ok(())
}

#[test]
fn touching_reruns_nothing_and_chmod_reruns_from_the_copy() -> R {
    let env = Env::new()?;
    env.build(&[])?;
    let f = env.ctx().join("first.txt");
    let later = fs::metadata(&f)?.modified()? + std::time::Duration::from_secs(60);
    fs::File::options()
        .write(true)
        .open(&f)?
        .set_modified(later)?;
    assert_eq!(
        env.build(&[])?,
        Vec::<String>::new(),
        "an mtime change reran steps"
    );
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600))?;
    assert_eq!(
        env.build(&[])?,
        sorted(&[COPY_FIRST, RUN_VERSION, COPY_SRC, RUN_ALL])
    );
    Ok(())
}

#[test]
fn ignored_and_unselected_files_rerun_nothing() -> R {
    let env = Env::new()?;
    env.build(&[])?;
    env.write("src/debug.log", "more noise\n")?;
    env.write("unrelated.txt", "changed\n")?;
    assert_eq!(env.build(&[])?, Vec::<String>::new());
    Ok(())
}

#[test]
fn build_args_rerun_from_their_arg_only_in_stages_that_declare_them() -> R {
    let env = Env::new()?;
    env.build(&[])?;
    // Docker: a changed ARG value invalidates the RUN steps after the ARG
    // (their environment has it), and so everything built on them.
    assert_eq!(
        env.build(&["--build-arg", "VERSION=2"])?,
        sorted(&[RUN_VERSION, COPY_SRC, RUN_ALL])
    );
    // `other` does not declare VERSION: nothing of it reruns.
    env.build(&["--target", "other"])?;
    assert_eq!(
        env.build(&["--target", "other", "--build-arg", "VERSION=3"])?,
        Vec::<String>::new()
    );
    assert_eq!(
        env.build(&["--target", "other", "--build-arg", "OTHER=2"])?,
        sorted(&["[other 2/2] RUN echo \"other $OTHER\" > /other.txt"])
    );
    Ok(())
}

#[test]
fn env_change_reruns_later_steps() -> R {
    let env = Env::new()?;
    env.build(&[])?;
    env.edit_dockerfile("ENV MODE=fast", "ENV MODE=slow")?;
    // COPY does not see the environment (BuildKit); the RUN after it does.
    assert_eq!(env.build(&[])?, sorted(&[RUN_ALL]));
    Ok(())
}

#[test]
fn editing_a_stage_the_target_does_not_use_reruns_nothing() -> R {
    let env = Env::new()?;
    env.build(&[])?;
    env.edit_dockerfile("echo \"other $OTHER\"", "echo \"another $OTHER\"")?;
    assert_eq!(env.build(&[])?, Vec::<String>::new());
    Ok(())
}

#[test]
fn a_new_base_image_under_the_same_tag_reruns_everything() -> R {
    let env = Env::new()?;
    // Two different local images; `base:1` names the first, then the second.
    let mk = |name: &str, text: &str| -> R {
        let dir = env.dir.path().join(name);
        fs::create_dir_all(&dir)?;
        fs::write(
            dir.join("Dockerfile"),
            format!("FROM busybox\nRUN echo {text} > /marker\n"),
        )?;
        let out = env.strata(&[
            "build",
            "-q",
            "--build-context",
            &env.base,
            "-t",
            name,
            &dir.to_string_lossy(),
        ])?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    mk("first-base", "one")?;
    mk("second-base", "two")?;
    assert!(
        env.strata(&["tag", "first-base", "base:1"])?
            .status
            .success()
    );
    let child = env.dir.path().join("child");
    fs::create_dir_all(&child)?;
    fs::write(
        child.join("Dockerfile"),
        "FROM base:1\nRUN cat /marker > /copy\n",
    )?;
    let build = || -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let out = env.strata(&["build", "--progress=plain", &child.to_string_lossy()])?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(ran_steps(&String::from_utf8_lossy(&out.stderr)))
    };
    let run = "[stage-0 2/2] RUN cat /marker > /copy".to_string();
    assert_eq!(build()?, vec![run.clone()]);
    assert_eq!(build()?, Vec::<String>::new());
    assert!(
        env.strata(&["tag", "second-base", "base:1"])?
            .status
            .success()
    );
    assert_eq!(build()?, vec![run]);
    Ok(())
}

#[test]
fn no_cache_and_no_cache_filter_run_steps_again() -> R {
    let env = Env::new()?;
    env.build(&[])?;
    assert_eq!(
        env.build(&["--no-cache"])?,
        sorted(&[BASE_STEP, COPY_FIRST, RUN_VERSION, COPY_SRC, RUN_ALL])
    );
    assert_eq!(
        env.build(&["--no-cache-filter", "main"])?,
        sorted(&[BASE_STEP, COPY_FIRST, RUN_VERSION, COPY_SRC, RUN_ALL])
    );
    assert_eq!(
        env.build(&["--no-cache-filter", "other"])?,
        Vec::<String>::new()
    );
    Ok(())
}

/// The explanation lines of a `--explain-cache` build.
fn explain(env: &Env, extra: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let ctx = env.ctx();
    let mut args = vec![
        "build",
        "--progress=plain",
        "--explain-cache",
        "--build-context",
        &env.base,
    ];
    args.extend_from_slice(extra);
    let ctx = ctx.to_str().ok_or("path")?;
    args.push(ctx);
    let out = env.strata(&args)?;
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    Ok(log)
}

#[test]
fn explain_cache_names_the_file_the_arg_and_the_earlier_step() -> R {
    let env = Env::new()?;
    let first = explain(&env, &[])?;
    assert!(
        first.contains(&format!("{COPY_FIRST}: no earlier build had this step")),
        "{first}"
    );
    env.write("first.txt", "changed\n")?;
    let log = explain(&env, &[])?;
    assert!(
        log.contains(&format!(
            "{COPY_FIRST}: files of the build context changed: first.txt"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "{RUN_VERSION}: the step before it changed (`COPY first.txt /app/first.txt`)"
        )),
        "{log}"
    );
    let log = explain(&env, &["--build-arg", "VERSION=5"])?;
    assert!(
        log.contains(&format!(
            "{RUN_VERSION}: build args or environment changed: VERSION changed"
        )),
        "{log}"
    );
    assert!(
        !log.contains(&format!("{COPY_FIRST}: ")),
        "a cached step was explained:\n{log}"
    );
    Ok(())
}
