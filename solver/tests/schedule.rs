//! The scheduler with a fake executor: order, parallelism, caching, failure.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use strata_solver::Job;
use strata_solver::Stream;
use strata_solver::graph::{EdgeRole, ExecOp, Input};
use strata_solver::{
    BuildGraph, ChannelSink, Executor, Op, OpError, ProgressEvent, ScheduleError, Scheduler,
    Vertex, VertexId,
};
use strata_solver::{NetworkMode, Security};

/// Each vertex's output is the list of names of everything it saw, in order.
#[derive(Default)]
struct Fake {
    running: AtomicUsize,
    max_running: AtomicUsize,
    order: Mutex<Vec<String>>,
    fail: Option<String>,
    cached: Option<String>,
}

impl Executor for Fake {
    type Output = Vec<String>;

    fn cached(&self, _id: VertexId, vertex: &Vertex) -> Option<Vec<String>> {
        (self.cached.as_deref() == Some(vertex.name.as_str())).then(|| vec![vertex.name.clone()])
    }

    fn execute(&self, job: Job<Vec<String>>) -> Result<Vec<String>, OpError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        job.log.line(
            Stream::Stdout,
            format!("hello from {}", job.vertex.name).as_bytes(),
        );
        self.running.fetch_sub(1, Ordering::SeqCst);
        if let Ok(mut o) = self.order.lock() {
            o.push(job.vertex.name.clone());
        }
        if self.fail.as_deref() == Some(job.vertex.name.as_str()) {
            return Err(OpError::ExitCode { code: 3 });
        }
        let mut seen: Vec<String> = job.inputs.concat();
        seen.push(job.vertex.name.clone());
        Ok(seen)
    }
}

fn exec(name: &str) -> Op {
    Op::Exec(ExecOp {
        argv: vec![name.to_string()],
        env: vec![],
        user: String::new(),
        cwd: "/".into(),
        network: NetworkMode::None,
        security: Security::Sandbox,
        mounts: vec![],
    })
}

fn on(v: VertexId, role: EdgeRole) -> Input {
    Input { vertex: v, role }
}

/// Two independent stages `a1 → a2` and `b1 → b2`, joined by `final` (parent a2, copy from b2),
/// plus `unused`, which no target needs.
fn diamond() -> Result<(BuildGraph, VertexId), Box<dyn std::error::Error>> {
    let mut g = BuildGraph::new();
    let s = g.add(Op::SourceScratch, "scratch", vec![])?;
    let a1 = g.add(exec("a1"), "a1", vec![on(s, EdgeRole::Parent)])?;
    let a2 = g.add(exec("a2"), "a2", vec![on(a1, EdgeRole::Parent)])?;
    let b1 = g.add(exec("b1"), "b1", vec![on(s, EdgeRole::Parent)])?;
    let b2 = g.add(exec("b2"), "b2", vec![on(b1, EdgeRole::Parent)])?;
    g.add(exec("unused"), "unused", vec![on(s, EdgeRole::Parent)])?;
    let f = g.add(
        exec("final"),
        "final",
        vec![on(a2, EdgeRole::Parent), on(b2, EdgeRole::CopyFrom)],
    )?;
    g.compute_keys()?;
    Ok((g, f))
}

struct ScratchIsEmpty(Fake);

impl Executor for ScratchIsEmpty {
    type Output = Vec<String>;
    fn cached(&self, id: VertexId, vertex: &Vertex) -> Option<Vec<String>> {
        self.0.cached(id, vertex)
    }
    fn execute(&self, job: Job<Vec<String>>) -> Result<Vec<String>, OpError> {
        if matches!(job.vertex.op, Op::SourceScratch) {
            return Ok(vec![]);
        }
        self.0.execute(job)
    }
}

