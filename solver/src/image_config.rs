//! The image config a build produces: the runtime settings and history the
//! front end folds instructions into (`dockerfile::metadata` holds the rules)
//! and the exporter serializes to OCI JSON.

use std::collections::BTreeMap;

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
    /// Shell for shell forms; `None` = `/bin/sh -c`.
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
