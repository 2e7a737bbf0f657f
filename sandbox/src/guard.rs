//! The step guard: a small process, forked before a step starts, that ends the step when
//! strata itself dies (even by SIGKILL, which runs no cleanup).
//!
//! Under runc and crun the step's processes are not strata's children: a runtime killed with
//! strata leaves its container running, reparented to init. The guard holds the read end of
//! a pipe whose only writer is strata; the kernel closes that end when strata dies, however
//! it dies, and the guard wakes up, kills every process of the step's cgroups (which every
//! process of the step was put in before it started), and removes them. When the step ends
//! normally strata removes the cgroups itself, then closes the pipe, and the guard finds
//! nothing to do. The guard runs in a session of its own, so a Ctrl-C at the terminal does
//! not end it before it has done its work.
//!
//! It is forked from a multi-threaded process, so like the builtin runtime's child it only
//! makes system calls on data prepared before the fork.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use crate::SandboxError;
use crate::builtin::plan::cpath;

/// Rounds of "kill what is listed" before the guard gives up on a cgroup that stays busy.
const ROUNDS: u32 = 500;

/// What the guard does once strata is gone, for each directory (deepest first): write
/// `cgroup.kill` (v2), SIGKILL each pid of `cgroup.procs` until it lists none, `rmdir`.
struct Plan {
    kill: Vec<CString>,
    procs: Vec<CString>,
    dirs: Vec<CString>,
}

/// A running guard; [`Guard::finish`] (or drop) lets it exit and reaps it.
pub(crate) struct Guard {
    pid: libc::pid_t,
    writer: Option<OwnedFd>,
}

impl Guard {
    /// Forks the guard of the cgroups `dirs` (deepest first).
    pub(crate) fn spawn(dirs: &[PathBuf]) -> Result<Guard, SandboxError> {
        let file = |name: &str| {
            dirs.iter()
                .map(|d| cpath(&d.join(name)))
                .collect::<Result<Vec<_>, _>>()
        };
        let plan = Plan {
            kill: file("cgroup.kill")?,
            procs: file("cgroup.procs")?,
            dirs: dirs.iter().map(|d| cpath(d)).collect::<Result<_, _>>()?,
        };
        let (reader, writer) = crate::builtin::pipe()?;
        // SAFETY: a fork-like clone (no CLOEXEC handling needed: the child never execs). The
        // child only runs guard_main, which makes system calls on `plan` and never returns.
        let pid =
            unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0) };
        if pid == 0 {
            // SAFETY: we are the child of the raw clone; `plan` and the fd were made before it.
            unsafe { guard_main(reader.as_raw_fd(), &plan) }
        }
        if pid < 0 {
            return Err(SandboxError::sys("clone the step guard"));
        }
        drop(reader);
        Ok(Guard {
            pid: pid as libc::pid_t,
            writer: Some(writer),
        })
    }

    /// Closes the pipe (the guard then checks the cgroups, finds them gone, and exits) and
    /// reaps the guard.
    pub(crate) fn finish(mut self) {
        self.reap();
    }

    fn reap(&mut self) {
        if self.writer.take().is_none() {
            return;
        }
        let mut status = 0;
        // SAFETY: waits for our own child; status is a writable int.
        while unsafe { libc::waitpid(self.pid, &mut status, 0) } < 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
        {}
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.reap();
    }
}

/// The guard's life: detach, wait for EOF on `reader`, end the step, exit.
///
/// # Safety
/// Must only be called in the child of a raw `clone`.
unsafe fn guard_main(reader: RawFd, plan: &Plan) -> ! {
    // SAFETY: plain system calls on literals, stack buffers and the prepared plan.
    unsafe {
        libc::setsid();
        // `ps` shows it as such rather than as a second strata.
        libc::prctl(
            libc::PR_SET_NAME,
            c"strata-guard".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        );
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        // Hold nothing of strata's but the pipe: other steps' output pipes must see their
        // end of file when their writers close, and the caller's stdio must close with strata.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        if reader > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, (reader - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (reader + 1) as u32, u32::MAX, 0u32);
        let mut byte = 0u8;
        loop {
            let n = libc::read(reader, (&mut byte as *mut u8).cast(), 1);
            if n == 0 || (n < 0 && crate::overlay::errno() != libc::EINTR) {
                break;
            }
        }
        for round in 0..ROUNDS {
            let mut found = false;
            for (kill, procs) in plan.kill.iter().zip(&plan.procs) {
                let fd = libc::open(kill.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    libc::write(fd, c"1".as_ptr().cast(), 1);
                    libc::close(fd);
                }
                found |= kill_listed(procs);
            }
            if !found || round + 1 == ROUNDS {
                break;
            }
            let pause = libc::timespec {
                tv_sec: 0,
                tv_nsec: 10_000_000,
            };
            libc::nanosleep(&pause, std::ptr::null_mut());
        }
        for dir in &plan.dirs {
            libc::rmdir(dir.as_ptr());
        }
        libc::_exit(0)
    }
}

/// SIGKILLs every pid the `cgroup.procs` file `procs` lists; whether it listed any.
fn kill_listed(procs: &std::ffi::CStr) -> bool {
    // SAFETY: open/read/close on a prepared path and a stack buffer; kill of listed pids.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let mut found = false;
        let mut pid: libc::pid_t = 0;
        let mut buf = [0u8; 512];
        loop {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                break;
            }
            for &b in &buf[..n as usize] {
                if b.is_ascii_digit() {
                    pid = pid
                        .saturating_mul(10)
                        .saturating_add(libc::pid_t::from(b - b'0'));
                } else {
                    // A pid is never 0 here; kill(0) would signal our own group.
                    if pid > 0 {
                        libc::kill(pid, libc::SIGKILL);
                        found = true;
                    }
                    pid = 0;
                }
            }
        }
        if pid > 0 {
            libc::kill(pid, libc::SIGKILL);
            found = true;
        }
        libc::close(fd);
        found
    }
}
