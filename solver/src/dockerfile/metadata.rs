//! The image-config rules of a Dockerfile: metadata instructions (ENV's
//! config half, CMD, ENTRYPOINT, SHELL, USER, EXPOSE, VOLUME, LABEL,
//! STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER) fold into the stage's
//! config the way `docker build` does, every instruction leaves a history
//! entry, and WORKDIR both changes the config and makes its directory.

use strata_parser::{Command, Instruction, InstructionKind, Span};

use super::Lowerer;
use super::error::LowerError;
use super::run::parent;
use super::stages::StageState;
use crate::graph::{MkdirOp, Op};
use crate::image_config::{Healthcheck, HistoryEntry, ImageConfig};
use crate::path::clean_path;

/// PATH given to images that have none (scratch, or a base without PATH).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The shell that wraps shell-form commands until SHELL changes it.
fn default_shell() -> Vec<String> {
    vec!["/bin/sh".to_string(), "-c".to_string()]
}

/// A stage's image config while the stage is being lowered.
#[derive(Debug, Clone, Default)]
pub(super) struct StageConfig {
    /// The config so far.
    pub config: ImageConfig,
    /// Whether CMD was set in this stage (an ENTRYPOINT then keeps it).
    cmd_set: bool,
}

impl StageConfig {
    /// Starts from a base image's config; adds the default PATH when it has none.
    pub fn from_base(mut base: ImageConfig) -> Self {
        if !base.env.iter().any(|e| e.starts_with("PATH=")) {
            base.env.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        StageConfig {
            config: base,
            cmd_set: false,
        }
    }

    /// The shell that wraps shell-form commands now.
    pub fn shell(&self) -> Vec<String> {
        self.config.shell.clone().unwrap_or_else(default_shell)
    }

    /// Wraps a shell-form command with the current shell.
    pub fn shell_form(&self, command: &str) -> Vec<String> {
        let mut argv = self.shell();
        argv.push(command.to_string());
        argv
    }

    /// Records a history line.
    pub fn history(&mut self, created_by: impl Into<String>, empty_layer: bool) {
        self.config.history.push(HistoryEntry {
            created: None,
            created_by: created_by.into(),
            comment: Some("buildkit.dockerfile.v0".to_string()),
            empty_layer,
        });
    }

    /// `ENV key=value`.
    pub fn env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        let prefix = format!("{key}=");
        match self.config.env.iter_mut().find(|e| e.starts_with(&prefix)) {
            Some(slot) => *slot = entry,
            None => self.config.env.push(entry),
        }
    }

    /// `CMD`, argv already wrapped for the shell form.
    pub fn cmd(&mut self, argv: Vec<String>) {
        self.config.cmd = Some(argv);
        self.cmd_set = true;
    }

    /// `ENTRYPOINT`: clears a CMD inherited from the base, keeps one set in this stage.
    pub fn entrypoint(&mut self, argv: Vec<String>) {
        self.config.entrypoint = Some(argv);
        if !self.cmd_set {
            self.config.cmd = None;
        }
    }

    /// `SHELL`.
    pub fn set_shell(&mut self, argv: Vec<String>) {
        self.config.shell = Some(argv);
    }

    /// `USER`.
    pub fn user(&mut self, user: &str) {
        self.config.user = user.to_string();
    }

    /// `WORKDIR`: relative paths resolve against the current one. Returns the new
    /// absolute directory.
    pub fn workdir(&mut self, dir: &str) -> String {
        let base = if self.config.working_dir.is_empty() {
            "/"
        } else {
            self.config.working_dir.as_str()
        };
        let joined = if dir.starts_with('/') {
            dir.to_string()
        } else {
            format!("{base}/{dir}")
        };
        let cleaned = clean_path(&joined);
        self.config.working_dir = cleaned.clone();
        cleaned
    }

