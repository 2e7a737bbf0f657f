//! The slirp4netns process serving one namespace: started, waited for until its interface
//! is configured, and stopped (by closing its exit descriptor) when dropped.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use crate::SandboxError;

const BINARY: &str = "slirp4netns";
/// Descriptors the helper gets: it exits when `EXIT_FD` reaches end of file, and writes to
/// `READY_FD` once `tap0` is up.
const EXIT_FD: RawFd = 3;
const READY_FD: RawFd = 4;
/// How long the helper may take to configure the interface, and to exit when told.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Slirp {
    child: Child,
    /// Its stderr (an unlinked file, so a chatty helper never blocks on a full pipe).
    log: File,
    /// Closing it tells the helper to exit.
    exit: Option<OwnedFd>,
}

fn helper_error(message: impl Into<String>) -> SandboxError {
    SandboxError::NetworkHelper {
        helper: BINARY,
        message: message.into(),
    }
}

fn find_binary() -> Result<PathBuf, SandboxError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(BINARY))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| helper_error("not found in PATH (install Debian's slirp4netns package)"))
}

fn cloexec_pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| SandboxError::Sys {
        what: "pipe2",
        source: e.into(),
    })
}

/// In the forked child before exec: `exit_r` and `ready_w` onto [`EXIT_FD`] and
/// [`READY_FD`] (first moved above both, so neither overwrites the other), and SIGKILL
/// when the thread that started us ends. System calls only.
fn place_fds(exit_r: RawFd, ready_w: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl, dup2 and prctl on descriptors this process holds; no allocation.
    unsafe {
        let high_exit = libc::fcntl(exit_r, libc::F_DUPFD_CLOEXEC, 10);
        let high_ready = libc::fcntl(ready_w, libc::F_DUPFD_CLOEXEC, 10);
        if high_exit < 0
            || high_ready < 0
            || libc::dup2(high_exit, EXIT_FD) < 0
            || libc::dup2(high_ready, READY_FD) < 0
            || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Slirp {
    /// Starts slirp4netns on the namespace at `netns` and waits until `tap0` is configured.
    pub(super) fn start(netns: &Path) -> Result<Self, SandboxError> {
        let binary = find_binary()?;
        let (exit_r, exit_w) = cloexec_pipe()?;
        let (ready_r, ready_w) = cloexec_pipe()?;
        let log = tempfile::tempfile()
            .map_err(|e| SandboxError::io("create a log file in", std::env::temp_dir(), e))?;
        let log_for_child = log
            .try_clone()
            .map_err(|e| SandboxError::io("duplicate the log file in", std::env::temp_dir(), e))?;
        let mut cmd = Command::new(&binary);
        cmd.arg("--configure")
            // Without it the gateway, 10.0.2.2, is the host's 127.0.0.1.
            .arg("--disable-host-loopback")
            .arg("--enable-sandbox")
            .arg("--enable-seccomp")
            .arg("--mtu=65520")
            .arg("--netns-type=path")
            .arg(format!("--exit-fd={EXIT_FD}"))
            .arg(format!("--ready-fd={READY_FD}"))
            .arg(netns)
            .arg("tap0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_for_child);
        let (exit_raw, ready_raw) = (exit_r.as_raw_fd(), ready_w.as_raw_fd());
        // SAFETY: the closure only makes system calls on descriptors the child inherited.
        unsafe {
            cmd.pre_exec(move || place_fds(exit_raw, ready_raw));
        }
        let child = cmd
            .spawn()
            .map_err(|e| helper_error(format!("start {}: {e}", binary.display())))?;
        drop((exit_r, ready_w));
        let mut helper = Slirp {
            child,
            log,
            exit: Some(exit_w),
        };
        if let Err(message) = helper.wait_ready(ready_r) {
            helper.stop();
            let stderr = helper.stderr();
            // Rootless podman has the same need: the tun device must be open to the user.
            let hint = if stderr.contains("/dev/net/tun") && crate::userns::in_user_namespace() {
                " (a rootless build's private network needs /dev/net/tun readable and \
                 writable by the user, mode 0666 as Debian's udev makes it; or build with \
                 --network=none)"
            } else {
                ""
            };
            return Err(helper_error(if stderr.is_empty() {
                message
            } else {
                format!("{message}: {stderr}{hint}")
            }));
        }
        Ok(helper)
    }

    /// Waits for the ready byte; end of file means the helper gave up.
    fn wait_ready(&self, ready: OwnedFd) -> Result<(), String> {
        let mut pfd = libc::pollfd {
            fd: ready.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let timeout = READY_TIMEOUT.as_millis() as libc::c_int;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout) };
        if n == 0 {
            return Err(format!("not ready after {}s", READY_TIMEOUT.as_secs()));
        }
        if n < 0 {
            return Err(format!("wait for it: {}", std::io::Error::last_os_error()));
        }
        let mut byte = [0u8; 1];
        match File::from(ready).read(&mut byte) {
            Ok(1) => Ok(()),
            Ok(_) => Err("exited before configuring the interface".into()),
            Err(e) => Err(format!("read its ready descriptor: {e}")),
        }
    }

    /// What the helper wrote to stderr, on one line.
    fn stderr(&mut self) -> String {
        use std::io::{Seek, SeekFrom};
        let mut text = String::new();
        if self.log.seek(SeekFrom::Start(0)).is_ok() {
            let _ = self.log.read_to_string(&mut text);
        }
        text.trim().replace('\n', "; ")
    }

    /// Tells the helper to exit and reaps it, killing it if it does not exit in time.
    fn stop(&mut self) {
        drop(self.exit.take());
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() >= deadline => break,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    #[cfg(test)]
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Slirp {
    fn drop(&mut self) {
        self.stop();
    }
}
