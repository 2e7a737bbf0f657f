//! The image config a stage accumulates: metadata instructions fold into it
//! the way `docker build` does, and every instruction leaves a history entry.
//!
//! The exporter serializes this to OCI JSON; this module only holds the rules.

use std::collections::BTreeMap;

/// PATH given to images that have none (scratch, or a base without PATH).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The shell that wraps shell-form commands until SHELL changes it.
pub fn default_shell() -> Vec<String> {
    vec!["/bin/sh".to_string(), "-c".to_string()]
}

/// HEALTHCHECK settings; durations in nanoseconds as in the OCI/Docker config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", cmd]`.
    pub test: Vec<String>,
    /// Time between checks.
    pub interval: Option<u64>,
    /// Time a check may take.
    pub timeout: Option<u64>,
    /// Grace period after start.
    pub start_period: Option<u64>,
    /// Time between checks during the start period.
    pub start_interval: Option<u64>,
    /// Consecutive failures before unhealthy.
    pub retries: Option<u32>,
}

/// One line of the image's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// RFC 3339 time; set for entries of base images, filled at export for
    /// the build's own.
    pub created: Option<String>,
    /// The instruction as docker shows it, e.g. `RUN /bin/sh -c make # buildkit`.
    pub created_by: String,
    /// BuildKit writes `buildkit.dockerfile.v0`.
    pub comment: Option<String>,
    /// True when the instruction changed no file (no layer).
    pub empty_layer: bool,
}

/// The runtime part of an image config plus its history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `KEY=value`, in definition order.
    pub env: Vec<String>,
    /// Default command, `None` when unset.
    pub cmd: Option<Vec<String>>,
    /// Entrypoint, `None` when unset.
    pub entrypoint: Option<Vec<String>>,
    /// Shell for shell forms; `None` = [`default_shell`].
    pub shell: Option<Vec<String>>,
    /// `user[:group]`; empty = root.
    pub user: String,
    /// Absolute working directory; empty = `/`.
    pub working_dir: String,
    /// `port/proto` keys.
    pub exposed_ports: std::collections::BTreeSet<String>,
    /// Volume paths.
    pub volumes: std::collections::BTreeSet<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Stop signal.
    pub stop_signal: Option<String>,
    /// Health check.
    pub healthcheck: Option<Healthcheck>,
    /// ONBUILD triggers, as written.
    pub on_build: Vec<String>,
    /// History, base image's first.
    pub history: Vec<HistoryEntry>,
}

/// A stage's image config while the stage is being lowered.
#[derive(Debug, Clone, Default)]
pub struct StageConfig {
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

/// Lexically cleans an absolute path: `//`, `.` and `..` resolved, no trailing `/`.
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
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
