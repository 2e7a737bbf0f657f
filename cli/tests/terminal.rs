//! The terminal a person watches: `strata build` in a real pseudo-terminal
//! (a tmux pane, read back with `capture-pane`), the same build on a pipe,
//! the rawjson stream, `-q`, stable image IDs, `strata images`, the
//! unreachable-registry hint, completions and man pages.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Env, Gate, R, Res, fixtures, strata, tool};

/// A detached tmux session (its own server socket) running one script in a
/// 120×40 pane; the server is killed on drop.
struct Pane {
    socket: String,
}

impl Pane {
    /// Runs `command` (shell words) in the pane with `env`'s root and
    /// `TERM=term`; the pane prints `[exit N]` when it ends and stays.
    fn run(env: &Env, name: &str, term: &str, command: &str) -> Res<Pane> {
        let script = env.path(&format!("{name}.sh"));
        std::fs::write(
            &script,
            format!(
                "export STRATA_ROOT='{}' TERM={term} SOURCE_DATE_EPOCH=\nunset NO_COLOR\n\
                 {command}\necho \"[exit $?]\"\nexec sleep 600\n",
                env.root().display()
            ),
        )?;
        let socket = format!("strata-test-{}-{name}", std::process::id());
        let script = script.to_str().ok_or("non-UTF-8 path")?;
        let pane = Pane { socket };
        tool(
            "tmux",
            &[
                "-L",
                &pane.socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "40",
                "sh",
                script,
            ],
        )?;
        Ok(pane)
    }

    /// The pane as it shows now, with its scrollback.
    fn screen(&self) -> Res<String> {
        self.capture(&[])
    }

    /// [`Pane::screen`] with the colours as escape sequences.
    fn colored(&self) -> Res<String> {
        self.capture(&["-e"])
    }

