//! Scheduler + StackExecutor on real directories: COPY from the context, WORKDIR,
//! COPY --from another stage, a lowered scratch build, and a RUN reported as a
//! named failure.

use std::fs;
use std::sync::Arc;

use std::path::Path;
use strata_solver::graph::{CopyOp, CopySource, EdgeRole, ExecOp, Input, MkdirOp, Selection};
use strata_solver::{NetworkMode, Security};

use strata_cache::{DockerIgnore, KeyLock};
use strata_sandbox::Builtin;
use strata_solver::ImageError;
use strata_solver::dockerfile::{LowerOptions, lower};
use strata_solver::ops::{BaseLayers, Layer, StackExecutor};
use strata_solver::{BuildGraph, ChannelSink, Op, OpError, ScheduleError, Scheduler};

type R = Result<(), Box<dyn std::error::Error>>;

/// These graphs have no base images.
struct NoImages;
impl BaseLayers for NoImages {
    fn layers(&self, digest: &str) -> Result<Vec<Layer>, ImageError> {
        Err(ImageError::Invalid(format!(
            "no image {digest} in this test"
        )))
    }
}

/// An executor whose state root and scratch folder are under `scratch`.
fn executor(scratch: &Path, ctx: &Path, ignore: DockerIgnore) -> Arc<StackExecutor> {
    let root = scratch.join("root");
    let tmp = scratch.join("tmp");
    for d in [&root, &tmp] {
        if let Err(e) = fs::create_dir_all(d) {
            panic!("cannot create {}: {e}", d.display());
        }
    }
    match StackExecutor::new(
        &root,
        tmp,
        ctx,
        ignore,
        Arc::new(Builtin::default()),
        Arc::new(NoImages),
    ) {
        Ok(e) => Arc::new(e),
        Err(e) => panic!("cannot open the cache under {}: {e}", root.display()),
    }
}

fn copy(source: CopySource, path: &str, dest: &str, cwd: &str) -> Op {
    Op::Copy(CopyOp {
        source,
        selections: vec![Selection {
            path: path.into(),
            digest: String::new(),
        }],
        dest: dest.into(),
        cwd: cwd.into(),
        chown: None,
        chmod: None,
        extract_archives: false,
        inline: Vec::new(),
        parents: false,
        exclude: Vec::new(),
    })
}

fn on(v: strata_solver::VertexId, role: EdgeRole) -> Input {
    Input { vertex: v, role }
}

#[test]
fn copy_workdir_and_copy_from() -> R {
    let ctx = tempfile::tempdir()?;
    let layers = tempfile::tempdir()?;
    fs::write(ctx.path().join("hello.txt"), "hello\n")?;
    let context = || CopySource::Context { name: ".".into() };

    let mut g = BuildGraph::new();
    // stage 0: FROM scratch; COPY hello.txt /src/
    let s0 = g.add(Op::SourceScratch, "[build 1/2] FROM scratch", vec![])?;
    let c0 = g.add(
        copy(context(), "hello.txt", "/src/", "/"),
        "[build 2/2] COPY hello.txt /src/",
        vec![on(s0, EdgeRole::Parent)],
    )?;
    // stage 1: FROM scratch; WORKDIR /app; COPY --from=build /src/hello.txt renamed
    let s1 = g.add(Op::SourceScratch, "[stage-1 1/3] FROM scratch", vec![])?;
    let w = g.add(
        Op::Mkdir(MkdirOp {
            path: "/app".into(),
            owner: String::new(),
        }),
        "[stage-1 2/3] WORKDIR /app",
        vec![on(s1, EdgeRole::Parent)],
    )?;
    let f = g.add(
        copy(CopySource::Vertex, "/src/hello.txt", "renamed", "/app"),
        "[stage-1 3/3] COPY --from=build /src/hello.txt renamed",
        vec![on(w, EdgeRole::Parent), on(c0, EdgeRole::CopyFrom)],
    )?;
    g.compute_keys()?;

    let exec = executor(layers.path(), ctx.path(), DockerIgnore::default());
    let out = Scheduler::new(2, ChannelSink::discard()).run(&g, &[f], exec)?;
    let stack = out.get(&f).ok_or("no output for the final vertex")?;
    assert_eq!(stack.len(), 2, "WORKDIR layer + COPY layer: {stack:?}");
    let top = stack.last().ok_or("empty stack")?;
    assert_eq!(fs::read_to_string(top.dir.join("app/renamed"))?, "hello\n");
    assert!(stack[0].dir.join("app").is_dir());
    Ok(())
}

