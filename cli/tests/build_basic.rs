//! `strata build` through the real binary, on the fixture contexts that need
//! no base image, plus the error paths.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/dockerfiles")
}

fn strata(root: &Path, args: &[&str]) -> Result<Output, std::io::Error> {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .env("STRATA_ROOT", root)
        .args(args)
        .output()
}

type R = Result<(), Box<dyn std::error::Error>>;

#[test]
fn scratch_copy_build_succeeds() -> R {
    let root = tempfile::tempdir()?;
    let ctx = fixtures().join("scratch-copy");
    let ctx = ctx.to_str().ok_or("non-UTF-8 path")?;
    let out = strata(root.path(), &["build", "--progress=plain", ctx])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("[build 1/2] FROM scratch AS build"), "{err}");
    assert!(
        err.contains("COPY --from=build /out/a.txt copied.txt"),
        "{err}"
    );
    assert!(err.contains(" DONE "), "{err}");
    Ok(())
}

#[test]
fn dockerfile_error_exits_2() -> R {
    let root = tempfile::tempdir()?;
    let ctx = fixtures().join("syntax-error");
    let out = strata(root.path(), &["build", ctx.to_str().ok_or("path")?])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Dockerfile:3"), "{err}");
    Ok(())
}

#[test]
fn bad_usage_exits_2() -> R {
    let root = tempfile::tempdir()?;
    let out = strata(root.path(), &["build", "--network=bogus", "."])?;
    assert_eq!(out.status.code(), Some(2));
    let out = strata(root.path(), &["build", "--no-such-flag", "."])?;
    assert_eq!(out.status.code(), Some(2));
    Ok(())
}

#[test]
fn failing_step_exits_1_naming_it() -> R {
    let root = tempfile::tempdir()?;
    let ctx = fixtures().join("scratch-copy");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .env("STRATA_ROOT", root.path())
        .args(["build", "-f", "-", ctx.to_str().ok_or("path")?])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(b"FROM scratch\nCOPY missing.txt /\n")?;
            }
            child.wait_with_output()
        })?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("step [stage-0 2/2] COPY missing.txt /"),
        "{err}"
    );
    Ok(())
}

#[test]
fn missing_base_image_exits_1_naming_line_and_image() -> R {
    let root = tempfile::tempdir()?;
    let ctx = fixtures().join("run-output");
    let out = strata(
        root.path(),
        &[
            "build",
            "--build-context",
            "busybox=oci-layout:///nonexistent:busybox",
            ctx.to_str().ok_or("path")?,
        ],
    )?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Dockerfile: line 1: busybox: /nonexistent is not an OCI image layout"),
        "{err}"
    );
    Ok(())
}

#[test]
fn copy_of_an_ignored_file_names_the_pattern() -> R {
    let root = tempfile::tempdir()?;
    let ctx = tempfile::tempdir()?;
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY notes.md /\n",
    )?;
    std::fs::write(ctx.path().join("notes.md"), "x\n")?;
    std::fs::write(ctx.path().join(".dockerignore"), "# docs\n*.md\n")?;
    let dir = ctx.path().to_str().ok_or("non-UTF-8 path")?;
    let out = strata(root.path(), &["build", "--progress=plain", dir])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("notes.md: excluded by .dockerignore line 2 (`*.md`)"),
        "{err}"
    );
    // <Dockerfile>.dockerignore beside the Dockerfile replaces .dockerignore.
    std::fs::write(ctx.path().join("Dockerfile.dockerignore"), "other\n")?;
    let file = ctx.path().join("Dockerfile");
    let file = file.to_str().ok_or("non-UTF-8 path")?;
    let out = strata(root.path(), &["build", "--progress=plain", "-f", file, dir])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    Ok(())
}

#[test]
fn an_invalid_dockerignore_is_a_usage_error() -> R {
    let root = tempfile::tempdir()?;
    let ctx = tempfile::tempdir()?;
    std::fs::write(ctx.path().join("Dockerfile"), "FROM scratch\n")?;
    std::fs::write(ctx.path().join(".dockerignore"), "[oops\n")?;
    let dir = ctx.path().to_str().ok_or("non-UTF-8 path")?;
    let out = strata(root.path(), &["build", dir])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(".dockerignore line 1"), "{err}");
    Ok(())
}

#[test]
fn failed_run_shows_its_line_exit_code_and_last_output() -> R {
    let root = tempfile::tempdir()?;
    let base = strata_fixtures::busybox_build_context(root.path())?;
    let ctx = tempfile::tempdir()?;
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN echo one && echo two >&2 && exit 3\nCMD [\"x\"]\n",
    )?;
    let dir = ctx.path().to_str().ok_or("non-UTF-8 path")?;
    let out = strata(
        &root.path().join("root"),
        &["build", "--build-context", &base, dir],
    )?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // miette's view: the file and line, the source line, a label under it.
    assert!(err.contains("Dockerfile:2:1]"), "{err}");
    assert!(
        err.contains("2 │ RUN echo one && echo two >&2 && exit 3"),
        "{err}"
    );
    assert!(err.contains("╰── exit code 3"), "{err}");
    assert!(err.contains("> one") && err.contains("> two"), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        "ERROR: failed to solve: step [stage-0 2/2] RUN echo one && echo two >&2 && exit 3: process exited with code 3"
    );
    Ok(())
}
