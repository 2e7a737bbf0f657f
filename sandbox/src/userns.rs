//! Rootless builds: an ordinary user's strata runs as root of a user namespace of its own.
//!
//! [`enter_rootless`] moves the whole process, before it starts any thread, into a new user
//! namespace whose uid 0 is the user (and gid 0 the user's group) and whose ids 1..=65536 are
//! the first 65536 ids of the user's `/etc/subuid` and `/etc/subgid` ranges, written by
//! Debian's setuid helpers `newuidmap`/`newgidmap` (an unprivileged process may map only its
//! own id). Everything after that (unpacking with the image's owners, overlay mounts, the
//! runtimes' namespaces, the export reading those owners back) runs unchanged as "root",
//! and the ids a layer records are the ids seen inside the namespace: the image's.
//!
//! What differs inside a user namespace ([`in_user_namespace`]):
//! - overlayfs keeps its whiteout and opaque markers in `user.overlay.*` xattrs (mounted with
//!   `userxattr`), since `trusted.*` needs CAP_SYS_ADMIN in the initial namespace
//!   ([`overlay_xattr_prefix`]);
//! - no device node can be made (`mknod` needs CAP_MKNOD in the initial namespace; whiteouts,
//!   0:0 character devices, are the exception) and every filesystem mounted in the namespace
//!   is `nodev` (the kernel marks every superblock mounted there so), so a step's /dev
//!   binds the host's few character devices (runc and crun do the same), and the device
//!   cgroup, which a user cannot create anyway, has nothing left to deny: no runtime makes
//!   a cgroup there;
//! - sysfs can only be mounted in a network namespace the user namespace owns, so a step on
//!   the host network gets a read-only bind of the host's /sys.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::unistd::{Gid, Uid, User};

/// How many ids of the subordinate ranges are mapped (after id 0, the user): 1..=65536, the
/// ids images use (`nobody` is 65534).
const MAPPED_SUBORDINATE_IDS: u64 = 65536;

/// Why strata cannot enter a user namespace of its own.
#[derive(Debug, thiserror::Error)]
pub enum UserNsError {
    /// The user has no name, so no `/etc/subuid` line can be theirs.
    #[error("uid {uid} has no user name in the password database; rootless builds need one")]
    NoUser {
        /// The user.
        uid: u32,
    },
    /// `/etc/subuid` or `/etc/subgid` cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The user has no subordinate range.
    #[error(
        "{} has no range for {user}: a rootless build needs one (as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user})",
        path.display()
    )]
    NoRange {
        /// `/etc/subuid` or `/etc/subgid`.
        path: PathBuf,
        /// The user.
        user: String,
    },
    /// `newuidmap` or `newgidmap` is not on `PATH`.
    #[error("{program} not found on PATH: rootless builds need it (Debian's uidmap package)")]
    NoHelper {
        /// The program.
        program: &'static str,
    },
    /// A system call failed.
    #[error("cannot enter a user namespace ({call}): {source}")]
    Sys {
        /// The call.
        call: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `newuidmap` or `newgidmap` did not write the map.
    #[error("{program} {args} failed ({status}); see its message above")]
    Map {
        /// The program.
        program: &'static str,
        /// Its arguments.
        args: String,
        /// How it ended.
        status: String,
    },
}

impl UserNsError {
    fn sys(call: &'static str) -> Self {
        UserNsError::Sys {
            call,
            source: io::Error::last_os_error(),
        }
    }
}

/// Whether this process runs in a user namespace other than the initial one (where the uid
/// map is the identity over all ids). Fixed at the first call: call it after
/// [`enter_rootless`], never before.
pub fn in_user_namespace() -> bool {
    static ANSWER: OnceLock<bool> = OnceLock::new();
    *ANSWER.get_or_init(|| {
        fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|map| map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
    })
}

/// The xattr namespace of overlayfs's own markers (opaque directories, redirects) in layers
/// and upper dirs: `trusted.overlay.` in the initial user namespace, `user.overlay.` (with
/// the `userxattr` mount option) inside another one.
pub fn overlay_xattr_prefix() -> &'static str {
    if in_user_namespace() {
        "user.overlay."
    } else {
        "trusted.overlay."
    }
}

/// A first subordinate range `(start, count)` of `user` (by name or uid) in a
/// `/etc/subuid`-format text.
fn subordinate_range(text: &str, user: &str, uid: u32) -> Option<(u64, u64)> {
    let uid = uid.to_string();
    text.lines().find_map(|line| {
        let mut parts = line.trim().split(':');
        let (name, start, count) = (parts.next()?, parts.next()?, parts.next()?);
        if name != user && name != uid {
            return None;
        }
        let (start, count) = (start.parse().ok()?, count.parse::<u64>().ok()?);
        (count > 0).then_some((start, count))
    })
}

/// The helper's argument list: `<pid> 0 <own id> 1 1 <start> <count>`.
fn map_args(pid: i32, own: u32, (start, count): (u64, u64)) -> Vec<String> {
    let count = count.min(MAPPED_SUBORDINATE_IDS);
    [
        pid.to_string(),
        "0".into(),
        own.to_string(),
        "1".into(),
        "1".into(),
        start.to_string(),
        count.to_string(),
    ]
    .into()
}

fn on_path(program: &'static str) -> Result<PathBuf, UserNsError> {
    std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into())
        .to_string_lossy()
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
        .ok_or(UserNsError::NoHelper { program })
}

/// One id-map helper, started before the namespace exists and released once it does.
struct Helper {
    program: &'static str,
    path: CString,
    argv: Vec<CString>,
    pid: libc::pid_t,
}

