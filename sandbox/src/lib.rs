//! strata-sandbox: runs one process in an isolated root filesystem.
//!
//! A [`Runtime`] runs a [`ProcessSpec`] in a [`RootFs`] made of overlayfs layers and
//! streams its output. Two runtimes exist: [`Builtin`], which sets up the namespaces,
//! mounts and credentials itself, and [`OciRuntime`], which writes an OCI bundle and
//! hands it to `runc` or `crun`. Both must run as root: real root, or (builtin only) root of
//! the user namespace an ordinary user's strata enters first ([`enter_rootless`]).
//! [`MergedView`] shows a layer stack read-only for the ops that read files rather than run (COPY, user lookups), inside the
//! build's [`private_mount_namespace`]: the sandbox is the one crate that mounts. Every run
//! gets Docker's default seccomp profile unless its spec says [`Seccomp::Unconfined`].

#![allow(unsafe_code)] // namespaces, mounts and credentials need raw syscalls; each block says why it is sound

mod builtin;
mod caps;
mod cgroup;
mod docker_paths;
mod error;
mod etc_files;
mod guard;
mod limits;
mod mount_api;
mod mounts;
mod network;
mod oci;
mod output;
mod overlay;
mod placeholders;
mod seccomp;
mod userns;
mod view;

use std::path::PathBuf;

pub use builtin::Builtin;
pub use cgroup::{DeviceControl, sweep_stale_cgroups};
pub use error::SandboxError;
pub use limits::{
    DEFAULT_NOFILE_SOFT, DEFAULT_SHM_SIZE, LimitError, Limits, MIN_MEMORY, Resource, Ulimit,
    parse_memory, parse_pids, parse_shm_size, parse_size, parse_ulimit,
};
pub use mounts::{MountSource, SecretBytes, StepMount};
pub use oci::{OciRuntime, OciRuntimeKind};
pub use userns::{UserNsError, enter_rootless, in_user_namespace, overlay_xattr_prefix};
pub use view::{MergedView, ViewError, private_mount_namespace};

/// The root filesystem of a step: read-only layers in overlayfs "diff" format (whiteouts are
/// 0:0 char devices, opaque dirs carry xattr `trusted.overlay.opaque=y`, `user.overlay.opaque=y`
/// inside a user namespace: [`overlay_xattr_prefix`]), bottom first, plus an
/// empty upper dir that receives the changes and a work dir on the same filesystem as upper.
#[derive(Debug, Clone)]
pub struct RootFs {
    /// Read-only layers, bottom first. May be empty (`FROM scratch`).
    pub lower: Vec<PathBuf>,
    /// Empty directory that receives the step's changes.
    pub upper: PathBuf,
    /// Empty overlayfs work directory on the same filesystem as `upper`.
    pub work: PathBuf,
}

/// The network a step sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// A new network namespace with `lo` and outbound NAT through slirp4netns, which does
    /// not reach the host's loopback (Docker's default for RUN). The helper lives exactly
    /// as long as the run.
    Private,
    /// The host's network namespace (needs the build's `network.host` entitlement).
    Host,
    /// A new network namespace with only `lo`, up.
    None,
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
}

/// The process to run and the identity and environment it runs with.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Program and arguments; `argv[0]` is looked up in the `PATH` of `env` inside the root
    /// when it has no `/`.
    pub argv: Vec<String>,
    /// Environment as `KEY=value` strings.
    pub env: Vec<String>,
    /// Absolute working directory; created (root-owned, 0755) if missing.
    pub cwd: String,
    /// User id the process runs as.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
    /// A private network with outbound access, the host's, or loopback only.
    pub network: Network,
    /// Hostname inside the sandbox (BuildKit uses `buildkitsandbox`).
    pub hostname: String,
    /// The system call filter.
    pub seccomp: Seccomp,
    /// Extra mounts (`RUN --mount`), made in this order after the root's own.
    pub mounts: Vec<StepMount>,
    /// The capabilities a root process keeps (and every process's bounding set).
    pub capabilities: Capabilities,
}

/// The capabilities of a step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Capabilities {
    /// Docker's default set of 14.
    #[default]
    DockerDefault,
    /// Every capability strata itself may hold (for `RUN --security=insecure`, with the
    /// build's entitlement, as BuildKit gives it).
    All,
}

/// The system calls a step may make.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// Docker's default profile, resolved for Docker's default capability set: no keyrings,
    /// no new namespaces, no mounts, no io_uring, among others.
    #[default]
    DockerDefault,
    /// No filter (for `RUN --security=insecure`, which needs the build's entitlement).
    Unconfined,
}

/// Runs one process in an isolated root.
pub trait Runtime: Send + Sync {
    /// Runs the process to completion. `output` gets each line of stdout/stderr (without its
    /// newline) as it comes; `cancelled` is polled about every 100ms and when it returns true
    /// the whole process tree is killed. Returns the exit code (128+signal when killed by a
    /// signal). A program that cannot be started at all (missing, not executable) is an error,
    /// not an exit code: [`SandboxError::Exec`] from [`Builtin`], [`SandboxError::OciRuntime`]
    /// with the runtime's message from [`OciRuntime`].
    ///
    /// Blocks the calling thread until the process ends (call it from
    /// `tokio::task::spawn_blocking`); runs on different threads may overlap freely.
    fn run(
        &self,
        root: &RootFs,
        spec: &ProcessSpec,
        output: &(dyn Fn(Stream, &[u8]) + Sync),
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<i32, SandboxError>;
}

impl ProcessSpec {
    /// Rejects specs no runtime can run: empty argv, relative working directory.
    pub(crate) fn validate(&self) -> Result<(), SandboxError> {
        if self.argv.is_empty() {
            return Err(SandboxError::InvalidSpec("empty argv".into()));
        }
        if !self.cwd.starts_with('/') {
            return Err(SandboxError::InvalidSpec(format!(
                "working directory {:?} is not absolute",
                self.cwd
            )));
        }
        mounts::validate(&self.mounts)
    }
}