    /// `EXPOSE 80 53/udp`: a port without protocol is TCP.
    pub fn expose(&mut self, port: &str) {
        let key = if port.contains('/') {
            port.to_lowercase()
        } else {
            format!("{port}/tcp")
        };
        self.config.exposed_ports.insert(key);
    }

    /// `VOLUME`.
    pub fn volume(&mut self, path: &str) {
        self.config.volumes.insert(path.to_string());
    }

    /// `LABEL k=v`.
    pub fn label(&mut self, key: &str, value: &str) {
        self.config
            .labels
            .insert(key.to_string(), value.to_string());
    }

    /// `STOPSIGNAL`.
    pub fn stop_signal(&mut self, signal: &str) {
        self.config.stop_signal = Some(signal.to_string());
    }

    /// `HEALTHCHECK`: a new test replaces the old; unset durations keep the base's.
    pub fn healthcheck(&mut self, mut check: Healthcheck) {
        if let Some(old) = &self.config.healthcheck
            && check.test.first().map(String::as_str) != Some("NONE")
        {
            check.interval = check.interval.or(old.interval);
            check.timeout = check.timeout.or(old.timeout);
            check.start_period = check.start_period.or(old.start_period);
            check.start_interval = check.start_interval.or(old.start_interval);
            check.retries = check.retries.or(old.retries);
        }
        self.config.healthcheck = Some(check);
    }

    /// `ONBUILD <instruction>`.
    pub fn on_build(&mut self, trigger: &str) {
        self.config.on_build.push(trigger.to_string());
    }
}

/// The stage's working directory now (`/` when unset).
pub(super) fn cwd(config: &StageConfig) -> String {
    if config.config.working_dir.is_empty() {
        "/".to_string()
    } else {
        config.config.working_dir.clone()
    }
}