impl Helper {
    fn new(program: &'static str, args: &[String]) -> Result<Self, UserNsError> {
        let path = on_path(program)?;
        let c = |s: &[u8]| {
            CString::new(s).map_err(|_| UserNsError::Sys {
                call: "CString",
                source: io::Error::from(io::ErrorKind::InvalidInput),
            })
        };
        let mut argv = vec![c(program.as_bytes())?];
        for a in args {
            argv.push(c(a.as_bytes())?);
        }
        Ok(Helper {
            program,
            path: c(path.as_os_str().as_bytes())?,
            argv,
            pid: 0,
        })
    }

    /// Forks the helper: it waits until `gate` reads end-of-file (every write end closed),
    /// then execs the program.
    fn fork(&mut self, gate: libc::c_int, gate_write: libc::c_int) -> Result<(), UserNsError> {
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        // SAFETY: the child only calls close, read, execv and _exit (async-signal-safe) on
        // memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(UserNsError::sys("fork"));
        }
        if pid == 0 {
            // SAFETY: as above; argv is NULL-terminated and points into self.argv.
            unsafe {
                libc::close(gate_write);
                let mut byte = 0u8;
                while libc::read(gate, (&mut byte as *mut u8).cast(), 1) > 0 {}
                libc::execv(self.path.as_ptr(), argv.as_ptr());
                libc::_exit(127);
            }
        }
        self.pid = pid;
        Ok(())
    }

    /// Waits for the helper; `Err` unless it exited with 0.
    fn wait(&self) -> Result<(), UserNsError> {
        let mut status = 0;
        // SAFETY: waits for our own child into a local int.
        while unsafe { libc::waitpid(self.pid, &mut status, 0) } < 0 {
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return Err(UserNsError::sys("waitpid"));
            }
        }
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            return Ok(());
        }
        let status = if libc::WIFSIGNALED(status) {
            format!("killed by signal {}", libc::WTERMSIG(status))
        } else {
            format!("exit code {}", libc::WEXITSTATUS(status))
        };
        let args = self.argv[1..]
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        Err(UserNsError::Map {
            program: self.program,
            args,
            status,
        })
    }

    fn kill(&self) {
        // SAFETY: signals and reaps our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// Moves this process into a new user namespace where it is root, with the calling user's
/// subordinate ids mapped (see the module documentation). Must be called while the process
/// has a single thread (the kernel refuses `unshare(CLONE_NEWUSER)` otherwise), before
/// anything reads [`in_user_namespace`].
pub fn enter_rootless() -> Result<(), UserNsError> {
    let (uid, gid) = (Uid::current(), Gid::current());
    let user = User::from_uid(uid)
        .ok()
        .flatten()
        .ok_or(UserNsError::NoUser { uid: uid.as_raw() })?;
    let range = |path: &str| {
        let path = PathBuf::from(path);
        let text = fs::read_to_string(&path).map_err(|source| UserNsError::Read {
            path: path.clone(),
            source,
        })?;
        subordinate_range(&text, &user.name, uid.as_raw()).ok_or(UserNsError::NoRange {
            path,
            user: user.name.clone(),
        })
    };
    let pid = std::process::id() as i32;
    let mut helpers = [
        Helper::new(
            "newuidmap",
            &map_args(pid, uid.as_raw(), range("/etc/subuid")?),
        )?,
        Helper::new(
            "newgidmap",
            &map_args(pid, gid.as_raw(), range("/etc/subgid")?),
        )?,
    ];
    let mut gate = [0 as libc::c_int; 2];
    // SAFETY: gate is a writable array of two ints, as pipe2 requires.
    if unsafe { libc::pipe2(gate.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(UserNsError::sys("pipe2"));
    }
    let close_gate = || {
        // SAFETY: closes the two descriptors pipe2 made; nothing else owns them.
        unsafe {
            libc::close(gate[0]);
            libc::close(gate[1]);
        }
    };
    let mut started = 0;
    let mut forked = Ok(());
    for helper in &mut helpers {
        forked = helper.fork(gate[0], gate[1]);
        if forked.is_err() {
            break;
        }
        started += 1;
    }
    // SAFETY: a plain system call; the process is single-threaded (the caller's contract,
    // and the kernel checks it).
    let unshared = if forked.is_ok() && unsafe { libc::unshare(libc::CLONE_NEWUSER) } < 0 {
        Err(UserNsError::sys("unshare(CLONE_NEWUSER)"))
    } else {
        forked
    };
    if let Err(e) = unshared {
        helpers[..started].iter().for_each(Helper::kill);
        close_gate();
        return Err(e);
    }
    close_gate();
    let waited: Vec<_> = helpers.iter().map(Helper::wait).collect();
    waited.into_iter().collect::<Result<(), _>>()?;
    // The host's supplementary groups are unmapped here (they show as 65534): drop them.
    nix::unistd::setgroups(&[]).map_err(|e| UserNsError::Sys {
        call: "setgroups",
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_by_name_or_uid_first_one_wins() {
        let text = "alice:100000:65536\nbob:165536:1000\n1002:300000:70000\nbob:400000:5\n";
        assert_eq!(subordinate_range(text, "bob", 1001), Some((165536, 1000)));
        assert_eq!(
            subordinate_range(text, "carol", 1002),
            Some((300000, 70000))
        );
        assert_eq!(subordinate_range(text, "dave", 1003), None);
        assert_eq!(subordinate_range("dave:1:0\n", "dave", 7), None);
    }

    #[test]
    fn maps_the_user_to_root_and_at_most_65536_subordinate_ids() {
        assert_eq!(
            map_args(42, 1000, (300000, 70000)),
            ["42", "0", "1000", "1", "1", "300000", "65536"]
        );
        assert_eq!(map_args(42, 1000, (100, 10))[6], "10");
    }
}
