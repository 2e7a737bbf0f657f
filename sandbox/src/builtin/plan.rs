//! The setup a sandbox child performs, built in the parent with every string and array
//! already allocated, so that the child (a copy of a multi-threaded process) only makes
//! system calls.

use std::ffi::CString;
use std::path::Path;

use crate::SandboxError;
use crate::overlay::OverlayMount;

/// One setup step. Paths are absolute host paths until [`Op::PivotRoot`], root paths after.
pub(crate) enum Op {
    /// Move this process into the step's device cgroup (its `cgroup.procs`).
    JoinCgroup { procs: CString },
    /// `setns` into the step's private network namespace (a descriptor the parent holds).
    JoinNetns { fd: libc::c_int },
    /// Make every mount of the new mount namespace private, so nothing propagates to the host.
    MakeRootPrivate,
    /// Mount the overlay root.
    Overlay(OverlayMount),
    /// `mkdir`, an existing entry is fine.
    Mkdir { path: CString, mode: u32 },
    /// Bind a generated file read-only over `target` (created empty if missing), only when
    /// `parent` is a real directory: through a symlinked `/etc`, creating the file would
    /// write outside the root. A symlink at `target` is left alone for the same reason.
    EtcFile {
        source: CString,
        target: CString,
        parent: CString,
    },
    /// `mount(2)`. `optional` skips a missing target.
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: libc::c_ulong,
        data: Option<CString>,
        optional: bool,
    },
    /// Bind `source` over `target` read-only; skipped when `target` is a symlink (it could point
    /// outside the root) or, if `optional`, missing.
    BindReadOnly {
        source: CString,
        target: CString,
        optional: bool,
    },
    /// `mknod` of a character device with mode 0666.
    CharDevice {
        path: CString,
        major: u32,
        minor: u32,
    },
    /// Bind the host device `source` on `target`, created as an empty file (inside a user
    /// namespace, where `mknod` is refused).
    BindDevice { source: CString, target: CString },
    /// `symlink(target, path)`.
    Symlink { target: CString, path: CString },
    /// Bring `lo` up (fresh network namespace).
    LoopbackUp,
    /// Make `new_root` the root and detach the old one.
    PivotRoot { new_root: CString },
    /// `sethostname`.
    Hostname { name: CString },
    /// `chdir`.
    Chdir { path: CString },
    /// An extra mount made detached (before `pivot_root`, while host paths are reachable);
    /// its descriptor is kept in `slot` for [`Op::Attach`].
    Detach { mount: Detached, slot: usize },
    /// An empty file as the mountpoint of a file (after `pivot_root`).
    Touch { path: CString },
    /// Attach the mount kept in `slot` at `target` (after `pivot_root`).
    Attach { slot: usize, target: CString },
}

/// An extra mount, prepared.
pub(crate) enum Detached {
    Bind {
        source: CString,
        readonly: bool,
    },
    Tmpfs {
        size: Option<CString>,
    },
    /// A file written at `path`, on the tmpfs mounted for the step's files.
    File {
        path: CString,
        contents: crate::mounts::SecretBytes,
        mode: u32,
        owner: (u32, u32),
    },
}

