//! Several `strata build` processes on one state root at once: all succeed,
//! and a step they share runs once (the others wait on its key lock and
//! reuse it).

use std::fs;
use std::process::{Command, Stdio};

type R = Result<(), Box<dyn std::error::Error>>;

#[test]
fn four_builds_sharing_a_stage_run_the_shared_step_once() -> R {
    let dir = tempfile::tempdir()?;
    let base = strata_fixtures::busybox_build_context(dir.path())?;
    let root = dir.path().join("root");
    // The shared step sleeps, so all four builds reach it while it runs.
    let shared = "FROM busybox AS shared\nRUN sleep 1 && echo shared > /shared.txt\n";
    let mut children = Vec::new();
    for i in 0..4 {
        let ctx = dir.path().join(format!("ctx{i}"));
        fs::create_dir_all(&ctx)?;
        fs::write(
            ctx.join("Dockerfile"),
            format!("{shared}\nFROM shared\nRUN echo build {i} > /own.txt && cat /shared.txt\n"),
        )?;
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .env("STRATA_ROOT", &root)
            .args([
                "build",
                "--progress=plain",
                "--build-context",
                &base,
                "-t",
                &format!("c{i}"),
            ])
            .arg(&ctx)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        children.push(child);
    }
    let mut ran_shared = 0;
    for child in children {
        let out = child.wait_with_output()?;
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        let step = log
            .lines()
            .find(|l| l.contains("RUN sleep 1"))
            .and_then(|l| l.split(' ').next())
            .ok_or("no shared step")?;
        if !log.lines().any(|l| l == format!("{step} CACHED")) {
            ran_shared += 1;
        }
        assert!(
            log.contains(" shared"),
            "the shared file is missing:\n{log}"
        );
    }
    assert_eq!(ran_shared, 1, "the shared step ran {ran_shared} times");
    let doctor = Command::new(env!("CARGO_BIN_EXE_strata"))
        .env("STRATA_ROOT", &root)
        .args(["doctor"])
        .output()?;
    assert!(
        doctor.status.success(),
        "{}",
        String::from_utf8_lossy(&doctor.stdout)
    );
    Ok(())
}
