//! The live display on a terminal (`--progress=auto|tty`), drawn with
//! indicatif:
//!
//! ```text
//! [+] Building 4.2s (3 finished, 2 running)
//! => #1 [base 1/2] FROM scratch                          CACHED
//! ⠙ #4 [build 2/3] RUN make 2.1s
//!    │ cc -c main.c
//! ⠙ #5 [docs 2/2] RUN gen-docs 1.0s
//! ```
//!
//! Each running step is a spinner with its own timer and the last lines of
//! its output below it; parallel stages' steps run side by side. A step
//! that finishes is cleared and printed once above the live area with DONE,
//! CACHED or ERROR and its time, so the scrollback holds one line per step.
//! Every line is cut to the terminal's width when drawn, so a resize
//! redraws instead of wrapping.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use strata_solver::{ProgressEvent, VertexId};

use super::{Numbering, Renderer, Step, Summary, secs};

/// How many of a running step's last output lines are shown under it.
const WINDOW: usize = 4;
/// Redraws per second (timers tick at this rate).
const TICK: Duration = Duration::from_millis(100);

/// ANSI colours, or none.
#[derive(Clone, Copy)]
struct Palette(bool);

impl Palette {
    fn paint(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn green(self, t: &str) -> String {
        self.paint("32", t)
    }
    fn blue(self, t: &str) -> String {
        self.paint("34", t)
    }
    fn red(self, t: &str) -> String {
        self.paint("1;31", t)
    }
    fn yellow(self, t: &str) -> String {
        self.paint("33", t)
    }
    fn dim(self, t: &str) -> String {
        self.paint("2", t)
    }
}

/// A step on screen.
struct Running {
    n: usize,
    name: String,
    bar: ProgressBar,
    window: VecDeque<String>,
}

/// Draws the live display on standard error.
pub struct TtyRenderer {
    multi: MultiProgress,
    header: ProgressBar,
    num: Numbering,
    running: HashMap<VertexId, Running>,
    /// Steps that are not vertices, by number.
    others: HashMap<usize, Running>,
    finished: usize,
    run: usize,
    cached: usize,
    start: Instant,
    palette: Palette,
}

/// `{secs}`: the bar's time as `1.2s`.
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key("secs", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.1}s", s.elapsed().as_secs_f64());
        })
}

/// The terminal's width now (80 when it cannot be asked).
fn width() -> usize {
    console::Term::stderr()
        .size_checked()
        .map_or(80, |(_, w)| usize::from(w))
}

/// `text` cut to `max` columns, control characters shown as spaces.
fn fit(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if console::measure_text_width(&clean) <= max {
        return clean;
    }
    console::truncate_str(&clean, max, "…").into_owned()
}

impl TtyRenderer {
    /// Draws on standard error; `color` turns ANSI colours on.
    pub fn new(color: bool) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let header = multi.add(ProgressBar::new_spinner());
        header.set_style(style("[+] Building {secs} ({msg})"));
        header.set_message("starting");
        header.enable_steady_tick(TICK);
        Self {
            multi,
            header,
            num: Numbering::default(),
            running: HashMap::new(),
            others: HashMap::new(),
            finished: 0,
            run: 0,
            cached: 0,
            start: Instant::now(),
            palette: Palette(color),
        }
    }

    fn update_header(&self) {
        let running = self.running.len() + self.others.len();
        self.header
            .set_message(format!("{} finished, {running} running", self.finished));
    }

    /// A spinner for a step that starts now.
    fn spin(&self, n: usize, name: &str) -> Running {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(style("{spinner} {prefix} {secs}{msg}"));
        bar.set_prefix(fit(&format!("#{n} {name}"), width().saturating_sub(12)));
        bar.enable_steady_tick(TICK);
        Running {
            n,
            name: name.to_string(),
            bar,
            window: VecDeque::new(),
        }
    }

    /// Prints a finished step's one line above the live area.
    fn println(&self, text: &str) {
        let _ = self.multi.println(text);
    }

    fn finished_line(&self, n: usize, name: &str, status: &str) -> String {
        let label = fit(&format!("#{n} {name}"), width().saturating_sub(16));
        format!("=> {label}  {status}")
    }

    fn close(&mut self, r: Running, status: String) {
        r.bar.finish_and_clear();
        self.multi.remove(&r.bar);
        self.finished += 1;
        let line = self.finished_line(r.n, &r.name, &status);
        self.println(&line);
        self.update_header();
    }
}