impl Op {
    /// What the step does, for the error message when it fails.
    pub(crate) fn describe(&self) -> String {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            Op::JoinCgroup { procs } => format!("join the step cgroup {}", s(procs)),
            Op::JoinNetns { fd } => format!("join the step's network namespace (fd {fd})"),
            Op::MakeRootPrivate => "make / private".into(),
            Op::Overlay(overlay) => overlay.describe(),
            Op::Mkdir { path, .. } => format!("mkdir {}", s(path)),
            Op::EtcFile { source, target, .. } => {
                format!("bind {} read-only on {}", s(source), s(target))
            }
            Op::Mount {
                target,
                fstype,
                source,
                ..
            } => format!(
                "mount {} ({}) on {}",
                source.as_ref().map(s).unwrap_or_default(),
                fstype.as_ref().map(s).unwrap_or_else(|| "bind".into()),
                s(target)
            ),
            Op::BindReadOnly { source, target, .. } => {
                format!("bind {} read-only on {}", s(source), s(target))
            }
            Op::CharDevice { path, .. } => format!("mknod {}", s(path)),
            Op::BindDevice { source, target } => format!("bind {} on {}", s(source), s(target)),
            Op::Symlink { path, .. } => format!("symlink {}", s(path)),
            Op::LoopbackUp => "bring lo up".into(),
            Op::PivotRoot { new_root } => format!("pivot_root to {}", s(new_root)),
            Op::Hostname { name } => format!("sethostname {}", s(name)),
            Op::Chdir { path } => format!("chdir {}", s(path)),
            Op::Detach { mount, .. } => match mount {
                Detached::Bind { source, .. } => format!("bind {}", s(source)),
                Detached::Tmpfs { .. } => "make a tmpfs".into(),
                Detached::File { .. } => "make a file on a tmpfs".into(),
            },
            Op::Touch { path } => format!("create the mountpoint {}", s(path)),
            Op::Attach { target, .. } => format!("mount on {}", s(target)),
        }
    }
}

/// Credentials and the program: what the child does after the setup steps.
pub(crate) struct Launch {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) groups: Vec<libc::gid_t>,
    /// Capabilities kept (effective and permitted) when `uid` is 0; also the bounding set.
    pub(crate) keep_caps: u64,
    pub(crate) last_cap: u32,
    /// `RLIMIT_*` numbers and the limits to set, before the capabilities are dropped.
    pub(crate) rlimits: Vec<(u32, libc::rlimit64)>,
    /// Seccomp BPF programs, installed in this order just before `execve`.
    pub(crate) seccomp: Vec<seccompiler::BpfProgram>,
    /// Paths to try in turn (the `PATH` lookup of `argv[0]`, done inside the new root).
    pub(crate) candidates: Vec<CString>,
    pub(crate) argv: Vec<CString>,
    pub(crate) env: Vec<CString>,
}

/// A C string from a Rust string, rejecting interior NUL bytes.
pub(crate) fn cstr(s: &str) -> Result<CString, SandboxError> {
    CString::new(s).map_err(|_| SandboxError::InvalidSpec(format!("NUL byte in {s:?}")))
}

/// A C string from a path.
pub(crate) fn cpath(p: &Path) -> Result<CString, SandboxError> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| SandboxError::InvalidSpec(format!("NUL byte in path {}", p.display())))
}

/// Where `argv0` may live: itself when it contains a `/`, else each directory of `PATH`
/// (from `env`, or Docker's default) joined with it.
pub(crate) fn exec_candidates(argv0: &str, env: &[String]) -> Vec<String> {
    if argv0.contains('/') {
        return vec![argv0.to_string()];
    }
    let path = env
        .iter()
        .rev()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .map(|dir| if dir.is_empty() { "." } else { dir })
        .map(|dir| format!("{}/{argv0}", dir.trim_end_matches('/')))
        .collect()
}

/// `/a`, `/a/b`, `/a/b/c` for `/a/b/c`: the directories to create for a working directory.
pub(crate) fn dir_prefixes(cwd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for part in cwd.split('/').filter(|p| !p.is_empty() && *p != ".") {
        current.push('/');
        current.push_str(part);
        out.push(current.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_path_and_keep_slashed_names() {
        let env = vec!["PATH=/usr/bin:/bin/".to_string()];
        assert_eq!(exec_candidates("ls", &env), ["/usr/bin/ls", "/bin/ls"]);
        assert_eq!(exec_candidates("./x", &env), ["./x"]);
        assert_eq!(
            exec_candidates("sh", &[]).last().map(String::as_str),
            Some("/bin/sh")
        );
    }

    #[test]
    fn prefixes_of_a_working_directory() {
        assert_eq!(dir_prefixes("/a//b/c/"), ["/a", "/a/b", "/a/b/c"]);
        assert!(dir_prefixes("/").is_empty());
    }
}
