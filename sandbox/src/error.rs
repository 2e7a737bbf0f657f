//! The errors a sandbox run can end with.

use std::io;
use std::path::PathBuf;

/// Why a sandboxed run could not start or be waited for. A process that starts and fails is
/// not an error: its exit code is returned.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec cannot be run as given (empty argv, relative cwd, NUL byte in a string).
    #[error("invalid process spec: {0}")]
    InvalidSpec(String),
    /// A host-side file operation failed (state directory, generated files, upper dir cleanup).
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path it was done on.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A system call of the run's host side failed (clone, pipe, wait).
    #[error("{what}: {source}")]
    Sys {
        /// The call that failed.
        what: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// A setup step inside the sandbox failed before the process could start.
    #[error("sandbox setup: {step}: {}", errno_text(*.errno))]
    Setup {
        /// The step that failed, with the path it acted on.
        step: String,
        /// The errno it failed with.
        errno: i32,
    },
    /// The program could not be executed (missing, not executable, bad format).
    #[error("exec {program}: {}", errno_text(*.errno))]
    Exec {
        /// `argv[0]` as given in the spec.
        program: String,
        /// The errno of the last exec attempt that mattered.
        errno: i32,
    },
    /// The step's device cgroup could not be made, confined or removed.
    #[error("step cgroup: {what} {path}: {source}")]
    Cgroup {
        /// What was being done.
        what: &'static str,
        /// The cgroup directory or file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Neither the cgroup v1 `devices` controller nor a cgroup2 hierarchy is mounted, so a
    /// step could reach every device node it can make or find: steps do not run unconfined.
    #[error(
        "no cgroup v1 devices controller and no cgroup2 hierarchy are mounted: \
         steps cannot be confined to the allowed devices"
    )]
    NoDeviceCgroup,
    /// A cgroup controller a step's limits need is not mounted (cgroup v1 hosts).
    #[error(
        "the cgroup v1 {controller} controller is not mounted: a step cannot be limited with it"
    )]
    NoController {
        /// `memory` or `pids`.
        controller: &'static str,
    },
    /// `--memory` or `--pids-limit` in a rootless build (no cgroup can be made there).
    #[error(
        "{flag} needs a cgroup, which a rootless build cannot make: build as root or without {flag}"
    )]
    RootlessLimit {
        /// The flag given.
        flag: &'static str,
    },
    /// The step went over `--memory` and the kernel killed it.
    #[error("step killed: out of memory (limit {})", crate::limits::Bytes(*.limit))]
    OutOfMemory {
        /// The memory limit, in bytes.
        limit: u64,
    },
    /// The OCI runtime config could not be built or written.
    #[error("OCI bundle config {path}: {message}")]
    OciConfig {
        /// The config.json being written.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The seccomp profile could not be compiled into BPF for this host.
    #[error("seccomp profile: {message}")]
    Seccomp {
        /// What went wrong.
        message: String,
    },
    /// The helper serving a step's private network (slirp4netns) is missing or failed.
    #[error("{helper}: {message}")]
    NetworkHelper {
        /// The helper's binary name.
        helper: &'static str,
        /// What went wrong, with what it printed.
        message: String,
    },
    /// An OCI runtime binary failed outside the container process.
    #[error("{runtime}: {message}")]
    OciRuntime {
        /// The runtime binary (`runc`, `crun`).
        runtime: String,
        /// What went wrong.
        message: String,
    },
}

/// The C library's text for an errno, lower-cased like Go's (`no such file or directory`).
pub(crate) fn errno_text(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    let text = match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

impl SandboxError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SandboxError::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn cgroup(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SandboxError::Cgroup {
            what,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(what: &'static str) -> Self {
        SandboxError::Sys {
            what,
            source: io::Error::last_os_error(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_error_reads_like_gos() {
        let err = SandboxError::Exec {
            program: "/bin/foo".into(),
            errno: libc::ENOENT,
        };
        assert_eq!(err.to_string(), "exec /bin/foo: no such file or directory");
        let err = SandboxError::Setup {
            step: "mkdir /x".into(),
            errno: libc::EACCES,
        };
        assert_eq!(
            err.to_string(),
            "sandbox setup: mkdir /x: permission denied"
        );
    }
}
