//! A full disk under `$STRATA_ROOT` (a 6 MB tmpfs) fails the build with a
//! one-line "no space left" cause and exit code 3, leaves the root
//! consistent, and the same root builds once space is freed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Env, R, Res};

/// A tmpfs mounted for the test's life.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Res<Self> {
        fs::create_dir_all(at)?;
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "strata-test",
                &at.to_string_lossy(),
            ])
            .status()?;
        if !st.success() {
            return Err("mounting a tmpfs failed (the tests run as root)".into());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }

    fn resize(&self, size: &str) -> R {
        let st = Command::new("mount")
            .args([
                "-o",
                &format!("remount,size={size}"),
                &self.0.to_string_lossy(),
            ])
            .status()?;
        assert!(st.success(), "remount failed");
        Ok(())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_fails_cleanly_and_the_root_recovers() -> R {
    let env = Env::new()?;
    let ctx = env.context(
        "ctx",
        "FROM busybox\nCOPY big.bin /big.bin\nRUN wc -c /big.bin\n",
    )?;
    fs::write(ctx.join("big.bin"), vec![7u8; 8 * 1024 * 1024])?;
    let root = env.root();
    let fs_guard = Tmpfs::mount(&root, "6m")?;
    let strata = |args: &[&str]| env.strata(args).output();
    let ctx_arg = ctx.to_string_lossy().into_owned();
    let build = [
        "build",
        "--progress=plain",
        "--build-context",
        &env.base,
        "-t",
        "big",
        &ctx_arg,
    ];

    let out = strata(&build)?;
    let err = &out.stderr;
    assert_eq!(out.code, Some(3), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("ERROR: "), "{err}");
    assert!(last.contains("no space left on device"), "{err}");
    assert!(
        last.contains(&root.to_string_lossy().into_owned()),
        "the path is not named: {last}"
    );

    let doctor = strata(&["doctor"])?;
    assert_eq!(doctor.code, Some(0), "{}", doctor.stdout);

    fs_guard.resize("64m")?;
    let out = strata(&build)?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("8388608 /big.bin"));
    let doctor = strata(&["doctor"])?;
    assert_eq!(doctor.code, Some(0), "{}", doctor.stdout);
    Ok(())
}
