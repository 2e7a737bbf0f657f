//! The OCI runtime backend: writes a bundle and runs `runc` or `crun` on it.
//!
//! The overlay root is mounted by us, in a private mount namespace that the runtime process
//! is spawned into (`unshare(CLONE_NEWNS)` in `pre_exec`, after `fork`, where only system
//! calls on prepared data run), so it is never visible on the host and disappears with the
//! runtime. For crun, the same step detaches `/sys/fs/cgroup/unified`: on cgroup v1 hybrid
//! hosts crun refuses to start while a cgroup2 mount holding a controller is present.
//!
//! Devices: the config carries the allow-list as `linux.resources.devices`. runc applies
//! it to the cgroup it makes for the container (`strata/<container id>` below its own, a
//! relative `cgroupsPath`) and adds its defaults, among them `mknod` of any device, which
//! the `nodev` root makes harmless. runc cannot run below a cgroup of ours: it writes those
//! defaults, and a v1 child cannot allow more than its parent. crun runs without a cgroup
//! manager (see above) and would apply nothing, so the crun process joins the step's device
//! cgroup ([`crate::cgroup`]) in `pre_exec`, before it execs, and everything it forks
//! inherits it. That cgroup is what keeps the layers' device nodes closed under crun, which
//! bind-remounts the root it is given without `nodev`.
//!
//! Network: for [`crate::Network::Private`] we make the namespace and start its slirp4netns
//! ([`crate::network`]) before the runtime, and the spec names it by path
//! (`/proc/<our pid>/fd/<n>`) for the runtime to join; the helper is stopped once the
//! container is deleted.
//!
//! Rootless (inside the user namespace of [`crate::userns`]): both runtimes see that they
//! run in a user namespace and bind the host's devices instead of making them. There is no
//! cgroup at all, neither runc's nor the step's: an ordinary user cannot make one, and it
//! would deny nothing more, since no device node can be made there and every filesystem
//! mounted in the namespace, the overlay root included, is `nodev` by the kernel whatever
//! the mount flags say (memory and pids limits are refused there). The host's cgroup2 mount,
//! which cannot be detached there, is covered with an empty tmpfs for crun, and a step on
//! the host network gets a bind of the host's /sys (see `config`).
//!
//! Limits and teardown: the runtime process joins the step's other cgroups too (`pids`, and
//! for crun `memory` when limited), so every process of the step is in them; the step guard
//! ([`crate::guard`]) kills them if strata dies, and the runtime itself dies with strata
//! (`PR_SET_PDEATHSIG`). The container id is the step cgroup's name, so the cgroups runc makes
//! (`strata/<id>` below its own) are named like ours and swept like them. runc's memory and
//! pids limits go in `linux.resources`, so that runc's own memory and threads do not count;
//! `run --keep` keeps the container's cgroups until our `delete`, so that its out-of-memory
//! counter can be read (v1 counts a kill only in the victim's own cgroup). crun, without a
//! cgroup manager, gets both from the step cgroup. Rlimits are `process.rlimits`, the
//! `/dev/shm` size a mount option.

mod config;

use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::cgroup::{self, DeviceControl, StepCgroup};
use crate::etc_files::EtcFiles;
use crate::guard::Guard;
use crate::limits::Limits;
use crate::mounts::{self, StagedFiles, Stubs};
use crate::network::PrivateNetwork;
use crate::output::pump_lines;
use crate::overlay::OverlayMount;
use crate::placeholders::Placeholders;
use crate::{Network, ProcessSpec, RootFs, Runtime, SandboxError, Stream};

/// Which OCI runtime the binary is (they differ in flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OciRuntimeKind {
    /// `runc`.
    Runc,
    /// `crun`.
    Crun,
}

impl OciRuntimeKind {
    fn binary_name(self) -> &'static str {
        match self {
            OciRuntimeKind::Runc => "runc",
            OciRuntimeKind::Crun => "crun",
        }
    }
}

