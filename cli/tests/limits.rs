//! `--memory`, `--pids-limit`, `--shm-size` and `--ulimit` end to end, and teardown: a
//! strata killed with SIGKILL during a RUN leaves no process of the step running (under the
//! builtin runtime, runc and crun), nothing in the temp dir, and the next build sweeps its
//! leftovers and reuses what was finished.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Env, Gate, R, Res, procs, step_cached};

#[test]
fn bad_limit_values_exit_2_before_any_work() -> R {
    let env = Env::new()?;
    let ctx = env.context("bad-limits", "FROM busybox\nRUN true\n")?;
    for flags in [
        ["--memory", "5m"],
        ["--memory", "lots"],
        ["--pids-limit", "ten"],
        ["--shm-size", "0"],
        ["--shm-size", "1x"],
        ["--ulimit", "nofile=2048:1024"],
        ["--ulimit", "files=10"],
        ["--ulimit", "nofile"],
    ] {
        let run = env.build_command(&ctx, &flags)?.output()?;
        assert_eq!(run.code, Some(2), "{flags:?}: {}", run.stderr);
        assert!(run.stderr.contains(flags[0]), "{flags:?}: {}", run.stderr);
        assert!(!env.root().exists(), "{flags:?} made the state root");
    }
    Ok(())
}

#[test]
fn limits_reach_the_step() -> R {
    let env = Env::new()?;
    let ctx = env.context(
        "limits",
        "FROM busybox\n\
         RUN echo \"nofile $(ulimit -n):$(ulimit -Hn)\" && df -k /dev/shm | tail -n 1\n",
    )?;
    let log = env.build(
        &ctx,
        &[
            "--memory",
            "2g",
            "--pids-limit",
            "100",
            "--shm-size",
            "16m",
            "--ulimit",
            "nofile=1024:2048",
        ],
    )?;
    assert!(log.contains("nofile 1024:2048"), "{log}");
    assert!(log.contains(" 16384 "), "/dev/shm is not 16 MiB: {log}");
    // Docker's defaults: a 64 MiB /dev/shm; nofile 1024 soft, the hard limit inherited.
    let log = env.build(&ctx, &["--no-cache"])?;
    let hard = std::process::Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()?;
    let hard = String::from_utf8(hard.stdout)?;
    assert!(
        log.contains(&format!("nofile 1024:{}", hard.trim())),
        "{log}"
    );
    assert!(log.contains(" 65536 "), "/dev/shm is not 64 MiB: {log}");
    Ok(())
}

#[test]
fn a_step_over_its_memory_limit_is_reported() -> R {
    let env = Env::new()?;
    let ctx = env.context(
        "oom",
        "FROM busybox\n\
         RUN awk 'BEGIN { s = \"x\"; for (i = 0; i < 27; i++) s = s s; print length(s) }'\n",
    )?;
    let run = env.build_command(&ctx, &["--memory", "48m"])?.output()?;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("step killed: out of memory (limit 48 MiB)"),
        "{}",
        run.stderr
    );
    // Without the limit the same step passes.
    env.build(&ctx, &[])?;
    Ok(())
}

#[test]
fn sigkill_during_a_builtin_run_leaves_nothing() -> R {
    sigkill_during_run("builtin")
}

#[test]
fn sigkill_during_a_runc_run_leaves_nothing() -> R {
    sigkill_during_run("runc")
}

#[test]
fn sigkill_during_a_crun_run_leaves_nothing() -> R {
    sigkill_during_run("crun")
}

/// Waits until the build `child` has a step waiting at `gate`; returns the step's process
/// and those above it up to strata (the runtime's among them).
fn waiting_step(gate: &Gate, child: &mut std::process::Child, runtime: &str) -> Res<Vec<u32>> {
    let strata = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if gate.requests() > 0 {
            let found = procs::with_arg(&gate.url())?
                .into_iter()
                .find_map(|p| Some((p, procs::ancestor_pids(p, strata).ok()?)));
            if let Some((wget, above)) = found {
                return Ok([vec![wget], above].concat());
            }
        }
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            return Err(format!("{runtime}: the step never waited at the gate").into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How long the step's processes may outlive a killed strata.
const TEARDOWN: Duration = Duration::from_secs(2);

/// Kills strata while `runtime` runs a step waiting at a gate; checks the step's processes
/// (and the runtime's) die at once, the temp dir stays empty, and the next build sweeps the
/// rest and reuses the step that had finished.
fn sigkill_during_run(runtime: &str) -> R {
    let env = Env::new()?;
    let temp = env.path("system-tmp");
    fs::create_dir(&temp)?;
    let gate = Gate::start()?;
    let ctx = env.context(
        &format!("sigkill-{runtime}"),
        &format!(
            "FROM busybox\nRUN echo first > /first\nRUN --network=host wget -q -O /gate.txt {}\n",
            gate.url()
        ),
    )?;
    let mut child = env
        .build_command(&ctx, &["--runtime", runtime, "--allow", "network.host"])?
        .env("TMPDIR", &temp)
        .spawn()?;
    let strata = child.id();
    let step = waiting_step(&gate, &mut child, runtime)?;
    let leftovers = |dir: &Path| -> Res<Vec<String>> {
        Ok(fs::read_dir(dir)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("strata"))
            .collect())
    };
    assert!(leftovers(&temp)?.is_empty(), "strata wrote to TMPDIR");
    child.kill()?;
    child.wait()?;
    let killed = Instant::now();
    // The guard removes the step's cgroups once their processes are gone.
    while (step.iter().any(|&p| procs::alive(p)) || !step_cgroups(strata)?.is_empty())
        && killed.elapsed() < TEARDOWN
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let alive: Vec<u32> = step.iter().copied().filter(|&p| procs::alive(p)).collect();
    assert!(
        alive.is_empty(),
        "{runtime}: step processes {alive:?} of {step:?} outlived strata by {TEARDOWN:?}"
    );
    eprintln!(
        "{runtime}: the step ended {:?} after strata was killed",
        killed.elapsed()
    );
    assert!(leftovers(&temp)?.is_empty(), "{runtime}: left in TMPDIR");
    let cgroups = step_cgroups(strata)?;
    assert!(cgroups.is_empty(), "{runtime}: cgroups left: {cgroups:?}");

    gate.open();
    let log = env
        .build_command(&ctx, &["--runtime", runtime, "--allow", "network.host"])?
        .env("TMPDIR", &temp)
        .ok()?
        .stderr;
    assert!(step_cached(&log, "echo first")?, "{log}");
    assert!(!step_cached(&log, "wget")?, "{log}");
    let scratch = leftovers(&env.root().join("tmp"))?;
    let dead = fs::read_dir(env.root().join("tmp"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("build-{strata}-")))
        .count();
    assert_eq!((dead, scratch.len()), (0, 0), "{runtime}: scratch left");
    assert!(leftovers(&temp)?.is_empty(), "{runtime}: left in TMPDIR");
    Ok(())
}

/// The step cgroups `strata-<pid>-*` of strata process `pid` still present below this
/// process's cgroup in any hierarchy.
fn step_cgroups(pid: u32) -> Res<Vec<String>> {
    let own = fs::read_to_string("/proc/self/cgroup")?;
    let mut out = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let hierarchy = match controllers {
            "" => "unified".to_string(),
            c => c.trim_start_matches("name=").to_string(),
        };
        let dir = Path::new("/sys/fs/cgroup")
            .join(hierarchy)
            .join(path.trim_start_matches('/'))
            .join("strata");
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        out.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&format!("strata-{pid}-")))
                })
                .map(|p| p.display().to_string()),
        );
    }
    Ok(out)
}
