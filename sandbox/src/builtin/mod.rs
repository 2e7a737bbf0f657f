//! The builtin runtime: a device cgroup, namespaces, an overlay root, pivot_root,
//! capabilities, seccomp, exec.
//!
//! Design: the parent prepares the whole setup as a list of [`plan::Op`]s with every string
//! allocated, then calls the raw `clone` system call with the new namespaces (mount, pid,
//! ipc, uts, and net for [`Network::None`]; for [`Network::Private`] it joins the namespace
//! that [`crate::network`] made and serves). The child is PID 1 of its pid namespace; it runs
//! the ops with bare system calls (see [`child`] for why nothing else is allowed there),
//! the first of which moves it into the step's device cgroup ([`crate::cgroup`]; none in a
//! rootless build, see [`crate::userns`]); it then
//! sets its credentials, installs the seccomp programs compiled in the parent
//! ([`crate::seccomp`]) and execs the program, which stays PID 1 (as with BuildKit's runc
//! executor). The overlay and every other mount exist only in the child's mount namespace,
//! so they vanish with it. The parent thread waits on a pidfd, polling `cancelled`; killing
//! PID 1 kills the whole pid namespace. No process-global state (cwd, umask, signal
//! handlers) of the parent changes.

mod child;
pub(crate) mod plan;

use std::ffi::{CString, c_char};
use std::fs::{self, File};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::cgroup::{DeviceControl, StepCgroup};
use crate::docker_paths;
use crate::etc_files::EtcFiles;
use crate::guard::Guard;
use crate::limits::Limits;
use crate::mounts::{self, MountSource, StepMount, Stubs};
use crate::network::PrivateNetwork;
use crate::output::pump_lines;
use crate::overlay::OverlayMount;
use crate::placeholders::Placeholders;
use crate::{Network, ProcessSpec, RootFs, Runtime, SandboxError, Seccomp, Stream, caps, seccomp};
use child::{ChildFds, KIND_EXEC, KIND_OP, KIND_STEP, STEPS};
use plan::{Detached, Launch, Op, cpath, cstr};

/// The embedded runtime (needs root).
#[derive(Debug, Clone, Default)]
pub struct Builtin {
    /// Where steps' device allow-list is enforced; detected at each run when `None`.
    devices: Option<DeviceControl>,
    /// What each step may use.
    limits: Limits,
    /// Where each run's state folder is made (the system's temp dir when `None`).
    temp_dir: Option<PathBuf>,
}

impl Builtin {
    /// A runtime that confines steps' devices with `devices` instead of what the host
    /// offers first (see [`DeviceControl::detect`]).
    pub fn with_device_control(devices: DeviceControl) -> Self {
        Builtin {
            devices: Some(devices),
            ..Builtin::default()
        }
    }

    /// Runs every step with `limits` instead of Docker's defaults.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Makes each run's state folder (`strata-sandbox-*`) in `dir`, which must exist.
    pub fn with_temp_dir(mut self, dir: PathBuf) -> Self {
        self.temp_dir = Some(dir);
        self
    }
}

