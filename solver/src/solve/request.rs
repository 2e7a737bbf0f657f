//! What a build is asked to do: [`BuildRequest`], built by a caller (the
//! cli, a server, a test) from its own arguments.

use std::path::PathBuf;

use strata_parser::NetworkMode;
use strata_registry::Platform;

use crate::dockerfile::{BuildArgs, Entitlements, NamedContext};
use crate::ops::BuildSecrets;

/// The default of [`BuildRequest::decompression_limit`]: 100 GiB. Real
/// layers and archives stay far below it (the largest base images, CUDA and
/// ML stacks, have single layers of a few GiB to tens of GiB), while a
/// decompression bomb, which expands about a thousand times under gzip and
/// far more under zstd, stops there instead of filling the disk. A limit on
/// the ratio would not do: a legitimate file of zeros reaches gzip's ratio.
pub const DEFAULT_DECOMPRESSION_LIMIT: u64 = 100 << 30;

/// The runtime RUN steps use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeChoice {
    /// strata's own namespaces runtime.
    #[default]
    Builtin,
    /// `runc` from `PATH`.
    Runc,
    /// `crun` from `PATH`.
    Crun,
}

/// One build: the Dockerfile, its context and every option that changes
/// what is built or how.
pub struct BuildRequest {
    /// The Dockerfile's text.
    pub dockerfile: Vec<u8>,
    /// Its name in messages (a path, or `-` for standard input).
    pub dockerfile_name: String,
    /// The Dockerfile named with `-f`, as given (`None` for the default
    /// name): it selects `<Dockerfile>.dockerignore` and identifies the build
    /// for `--explain-cache`.
    pub dockerfile_path: Option<PathBuf>,
    /// The build context directory.
    pub context: PathBuf,
    /// `--build-arg` values.
    pub build_args: BuildArgs,
    /// `--target`; the last stage when `None`.
    pub target: Option<String>,
    /// The platform built for; the host's when `None`.
    pub platform: Option<Platform>,
    /// `--build-context NAME=...` replacements.
    pub build_contexts: Vec<NamedContext>,
    /// Network of RUN steps without `--network`.
    pub network: NetworkMode,
    /// `--allow`: host networking and insecure steps, refused without them.
    pub entitlements: Entitlements,
    /// The runtime of RUN steps.
    pub runtime: RuntimeChoice,
    /// Run every step, reusing nothing (results are still recorded).
    pub no_cache: bool,
    /// Run the steps of these stages without the cache.
    pub no_cache_filter: Vec<String>,
    /// The client that pulls base images missing from the store.
    pub registry: strata_registry::Client,
    /// Look for newer versions of tagged base images (`--pull`).
    pub pull: bool,
    /// The state root (store, snapshots, cache index, ...).
    pub root: PathBuf,
    /// Explain why each step that ran could not reuse the previous build.
    pub explain: bool,
    /// The most bytes one base layer or one ADD archive may decompress to;
    /// more fails the build naming the layer or archive and the limit.
    /// [`DEFAULT_DECOMPRESSION_LIMIT`] unless the caller chooses.
    pub decompression_limit: u64,
    /// `--secret` and `--ssh`: what `RUN --mount=type=secret|ssh` may use.
    /// Never written anywhere, never part of a key.
    pub secrets: BuildSecrets,
    /// What each RUN step may use (`--memory`, `--pids-limit`, `--shm-size`, `--ulimit`);
    /// Docker's defaults with `Limits::default()`.
    pub limits: strata_sandbox::Limits,
}
