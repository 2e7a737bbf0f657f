//! How a build's progress is shown: `--progress=auto|tty|plain|rawjson|quiet`.
//!
//! Every renderer takes the solver's [`ProgressEvent`]s and the steps that
//! are not vertices (the export); [`pick`] chooses one from the flags and
//! the terminal. The live display ([`tty`]) is used only on a terminal that
//! is not `TERM=dumb`; a pipe always gets plain lines.

mod logs;
mod plain;
mod rawjson;
mod tty;

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use strata_solver::{ProgressEvent, VertexId};

pub use logs::StepLogs;

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// The live display on a terminal, plain lines elsewhere.
    Auto,
    /// The live display whenever standard error is a terminal (even `TERM=dumb`).
    Tty,
    /// BuildKit-like plain lines.
    Plain,
    /// One JSON object per event per line (see the README).
    Rawjson,
    /// Nothing but errors; the image ID on standard output.
    Quiet,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colours on a terminal unless `NO_COLOR` is set.
    Auto,
    /// Always colours.
    Always,
    /// Never colours.
    Never,
}

/// A step of the build that is not a vertex, such as the export.
pub struct Step {
    n: usize,
    start: Instant,
}

/// What the build made, for the closing summary.
pub struct Summary {
    /// The first name given (`-t`), if any.
    pub name: Option<String>,
    /// The image ID (config digest).
    pub id: String,
    /// The manifest digest.
    pub digest: String,
    /// The layers' compressed size in bytes.
    pub size: u64,
}

/// Shows a build's progress.
pub trait Renderer: Send {
    /// One event from the solver.
    fn render(&mut self, event: &ProgressEvent) -> io::Result<()>;
    /// Starts a step that is not a vertex.
    fn begin(&mut self, name: &str) -> Step;
    /// One line of such a step's output.
    fn line(&mut self, step: &Step, text: &str);
    /// Such a step finished.
    fn done(&mut self, step: Step);
    /// A block of text outside any step (a failed step's diagnostic).
    fn note(&mut self, text: &str) -> io::Result<()>;
    /// The build finished; what it made.
    fn summary(&mut self, summary: &Summary);
}

/// Numbers vertices (`#N`) in the order they are first seen, and the other
/// steps after them; remembers when each started.
#[derive(Default)]
struct Numbering {
    steps: HashMap<VertexId, (usize, Instant)>,
    extra: usize,
}

impl Numbering {
    fn vertex(&mut self, vertex: VertexId) -> (usize, Instant) {
        let next = self.steps.len() + self.extra + 1;
        *self
            .steps
            .entry(vertex)
            .or_insert_with(|| (next, Instant::now()))
    }

    fn begin(&mut self) -> Step {
        self.extra += 1;
        Step {
            n: self.steps.len() + self.extra,
            start: Instant::now(),
        }
    }
}

/// Whether colours are on for standard error.
pub fn colors(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && io::stderr().is_terminal()
        }
    }
}

/// Whether the live display can be drawn: standard error is a terminal,
/// and for `auto` the terminal is not `TERM=dumb`.
fn live(mode: ProgressMode) -> bool {
    let dumb = !std::env::var("TERM").is_ok_and(|t| !t.is_empty() && t != "dumb");
    match mode {
        ProgressMode::Auto => io::stderr().is_terminal() && !dumb,
        ProgressMode::Tty => io::stderr().is_terminal(),
        _ => false,
    }
}

/// The renderer the flags ask for, writing to `err` (the live display
/// draws on standard error itself).
pub fn pick<'w>(
    mode: ProgressMode,
    color: ColorChoice,
    err: &'w mut (dyn Write + Send),
) -> Box<dyn Renderer + 'w> {
    match mode {
        ProgressMode::Quiet => Box::new(Quiet { err }),
        ProgressMode::Rawjson => Box::new(rawjson::JsonRenderer::new(err)),
        ProgressMode::Auto | ProgressMode::Tty if live(mode) => {
            Box::new(tty::TtyRenderer::new(colors(color)))
        }
        _ => Box::new(plain::PlainRenderer::new(err)),
    }
}

/// `--progress=quiet`: errors only.
struct Quiet<W: Write> {
    err: W,
}

impl<W: Write + Send> Renderer for Quiet<W> {
    fn render(&mut self, _: &ProgressEvent) -> io::Result<()> {
        Ok(())
    }
    fn begin(&mut self, _: &str) -> Step {
        Step {
            n: 0,
            start: Instant::now(),
        }
    }
    fn line(&mut self, _: &Step, _: &str) {}
    fn done(&mut self, _: Step) {}
    fn note(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.err, "{text}")
    }
    fn summary(&mut self, _: &Summary) {}
}

/// `1.2s`, as BuildKit shows a step's time.
fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