/// Runs steps with an OCI runtime (needs root).
#[derive(Debug, Clone)]
pub struct OciRuntime {
    kind: OciRuntimeKind,
    binary: PathBuf,
    /// Where steps' device allow-list is enforced; detected at each run when `None`.
    devices: Option<DeviceControl>,
    /// What each step may use.
    limits: Limits,
    /// Where each run's bundle folder is made (the system's temp dir when `None`).
    temp_dir: Option<PathBuf>,
}

impl OciRuntime {
    /// Uses `runc` or `crun` found in `PATH`.
    pub fn new(kind: OciRuntimeKind) -> Result<Self, SandboxError> {
        let name = kind.binary_name();
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
            .map(|binary| OciRuntime::with_binary(kind, binary))
            .ok_or_else(|| SandboxError::OciRuntime {
                runtime: name.into(),
                message: "not found in PATH".into(),
            })
    }

    /// Uses the given binary, which must behave like `kind`.
    pub fn with_binary(kind: OciRuntimeKind, binary: PathBuf) -> Self {
        OciRuntime {
            kind,
            binary,
            devices: None,
            limits: Limits::default(),
            temp_dir: None,
        }
    }

    /// Runs every step with `limits` instead of Docker's defaults.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Makes each run's bundle folder (`strata-oci-*`) in `dir`, which must exist.
    pub fn with_temp_dir(mut self, dir: PathBuf) -> Self {
        self.temp_dir = Some(dir);
        self
    }

    /// Confines crun's steps' devices with `devices` instead of what the host offers first
    /// (see [`DeviceControl::detect`]). runc makes and confines its own device cgroup.
    pub fn with_device_control(mut self, devices: DeviceControl) -> Self {
        self.devices = Some(devices);
        self
    }

    /// The runtime's binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    fn runtime_error(&self, message: String) -> SandboxError {
        SandboxError::OciRuntime {
            runtime: self.binary.display().to_string(),
            message,
        }
    }

    /// `<binary> --root <state> [global flags] <args...>`.
    fn command(&self, state: &Path, args: &[&OsStr]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(state);
        // The runtime's own errors go to a log, apart from the process's stderr.
        let mut log = OsString::from("--log=");
        log.push(state.join(LOG_FILE));
        cmd.arg(log).arg("--log-format=json");
        if self.kind == OciRuntimeKind::Crun {
            // No resources are set, and cgroup setup fails on hybrid hosts.
            cmd.arg("--cgroup-manager=disabled");
        }
        cmd.args(args);
        cmd
    }

    /// Asks the runtime to SIGKILL the container's init (and so its pid namespace).
    fn kill(&self, state: &Path, id: &str) -> bool {
        self.command(
            state,
            &[OsStr::new("kill"), OsStr::new(id), OsStr::new("KILL")],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    }
}

/// The runtime's log, in the state dir.
const LOG_FILE: &str = "runtime-log.json";

/// The last error the runtime logged (JSON lines with `level` and `msg`), if any.
fn logged_error(log: &Path) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["level"] == "error")
        .find_map(|entry| entry["msg"].as_str().map(String::from))
}

/// A container id for a rootless step, which has no step cgroup to be named after.
fn next_rootless_id() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

struct Bundle {
    dir: tempfile::TempDir,
    id: String,
}

impl Bundle {
    /// A bundle in `temp` for the container `id`.
    fn create(temp: &Path, id: &str) -> Result<Self, SandboxError> {
        let dir = tempfile::Builder::new()
            .prefix("strata-oci-")
            .tempdir_in(temp)
            .map_err(|e| SandboxError::io("create bundle dir in", temp, e))?;
        for sub in ["rootfs", "state", "etc", "files"] {
            let path = dir.path().join(sub);
            fs::create_dir(&path).map_err(|e| SandboxError::io("create", &path, e))?;
        }
        Ok(Bundle {
            id: id.to_string(),
            dir,
        })
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }
}

