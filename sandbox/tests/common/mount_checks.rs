//! A step's extra mounts (`RUN --mount`), the same checks for every runtime: binds read-only
//! and writable, a sized tmpfs, a file held only in memory with its mode and owner, all
//! `nosuid,nodev`; no trace of their mountpoints in the layer; a symlink in the image at a
//! target does not take the mount (or the folders made for it) out of the root.

use std::fs;
use std::os::unix::fs::symlink;

use strata_sandbox::{MountSource, Runtime, SecretBytes, StepMount};

use super::{TestResult, busybox_root, run, sh};

fn mount(target: &str, source: MountSource) -> StepMount {
    StepMount {
        target: target.into(),
        source,
    }
}

pub fn extra_mounts_show_what_they_say(rt: &dyn Runtime) -> TestResult {
    let (dir, root) = busybox_root()?;
    let ro = dir.path().join("ro");
    let rw = dir.path().join("rw");
    fs::create_dir(&ro)?;
    fs::create_dir(&rw)?;
    fs::write(ro.join("in.txt"), "from the host")?;
    let mut spec = sh(concat!(
        "cat /mnt/ro/in.txt; echo;",
        "touch /mnt/ro/new 2>/dev/null; echo ro-write=$?;",
        "echo written > /mnt/rw/out.txt; echo rw-write=$?;",
        "dd if=/dev/zero of=/mnt/tmp/big bs=1024 count=300 2>/dev/null; echo tmpfs-full=$?;",
        "cat /run/secrets/token; echo;",
        "stat -c '%a %u %g' /run/secrets/token;",
        "grep -E ' /(mnt/ro|mnt/rw|mnt/tmp|run/secrets/token) ' /proc/mounts | cut -d' ' -f2,4"
    ));
    spec.mounts = vec![
        mount(
            "/mnt/ro",
            MountSource::Bind {
                path: ro.clone(),
                readonly: true,
            },
        ),
        mount(
            "/mnt/rw",
            MountSource::Bind {
                path: rw.clone(),
                readonly: false,
            },
        ),
        mount(
            "/mnt/tmp",
            MountSource::Tmpfs {
                size: Some(128 << 10),
            },
        ),
        mount(
            "/run/secrets/token",
            MountSource::File {
                contents: SecretBytes::new(b"s3cr3t-value".to_vec()),
                mode: 0o440,
                uid: 1000,
                gid: 50,
            },
        ),
    ];
    let ran = run(rt, &root, &spec)?;
    assert_eq!(ran.code, 0, "stderr: {:?}", ran.stderr);
    assert_eq!(
        ran.stdout[..6],
        [
            "from the host",
            "ro-write=1",
            "rw-write=0",
            "tmpfs-full=1",
            "s3cr3t-value",
            "440 1000 50"
        ]
    );
    // Every extra mount is nosuid and nodev (ARCHITECTURE.md's invariant).
    let table = &ran.stdout[6..];
    assert_eq!(table.len(), 4, "mounts: {table:?}");
    for line in table {
        let options = line.split(' ').nth(1).unwrap_or_default();
        assert!(
            options.contains("nosuid") && options.contains("nodev"),
            "{line}"
        );
    }
    assert!(table.iter().any(|l| l.starts_with("/mnt/ro ro,")));
    assert!(table.iter().any(|l| l.starts_with("/mnt/rw rw,")));
    assert_eq!(fs::read_to_string(rw.join("out.txt"))?, "written\n");
    assert!(!ro.join("new").exists());
    // The mountpoints the targets needed are gone from the layer.
    let left: Vec<_> = fs::read_dir(&root.upper)?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in the layer: {left:?}");
    Ok(())
}

pub fn mount_targets_stay_inside_the_root(rt: &dyn Runtime) -> TestResult {
    let (dir, root) = busybox_root()?;
    // A host canary folder that an image's symlinks point at.
    let canary = dir.path().join("host-canary");
    fs::create_dir(&canary)?;
    fs::write(canary.join("keep.txt"), "host")?;
    let layer = &root.lower[0];
    symlink(&canary, layer.join("abs-link"))?;
    symlink("../../../../../..", layer.join("tmp/up"))?;
    let mut spec = sh("echo in-tmpfs > /abs-link/sub/f; echo done");
    spec.mounts = vec![
        mount("/abs-link/sub", MountSource::Tmpfs { size: None }),
        mount(
            &format!("/tmp/up{}/x", canary.display()),
            MountSource::Tmpfs { size: None },
        ),
    ];
    let ran = run(rt, &root, &spec)?;
    assert_eq!(ran.out(), "done", "stderr: {:?}", ran.stderr);
    let host: Vec<_> = fs::read_dir(&canary)?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(host, ["keep.txt"], "the host canary folder changed");
    assert_eq!(fs::read_to_string(canary.join("keep.txt"))?, "host");
    Ok(())
}
