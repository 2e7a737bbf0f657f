//! Plain progress output (`--progress=plain`, and any pipe): BuildKit-like lines.
//!
//! ```text
//! #1 [build 2/3] RUN make
//! #1 0.215 compiling...
//! #1 DONE 1.2s
//! ```

use std::io::{self, Write};

use strata_solver::ProgressEvent;

use super::{Numbering, Renderer, Step, Summary, secs};

/// Renders progress events as plain text lines on `out`.
pub struct PlainRenderer<W: Write> {
    out: W,
    num: Numbering,
}

impl<W: Write> PlainRenderer<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            num: Numbering::default(),
        }
    }

    /// Gives the writer back.
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> Renderer for PlainRenderer<W> {
    fn begin(&mut self, name: &str) -> Step {
        let step = self.num.begin();
        let _ = writeln!(self.out, "#{} {name}", step.n);
        step
    }

    fn line(&mut self, step: &Step, text: &str) {
        let t = step.start.elapsed().as_secs_f64();
        let _ = writeln!(self.out, "#{} {t:.3} {text}", step.n);
    }

    fn done(&mut self, step: Step) {
        let _ = writeln!(self.out, "#{} DONE {}", step.n, secs(step.start.elapsed()));
    }

    fn note(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.out, "{text}")
    }

    // Plain output stays BuildKit's: the image ID was in "writing image".
    fn summary(&mut self, _: &Summary) {}

    fn render(&mut self, event: &ProgressEvent) -> io::Result<()> {
        match event {
            ProgressEvent::VertexStarted { vertex, name } => {
                let (n, _) = self.num.vertex(*vertex);
                writeln!(self.out, "#{n} {name}")
            }
            ProgressEvent::VertexCached { vertex, name } => {
                let (n, _) = self.num.vertex(*vertex);
                writeln!(self.out, "#{n} {name}")?;
                writeln!(self.out, "#{n} CACHED")
            }
            ProgressEvent::Log { vertex, line, .. } => {
                let (n, start) = self.num.vertex(*vertex);
                let t = start.elapsed().as_secs_f64();
                write!(self.out, "#{n} {t:.3} ")?;
                self.out.write_all(line)?;
                writeln!(self.out)
            }
            ProgressEvent::VertexDone { vertex, elapsed } => {
                let (n, _) = self.num.vertex(*vertex);
                writeln!(self.out, "#{n} DONE {}", secs(*elapsed))
            }
            ProgressEvent::Message(text) => writeln!(self.out, "{text}"),
            ProgressEvent::UnusedBuildArgs(names) => writeln!(
                self.out,
                "[Warning] One or more build-args [{}] were not consumed",
                names.join(" ")
            ),
            ProgressEvent::Warning(w) => writeln!(
                self.out,
                "WARNING: {}: {} ({}:{})",
                w.rule, w.message, w.file, w.line
            ),
            ProgressEvent::VertexFailed { vertex, error, .. } => {
                let (n, _) = self.num.vertex(*vertex);
                writeln!(self.out, "#{n} ERROR: {error}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, mpsc};
    use std::time::Duration;
    use strata_solver::Job;
    use strata_solver::{BuildGraph, ChannelSink, Executor, Op, OpError, Scheduler};
    use strata_solver::{EdgeRole, Input};

    /// Produces real vertex ids and events through the scheduler.
    struct Echo;
    impl Executor for Echo {
        type Output = ();
        fn execute(&self, job: Job<()>) -> Result<(), OpError> {
            job.log.line(strata_solver::Stream::Stdout, b"hello");
            Ok(())
        }
    }

    #[test]
    fn renders_plain_lines() -> Result<(), Box<dyn std::error::Error>> {
        let mut g = BuildGraph::new();
        let s = g.add(Op::SourceScratch, "[1/2] FROM scratch", vec![])?;
        let t = g.add(
            Op::SourceScratch,
            "[2/2] RUN echo hello",
            vec![Input {
                vertex: s,
                role: EdgeRole::Parent,
            }],
        )?;
        let (tx, rx) = mpsc::channel();
        Scheduler::new(1, ChannelSink::new(tx)).run(&g, &[t], Arc::new(Echo))?;
        let mut r = PlainRenderer::new(Vec::new());
        for e in rx.try_iter() {
            r.render(&e)?;
        }
        r.render(&ProgressEvent::VertexDone {
            vertex: t,
            elapsed: Duration::from_millis(1234),
        })?;
        let text = String::from_utf8(r.into_inner())?;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#1 [1/2] FROM scratch");
        assert!(lines[1].starts_with("#1 0.") && lines[1].ends_with(" hello"));
        assert!(lines[2].starts_with("#1 DONE "));
        assert_eq!(lines[3], "#2 [2/2] RUN echo hello");
        assert_eq!(lines.last().copied(), Some("#2 DONE 1.2s"));
        Ok(())
    }
}