fn command_argv(config: &StageConfig, c: &Command) -> Vec<String> {
    match c {
        Command::Exec(argv) => argv.clone(),
        Command::Shell(s) => config.shell_form(s),
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Lowerer<'_> {
    /// `WORKDIR`: the config's directory changes and a step makes it.
    pub(super) fn workdir(
        &mut self,
        st: &mut StageState,
        dir: &str,
        text: String,
        span: Span,
    ) -> Result<(), LowerError> {
        let dir = self.expand(&st.scope, dir, span.line)?;
        let path = st.config.workdir(&dir);
        let op = Op::Mkdir(MkdirOp {
            path,
            owner: st.config.config.user.clone(),
        });
        let origin = st.next_origin(text.clone(), span);
        st.last = self.graph.add_step(op, origin, vec![parent(st.last)])?;
        st.config.history(format!("{text} # buildkit"), false);
        Ok(())
    }

    /// An instruction that only changes the image config.
    pub(super) fn metadata(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        text: String,
        line: u32,
    ) -> Result<(), LowerError> {
        match &ins.kind {
            InstructionKind::Cmd(c) => {
                let argv = command_argv(&st.config, c);
                st.config.cmd(argv);
            }
            InstructionKind::Entrypoint(c) => {
                let argv = command_argv(&st.config, c);
                st.config.entrypoint(argv);
            }
            InstructionKind::Shell(argv) => st.config.set_shell(argv.clone()),
            InstructionKind::User(u) => {
                let u = self.expand(&st.scope, u, line)?;
                st.config.user(&u);
            }
            InstructionKind::Expose(ports) => {
                for p in ports {
                    let words = self
                        .lexer
                        .process_words(p, &st.scope)
                        .map_err(|source| self.expand_error(line, source))?;
                    for w in words {
                        st.config.expose(&w);
                    }
                }
            }
            InstructionKind::Volume(paths) => {
                for p in paths {
                    let p = self.expand(&st.scope, p, line)?;
                    st.config.volume(&p);
                }
            }
            InstructionKind::Label(pairs) => {
                for (k, v) in pairs {
                    let k = self.expand(&st.scope, k, line)?;
                    let v = self.expand(&st.scope, v, line)?;
                    st.config.label(&k, &v);
                }
            }
            InstructionKind::StopSignal(s) => {
                let s = self.expand(&st.scope, s, line)?;
                st.config.stop_signal(&s);
            }
            InstructionKind::Healthcheck(h) => st.config.healthcheck(healthcheck(h.as_ref())),
            InstructionKind::Onbuild(_) => {
                let trigger = text
                    .get("ONBUILD".len()..)
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_string();
                st.config.on_build(&trigger);
            }
            InstructionKind::Maintainer(m) => st.config.label("maintainer", m),
            // The dispatcher lowers the others; they never reach here.
            _ => return Ok(()),
        }
        // BuildKit marks only steps with a layer with `# buildkit`.
        st.config.history(text, true);
        Ok(())
    }
}

fn healthcheck(h: Option<&strata_parser::HealthConfig>) -> Healthcheck {
    match h {
        None => Healthcheck {
            test: vec!["NONE".into()],
            ..Healthcheck::default()
        },
        Some(h) => Healthcheck {
            test: match &h.command {
                Command::Exec(argv) => {
                    let mut t = vec!["CMD".to_string()];
                    t.extend(argv.iter().cloned());
                    t
                }
                Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
            },
            interval: h.interval.map(nanos),
            timeout: h.timeout.map(nanos),
            start_period: h.start_period.map(nanos),
            start_interval: h.start_interval.map(nanos),
            retries: h.retries,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scratch_gets_default_path_and_env_replaces_in_place() {
        let mut s = StageConfig::from_base(ImageConfig::default());
        s.env("A", "1");
        s.env("PATH", "/x");
        assert_eq!(s.config.env, v(&["PATH=/x", "A=1"]));
    }

    #[test]
    fn entrypoint_clears_inherited_cmd_but_not_own() {
        let base = ImageConfig {
            cmd: Some(v(&["sh"])),
            ..ImageConfig::default()
        };
        let mut s = StageConfig::from_base(base.clone());
        s.entrypoint(v(&["/app"]));
        assert_eq!(s.config.cmd, None);

        let mut s = StageConfig::from_base(base);
        s.cmd(v(&["--help"]));
        s.entrypoint(v(&["/app"]));
        assert_eq!(s.config.cmd, Some(v(&["--help"])));
    }

    #[test]
    fn shell_form_uses_shell_instruction() {
        let mut s = StageConfig::from_base(ImageConfig::default());
        assert_eq!(s.shell_form("echo hi"), v(&["/bin/sh", "-c", "echo hi"]));
        s.set_shell(v(&["/bin/bash", "-eo", "pipefail", "-c"]));
        assert_eq!(
            s.shell_form("echo hi"),
            v(&["/bin/bash", "-eo", "pipefail", "-c", "echo hi"])
        );
    }

    #[test]
    fn workdir_is_relative_to_previous_and_cleaned() {
        let mut s = StageConfig::from_base(ImageConfig::default());
        assert_eq!(s.workdir("app"), "/app");
        assert_eq!(s.workdir("src/../bin/"), "/app/bin");
        assert_eq!(s.workdir("/srv//x"), "/srv/x");
    }

    #[test]
    fn expose_defaults_to_tcp_and_healthcheck_inherits_durations() {
        let mut s = StageConfig::from_base(ImageConfig::default());
        s.expose("80");
        s.expose("53/UDP");
        assert_eq!(
            s.config.exposed_ports.iter().cloned().collect::<Vec<_>>(),
            v(&["53/udp", "80/tcp"])
        );
        s.healthcheck(Healthcheck {
            test: v(&["CMD-SHELL", "true"]),
            interval: Some(5),
            ..Healthcheck::default()
        });
        s.healthcheck(Healthcheck {
            test: v(&["CMD", "check"]),
            ..Healthcheck::default()
        });
        assert_eq!(
            s.config.healthcheck.as_ref().and_then(|h| h.interval),
            Some(5)
        );
    }
}