/// Runs in the forked runtime process before exec: death with strata, the step's cgroups, a
/// private mount namespace, crun's cgroup workaround, the overlay root (then the staged files
/// of the step's mounts). System calls only.
fn enter_private_root(
    procs: &[CString],
    overlay: &OverlayMount,
    hide_unified: bool,
    rootless: bool,
) -> std::io::Result<()> {
    for procs in procs {
        cgroup::join(procs).map_err(std::io::Error::from_raw_os_error)?;
    }
    // SAFETY: prctl, unshare, mount and umount2 with literal paths; no allocation.
    unsafe {
        // The runtime dies with the thread that runs the step; the guard ends the container.
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        if libc::unshare(libc::CLONE_NEWNS) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) < 0
        {
            return Err(std::io::Error::last_os_error());
        }
        if hide_unified {
            // Absent on pure cgroup v2 hosts (ENOENT) or not a mount (EINVAL): nothing to hide.
            // In a user namespace the host's mounts are locked (EPERM/EINVAL): cover it
            // with an empty tmpfs instead, which crun takes for no cgroup2 at all.
            if libc::umount2(c"/sys/fs/cgroup/unified".as_ptr(), libc::MNT_DETACH) < 0 && rootless {
                libc::mount(
                    c"tmpfs".as_ptr(),
                    c"/sys/fs/cgroup/unified".as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                );
            }
        }
    }
    overlay.mount().map_err(std::io::Error::from_raw_os_error)
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

