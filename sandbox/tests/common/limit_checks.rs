//! `--memory`, `--pids-limit`, `--ulimit` and `--shm-size` as a step sees them, for every
//! runtime; and the sweep of a killed strata's step cgroups.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use strata_sandbox::{Limits, Resource, Runtime, SandboxError, Ulimit, sweep_stale_cgroups};

use super::{TestResult, busybox_root, run, sh};

/// Makes the runtime under test with the given limits, its run folders in the given folder.
pub type Make<'a> =
    &'a dyn Fn(Limits, &Path) -> Result<Box<dyn Runtime>, Box<dyn std::error::Error>>;

/// The runtime with `limits` and a temp folder of its own, checked empty when the test is over.
struct Under {
    rt: Box<dyn Runtime>,
    temp: tempfile::TempDir,
}

impl Under {
    fn new(make: Make, limits: Limits) -> Result<Under, Box<dyn std::error::Error>> {
        let temp = tempfile::tempdir()?;
        Ok(Under {
            rt: make(limits, temp.path())?,
            temp,
        })
    }

    fn left(&self) -> Vec<PathBuf> {
        fs::read_dir(self.temp.path())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Under {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert!(self.left().is_empty(), "left behind: {:?}", self.left());
        }
    }
}

impl std::ops::Deref for Under {
    type Target = dyn Runtime;
    fn deref(&self) -> &(dyn Runtime + 'static) {
        &*self.rt
    }
}

/// Doubles a string 27 times: 128 MiB, with copies on the way about twice that.
const HOG: &str = "awk 'BEGIN { s = \"x\"; for (i = 0; i < 27; i++) s = s s; print length(s) }'";

pub fn memory_hog_is_killed_and_reported(make: Make) -> TestResult {
    // Without a limit the hog finishes: the limit is what kills it below.
    let (_dir, root) = busybox_root()?;
    let ran = run(&*Under::new(make, Limits::default())?, &root, &sh(HOG))?;
    assert_eq!(
        (ran.code, ran.out()),
        (0, "134217728".to_string()),
        "{:?}",
        ran.stderr
    );

    let limit = 48 << 20;
    let limits = Limits {
        memory: Some(limit),
        ..Limits::default()
    };
    let (_dir, root) = busybox_root()?;
    match run(&*Under::new(make, limits)?, &root, &sh(HOG)) {
        Err(err @ SandboxError::OutOfMemory { limit: reported }) => {
            assert_eq!(reported, limit);
            assert_eq!(err.to_string(), "step killed: out of memory (limit 48 MiB)");
        }
        other => panic!(
            "expected an out-of-memory error, got {:?}",
            other.map(|r| (r.code, r.stdout, r.stderr))
        ),
    }
    // A step within its limit is not reported, even at docker's smallest limit (which the
    // runtime's own memory must not eat).
    let limits = Limits {
        memory: Some(strata_sandbox::MIN_MEMORY),
        ..Limits::default()
    };
    let (_dir, root) = busybox_root()?;
    let ran = run(&*Under::new(make, limits)?, &root, &sh("echo fits; exit 3"))?;
    assert_eq!((ran.code, ran.out()), (3, "fits".to_string()));
    Ok(())
}

pub fn fork_bomb_stops_at_the_pids_limit(make: Make) -> TestResult {
    let limits = Limits {
        pids: Some(20),
        ..Limits::default()
    };
    let (_dir, root) = busybox_root()?;
    // Each round prints its number, then forks a process that stays.
    let bomb = "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo $i; sleep 60 & done; echo all";
    let started = Instant::now();
    let ran = run(&*Under::new(make, limits)?, &root, &sh(bomb))?;
    let rounds: Vec<u32> = ran.stdout.iter().filter_map(|l| l.parse().ok()).collect();
    let last = rounds.last().copied().unwrap_or(0);
    assert_ne!(ran.code, 0, "the bomb was not stopped: {:?}", ran.stdout);
    assert!(!ran.stdout.iter().any(|l| l == "all"));
    assert!(last <= 20, "{last} processes started under a limit of 20");
    assert!(
        ran.stderr.iter().any(|l| l.contains("fork")),
        "stderr: {:?}",
        ran.stderr
    );
    // The step's sleepers died with it, and the host still forks.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(Command::new("true").status()?.success());
    Ok(())
}

