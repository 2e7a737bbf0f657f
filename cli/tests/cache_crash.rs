//! Crash safety: `strata build` killed with SIGKILL at named points of a
//! build (mid-RUN, on both sides of each snapshot's rename and metadata
//! write, before and after its cache record, between export's blobs and
//! before the tag) leaves a root that `strata doctor` finds consistent, and
//! the next build succeeds, reuses what had finished and gives the same
//! image as a clean build.
//!
//! The build stops itself at each point (`STRATA_TEST_STOP_AT`, see
//! `strata_cache::test_stop`); the test sees it stopped there, then kills it,
//! so every kill lands mid-build, where it was meant to.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::Child;

use crate::common::{Env, R, Res, TestCommand, step_cached};

const DOCKERFILE: &str = "FROM busybox
RUN echo started; i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; echo one > /one
COPY payload/ /payload/
RUN cat /payload/* | wc -c > /size
RUN echo three > /three
";

/// Where the builds are killed, in build order: `point:n` is the n-th time
/// the build reaches `point` (four steps commit a snapshot each; export
/// writes the new layers, the config and the manifest).
const KILL_POINTS: &[&str] = &[
    "run-output:1",
    "snapshot-renamed:1",
    "snapshot-meta-written:1",
    "step-recorded:1",
    "snapshot-renamed:2",
    "snapshot-meta-written:2",
    "step-recorded:2",
    "snapshot-renamed:3",
    "snapshot-meta-written:3",
    "snapshot-renamed:4",
    "snapshot-meta-written:4",
    "step-recorded:4",
    "blob-written:1",
    "blob-written:3",
    "blob-written:5",
    "image-tagging:1",
];

/// A context for [`DOCKERFILE`] with a few MB of payload.
struct Crash {
    env: Env,
}

impl Crash {
    fn new() -> Res<Crash> {
        let env = Env::new()?;
        let ctx = env.context("ctx", DOCKERFILE)?;
        fs::create_dir_all(ctx.join("payload"))?;
        // Incompressible-looking data, the same every run.
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
        Ok(Crash { env })
    }

    /// `strata build -t crash` of the context on `root`, reproducibly.
    fn build(&self, root: &str) -> Res<TestCommand> {
        let ctx = self.env.path("ctx");
        let ctx = ctx.to_str().ok_or("non-UTF-8 path")?;
        Ok(self
            .env
            .strata_in(
                root,
                &[
                    "build",
                    "--progress=plain",
                    "--build-context",
                    &self.env.base,
                    "-t",
                    "crash",
                    ctx,
                ],
            )
            .env("SOURCE_DATE_EPOCH", "1700000000"))
    }

    fn digest(&self, root: &str) -> Res<String> {
        let out = self
            .env
            .strata_in(root, &["inspect", "--format", "{{.Digest}}", "crash"])
            .ok()?;
        Ok(out.stdout.trim().to_string())
    }

    fn doctor_is_clean(&self, root: &str, context: &str) -> R {
        let out = self.env.doctor(root, &["--deep"])?;
        if out.code != Some(0) {
            return Err(format!(
                "{context}: doctor found problems:\n{}{}",
                out.stdout, out.stderr
            )
            .into());
        }
        Ok(())
    }

    /// Starts a build on `root` that stops at `point`, waits until it is
    /// stopped there and kills it; an error unless the kill landed (the
    /// process was stopped at the point and died of SIGKILL). Returns the
    /// progress output up to the point.
    fn kill_at(&self, root: &str, point: &str) -> Res<String> {
        let mut child = self
            .build(root)?
            .env(strata_cache::test_stop::STOP_AT_VAR, point)
            .spawn()?;
        let result = wait_for_stop(&mut child, point);
        // Killed in any case, so no build outlives the test.
        let killed = child.kill();
        let status = child.wait()?;
        let log = result?;
        killed?;
        if status.signal() != Some(9) {
            return Err(format!("the build at {point} ended by itself ({status}):\n{log}").into());
        }
        Ok(log)
    }
}

/// Reads the build's progress until it says it stopped at `point`, then
/// checks that the kernel shows it stopped.
fn wait_for_stop(child: &mut Child, point: &str) -> Res<String> {
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut log = String::new();
    let marker = format!("strata-test-stop {point}");
    let mut reached = false;
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        log.push_str(&line);
        log.push('\n');
        if line == marker || line == format!("{marker}:1") {
            reached = true;
            break;
        }
    }
    if !reached {
        return Err(format!("the build never reached {point}:\n{log}").into());
    }
    // /proc/PID/stat: `PID (comm) STATE ...`; T is stopped by a signal.
    for _ in 0..500 {
        let stat = fs::read_to_string(format!("/proc/{}/stat", child.id()))?;
        let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
        if state == Some('T') {
            return Ok(log);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Err(format!("the build said it stopped at {point} but is not stopped").into())
}

#[test]
fn killed_builds_leave_a_consistent_root_and_the_next_build_matches_a_clean_one() -> R {
    let crash = Crash::new()?;
    crash.build("clean")?.ok()?;
    let want = crash.digest("clean")?;

    // Each kill on a fresh root, so every point is reached (a root that
    // already holds a step's snapshot commits nothing for it); two workers.
    let results: Vec<Result<(usize, &str), String>> = std::thread::scope(|s| {
        let workers: Vec<_> = [0, 1]
            .into_iter()
            .map(|w| {
                let (crash, want) = (&crash, &want);
                s.spawn(move || {
                    KILL_POINTS
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| i % 2 == w)
                        .map(|(i, point)| {
                            kill_and_recover(crash, &format!("killed-{i}"), point, want)
                                .map(|()| (i, *point))
                                .map_err(|e| format!("killed at {point}: {e}"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|_| vec![Err("a worker panicked".to_string())])
            })
            .collect()
    });
    let mut landed = Vec::new();
    for r in results {
        landed.push(r?);
    }
    landed.sort();
    let landed: Vec<&str> = landed.into_iter().map(|(_, point)| point).collect();
    eprintln!(
        "{} of {} kills landed mid-build, at: {}",
        landed.len(),
        KILL_POINTS.len(),
        landed.join(", ")
    );
    assert_eq!(landed.len(), KILL_POINTS.len());
    Ok(())
}

/// Kills a build on the fresh `root` at `point`; then doctor finds the root
/// consistent, and the next build succeeds with the clean build's image.
fn kill_and_recover(crash: &Crash, root: &str, point: &str, want: &str) -> R {
    crash.kill_at(root, point)?;
    crash.doctor_is_clean(root, "after the kill")?;
    let out = crash.build(root)?.output()?;
    if out.code != Some(0) {
        return Err(format!("the next build failed:\n{}", out.stderr).into());
    }
    let got = crash.digest(root)?;
    if got != want {
        return Err(format!("image {got} differs from a clean build's {want}").into());
    }
    Ok(())
}

#[test]
fn steps_finished_before_a_kill_are_reused() -> R {
    let crash = Crash::new()?;
    // Killed once the first RUN is recorded, before the COPY after it.
    let log = crash.kill_at("root", "step-recorded:1")?;
    assert!(log.contains("RUN echo started"), "{log}");
    crash.doctor_is_clean("root", "after a kill")?;
    let out = crash.build("root")?.ok()?;
    assert!(
        step_cached(&out.stderr, "RUN echo started")?,
        "the step finished before the kill ran again:\n{}",
        out.stderr
    );
    assert!(
        !step_cached(&out.stderr, "COPY payload/")?,
        "the step after the kill was cached:\n{}",
        out.stderr
    );
    Ok(())
}