impl Runtime for Builtin {
    fn run(
        &self,
        root: &RootFs,
        spec: &ProcessSpec,
        output: &(dyn Fn(Stream, &[u8]) + Sync),
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<i32, SandboxError> {
        spec.validate()?;
        let rootless = crate::userns::in_user_namespace();
        let temp = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let state = tempfile::Builder::new()
            .prefix("strata-sandbox-")
            .tempdir_in(&temp)
            .map_err(|e| SandboxError::io("create state dir in", &temp, e))?;
        // Inside a user namespace no device node can be made, and every mount is nodev but
        // the binds of the host's allowed devices (see crate::userns): the device cgroup,
        // which an ordinary user cannot create, would deny nothing more; it is left out there,
        // and the step's processes end with its pid namespace when strata dies.
        let cgroup = if rootless {
            self.limits.refuse_rootless()?;
            None
        } else {
            let devices = match &self.devices {
                Some(devices) => devices.clone(),
                None => DeviceControl::detect()?,
            };
            Some(StepCgroup::create(&devices, &self.limits, true)?)
        };
        let guard = match &cgroup {
            Some(cgroup) => Some(Guard::spawn(&cgroup.all_dirs())?),
            None => None,
        };
        let placeholders = Placeholders::survey(&root.upper);
        let mounts = mounts::resolve_all(root, &spec.mounts)?;
        let stubs = Stubs::survey(root, &mounts);
        let mut ops: Vec<Op> = cgroup
            .iter()
            .flat_map(|cgroup| cgroup.procs())
            .map(|procs| Op::JoinCgroup {
                procs: procs.clone(),
            })
            .collect();
        let network = match spec.network {
            Network::Private => Some(PrivateNetwork::start()?),
            Network::Host | Network::None => None,
        };
        if let Some(network) = &network {
            ops.push(Op::JoinNetns { fd: network.fd() });
        }
        ops.extend(build_ops(
            state.path(),
            root,
            spec,
            &mounts,
            rootless,
            &self.limits,
        )?);
        let launch = build_launch(spec, &self.limits)?;
        let status = spawn_and_wait(&ops, &launch, spec, output, cancelled);
        // The helper ends with the step (its namespace has no process left).
        drop(network);
        let out_of_memory = cgroup.as_ref().and_then(StepCgroup::out_of_memory);
        let removed = cgroup.map_or(Ok(()), StepCgroup::remove);
        if let Some(guard) = guard {
            guard.finish();
        }
        // Cleanup runs even when the run failed, so placeholders never reach a layer.
        placeholders.remove_created(root)?;
        stubs.remove(root)?;
        let code = status?;
        removed?;
        match out_of_memory {
            Some(limit) if code != 0 => Err(SandboxError::OutOfMemory { limit }),
            _ => Ok(code),
        }
    }
}

/// The setup steps: overlay root, mountpoints, /proc, /dev, /sys, /etc files, pivot_root,
/// hostname, working directory. `rootless`: inside a user namespace (see crate::userns).
fn build_ops(
    state: &Path,
    root: &RootFs,
    spec: &ProcessSpec,
    extra: &[StepMount],
    rootless: bool,
    limits: &Limits,
) -> Result<Vec<Op>, SandboxError> {
    let new_root = state.join("root");
    fs::create_dir(&new_root).map_err(|e| SandboxError::io("create", &new_root, e))?;
    let etc = EtcFiles::write(state, &spec.hostname, spec.network)?;
    let at = |rel: &str| cpath(&new_root.join(rel));
    let some = |s: &str| cstr(s).map(Some);
    let nosuid_nodev_noexec = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let shm = limits.shm_options();

    let mut ops = vec![
        Op::MakeRootPrivate,
        Op::Overlay(OverlayMount::new(&new_root, root, &state.join("empty"))?),
    ];
    for dir in ["proc", "dev", "sys", "etc"] {
        ops.push(Op::Mkdir {
            path: at(dir)?,
            mode: 0o755,
        });
    }
    ops.push(Op::Mount {
        source: some("proc")?,
        target: at("proc")?,
        fstype: some("proc")?,
        flags: nosuid_nodev_noexec,
        data: None,
        optional: false,
    });
    ops.push(Op::Mount {
        source: some("tmpfs")?,
        target: at("dev")?,
        fstype: some("tmpfs")?,
        flags: libc::MS_NOSUID | libc::MS_STRICTATIME,
        data: some("mode=755,size=65536k")?,
        optional: false,
    });
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let path = at(&format!("dev/{name}"))?;
        ops.push(if rootless {
            Op::BindDevice {
                source: cstr(&format!("/dev/{name}"))?,
                target: path,
            }
        } else {
            Op::CharDevice { path, major, minor }
        });
    }
    for (dir, fstype, flags, data) in [
        (
            "dev/pts",
            "devpts",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5",
        ),
        ("dev/shm", "tmpfs", nosuid_nodev_noexec, shm.as_str()),
        ("dev/mqueue", "mqueue", nosuid_nodev_noexec, ""),
    ] {
        ops.push(Op::Mkdir {
            path: at(dir)?,
            mode: 0o755,
        });
        ops.push(Op::Mount {
            source: some(fstype)?,
            target: at(dir)?,
            fstype: some(fstype)?,
            flags,
            data: if data.is_empty() { None } else { some(data)? },
            optional: false,
        });
    }
    for (link, target) in [
        ("dev/ptmx", "pts/ptmx"),
        ("dev/fd", "/proc/self/fd"),
        ("dev/stdin", "/proc/self/fd/0"),
        ("dev/stdout", "/proc/self/fd/1"),
        ("dev/stderr", "/proc/self/fd/2"),
    ] {
        ops.push(Op::Symlink {
            target: cstr(target)?,
            path: at(link)?,
        });
    }
    // Docker's read-only and masked paths (the masked folders after /sys is
    // mounted, since two of them are under it).
    for path in docker_paths::READONLY {
        let rel = path.trim_start_matches('/');
        ops.push(Op::BindReadOnly {
            source: at(rel)?,
            target: at(rel)?,
            optional: true,
        });
    }
    for path in docker_paths::MASKED_FILES {
        ops.push(Op::BindReadOnly {
            source: at("dev/null")?,
            target: at(path.trim_start_matches('/'))?,
            optional: true,
        });
    }
    // sysfs needs a network namespace owned by the mounting user namespace.
    ops.push(if rootless && spec.network == Network::Host {
        Op::BindReadOnly {
            source: cstr("/sys")?,
            target: at("sys")?,
            optional: false,
        }
    } else {
        Op::Mount {
            source: some("sysfs")?,
            target: at("sys")?,
            fstype: some("sysfs")?,
            flags: libc::MS_RDONLY | nosuid_nodev_noexec,
            data: None,
            optional: false,
        }
    });
    for path in docker_paths::MASKED_DIRS {
        ops.push(Op::Mount {
            source: some("tmpfs")?,
            target: at(path.trim_start_matches('/'))?,
            fstype: some("tmpfs")?,
            flags: libc::MS_RDONLY | nosuid_nodev_noexec,
            data: None,
            optional: true,
        });
    }
    for (source, target) in &etc.binds {
        ops.push(Op::EtcFile {
            source: cpath(source)?,
            target: at(target)?,
            parent: at("etc")?,
        });
    }
    if spec.network == Network::None {
        ops.push(Op::LoopbackUp);
    }
    let (detach, attach) = extra_mounts(state, extra)?;
    ops.extend(detach);
    ops.push(Op::PivotRoot {
        new_root: cpath(&new_root)?,
    });
    ops.push(Op::Hostname {
        name: cstr(&spec.hostname)?,
    });
    ops.extend(attach);
    for dir in plan::dir_prefixes(&spec.cwd) {
        ops.push(Op::Mkdir {
            path: cstr(&dir)?,
            mode: 0o755,
        });
    }
    ops.push(Op::Chdir {
        path: cstr(&spec.cwd)?,
    });
    Ok(ops)
}