#[test]
fn run_on_scratch_fails_naming_the_step_and_the_missing_shell() -> R {
    let layers = tempfile::tempdir()?;
    let mut g = BuildGraph::new();
    let s = g.add(Op::SourceScratch, "[1/2] FROM scratch", vec![])?;
    let r = g.add(
        Op::Exec(ExecOp {
            argv: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            env: vec![],
            user: String::new(),
            cwd: "/".into(),
            network: NetworkMode::Default,
            security: Security::Sandbox,
            mounts: vec![],
        }),
        "[2/2] RUN true",
        vec![on(s, EdgeRole::Parent)],
    )?;
    g.compute_keys()?;
    let exec = executor(layers.path(), layers.path(), DockerIgnore::default());
    match Scheduler::new(1, ChannelSink::discard()).run(&g, &[r], exec) {
        Err(ScheduleError::StepFailed { name, error, .. }) => {
            assert_eq!(name, "[2/2] RUN true");
            let error = error.to_string();
            assert!(error.contains("/bin/sh"), "{error}");
        }
        other => return Err(format!("expected a step failure, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn dockerignore_filters_directory_copies_and_refuses_ignored_sources() -> R {
    let ctx = tempfile::tempdir()?;
    let layers = tempfile::tempdir()?;
    fs::create_dir_all(ctx.path().join("app/logs"))?;
    fs::write(ctx.path().join("app/main.sh"), "echo hi\n")?;
    fs::write(ctx.path().join("app/debug.log"), "noise\n")?;
    fs::write(ctx.path().join("app/logs/keep.log"), "kept\n")?;
    fs::write(ctx.path().join("secret.txt"), "s3cret\n")?;
    let ignore = strata_cache::DockerIgnore::parse("secret.txt\n**/*.log\n!app/logs/keep.log\n")?;
    let context = || CopySource::Context { name: ".".into() };

    let mut g = BuildGraph::new();
    let s = g.add(Op::SourceScratch, "[1/2] FROM scratch", vec![])?;
    let c = g.add(
        copy(context(), "app", "/app/", "/"),
        "[2/2] COPY app /app/",
        vec![on(s, EdgeRole::Parent)],
    )?;
    g.compute_keys()?;
    let exec = executor(layers.path(), ctx.path(), ignore.clone());
    let out = Scheduler::new(2, ChannelSink::discard()).run(&g, &[c], exec)?;
    let top = &out.get(&c).and_then(|s| s.last()).ok_or("no layer")?.dir;
    assert!(top.join("app/main.sh").is_file());
    assert!(
        !top.join("app/debug.log").exists(),
        "ignored file was copied"
    );
    assert_eq!(fs::read_to_string(top.join("app/logs/keep.log"))?, "kept\n");

    let mut g = BuildGraph::new();
    let s = g.add(Op::SourceScratch, "[1/2] FROM scratch", vec![])?;
    let c = g.add(
        copy(context(), "secret.txt", "/", "/"),
        "[2/2] COPY secret.txt /",
        vec![on(s, EdgeRole::Parent)],
    )?;
    g.compute_keys()?;
    let exec = executor(layers.path(), ctx.path(), ignore);
    let err = Scheduler::new(2, ChannelSink::discard())
        .run(&g, &[c], exec)
        .err()
        .ok_or("copying an ignored file must fail")?;
    let text = err.to_string();
    assert!(
        text.contains("secret.txt: excluded by .dockerignore line 1 (`secret.txt`)"),
        "{text}"
    );
    Ok(())
}

#[test]
fn lowered_scratch_build_runs() -> R {
    let ctx = tempfile::tempdir()?;
    let layers = tempfile::tempdir()?;
    fs::write(ctx.path().join("a.txt"), "A\n")?;
    let src = "FROM scratch AS build\nCOPY a.txt /out/\n\nFROM scratch\nWORKDIR /app\nCOPY --from=build /out/a.txt copied.txt\n";
    let df = strata_parser::parse(src).map_err(|e| format!("{e:?}"))?;
    let l = lower(&df, src, &LowerOptions::default())?;
    let exec = executor(layers.path(), ctx.path(), DockerIgnore::default());
    let out = Scheduler::new(2, ChannelSink::discard()).run(&l.graph, &[l.target], exec)?;
    let stack = out.get(&l.target).ok_or("no output")?;
    let top = stack.last().ok_or("no layer")?;
    assert_eq!(fs::read_to_string(top.dir.join("app/copied.txt"))?, "A\n");
    assert_eq!(l.config.working_dir, "/app");
    Ok(())
}

/// A step whose key lock cannot be taken (here `locks` is a file, not a
/// folder) fails naming the lock, rather than running unlocked.
#[test]
fn key_lock_failure_fails_the_step_naming_the_lock() -> R {
    let layers = tempfile::tempdir()?;
    let mut g = BuildGraph::new();
    let s = g.add(Op::SourceScratch, "[1/2] FROM scratch", vec![])?;
    let w = g.add(
        Op::Mkdir(MkdirOp {
            path: "/app".into(),
            owner: String::new(),
        }),
        "[2/2] WORKDIR /app",
        vec![on(s, EdgeRole::Parent)],
    )?;
    g.compute_keys()?;
    let key = g
        .vertex(w)
        .and_then(|v| v.key)
        .ok_or("WORKDIR has no key")?;
    let exec = executor(layers.path(), layers.path(), DockerIgnore::default());
    let root = layers.path().join("root");
    let locks = root.join("locks");
    if locks.is_dir() {
        fs::remove_dir_all(&locks)?;
    }
    fs::write(&locks, "not a folder")?;
    match Scheduler::new(1, ChannelSink::discard()).run(&g, &[w], exec) {
        Err(ScheduleError::StepFailed {
            name,
            error: OpError::KeyLock { path, source },
            ..
        }) => {
            assert_eq!(name, "[2/2] WORKDIR /app");
            assert_eq!(path, KeyLock::path(&root, &key.0));
            let reason = source.to_string();
            assert!(reason.contains("locks"), "{reason}");
        }
        other => return Err(format!("expected a key lock failure, got {other:?}").into()),
    }
    Ok(())
}
