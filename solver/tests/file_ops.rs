//! Scheduler + FileExecutor on real directories: COPY from the context, WORKDIR,
//! COPY --from another stage, and a RUN reported as a named failure.

use std::fs;
use std::sync::Arc;

use strata_solver::graph::{
    CopyOp, CopySource, EdgeRole, ExecOp, Input, MkdirOp, NetworkMode, Selection,
};
use strata_solver::ops::FileExecutor;
use strata_solver::{BuildGraph, Op, ProgressSink, ScheduleError, Scheduler};

type R = Result<(), Box<dyn std::error::Error>>;

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

    let exec = Arc::new(FileExecutor::new(layers.path(), ctx.path()));
    let out = Scheduler::new(2, ProgressSink::discard()).run(&g, &[f], exec)?;
    let stack = out.get(&f).ok_or("no output for the final vertex")?;
    assert_eq!(stack.len(), 2, "WORKDIR layer + COPY layer: {stack:?}");
    let top = stack.last().ok_or("empty stack")?;
    assert_eq!(fs::read_to_string(top.join("app/renamed"))?, "hello\n");
    assert!(stack[0].join("app").is_dir());
    Ok(())
}

#[test]
fn run_without_sandbox_fails_naming_the_step() -> R {
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
        }),
        "[2/2] RUN true",
        vec![on(s, EdgeRole::Parent)],
    )?;
    g.compute_keys()?;
    let exec = Arc::new(FileExecutor::new(layers.path(), layers.path()));
    match Scheduler::new(1, ProgressSink::discard()).run(&g, &[r], exec) {
        Err(ScheduleError::StepFailed { name, .. }) => assert_eq!(name, "[2/2] RUN true"),
        other => return Err(format!("expected a step failure, got {other:?}").into()),
    }
    Ok(())
}