pub fn ulimits_are_set(make: Make) -> TestResult {
    let (_dir, root) = busybox_root()?;
    let ran = run(
        &*Under::new(make, Limits::default())?,
        &root,
        &sh("ulimit -n; ulimit -Hn"),
    )?;
    // Docker's: a soft limit of 1024, the hard one inherited (here: the test's own).
    let hard = Command::new("sh").args(["-c", "ulimit -Hn"]).output()?;
    let hard = String::from_utf8(hard.stdout)?.trim().to_string();
    assert_eq!(ran.stdout, ["1024".to_string(), hard], "{:?}", ran.stderr);
    let mut limits = Limits::default();
    limits.set_ulimit(Ulimit {
        resource: Resource::Nofile,
        soft: 1000,
        hard: 2048,
    });
    limits.set_ulimit(Ulimit {
        resource: Resource::Core,
        soft: 0,
        hard: 0,
    });
    let (_dir, root) = busybox_root()?;
    let ran = run(
        &*Under::new(make, limits)?,
        &root,
        &sh("ulimit -n; ulimit -Hn; ulimit -c; ulimit -n 3000"),
    )?;
    assert_eq!(ran.stdout[..3], ["1000", "2048", "0"], "{:?}", ran.stderr);
    // Above the hard limit: refused.
    assert_ne!(ran.code, 0);
    Ok(())
}

/// The size of /dev/shm in KiB, as `df -k` shows it inside the step.
fn shm_kib(rt: &dyn Runtime) -> Result<u64, Box<dyn std::error::Error>> {
    let (_dir, root) = busybox_root()?;
    let ran = run(rt, &root, &sh("df -k /dev/shm | tail -n 1"))?;
    assert_eq!(ran.code, 0, "{:?}", ran.stderr);
    let size = ran
        .out()
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .parse()?;
    Ok(size)
}

pub fn shm_has_the_size_set(make: Make) -> TestResult {
    assert_eq!(shm_kib(&*Under::new(make, Limits::default())?)?, 64 * 1024);
    let limits = Limits {
        shm_size: 8 << 20,
        ..Limits::default()
    };
    let rt = Under::new(make, limits)?;
    assert_eq!(shm_kib(&*rt)?, 8 * 1024);
    // And it holds: writing more than 8 MiB fails.
    let (_dir, root) = busybox_root()?;
    let ran = run(
        &*rt,
        &root,
        &sh("dd if=/dev/zero of=/dev/shm/x bs=1M count=9 2>&1"),
    )?;
    assert_ne!(ran.code, 0, "{:?}", ran.stdout);
    Ok(())
}

/// The runtime makes its run folder in the folder it is given (not the system's temp dir)
/// while the step runs, and removes it.
pub fn temp_folders_go_where_told(make: Make) -> TestResult {
    let rt = Under::new(make, Limits::default())?;
    let (_dir, root) = busybox_root()?;
    let seen = std::sync::Mutex::new(Vec::new());
    let look = || {
        if let Ok(mut seen) = seen.lock() {
            seen.extend(rt.left());
        }
        false
    };
    let ran = super::run_cancellable(&*rt, &root, &sh("sleep 1; echo ran"), &look)?;
    assert_eq!(ran.out(), "ran");
    let seen = seen.into_inner().unwrap_or_default();
    assert!(
        seen.iter().any(|p| p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("strata-"))),
        "no run folder seen in the given temp dir: {seen:?}"
    );
    Ok(())
}

/// A process in a step cgroup named after a pid that no process has (a strata killed before
/// it could clean up) is killed by the sweep, and the cgroup removed.
pub fn sweep_ends_a_dead_strata_step_cgroup() -> TestResult {
    let own = fs::read_to_string("/proc/self/cgroup")?;
    let pids_path = own
        .lines()
        .find_map(|l| {
            l.strip_prefix(|c: char| c.is_ascii_digit())
                .and_then(|l| l.split_once(":pids:"))
                .map(|(_, p)| p.to_string())
        })
        .ok_or("no v1 pids hierarchy in /proc/self/cgroup")?;
    let parent = Path::new("/sys/fs/cgroup/pids")
        .join(pids_path.trim_start_matches('/'))
        .join("strata");
    fs::create_dir_all(&parent)?;
    // Above the kernel's largest pid (4194304): never a live process.
    let stale = parent.join("strata-4194305-0");
    fs::create_dir(&stale)?;
    let mut sleeper = Command::new("sleep").arg("600").spawn()?;
    fs::write(stale.join("cgroup.procs"), sleeper.id().to_string())?;
    let removed = sweep_stale_cgroups()?;
    let status = sleeper.wait()?;
    assert!(removed >= 1);
    assert!(!stale.exists(), "the stale cgroup is still there");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    Ok(())
}
