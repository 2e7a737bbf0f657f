//! Exit codes, in one place: 0 ok, 1 the build (or the command's work)
//! failed, 2 bad usage or a bad Dockerfile, 3 the environment is missing
//! something (runtime, registry, disk space, permissions). Every library
//! error a command meets is mapped to one here, by its kind.

use std::io::Write;
use std::path::Path;

use strata_exporter::{ExportError, ImportError};
use strata_solver::PullError;
use strata_solver::SolveError;

/// Success.
pub const EXIT_OK: u8 = 0;
/// A build step, or the command's own work, failed.
pub const EXIT_STEP_FAILED: u8 = 1;
/// Bad usage or a bad Dockerfile.
pub const EXIT_USAGE: u8 = 2;
/// The environment is missing something.
pub const EXIT_ENVIRONMENT: u8 = 3;

/// Why a command failed: its kind (the exit code) and one sentence for
/// the `ERROR: ` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Bad usage or a bad Dockerfile (exit 2).
    Usage(String),
    /// The build or the command's work failed (exit 1).
    Failed(String),
    /// The environment is at fault (exit 3).
    Environment(String),
}

impl Failure {
    /// The exit code.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Failed(_) => EXIT_STEP_FAILED,
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Environment(_) => EXIT_ENVIRONMENT,
        }
    }

    /// The sentence.
    pub fn message(&self) -> &str {
        match self {
            Failure::Usage(m) | Failure::Failed(m) | Failure::Environment(m) => m,
        }
    }
}

/// An ordinary user's strata could not enter its user namespace: the host lacks
/// something (subordinate ids, newuidmap, user namespaces).
pub fn rootless_failure(e: &strata_sandbox::UserNsError) -> Failure {
    Failure::Environment(format!("rootless: {e}"))
}

/// Writes `ERROR: …` for a failure and returns the exit code.
pub fn report(err: &mut dyn Write, result: Result<(), Failure>) -> u8 {
    match result {
        Ok(()) => EXIT_OK,
        Err(f) => {
            let _ = writeln!(err, "ERROR: {}", f.message());
            f.code()
        }
    }
}

/// What a docker user can do when a registry cannot be reached.
const UNREACHABLE_HINT: &str = "\
hint: no registry is needed for an image you already have:
  strata load -i IMAGE.tar                       an archive from `docker save` or `strata save`
  --build-context NAME=oci-layout:///DIR[:TAG]   an OCI layout on disk, for FROM NAME
  STRATA_REGISTRY_MIRRORS=docker.io=HOST:PORT    a reachable mirror of the registry
  --insecure-registry HOST:PORT                  a registry served over plain HTTP";

/// `e`'s message, with [`UNREACHABLE_HINT`] when an unreachable registry
/// is among its causes.
fn with_hint(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(strata_registry::Error::Unreachable { .. }) =
            c.downcast_ref::<strata_registry::Error>()
        {
            return format!("{e}\n{UNREACHABLE_HINT}");
        }
        cause = c.source();
    }
    e.to_string()
}

impl From<strata_registry::Error> for Failure {
    fn from(e: strata_registry::Error) -> Self {
        use strata_registry::Error as E;
        let message = with_hint(&e);
        match e {
            E::InvalidReference { .. } | E::InvalidPlatform { .. } | E::InvalidDigest { .. } => {
                Failure::Usage(message)
            }
            E::Unauthorized { .. } | E::NoCredentials { .. } | E::Credentials { .. } => {
                Failure::Environment(message)
            }
            e if e.is_transient() => Failure::Environment(message),
            _ => Failure::Failed(message),
        }
    }
}

impl From<PullError> for Failure {
    fn from(e: PullError) -> Self {
        match e {
            PullError::Registry(e) => e.into(),
            other => Failure::Environment(other.to_string()),
        }
    }
}

impl From<ImportError> for Failure {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Open { .. } => Failure::Usage(e.to_string()),
            ImportError::Temp(_) => Failure::Environment(e.to_string()),
            ImportError::Archive { .. } => Failure::Failed(e.to_string()),
        }
    }
}

impl From<ExportError> for Failure {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::NothingToPush | ExportError::BadLevel { .. } => {
                Failure::Usage(e.to_string())
            }
            ExportError::Registry(e) => e.into(),
            ExportError::Layout { .. } | ExportError::WriteFile { .. } => {
                Failure::Environment(e.to_string())
            }
            ExportError::Tag { .. } => Failure::Failed(e.to_string()),
            e => Failure::Failed(format!("export: {e}")),
        }
    }
}

/// A failed build's kind; a full disk names the state root `root` first.
pub fn solve_failure(e: SolveError, root: &Path) -> Failure {
    let message = with_hint(&e);
    match e {
        SolveError::ContextNotDir(_)
        | SolveError::NotUtf8(_)
        | SolveError::Parse(_)
        | SolveError::Ignore(_)
        | SolveError::Lower { .. }
        | SolveError::NoCacheFilter(_) => Failure::Usage(message),
        // A base image that cannot be found fails the build, as in docker.
        SolveError::BaseImage { ref source, .. } if source.is_environment() => {
            Failure::Environment(message)
        }
        SolveError::BaseImage { .. } => Failure::Failed(message),
        SolveError::Step(step) if step.error.no_space() => Failure::Environment(format!(
            "no space left on device under {}: step {}: {}",
            root.display(),
            step.name,
            step.error
        )),
        // A step killed for going over --memory (the sandbox's OutOfMemory) fails here too.
        SolveError::Step(_) => Failure::Failed(message),
        // A missing runtime, no namespace, an unusable state root.
        SolveError::Runtime(_)
        | SolveError::Namespace(_)
        | SolveError::Store(_)
        | SolveError::Lease(_)
        | SolveError::Images(_)
        | SolveError::Executor(_)
        | SolveError::Scratch { .. }
        | SolveError::Leftovers { .. }
        | SolveError::Schedule(_)
        | SolveError::Panicked
        | SolveError::NoOutput => Failure::Environment(message),
    }
}