impl Runtime for OciRuntime {
    fn run(
        &self,
        root: &RootFs,
        spec: &ProcessSpec,
        output: &(dyn Fn(Stream, &[u8]) + Sync),
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<i32, SandboxError> {
        spec.validate()?;
        let runc = self.kind == OciRuntimeKind::Runc;
        let rootless = crate::userns::in_user_namespace();
        // runc joins our cgroups but for devices (see the module doc) and limits the
        // container's processes itself; crun joins them all. Rootless: none at all.
        let mut cgroup = if rootless {
            self.limits.refuse_rootless()?;
            None
        } else {
            let devices = match &self.devices {
                Some(devices) => devices.clone(),
                None => DeviceControl::detect()?,
            };
            let mut cgroup_limits = self.limits.clone();
            if runc {
                cgroup_limits.pids = None;
                cgroup_limits.memory = None;
            }
            Some(StepCgroup::create(&devices, &cgroup_limits, !runc)?)
        };
        let id = match &mut cgroup {
            Some(cgroup) => {
                let id = cgroup.name().to_string();
                if runc {
                    cgroup.runtime_cgroups(&id, self.limits.memory)?;
                }
                id
            }
            None => format!(
                "strata-{}-rootless-{}",
                std::process::id(),
                next_rootless_id()
            ),
        };
        let guard = match &cgroup {
            Some(cgroup) => Some(Guard::spawn(&cgroup.all_dirs())?),
            None => None,
        };
        let temp = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let bundle = Bundle::create(&temp, &id)?;
        let etc = EtcFiles::write(&bundle.path("etc"), &spec.hostname, spec.network)?;
        let config_path = bundle.path("config.json");
        let runc_cgroup = (runc && !rootless).then(|| format!("strata/{}", bundle.id));
        let network = match spec.network {
            Network::Private => Some(PrivateNetwork::start()?),
            Network::Host | Network::None => None,
        };
        let netns = network.as_ref().map(PrivateNetwork::path);
        let files = bundle.path("files");
        let extra = mounts::resolve_all(root, &spec.mounts)?;
        let config = config::build(
            spec,
            &extra,
            &etc,
            &files,
            runc_cgroup.as_deref(),
            netns.as_deref(),
            &self.limits,
        )
        .map_err(|message| SandboxError::OciConfig {
            path: config_path.clone(),
            message,
        })?;
        config
            .save(&config_path)
            .map_err(|e| SandboxError::OciConfig {
                path: config_path.clone(),
                message: e.to_string(),
            })?;
        let overlay = OverlayMount::new(&bundle.path("rootfs"), root, &bundle.path("empty"))?;
        let placeholders = Placeholders::survey(&root.upper);
        let stubs = Stubs::survey(root, &extra);
        let staged = StagedFiles::new(&files, &extra)?;
        let state = bundle.path("state");
        let bundle_dir: OsString = bundle.dir.path().into();
        let mut args = vec![OsStr::new("run"), OsStr::new("--bundle"), &bundle_dir];
        if runc {
            // The container (and its cgroups, with their out-of-memory counter) stays until
            // the `delete` below.
            args.push(OsStr::new("--keep"));
        }
        args.push(OsStr::new(&bundle.id));
        let mut cmd = self.command(&state, &args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let procs: Vec<CString> = cgroup.iter().flat_map(|c| c.procs().to_vec()).collect();
        let crun = !runc;
        // SAFETY: the closure only makes system calls on the prepared strings.
        unsafe {
            cmd.pre_exec(move || {
                enter_private_root(&procs, &overlay, crun, rootless)?;
                staged.write().map_err(std::io::Error::from_raw_os_error)
            });
        }
        let result = self.run_to_end(cmd, &state, &bundle.id, output, cancelled);
        let out_of_memory = cgroup.as_ref().and_then(StepCgroup::out_of_memory);
        // The runtime deletes the container when `run` ends; this covers a killed runtime.
        let _ = self
            .command(
                &state,
                &[
                    OsStr::new("delete"),
                    OsStr::new("--force"),
                    OsStr::new(&bundle.id),
                ],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // The container is gone, so the helper serves nobody: it ends with the step.
        drop(network);
        let removed = cgroup.map_or(Ok(()), StepCgroup::remove);
        if let Some(guard) = guard {
            guard.finish();
        }
        placeholders.remove_created(root)?;
        stubs.remove(root)?;
        removed?;
        let code = result?;
        if let Some(limit) = out_of_memory.filter(|_| code != 0) {
            return Err(SandboxError::OutOfMemory { limit });
        }
        match code {
            // A failure before the process ran (bad config, missing program) is logged by
            // the runtime; a failing process is not an error.
            code @ 1.. => match logged_error(&state.join(LOG_FILE)) {
                Some(message) => Err(self.runtime_error(message)),
                None => Ok(code),
            },
            code => Ok(code),
        }
    }
}

impl OciRuntime {
    fn run_to_end(
        &self,
        mut cmd: Command,
        state: &Path,
        id: &str,
        output: &(dyn Fn(Stream, &[u8]) + Sync),
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<i32, SandboxError> {
        let mut child = cmd
            .spawn()
            .map_err(|e| self.runtime_error(format!("spawn: {e}")))?;
        let stdout = child.stdout.take().map(OwnedFd::from);
        let stderr = child.stderr.take().map(OwnedFd::from);
        std::thread::scope(|scope| {
            if let Some(fd) = stdout {
                scope.spawn(move || pump_lines(fd, Stream::Stdout, output));
            }
            if let Some(fd) = stderr {
                scope.spawn(move || pump_lines(fd, Stream::Stderr, output));
            }
            let mut killed = false;
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => return Ok(exit_code(status)),
                    Ok(None) => {}
                    Err(e) => return Err(self.runtime_error(format!("wait: {e}"))),
                }
                // Until the container exists `kill` fails; keep asking until it works.
                if !killed && cancelled() {
                    killed = self.kill(state, id);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_logged_error_wins_and_other_levels_are_ignored()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join(LOG_FILE);
        fs::write(
            &log,
            concat!(
                "{\"level\":\"error\",\"msg\":\"first\"}\n",
                "not json\n",
                "{\"level\":\"error\",\"msg\":\"exec failed\"}\n",
                "{\"level\":\"warning\",\"msg\":\"later warning\"}\n",
            ),
        )?;
        assert_eq!(logged_error(&log).as_deref(), Some("exec failed"));
        fs::write(&log, "{\"level\":\"info\",\"msg\":\"fine\"}\n")?;
        assert_eq!(logged_error(&log), None);
        assert_eq!(logged_error(&dir.path().join("absent")), None);
        Ok(())
    }
}