    fn capture(&self, extra: &[&str]) -> Res<String> {
        let mut args = vec!["-L", &self.socket, "capture-pane", "-p", "-S", "-200"];
        args.extend_from_slice(extra);
        let out = tool("tmux", &args)?;
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    /// The screen once `done` says it is ready (60 s at most).
    fn wait(&self, done: impl Fn(&str) -> bool) -> Res<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen()?;
            if done(&screen) {
                return Ok(screen);
            }
            if Instant::now() > deadline {
                return Err(format!("the pane never got there:\n{screen}").into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The screen after the command ended.
    fn finished(&self) -> Res<String> {
        self.wait(|s| s.contains("[exit "))
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// `strata build --build-context busybox=… ARGS CTX` as shell words.
fn build_words(env: &Env, ctx: &Path, args: &str) -> String {
    format!(
        "'{}' build --allow network.host --build-context '{}' {args} '{}'",
        env!("CARGO_BIN_EXE_strata"),
        env.base,
        ctx.display()
    )
}

/// The time (`1.2s`) at the end of the first line holding `needle`.
fn timer(screen: &str, needle: &str) -> Option<f64> {
    let line = screen.lines().find(|l| l.contains(needle))?;
    line.split_whitespace()
        .last()?
        .strip_suffix('s')?
        .parse()
        .ok()
}

/// Times, digests, sizes, ports and temporary paths replaced by stand-ins,
/// so a screen can be compared with a stored one.
fn normalize(screen: &str, env: &Env) -> String {
    let text = screen
        .replace(&env.path("").display().to_string(), "<tmp>/")
        .replace(&fixtures().display().to_string(), "<fixtures>");
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<String> = line
            .split(' ')
            .map(|w| {
                let (word, colon) = w.strip_suffix(':').map_or((w, ""), |x| (x, ":"));
                let secs = word.strip_suffix('s').filter(|n| n.parse::<f64>().is_ok());
                if secs.is_some() {
                    format!("N.Ns{colon}")
                } else if let Some(hex) = w.strip_prefix("sha256:") {
                    format!("sha256:{}", "x".repeat(hex.len().min(64)))
                } else if w.starts_with('#') && w[1..].parse::<u32>().is_ok() {
                    "#N".to_string()
                } else if let Some(i) = w.find("127.0.0.1:") {
                    format!("{}127.0.0.1:PORT/", &w[..i])
                } else if w.starts_with("<tmp>/root/logs/") {
                    "<tmp>/root/logs/<build>/<step>.log".to_string()
                } else {
                    w.to_string()
                }
            })
            .collect();
        let mut line = words.join(" ");
        if let Some(i) = line.find("    size    ") {
            line.truncate(i);
            line.push_str("    size    <size>");
        }
        out.push(line.trim_end().to_string());
    }
    out.join("\n")
}

/// Compares with `fixtures/screens/NAME`, line for line in any order
/// (parallel steps finish in either order); `STRATA_BLESS=1` writes it when
/// missing (to be reviewed by hand before it is committed).
fn same_as_stored(name: &str, screen: &str) -> R {
    let path = strata_fixtures::dir().join("screens").join(name);
    if !path.exists() && std::env::var_os("STRATA_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
        std::fs::write(&path, format!("{screen}\n"))?;
    }
    let stored = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (STRATA_BLESS=1 writes it)", path.display()))?;
    let sorted = |text: &str| {
        let mut lines: Vec<String> = text.trim_end().lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    assert_eq!(
        sorted(&stored),
        sorted(screen),
        "screen differs from {name}:\n{screen}"
    );
    Ok(())
}

/// Two stages that each wait at the gate, and a last stage copying from both.
fn two_waiting_stages(env: &Env, gate: &Gate) -> Res<PathBuf> {
    let url = gate.url();
    env.context(
        "parallel",
        &format!(
            "FROM busybox AS left\nRUN --network=host echo left-waiting && wget -q -O /l.txt {url}\n\
             FROM busybox AS right\nRUN --network=host echo right-waiting && wget -q -O /r.txt {url}\n\
             FROM busybox\nCOPY --from=left /l.txt /\nCOPY --from=right /r.txt /\n"
        ),
    )
}

#[test]
fn live_display_shows_parallel_running_steps_with_timers_then_cached_lines() -> R {
    let env = Env::new()?;
    let gate = Gate::start()?;
    let ctx = two_waiting_stages(&env, &gate)?;
    let words = build_words(&env, &ctx, "-t term:1");
    let pane = Pane::run(&env, "first", "xterm-256color", &words)?;

    // Both stages' steps are running at once, each with its timer and its
    // output under it.
    let running = pane.wait(|s| {
        s.contains("[left 2/2] RUN")
            && s.contains("[right 2/2] RUN")
            && s.contains("│ right-waiting")
            && s.contains("│ left-waiting")
    })?;
    assert!(running.contains("[+] Building "), "{running}");
    let first = timer(&running, "[left 2/2] RUN").ok_or(format!("no timer:\n{running}"))?;
    std::thread::sleep(Duration::from_millis(1500));
    let later = pane.screen()?;
    let second = timer(&later, "[left 2/2] RUN").ok_or(format!("no timer:\n{later}"))?;
    assert!(
        second > first,
        "the timer did not move ({first} → {second}):\n{later}"
    );

    gate.open();
    let done = pane.finished()?;
    assert!(done.contains("[exit 0]"), "{done}");
    for step in [
        "[left 2/2] RUN",
        "[right 2/2] RUN",
        "[stage-2 2/3] COPY --from=left",
    ] {
        assert!(
            done.lines()
                .any(|l| l.starts_with("=> ") && l.contains(step) && l.contains("DONE ")),
            "{step} not DONE:\n{done}"
        );
    }
    assert!(done.contains("[+] Built in "), "{done}");
    assert!(done.contains("    image   term:1"), "{done}");
    // The live area is gone: no spinner line is left behind.
    assert!(!done.contains("[+] Building"), "{done}");
    drop(pane);

    // The rebuild finds every step in the cache.
    let pane = Pane::run(&env, "again", "xterm-256color", &words)?;
    let again = pane.finished()?;
    assert!(again.contains("[exit 0]"), "{again}");
    // FROM steps resolve their image each time; every other step is reused.
    assert!(again.contains(" steps run, 4 cached"), "{again}");
    for step in [
        "[left 2/2] RUN",
        "[right 2/2] RUN",
        "[stage-2 3/3] COPY --from=right",
    ] {
        assert!(
            again
                .lines()
                .any(|l| l.contains(step) && l.ends_with("CACHED")),
            "{step} not CACHED:\n{again}"
        );
    }
    same_as_stored("cached-rebuild.txt", &normalize(&again, &env))
}

#[test]
fn a_failed_step_on_the_terminal_points_at_its_line_and_keeps_its_log() -> R {
    let env = Env::new()?;
    let ctx = fixtures().join("failing-run");
    let pane = Pane::run(&env, "fail", "xterm-256color", &build_words(&env, &ctx, ""))?;
    let screen = pane.finished()?;
    assert!(screen.contains("[exit 1]"), "{screen}");
    assert!(
        screen
            .lines()
            .any(|l| l.contains("RUN echo \"about to fail\"") && l.contains("ERROR")),
        "{screen}"
    );
    // The diagnostic: the Dockerfile's line 3 with the label under it.
    assert!(screen.contains("Dockerfile:3:1]"), "{screen}");
    assert!(screen.contains("exit code 7"), "{screen}");
    assert!(screen.contains("> about to fail"), "{screen}");
    let log = screen
        .lines()
        .find_map(|l| l.strip_prefix("full log of the step: "))
        .ok_or(format!("no log path:\n{screen}"))?;
    let text = std::fs::read_to_string(log.trim())?;
    assert!(text.starts_with("about to fail\n"), "{text}");
    assert!(text.contains("ERROR: "), "{text}");
    same_as_stored("failed-step.txt", &normalize(&screen, &env))
}

#[test]
fn colours_follow_the_color_flag_and_no_color() -> R {
    let env = Env::new()?;
    let ctx = fixtures().join("run-output");
    // --color=always wins over NO_COLOR: DONE is green.
    let words = format!("NO_COLOR=1 {}", build_words(&env, &ctx, "--color=always"));
    let pane = Pane::run(&env, "always", "xterm-256color", &words)?;
    pane.finished()?;
    let screen = pane.colored()?;
    assert!(screen.contains("\x1b[32mDONE "), "{screen:?}");
    drop(pane);
    // NO_COLOR with the default (auto): the same screen without a colour.
    let words = format!("NO_COLOR=1 {}", build_words(&env, &ctx, ""));
    let pane = Pane::run(&env, "never", "xterm-256color", &words)?;
    pane.finished()?;
    let screen = pane.colored()?;
    assert!(
        screen.contains("CACHED") && screen.contains("DONE "),
        "{screen}"
    );
    assert!(!screen.contains("\x1b[3"), "{screen:?}");
    Ok(())
}

/// What a pipe shows: every line is a plain `#N …` line (or a diagnostic,
/// after the steps), no escape sequence, no live header.
fn assert_plain(out: &str) {
    assert!(!out.contains('\x1b'), "escape sequence on a pipe:\n{out}");
    assert!(!out.contains("[+] Building"), "{out}");
    assert!(out.lines().count() > 3, "{out}");
    assert!(out.lines().all(|l| l.starts_with('#')), "{out}");
}

#[test]
fn a_pipe_or_a_dumb_terminal_gets_plain_lines() -> R {
    let env = Env::new()?;
    let ctx = fixtures().join("run-output");
    let ctx_s = ctx.to_str().ok_or("non-UTF-8 path")?;
    for progress in ["--progress=auto", "--progress=tty"] {
        let out = env
            .strata(&["build", progress, "--build-context", &env.base, ctx_s])
            .env("TERM", "xterm-256color")
            .ok()?;
        assert_plain(&out.stderr);
    }
    let pane = Pane::run(&env, "dumb", "dumb", &build_words(&env, &ctx, ""))?;
    let screen = pane.finished()?;
    let lines: Vec<&str> = screen.lines().filter(|l| !l.starts_with("[exit")).collect();
    assert_plain(&lines.join("\n"));
    Ok(())
}

/// The step names of a plain log: the text after `#N ` on each step's
/// first line.
fn plain_steps(log: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut names = BTreeSet::new();
    for line in log.lines() {
        if let Some((n, rest)) = line.split_once(' ')
            && n.starts_with('#')
            && seen.insert(n.to_string())
        {
            names.insert(rest.to_string());
        }
    }
    names
}

#[test]
fn rawjson_names_the_same_steps_as_plain_and_quiet_prints_the_id() -> R {
    let env = Env::new()?;
    let ctx = fixtures().join("multistage");
    let ctx_s = ctx.to_str().ok_or("non-UTF-8 path")?;
    let plain = env.build(&ctx, &["--no-cache"])?;
    let raw = env
        .strata(&[
            "build",
            "--progress=rawjson",
            "--no-cache",
            "--build-context",
            &env.base,
            ctx_s,
        ])
        .ok()?
        .stderr;
    let events: Vec<Value> = raw
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{e}:\n{raw}"))?;
    let mut started = BTreeSet::new();
    let mut done = BTreeSet::new();
    let mut last_time = 0;
    for e in &events {
        let time = e["time"].as_u64().ok_or(format!("no time: {e}"))?;
        assert!(time >= last_time, "time went back: {e}");
        last_time = time;
        match e["event"].as_str() {
            Some("started" | "cached") => {
                started.insert((e["step"].as_u64(), e["name"].as_str().map(str::to_string)));
            }
            Some("done") => {
                done.insert(e["step"].as_u64());
            }
            Some("log" | "image") => {}
            other => return Err(format!("unexpected event {other:?}: {e}").into()),
        }
    }
    let names: BTreeSet<String> = started.iter().filter_map(|(_, n)| n.clone()).collect();
    assert_eq!(names, plain_steps(&plain), "{raw}\n{plain}");
    let steps: BTreeSet<Option<u64>> = started.iter().map(|(n, _)| *n).collect();
    assert_eq!(steps, done, "every step started is done:\n{raw}");
    assert!(
        names
            .iter()
            .any(|n| n.ends_with("2/2] RUN mkdir /out && echo built > /out/artifact")),
        "{names:?}"
    );
    let image = events
        .iter()
        .find(|e| e["event"] == "image")
        .ok_or("no image event")?;

    for quiet in ["-q", "--progress=quiet"] {
        let out = env
            .strata(&["build", quiet, "--build-context", &env.base, ctx_s])
            .ok()?;
        assert_eq!(out.stdout.trim(), image["id"].as_str().unwrap_or("?"));
        assert_eq!(out.stderr, "", "{quiet}");
    }
    Ok(())
}

#[test]
fn unchanged_rebuilds_give_the_same_image_id_and_images_lists_it() -> R {
    let env = Env::new()?;
    let ctx = fixtures().join("run-output");
    let id = || -> Res<String> {
        let ctx = ctx.to_str().ok_or("non-UTF-8 path")?;
        let out = env
            .strata(&[
                "build",
                "-q",
                "-t",
                "same:1",
                "--build-context",
                &env.base,
                ctx,
            ])
            .env("SOURCE_DATE_EPOCH", "")
            .ok()?;
        Ok(out.stdout.trim().to_string())
    };
    let first = id()?;
    // `created` has whole seconds: a rebuild a second later would differ.
    std::thread::sleep(Duration::from_millis(1100));
    let second = id()?;
    assert!(first.starts_with("sha256:"), "{first}");
    assert_eq!(first, second);

    let list = env.strata(&["images"]).ok()?.stdout;
    let mut lines = list.lines();
    let head: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        head,
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        "{list}"
    );
    let row = lines.next().ok_or(format!("no image:\n{list}"))?;
    assert!(
        row.starts_with("same ") && row.contains(&first[7..19]),
        "{list}"
    );
    assert!(
        row.contains(" ago ") && (row.ends_with("kB") || row.ends_with("MB")),
        "{list}"
    );
    let digests = env.strata(&["images", "--digests"]).ok()?.stdout;
    assert!(
        digests.starts_with("REPOSITORY") && digests.contains("   DIGEST"),
        "{digests}"
    );
    let formatted = env
        .strata(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .ok()?
        .stdout;
    assert_eq!(formatted.trim(), format!("same:1 {}", &first[7..19]));
    Ok(())
}

#[test]
fn an_unreachable_registry_says_what_to_do() -> R {
    let env = Env::new()?;
    // Nothing listens on port 1: the connection is refused at once.
    let ctx = env.context("nowhere", "FROM 127.0.0.1:1/nothing:1\nRUN true\n")?;
    let ctx = ctx.to_str().ok_or("non-UTF-8 path")?;
    let out = env.strata(&["build", "--progress=plain", ctx]).output()?;
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("cannot reach registry 127.0.0.1:1"),
        "{}",
        out.stderr
    );
    for hint in [
        "strata load -i",
        "--build-context NAME=oci-layout://",
        "STRATA_REGISTRY_MIRRORS",
        "--insecure-registry",
    ] {
        assert!(out.stderr.contains(hint), "no `{hint}`:\n{}", out.stderr);
    }
    Ok(())
}

#[test]
fn completions_load_in_bash_and_man_pages_are_written() -> R {
    let dir = tempfile::tempdir()?;
    for shell in ["bash", "zsh", "fish"] {
        let out = strata(&["completion", shell]).ok()?;
        assert!(out.stdout.contains("strata"), "{shell}: {}", out.stdout);
        let file = dir.path().join(format!("strata.{shell}"));
        std::fs::write(&file, &out.stdout)?;
        if shell == "bash" {
            tool("bash", &["-n", file.to_str().ok_or("non-UTF-8 path")?])?;
            // Sourced, it registers the completion function.
            let check = format!("source '{}' && complete -p strata", file.display());
            let out = tool("bash", &["-c", &check])?;
            assert!(String::from_utf8_lossy(&out.stdout).contains("strata"));
        }
    }
    let man = dir.path().join("man");
    strata(&["debug", "man", man.to_str().ok_or("non-UTF-8 path")?]).ok()?;
    let build = std::fs::read_to_string(man.join("strata-build.1"))?;
    assert!(build.contains("\\-\\-progress"), "{build}");
    assert!(man.join("strata.1").exists());
    let help = strata(&["build", "--help"]).ok()?.stdout;
    assert!(
        help.contains("Examples:") && help.contains("strata build -t app:1 ."),
        "{help}"
    );
    Ok(())
}