/// The extra mounts (targets already resolved in the layers): made detached before
/// `pivot_root` (host paths are reachable then), and attached after it, where a path can
/// only resolve inside the root.
/// Files (secrets) are written on a tmpfs mounted at `<state>/files` in the child's mount
/// namespace only, which goes away with the old root.
fn extra_mounts(state: &Path, extra: &[StepMount]) -> Result<(Vec<Op>, Vec<Op>), SandboxError> {
    let (mut detach, mut attach) = (Vec::new(), Vec::new());
    let files = state.join("files");
    if let Some(options) = mounts::files_tmpfs_options(extra) {
        fs::create_dir(&files).map_err(|e| SandboxError::io("create", &files, e))?;
        detach.push(Op::Mount {
            source: Some(cstr("tmpfs")?),
            target: cpath(&files)?,
            fstype: Some(cstr("tmpfs")?),
            flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            data: Some(cstr(&options)?),
            optional: false,
        });
    }
    for (slot, m) in extra.iter().enumerate() {
        let target = mounts::clean_target(&m.target)?;
        let mount = match &m.source {
            MountSource::Bind { path, readonly } => Detached::Bind {
                source: cpath(path)?,
                readonly: *readonly,
            },
            MountSource::Tmpfs { size } => Detached::Tmpfs {
                size: size.map(|s| cstr(&s.to_string())).transpose()?,
            },
            MountSource::File {
                contents,
                mode,
                uid,
                gid,
            } => Detached::File {
                path: cpath(&files.join(slot.to_string()))?,
                contents: contents.clone(),
                mode: *mode,
                owner: (*uid, *gid),
            },
        };
        detach.push(Op::Detach { mount, slot });
        for dir in mounts::parents_of(&target) {
            attach.push(Op::Mkdir {
                path: cstr(&dir)?,
                mode: 0o755,
            });
        }
        attach.push(if m.targets_file() {
            Op::Touch {
                path: cstr(&target)?,
            }
        } else {
            Op::Mkdir {
                path: cstr(&target)?,
                mode: 0o755,
            }
        });
        attach.push(Op::Attach {
            slot,
            target: cstr(&target)?,
        });
    }
    Ok((detach, attach))
}

