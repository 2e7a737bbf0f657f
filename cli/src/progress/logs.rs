//! Each running step's whole output, kept in a file under
//! `$STRATA_ROOT/logs/<build>/` while it runs: a step that succeeds loses
//! its file, a failed step keeps it, and its path is printed with the
//! failure (the terminal shows only the last lines).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use strata_solver::{ProgressEvent, VertexId};

/// The log files of one build.
pub struct StepLogs {
    dir: PathBuf,
    names: HashMap<VertexId, String>,
    open: HashMap<VertexId, (PathBuf, File)>,
    failed: Option<PathBuf>,
}

impl StepLogs {
    /// Logs go to a new directory under `root/logs`, made on the first line.
    pub fn new(root: &Path) -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            dir: root
                .join("logs")
                .join(format!("{secs}-{}", std::process::id())),
            names: HashMap::new(),
            open: HashMap::new(),
            failed: None,
        }
    }

    /// Follows one event. Writing a log never fails the build: a line that
    /// cannot be written is lost from the file only.
    pub fn on(&mut self, event: &ProgressEvent) {
        match event {
            ProgressEvent::VertexStarted { vertex, name } => {
                self.names.insert(*vertex, name.clone());
            }
            ProgressEvent::Log { vertex, line, .. } => {
                if let Some((_, f)) = self.file(*vertex) {
                    let _ = f.write_all(line);
                    let _ = f.write_all(b"\n");
                }
            }
            ProgressEvent::VertexDone { vertex, .. } => {
                if let Some((path, _)) = self.open.remove(vertex) {
                    let _ = std::fs::remove_file(path);
                }
            }
            ProgressEvent::VertexFailed { vertex, error, .. } => {
                if let Some((_, f)) = self.file(*vertex) {
                    let _ = writeln!(f, "ERROR: {error}");
                }
                self.failed = self.open.remove(vertex).map(|(p, _)| p);
            }
            _ => {}
        }
    }

    fn file(&mut self, vertex: VertexId) -> Option<&mut (PathBuf, File)> {
        if !self.open.contains_key(&vertex) {
            let name = self.names.get(&vertex).map_or("step", String::as_str);
            let path = self.dir.join(file_name(vertex, name));
            let file = std::fs::create_dir_all(&self.dir)
                .and_then(|()| File::create(&path))
                .ok()?;
            self.open.insert(vertex, (path, file));
        }
        self.open.get_mut(&vertex)
    }

    /// The failed step's log, if one failed; removes what no one will read.
    pub fn finish(mut self) -> Option<PathBuf> {
        for (_, (path, _)) in self.open.drain() {
            let _ = std::fs::remove_file(path);
        }
        // Fails, as it should, when a failed step's log is in it.
        let _ = std::fs::remove_dir(&self.dir);
        self.failed
    }
}

/// `3-build-2-4.log` for vertex 3 named `[build 2/4] RUN make`.
fn file_name(vertex: VertexId, name: &str) -> String {
    let place = name
        .strip_prefix('[')
        .and_then(|n| n.split_once(']'))
        .map_or(name, |(p, _)| p);
    let slug: String = place
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{}-{}.log", vertex.index(), slug.trim_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use strata_solver::{BuildGraph, EdgeRole, Input, Op, Stream};

    fn run(logs: &mut StepLogs, vertex: VertexId, name: &str) {
        logs.on(&ProgressEvent::VertexStarted {
            vertex,
            name: name.into(),
        });
        logs.on(&ProgressEvent::Log {
            vertex,
            stream: Stream::Stdout,
            line: b"out".to_vec(),
        });
    }

    #[test]
    fn only_a_failed_steps_log_is_kept() -> Result<(), Box<dyn std::error::Error>> {
        let mut g = BuildGraph::new();
        let a = g.add(Op::SourceScratch, "[build 1/2] RUN ok", vec![])?;
        let input = Input {
            vertex: a,
            role: EdgeRole::Parent,
        };
        let b = g.add(Op::SourceScratch, "[build 2/2] RUN no", vec![input])?;
        let root = tempfile::tempdir()?;
        let elapsed = Duration::from_millis(5);

        let mut logs = StepLogs::new(root.path());
        run(&mut logs, a, "[build 1/2] RUN ok");
        logs.on(&ProgressEvent::VertexDone { vertex: a, elapsed });
        assert_eq!(logs.finish(), None);
        // Nothing is left of a build whose steps all succeeded.
        assert_eq!(std::fs::read_dir(root.path().join("logs"))?.count(), 0);

        let mut logs = StepLogs::new(root.path());
        run(&mut logs, a, "[build 1/2] RUN ok");
        run(&mut logs, b, "[build 2/2] RUN no");
        logs.on(&ProgressEvent::VertexDone { vertex: a, elapsed });
        let error = "exit code 1".to_string();
        logs.on(&ProgressEvent::VertexFailed {
            vertex: b,
            error,
            elapsed,
        });
        let path = logs.finish().ok_or("no log kept")?;
        assert_eq!(std::fs::read_to_string(&path)?, "out\nERROR: exit code 1\n");
        assert!(
            path.to_string_lossy().ends_with("-build-2-2.log"),
            "{path:?}"
        );
        let dir = path.parent().ok_or("no folder")?;
        assert_eq!(std::fs::read_dir(dir)?.count(), 1);
        Ok(())
    }
}
