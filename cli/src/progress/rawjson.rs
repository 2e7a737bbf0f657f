//! `--progress=rawjson`: one JSON object per line for each event, for tools.
//! The fields are listed in the README; every object has `event` and
//! `time` (milliseconds since 1970), and a step's objects its number `step`.

use std::io::{self, Write};

use serde_json::{Value, json};
use strata_solver::{ProgressEvent, Stream};

use super::{Numbering, Renderer, Step, Summary};

/// Writes one JSON object per event on `out`.
pub struct JsonRenderer<W: Write> {
    out: W,
    num: Numbering,
}

impl<W: Write> JsonRenderer<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            num: Numbering::default(),
        }
    }

    fn emit(&mut self, event: &str, mut fields: Value) -> io::Result<()> {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, ms);
        if let Value::Object(m) = &mut fields {
            m.insert("event".into(), json!(event));
            m.insert("time".into(), json!(time));
        }
        writeln!(self.out, "{fields}")
    }
}

/// Whole milliseconds (JSON numbers are at most 64 bits here).
fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<W: Write + Send> Renderer for JsonRenderer<W> {
    fn render(&mut self, event: &ProgressEvent) -> io::Result<()> {
        match event {
            ProgressEvent::VertexStarted { vertex, name } => {
                let (n, _) = self.num.vertex(*vertex);
                self.emit("started", json!({"step": n, "name": name}))
            }
            ProgressEvent::VertexCached { vertex, name } => {
                let (n, _) = self.num.vertex(*vertex);
                self.emit("cached", json!({"step": n, "name": name}))
            }
            ProgressEvent::Log {
                vertex,
                stream,
                line,
            } => {
                let (n, _) = self.num.vertex(*vertex);
                let stream = match stream {
                    Stream::Stdout => "stdout",
                    Stream::Stderr => "stderr",
                };
                let data = String::from_utf8_lossy(line);
                self.emit("log", json!({"step": n, "stream": stream, "data": data}))
            }
            ProgressEvent::VertexDone { vertex, elapsed } => {
                let (n, _) = self.num.vertex(*vertex);
                self.emit("done", json!({"step": n, "elapsed_ms": ms(*elapsed)}))
            }
            ProgressEvent::VertexFailed {
                vertex,
                error,
                elapsed,
            } => {
                let (n, _) = self.num.vertex(*vertex);
                self.emit(
                    "failed",
                    json!({"step": n, "error": error, "elapsed_ms": ms(*elapsed)}),
                )
            }
            ProgressEvent::Message(text) => self.emit("message", json!({"text": text})),
            ProgressEvent::UnusedBuildArgs(names) => {
                self.emit("unused_build_args", json!({"names": names}))
            }
            ProgressEvent::Warning(w) => self.emit(
                "warning",
                json!({"rule": w.rule, "message": w.message, "file": w.file, "line": w.line}),
            ),
        }
    }

    fn begin(&mut self, name: &str) -> Step {
        let step = self.num.begin();
        let _ = self.emit("started", json!({"step": step.n, "name": name}));
        step
    }

    fn line(&mut self, step: &Step, text: &str) {
        let _ = self.emit(
            "log",
            json!({"step": step.n, "stream": "stdout", "data": text}),
        );
    }

    fn done(&mut self, step: Step) {
        let elapsed = ms(step.start.elapsed());
        let _ = self.emit("done", json!({"step": step.n, "elapsed_ms": elapsed}));
    }

    fn note(&mut self, text: &str) -> io::Result<()> {
        self.emit("diagnostic", json!({"text": text}))
    }

    fn summary(&mut self, s: &Summary) {
        let _ = self.emit(
            "image",
            json!({"name": s.name, "id": s.id, "digest": s.digest, "size": s.size}),
        );
    }
}