fn build_launch(spec: &ProcessSpec, limits: &Limits) -> Result<Launch, SandboxError> {
    let strings = |v: &[String]| v.iter().map(|s| cstr(s)).collect::<Result<Vec<_>, _>>();
    let argv0 = spec.argv.first().map(String::as_str).unwrap_or_default();
    let keep_caps = caps::mask(spec.capabilities);
    Ok(Launch {
        uid: spec.uid,
        gid: spec.gid,
        groups: spec.additional_gids.clone(),
        keep_caps,
        last_cap: caps::last_cap(),
        seccomp: match spec.seccomp {
            Seccomp::DockerDefault => seccomp::compile(keep_caps)?,
            Seccomp::Unconfined => Vec::new(),
        },
        rlimits: limits
            .ulimits
            .iter()
            .map(|u| {
                let limit = libc::rlimit64 {
                    rlim_cur: u.soft,
                    rlim_max: u.hard,
                };
                (u.resource.number(), limit)
            })
            .collect(),
        candidates: strings(&plan::exec_candidates(argv0, &spec.env))?,
        argv: strings(&spec.argv)?,
        env: strings(&spec.env)?,
    })
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// A close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a writable array of two ints, as pipe2 requires.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(SandboxError::sys("pipe2"));
    }
    // SAFETY: pipe2 just returned these two descriptors; nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn spawn_and_wait(
    ops: &[Op],
    launch: &Launch,
    spec: &ProcessSpec,
    output: &(dyn Fn(Stream, &[u8]) + Sync),
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<i32, SandboxError> {
    let argv = null_terminated(&launch.argv);
    let envp = null_terminated(&launch.env);
    // The extra mounts' descriptors, between their Detach and Attach ops.
    let slots: Vec<std::cell::Cell<libc::c_int>> = spec
        .mounts
        .iter()
        .map(|_| std::cell::Cell::new(-1))
        .collect();
    let devnull = File::open("/dev/null").map_err(|e| SandboxError::io("open", "/dev/null", e))?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (rep_r, rep_w) = pipe()?;
    let fds = ChildFds {
        stdin: devnull.as_raw_fd(),
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        report: rep_w.as_raw_fd(),
    };
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if spec.network == Network::None {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: a fork-like clone (no CLONE_VM, no new stack). The child only runs child_main,
    // which makes system calls on memory prepared above and never returns.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    if pid == 0 {
        // SAFETY: we are the child of the raw clone; argv/envp point into `launch`.
        unsafe { child::child_main(ops, launch, &argv, &envp, &fds, &slots) }
    }
    if pid < 0 {
        return Err(SandboxError::sys("clone"));
    }
    let pid = pid as libc::pid_t;
    drop((out_w, err_w, rep_w, devnull));
    let waited = std::thread::scope(|scope| {
        scope.spawn(|| pump_lines(out_r, Stream::Stdout, output));
        scope.spawn(|| pump_lines(err_r, Stream::Stderr, output));
        let report = scope.spawn(|| read_report(rep_r));
        let status = wait_child(pid, cancelled);
        (status, report.join())
    });
    match waited {
        (status, Ok(Some(report))) => {
            status?;
            Err(report_error(report, ops, launch))
        }
        (status, _) => status,
    }
}

/// Reads the child's failure report: `None` when the pipe closed at exec without one.
fn read_report(fd: OwnedFd) -> Option<[u32; 3]> {
    use std::io::Read;
    let mut buf = [0u8; 12];
    let mut file = File::from(fd);
    file.read_exact(&mut buf).ok()?;
    let word = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    Some([word(0), word(4), word(8)])
}

fn report_error(report: [u32; 3], ops: &[Op], launch: &Launch) -> SandboxError {
    let [kind, index, errno] = report;
    let errno = errno as i32;
    let index = index as usize;
    match kind {
        KIND_EXEC => SandboxError::Exec {
            program: launch
                .argv
                .first()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            errno,
        },
        KIND_OP if index < ops.len() => SandboxError::Setup {
            step: ops[index].describe(),
            errno,
        },
        KIND_STEP if index < STEPS.len() => SandboxError::Setup {
            step: STEPS[index].into(),
            errno,
        },
        _ => SandboxError::Setup {
            step: format!("unknown step {kind}/{index}"),
            errno,
        },
    }
}

/// Waits for `pid`, killing it (and so its pid namespace) once `cancelled` returns true.
fn wait_child(
    pid: libc::pid_t,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<i32, SandboxError> {
    // SAFETY: pidfd_open on our own unreaped child; the pid cannot be reused before we wait.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        let err = SandboxError::sys("pidfd_open");
        // SAFETY: kill and waitpid on our own child, so it does not linger.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return Err(err);
    }
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
    let mut killed = false;
    loop {
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 100) };
        if ready > 0 {
            break;
        }
        if !killed && cancelled() {
            // SAFETY: signals our own child through its pidfd.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    0,
                    0,
                )
            };
            killed = true;
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; status is a writable int.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(SandboxError::sys("waitpid"));
        }
    }
    Ok(if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    })
}
