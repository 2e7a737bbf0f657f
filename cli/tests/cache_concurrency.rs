//! Several `strata build` processes on one state root at once: all succeed,
//! and a step they share runs once: while it runs (held at a gate), the
//! other builds are seen blocked on its key lock in /proc/locks, then reuse it.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Env, Gate, R, Res, procs, step_cached};

/// Inodes of the key locks (`locks/<64 hex>`) of a root.
fn key_lock_inodes(root: &Path) -> Res<HashSet<u64>> {
    let mut out = HashSet::new();
    let dir = root.join("locks");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(out);
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.insert(entry.metadata()?.ino());
        }
    }
    Ok(out)
}

#[test]
fn four_builds_sharing_a_stage_run_the_shared_step_once() -> R {
    let env = Env::new()?;
    let gate = Gate::start()?;
    // The shared step waits at the gate, so it is running for as long as
    // the test needs to see the other builds wait for it.
    let shared = format!(
        "FROM busybox AS shared\nRUN --network=host wget -q -O /gate.txt {} && echo shared > /shared.txt\n",
        gate.url()
    );
    let mut children = Vec::new();
    for i in 0..4 {
        let ctx = env.context(
            &format!("ctx{i}"),
            &format!("{shared}\nFROM shared\nRUN echo build {i} > /own.txt && cat /shared.txt\n"),
        )?;
        let tag = format!("c{i}");
        let allow = ["-t", &tag, "--allow", "network.host"];
        children.push(env.build_command(&ctx, &allow)?.spawn()?);
    }
    let pids: Vec<u32> = children.iter().map(std::process::Child::id).collect();

    // The shared step is at the gate; wait until the three other builds
    // block on its key lock (or a second copy of the step arrives).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut waiting = HashSet::new();
    while Instant::now() < deadline && gate.requests() <= 1 {
        if gate.requests() == 1 {
            let inodes = key_lock_inodes(&env.root())?;
            waiting = procs::blocked_on(&pids, &inodes)?;
            if waiting.len() == 3 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let requests_while_held = gate.requests();
    gate.open();

    let mut ran_shared = 0;
    for child in children {
        let out = child.wait_with_output()?;
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        if !step_cached(&log, "RUN --network=host wget -q -O /gate.txt")? {
            ran_shared += 1;
        }
        assert!(
            log.contains(" shared"),
            "the shared file is missing:\n{log}"
        );
    }
    assert_eq!(
        requests_while_held, 1,
        "the shared step was running {requests_while_held} times at once"
    );
    assert_eq!(
        waiting.len(),
        3,
        "while the shared step ran, only {waiting:?} of {pids:?} waited on its key lock"
    );
    assert_eq!(ran_shared, 1, "the shared step ran {ran_shared} times");
    let doctor = env.doctor("root", &[])?;
    assert_eq!(doctor.code, Some(0), "{}", doctor.stdout);
    Ok(())
}
