//! The build cache reruns exactly the steps whose inputs changed: each test
//! builds `fixtures/dockerfiles/cache-steps` twice on one state root with one
//! change between, and asserts from the progress output which steps ran.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::common::{Env, R, Res, fixtures, ran_steps, tool};

/// A state root and a copy of `cache-steps` to edit between builds.
struct Cache {
    env: Env,
}

impl Cache {
    fn new() -> Res<Self> {
        let env = Env::new()?;
        let src = fixtures().join("cache-steps");
        let dest = env.path("ctx");
        tool(
            "cp",
            &[
                "-a",
                src.to_str().ok_or("path")?,
                dest.to_str().ok_or("path")?,
            ],
        )?;
        Ok(Cache { env })
    }

    fn ctx(&self) -> PathBuf {
        self.env.path("ctx")
    }

    /// Builds; returns the steps that ran (not CACHED), by their progress name.
    fn build(&self, extra: &[&str]) -> Res<Vec<String>> {
        Ok(ran_steps(&self.env.build(&self.ctx(), extra)?))
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
    let env = Cache::new()?;
    assert_eq!(
        env.build(&[])?,
        sorted(&[BASE_STEP, COPY_FIRST, RUN_VERSION, COPY_SRC, RUN_ALL])
    );
    assert_eq!(env.build(&[])?, Vec::<String>::new());
    Ok(())
}

#[test]
fn editing_a_copied_file_reruns_from_its_copy() -> R {
    let env = Cache::new()?;
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
    let env = Cache::new()?;
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
    let env = Cache::new()?;
    env.build(&[])?;
    env.write("src/debug.log", "more noise\n")?;
    env.write("unrelated.txt", "changed\n")?;
    assert_eq!(env.build(&[])?, Vec::<String>::new());
    Ok(())
}

#[test]
fn build_args_rerun_from_their_arg_only_in_stages_that_declare_them() -> R {
    let env = Cache::new()?;
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
    let env = Cache::new()?;
    env.build(&[])?;
    env.edit_dockerfile("ENV MODE=fast", "ENV MODE=slow")?;
    // COPY does not see the environment (BuildKit); the RUN after it does.
    assert_eq!(env.build(&[])?, sorted(&[RUN_ALL]));
    Ok(())
}

#[test]
fn editing_a_stage_the_target_does_not_use_reruns_nothing() -> R {
    let env = Cache::new()?;
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
        let dir = env.context(name, &format!("FROM busybox\nRUN echo {text} > /marker\n"))?;
        let dir = dir.to_string_lossy();
        let out = env
            .strata(&[
                "build",
                "-q",
                "--build-context",
                &env.base,
                "-t",
                name,
                &dir,
            ])
            .output()?;
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        Ok(())
    };
    mk("first-base", "one")?;
    mk("second-base", "two")?;
    assert_eq!(
        env.strata(&["tag", "first-base", "base:1"]).output()?.code,
        Some(0)
    );
    let child = env.context("child", "FROM base:1\nRUN cat /marker > /copy\n")?;
    let build = || -> Res<Vec<String>> {
        let out = env
            .strata(&["build", "--progress=plain", &child.to_string_lossy()])
            .output()?;
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        Ok(ran_steps(&out.stderr))
    };
    let run = "[stage-0 2/2] RUN cat /marker > /copy".to_string();
    assert_eq!(build()?, vec![run.clone()]);
    assert_eq!(build()?, Vec::<String>::new());
    assert_eq!(
        env.strata(&["tag", "second-base", "base:1"]).output()?.code,
        Some(0)
    );
    assert_eq!(build()?, vec![run]);
    Ok(())
}

#[test]
fn no_cache_and_no_cache_filter_run_steps_again() -> R {
    let env = Cache::new()?;
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
fn explain(cache: &Cache, extra: &[&str]) -> Res<String> {
    let mut args = vec!["--explain-cache"];
    args.extend_from_slice(extra);
    let out = cache.env.build_command(&cache.ctx(), &args)?.output()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    Ok(out.stderr)
}

#[test]
fn explain_cache_names_the_file_the_arg_and_the_earlier_step() -> R {
    let env = Cache::new()?;
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