#[test]
fn runs_in_dependency_order_with_parallel_branches() -> Result<(), Box<dyn std::error::Error>> {
    let (g, f) = diamond()?;
    let (tx, rx) = mpsc::channel();
    let exec = Arc::new(ScratchIsEmpty(Fake::default()));
    let out = Scheduler::new(2, ChannelSink::new(tx)).run(&g, &[f], exec.clone())?;
    assert_eq!(
        out.get(&f).cloned().unwrap_or_default(),
        vec!["a1", "a2", "b1", "b2", "final"]
    );
    let order = exec.0.order.lock().map(|o| o.clone()).unwrap_or_default();
    assert!(!order.contains(&"unused".to_string()), "pruned: {order:?}");
    assert_eq!(order.last().map(String::as_str), Some("final"));
    assert_eq!(
        exec.0.max_running.load(Ordering::SeqCst),
        2,
        "branches overlap"
    );

    let events: Vec<ProgressEvent> = rx.try_iter().collect();
    let started = events
        .iter()
        .filter(|e| matches!(e, ProgressEvent::VertexStarted { .. }))
        .count();
    let done = events
        .iter()
        .filter(|e| matches!(e, ProgressEvent::VertexDone { .. }))
        .count();
    assert_eq!((started, done), (6, 6));
    assert!(events.iter().any(|e| matches!(e,
        ProgressEvent::Log { line, .. } if line == b"hello from final")));
    Ok(())
}

#[test]
fn parallelism_one_runs_one_at_a_time() -> Result<(), Box<dyn std::error::Error>> {
    let (g, f) = diamond()?;
    let exec = Arc::new(ScratchIsEmpty(Fake::default()));
    Scheduler::new(1, ChannelSink::discard()).run(&g, &[f], exec.clone())?;
    assert_eq!(exec.0.max_running.load(Ordering::SeqCst), 1);
    Ok(())
}

#[test]
fn first_failure_stops_the_build_and_names_the_step() -> Result<(), Box<dyn std::error::Error>> {
    let (g, f) = diamond()?;
    let (tx, rx) = mpsc::channel();
    let exec = Arc::new(ScratchIsEmpty(Fake {
        fail: Some("a1".into()),
        ..Fake::default()
    }));
    let err = Scheduler::new(1, ChannelSink::new(tx))
        .run(&g, &[f], exec.clone())
        .err()
        .ok_or("the build should fail")?;
    match &err {
        ScheduleError::StepFailed {
            name, last_lines, ..
        } => {
            assert_eq!(name, "a1");
            assert_eq!(last_lines, &vec!["hello from a1".to_string()]);
        }
        other => return Err(format!("unexpected error {other}").into()),
    }
    assert_eq!(err.exit_code(), Some(3));
    assert!(err.to_string().contains("a1"), "{err}");
    let order = exec.0.order.lock().map(|o| o.clone()).unwrap_or_default();
    assert!(!order.contains(&"a2".to_string()) && !order.contains(&"final".to_string()));
    let failed: HashMap<VertexId, String> = rx
        .try_iter()
        .filter_map(|e| match e {
            ProgressEvent::VertexFailed { vertex, error, .. } => Some((vertex, error)),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1);
    Ok(())
}

#[test]
fn cached_vertices_do_not_run() -> Result<(), Box<dyn std::error::Error>> {
    let (g, f) = diamond()?;
    let (tx, rx) = mpsc::channel();
    let exec = Arc::new(ScratchIsEmpty(Fake {
        cached: Some("a2".into()),
        ..Fake::default()
    }));
    let out = Scheduler::new(2, ChannelSink::new(tx)).run(&g, &[f], exec.clone())?;
    let order = exec.0.order.lock().map(|o| o.clone()).unwrap_or_default();
    assert!(!order.contains(&"a2".to_string()));
    assert_eq!(
        out.get(&f).cloned().unwrap_or_default(),
        vec!["a2", "b1", "b2", "final"]
    );
    assert!(
        rx.try_iter()
            .any(|e| matches!(e, ProgressEvent::VertexCached { name, .. } if name == "a2"))
    );
    Ok(())
}

#[test]
fn no_space_is_found_anywhere_in_the_causes() {
    let enospc = || std::io::Error::from_raw_os_error(28);
    let direct = OpError::Io {
        action: "write",
        path: "/x".into(),
        source: enospc(),
    };
    assert!(direct.no_space());
    let nested: OpError = strata_cache::CacheError::Io {
        path: "/y".into(),
        source: enospc(),
    }
    .into();
    assert!(nested.no_space());
    assert!(!OpError::ExitCode { code: 1 }.no_space());
    let denied = OpError::Io {
        action: "write",
        path: "/x".into(),
        source: std::io::Error::from_raw_os_error(13),
    };
    assert!(!denied.no_space());
}
