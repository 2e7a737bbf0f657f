//! A new network namespace held by a descriptor: nothing is mounted, so nothing is left on
//! the host when the descriptor closes, even if strata is killed.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sched::{CloneFlags, unshare};

use crate::SandboxError;

/// A network namespace of our own, alive while this value (or a process in it) is.
pub(super) struct NetNs {
    fd: OwnedFd,
}

impl NetNs {
    /// Makes a namespace (only `lo`, down) on a short-lived thread, so no thread of ours
    /// changes namespace: the namespace is per thread, and the thread's descriptor of it
    /// outlives the thread.
    pub(super) fn new() -> Result<Self, SandboxError> {
        let made = std::thread::spawn(|| -> Result<OwnedFd, SandboxError> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| SandboxError::Sys {
                what: "unshare(CLONE_NEWNET)",
                source: e.into(),
            })?;
            let path = "/proc/thread-self/ns/net";
            File::open(path)
                .map(OwnedFd::from)
                .map_err(|e| SandboxError::io("open", path, e))
        })
        .join();
        match made {
            Ok(fd) => Ok(NetNs { fd: fd? }),
            Err(_) => Err(SandboxError::Sys {
                what: "make a network namespace (thread panicked)",
                source: std::io::Error::other("thread panicked"),
            }),
        }
    }

    pub(super) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// `/proc/<our pid>/fd/<fd>`: opens the namespace for any process while we hold it.
    pub(super) fn path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.fd.as_raw_fd()
        ))
    }
}