/// Adds `text` to a step's window and redraws it.
fn push_line(r: &mut Running, text: &str, palette: Palette) {
    if r.window.len() == WINDOW {
        r.window.pop_front();
    }
    r.window.push_back(text.to_string());
    let max = width().saturating_sub(6);
    let mut msg = String::new();
    for line in &r.window {
        let _ = write!(
            msg,
            "\n   {}",
            palette.dim(&format!("│ {}", fit(line, max)))
        );
    }
    r.bar.set_message(msg);
}

impl Renderer for TtyRenderer {
    fn render(&mut self, event: &ProgressEvent) -> io::Result<()> {
        let p = self.palette;
        match event {
            ProgressEvent::VertexStarted { vertex, name } => {
                let (n, _) = self.num.vertex(*vertex);
                let r = self.spin(n, name);
                self.running.insert(*vertex, r);
                self.update_header();
            }
            ProgressEvent::VertexCached { vertex, name } => {
                let (n, _) = self.num.vertex(*vertex);
                self.cached += 1;
                self.finished += 1;
                let line = self.finished_line(n, name, &p.blue("CACHED"));
                self.println(&line);
                self.update_header();
            }
            ProgressEvent::Log { vertex, line, .. } => {
                if let Some(r) = self.running.get_mut(vertex) {
                    push_line(r, &String::from_utf8_lossy(line), p);
                }
            }
            ProgressEvent::VertexDone { vertex, elapsed } => {
                if let Some(r) = self.running.remove(vertex) {
                    self.run += 1;
                    self.close(r, p.green(&format!("DONE {}", secs(*elapsed))));
                }
            }
            ProgressEvent::VertexFailed {
                vertex,
                error,
                elapsed,
            } => {
                if let Some(r) = self.running.remove(vertex) {
                    let status = p.red(&format!("ERROR {}", secs(*elapsed)));
                    self.close(r, status);
                }
                self.println(&p.red(&format!("ERROR: {error}")));
            }
            ProgressEvent::Message(text) => self.println(text),
            ProgressEvent::UnusedBuildArgs(names) => self.println(&p.yellow(&format!(
                "[Warning] One or more build-args [{}] were not consumed",
                names.join(" ")
            ))),
            ProgressEvent::Warning(w) => self.println(&p.yellow(&format!(
                "WARNING: {}: {} ({}:{})",
                w.rule, w.message, w.file, w.line
            ))),
        }
        Ok(())
    }

    fn begin(&mut self, name: &str) -> Step {
        let step = self.num.begin();
        let r = self.spin(step.n, name);
        self.others.insert(step.n, r);
        self.update_header();
        step
    }

    fn line(&mut self, step: &Step, text: &str) {
        let p = self.palette;
        if let Some(r) = self.others.get_mut(&step.n) {
            push_line(r, text, p);
        }
    }

    fn done(&mut self, step: Step) {
        if let Some(r) = self.others.remove(&step.n) {
            let status = self
                .palette
                .green(&format!("DONE {}", secs(step.start.elapsed())));
            self.close(r, status);
        }
    }

    fn note(&mut self, text: &str) -> io::Result<()> {
        self.clear();
        self.multi.println(text)
    }

    fn summary(&mut self, s: &Summary) {
        self.clear();
        let p = self.palette;
        let wall = secs(self.start.elapsed());
        self.println(&format!(
            "{} in {wall}: {} steps run, {} cached",
            p.green("[+] Built"),
            self.run,
            self.cached
        ));
        if let Some(name) = &s.name {
            self.println(&format!("    image   {name}"));
        }
        self.println(&format!("    id      {}", s.id));
        self.println(&format!("    digest  {}", s.digest));
        self.println(&format!("    size    {}", crate::cache_cmd::human(s.size)));
    }
}

impl TtyRenderer {
    /// Takes the live area off the screen (before text that must stay).
    fn clear(&mut self) {
        let others = self.others.drain().map(|(_, r)| r);
        for r in self.running.drain().map(|(_, r)| r).chain(others) {
            r.bar.finish_and_clear();
        }
        self.header.finish_and_clear();
    }
}

impl Drop for TtyRenderer {
    fn drop(&mut self) {
        self.clear();
    }
}
