//! The typed syntax tree: validated instructions with spans.
//!
//! Words stay unexpanded (`$VAR` is kept as written): the solver expands
//! them later with the ARG/ENV scope it knows. Flag values that hold a `$`
//! are therefore kept raw instead of being validated here.

use crate::node::{Directive, Heredoc};
use crate::span::Span;
use serde::Serialize;
use std::time::Duration;

/// A whole Dockerfile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dockerfile {
    pub directives: Vec<Directive>,
    pub escape: char,
    /// `ARG` instructions before the first `FROM`.
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

/// One `FROM` and the instructions up to the next one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    /// The name given with `AS`, as written.
    pub name: Option<String>,
    /// The base: an image reference, a stage name or `scratch` (unexpanded).
    pub base: String,
    pub platform: Option<Flag<String>>,
    /// The `FROM` line.
    pub span: Span,
    pub instructions: Vec<Instruction>,
}

/// A flag value with the place it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag<T> {
    pub value: T,
    pub span: Span,
}

/// One instruction and its place in the file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instruction {
    pub kind: InstructionKind,
    pub span: Span,
}

/// Exec form (JSON array) or shell form (the rest of the line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

/// `RUN --network` and the build's `--network`: the one network-mode type of the
/// workspace (the solver's graph carries it; the sandbox has its own `Network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum NetworkMode {
    /// A private network namespace with outbound access (BuildKit's default).
    #[default]
    Default,
    /// A network namespace with loopback only.
    None,
    /// The host's network namespace (an entitlement).
    Host,
}

impl NetworkMode {
    /// The flag's spelling (`default`, `none`, `host`).
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Default => "default",
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
        }
    }
}

/// `RUN --security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Security {
    /// The sandbox's confinement (the default).
    #[default]
    Sandbox,
    /// No seccomp filter and every capability (an entitlement).
    Insecure,
}

/// The kinds of `RUN --mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

/// `sharing=` of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One `RUN --mount=...`, options parsed and checked against its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub kind: MountType,
    /// Where to mount; `None` means the working directory, as BuildKit does
    /// for `--mount=from=stage` (secrets get `/run/secrets/<id>`).
    pub target: Option<String>,
    pub source: Option<String>,
    pub from: Option<String>,
    pub readonly: bool,
    pub id: Option<String>,
    pub sharing: Sharing,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub required: bool,
    pub env: Option<String>,
    pub size: Option<String>,
    pub span: Span,
}

/// `--chown=user[:group]`, unresolved (names are looked up in the image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chown {
    pub user: String,
    pub group: Option<String>,
}

/// `--chmod`: an octal mode, or the raw text when it needs expansion or
/// is symbolic (`u+x,go-w`); the solver checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Chmod {
    Octal(u32),
    Unexpanded(String),
}

/// The fields shared by COPY and ADD.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CopySpec {
    pub from: Option<Flag<String>>,
    pub chown: Option<Flag<Chown>>,
    pub chmod: Option<Flag<Chmod>>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    pub sources: Vec<String>,
    pub dest: String,
    pub heredocs: Vec<Heredoc>,
}

/// ADD's own flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddOptions {
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    pub unpack: Option<bool>,
}

/// One declared build argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

/// `HEALTHCHECK CMD ...` with its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthConfig {
    pub command: Command,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

/// One variant per instruction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum InstructionKind {
    Run {
        mounts: Vec<Mount>,
        network: Option<Flag<NetworkMode>>,
        security: Option<Flag<Security>>,
        command: Command,
        heredocs: Vec<Heredoc>,
    },
    Cmd(Command),
    Entrypoint(Command),
    Shell(Vec<String>),
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Arg(Vec<ArgDecl>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    StopSignal(String),
    /// `None` for `HEALTHCHECK NONE`.
    Healthcheck(Option<HealthConfig>),
    Onbuild(Box<Instruction>),
    Maintainer(String),
    Copy(CopySpec),
    Add(CopySpec, AddOptions),
}
