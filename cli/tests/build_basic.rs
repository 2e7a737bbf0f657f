//! `strata build` through the real binary, on the fixture contexts that need
//! no base image, plus the error paths.

use crate::common::{Env, R, fixtures};

#[test]
fn scratch_copy_build_succeeds() -> R {
    let env = Env::new()?;
    let ctx = fixtures().join("scratch-copy");
    let ctx = ctx.to_str().ok_or("non-UTF-8 path")?;
    let out = env
        .strata(&["build", "--progress=plain", "-t", "copied", ctx])
        .output()?;
    let err = &out.stderr;
    assert_eq!(out.code, Some(0), "{err}");
    assert!(err.contains("[build 1/2] FROM scratch AS build"), "{err}");
    assert!(
        err.contains("COPY --from=build /out/a.txt copied.txt"),
        "{err}"
    );
    assert!(err.contains(" DONE "), "{err}");
    // The file itself, in the image as umoci unpacks it.
    let rootfs = env.unpack("copied:latest")?.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("app/copied.txt"))?,
        std::fs::read_to_string(fixtures().join("scratch-copy/a.txt"))?
    );
    assert!(
        !rootfs.join("out").exists(),
        "the build stage leaked into the image"
    );
    Ok(())
}

#[test]
fn dockerfile_error_exits_2() -> R {
    let env = Env::new()?;
    let ctx = fixtures().join("syntax-error");
    let out = env
        .strata(&["build", ctx.to_str().ok_or("path")?])
        .output()?;
    let err = &out.stderr;
    assert_eq!(out.code, Some(2), "{err}");
    assert!(err.contains("Dockerfile:3"), "{err}");
    Ok(())
}

#[test]
fn bad_usage_exits_2() -> R {
    let env = Env::new()?;
    let out = env.strata(&["build", "--network=bogus", "."]).output()?;
    assert_eq!(out.code, Some(2));
    let out = env.strata(&["build", "--no-such-flag", "."]).output()?;
    assert_eq!(out.code, Some(2));
    Ok(())
}

#[test]
fn failing_step_exits_1_naming_it() -> R {
    let env = Env::new()?;
    let ctx = fixtures().join("scratch-copy");
    let out = env
        .strata(&["build", "-f", "-", ctx.to_str().ok_or("path")?])
        .stdin("FROM scratch\nCOPY missing.txt /\n")
        .output()?;
    let err = &out.stderr;
    assert_eq!(out.code, Some(1), "{err}");
    assert!(
        err.contains("step [stage-0 2/2] COPY missing.txt /"),
        "{err}"
    );
    Ok(())
}

#[test]
fn missing_base_image_exits_1_naming_line_and_image() -> R {
    let env = Env::new()?;
    let ctx = fixtures().join("run-output");
    let out = env
        .strata(&[
            "build",
            "--build-context",
            "busybox=oci-layout:///nonexistent:busybox",
            ctx.to_str().ok_or("path")?,
        ])
        .output()?;
    let err = &out.stderr;
    assert_eq!(out.code, Some(1), "{err}");
    assert!(
        err.contains("Dockerfile: line 1: busybox: /nonexistent is not an OCI image layout"),
        "{err}"
    );
    Ok(())
}

#[test]
fn copy_of_an_ignored_file_names_the_pattern() -> R {
    let env = Env::new()?;
    let ctx = env.context("ctx", "FROM scratch\nCOPY notes.md /\n")?;
    std::fs::write(ctx.join("notes.md"), "x\n")?;
    std::fs::write(ctx.join(".dockerignore"), "# docs\n*.md\n")?;
    let dir = ctx.to_str().ok_or("non-UTF-8 path")?;
    let out = env.strata(&["build", "--progress=plain", dir]).output()?;
    let err = &out.stderr;
    assert_eq!(out.code, Some(1), "{err}");
    assert!(
        err.contains("notes.md: excluded by .dockerignore line 2 (`*.md`)"),
        "{err}"
    );
    // <Dockerfile>.dockerignore beside the Dockerfile replaces .dockerignore.
    std::fs::write(ctx.join("Dockerfile.dockerignore"), "other\n")?;
    let file = ctx.join("Dockerfile");
    let file = file.to_str().ok_or("non-UTF-8 path")?;
    let out = env
        .strata(&["build", "--progress=plain", "-f", file, dir])
        .output()?;
    let err = &out.stderr;
    assert_eq!(out.code, Some(0), "{err}");
    Ok(())
}

#[test]
fn an_invalid_dockerignore_is_a_usage_error() -> R {
    let env = Env::new()?;
    let ctx = env.context("ctx", "FROM scratch\n")?;
    std::fs::write(ctx.join(".dockerignore"), "[oops\n")?;
    let dir = ctx.to_str().ok_or("non-UTF-8 path")?;
    let out = env.strata(&["build", dir]).output()?;
    let err = &out.stderr;
    assert_eq!(out.code, Some(2), "{err}");
    assert!(err.contains(".dockerignore line 1"), "{err}");
    Ok(())
}

#[test]
fn failed_run_shows_its_line_exit_code_and_last_output() -> R {
    let env = Env::new()?;
    let ctx = env.context(
        "fails",
        "FROM busybox\nRUN echo one && echo two >&2 && exit 3\nCMD [\"x\"]\n",
    )?;
    let out = env.build_command(&ctx, &[])?.output()?;
    let err = &out.stderr;
    assert_eq!(out.code, Some(1), "{err}");
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
