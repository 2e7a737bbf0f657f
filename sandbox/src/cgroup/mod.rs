//! The cgroups of a step: every process of the step runs in its own cgroup,
//! `strata/strata-<pid>-<n>`, that allows only [`ALLOWED_DEVICES`]. On hosts with the cgroup v1
//! `devices` controller the rules are written to it ([`v1`]); on pure cgroup v2 hosts a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program holding the same list is attached ([`bpf`]). The same
//! name in the v1 `pids` and `memory` hierarchies (or the one cgroup2 directory) holds the
//! limits ([`resources`]). The cgroups are removed, after killing anything left in them, when
//! the step ends; those of a killed strata by its guard or the next build ([`sweep`]).

mod bpf;
mod resources;
mod sweep;
mod v1;

pub use sweep::sweep_stale_cgroups;

use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::SandboxError;
use crate::builtin::plan::cpath;
use crate::limits::Limits;
use crate::overlay::{check, errno};

/// A character device a step may make (`mknod`), read and write: runc's default list
/// without its `c *:* m` and `b *:* m` entries, so that no other node can even be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AllowedDevice {
    pub(crate) major: u32,
    /// `None` for every minor number.
    pub(crate) minor: Option<u32>,
}

const fn char_device(major: u32, minor: u32) -> AllowedDevice {
    AllowedDevice {
        major,
        minor: Some(minor),
    }
}

/// null, zero, full, random, urandom, tty, console, ptmx, the pty slaves, tun.
pub(crate) const ALLOWED_DEVICES: [AllowedDevice; 10] = [
    char_device(1, 3),
    char_device(1, 5),
    char_device(1, 7),
    char_device(1, 8),
    char_device(1, 9),
    char_device(5, 0),
    char_device(5, 1),
    char_device(5, 2),
    AllowedDevice {
        major: 136,
        minor: None,
    },
    char_device(10, 200),
];

/// Where a step's device allow-list is enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceControl {
    /// The cgroup v1 hierarchy of the `devices` controller, mounted at this path.
    V1Devices(PathBuf),
    /// A cgroup2 hierarchy mounted at this path; a BPF device program holds the list.
    V2Bpf(PathBuf),
}

impl DeviceControl {
    /// The v1 `devices` controller where it is mounted (hybrid and v1 hosts), else cgroup2.
    pub fn detect() -> Result<Self, SandboxError> {
        let table = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| SandboxError::io("read", "/proc/self/mountinfo", e))?;
        let mounts = cgroup_mounts(&table);
        let v1 = mounts
            .iter()
            .find(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == "devices"));
        let v2 = || {
            let all = mounts.iter().filter(|m| m.fstype == "cgroup2");
            // The unified hierarchy of a pure v2 host sits at /sys/fs/cgroup.
            all.clone()
                .find(|m| m.mount_point == Path::new("/sys/fs/cgroup"))
                .or_else(|| all.clone().next())
        };
        match (v1, v2()) {
            (Some(m), _) => Ok(DeviceControl::V1Devices(m.mount_point.clone())),
            (None, Some(m)) => Ok(DeviceControl::V2Bpf(m.mount_point.clone())),
            (None, None) => Err(SandboxError::NoDeviceCgroup),
        }
    }

    /// The cgroup this process is in, in this hierarchy: steps' cgroups go below it, so they
    /// never get more than the build itself (a v1 child cannot allow what its parent denies,
    /// and every BPF filter on the path must allow).
    pub(crate) fn own_cgroup(&self) -> Result<PathBuf, SandboxError> {
        let table = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| SandboxError::io("read", "/proc/self/cgroup", e))?;
        let (hierarchy, wanted) = match self {
            DeviceControl::V1Devices(path) => (path, "devices"),
            DeviceControl::V2Bpf(path) => (path, ""),
        };
        let own = own_path(&table, wanted).ok_or_else(|| {
            let what = if wanted.is_empty() { "cgroup2" } else { wanted };
            SandboxError::cgroup(
                "find this process's cgroup in",
                "/proc/self/cgroup",
                io::Error::new(io::ErrorKind::NotFound, format!("no {what} line")),
            )
        })?;
        Ok(hierarchy.join(own.trim_start_matches('/')))
    }
}

/// The path of the `/proc/self/cgroup` line for the v1 hierarchy holding `controller`, or
/// for the cgroup2 hierarchy when `controller` is empty.
fn own_path<'a>(table: &'a str, controller: &str) -> Option<&'a str> {
    table.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if controller.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        matches.then_some(path)
    })
}

struct CgroupMount {
    mount_point: PathBuf,
    fstype: String,
    options: String,
}

/// The cgroup and cgroup2 mounts of a `/proc/self/mountinfo` text.
fn cgroup_mounts(table: &str) -> Vec<CgroupMount> {
    table
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = unescape(left.split(' ').nth(4)?);
            let mut right = right.split(' ');
            let fstype = right.next()?.to_string();
            let options = right.nth(1)?.to_string();
            Some(CgroupMount {
                mount_point,
                fstype,
                options,
            })
        })
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .collect()
}

/// A mountinfo path with its `\ooo` octal escapes (space, tab, newline, backslash) decoded.
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Numbers this process's step cgroups.
static NEXT_STEP: AtomicU64 = AtomicU64::new(0);

/// A step's cgroups: `strata/strata-<pid>-<n>` in the device hierarchy (confined to
/// [`ALLOWED_DEVICES`]) and, on cgroup v1, in the `pids` hierarchy (every process of the step
/// is there, which is how teardown finds them) and the `memory` one when memory is limited.
/// On cgroup v2 one directory does it all. Killed and removed on [`StepCgroup::remove`] or
/// drop.
pub(crate) struct StepCgroup {
    name: String,
    /// Every directory made, device one first.
    dirs: Vec<PathBuf>,
    /// Their `cgroup.procs`, for [`join`].
    procs: Vec<CString>,
    /// Where the memory limit and its out-of-memory counter live.
    memory: Option<PathBuf>,
    /// Cgroups an OCI runtime makes for the container outside ours (see
    /// [`StepCgroup::runtime_cgroups`]), removed with ours.
    extra: Vec<PathBuf>,
    memory_limit: Option<u64>,
    removed: bool,
}

impl StepCgroup {
    /// Creates `strata/strata-<pid>-<n>` below this process's cgroups in `control`'s
    /// hierarchy (with the device allow-list when `devices`) and in the ones `limits` need.
    pub(crate) fn create(
        control: &DeviceControl,
        limits: &Limits,
        devices: bool,
    ) -> Result<Self, SandboxError> {
        let n = NEXT_STEP.fetch_add(1, Ordering::Relaxed);
        let name = format!("strata-{}-{n}", std::process::id());
        let mut cgroup = StepCgroup {
            name,
            dirs: Vec::new(),
            procs: Vec::new(),
            memory: None,
            extra: Vec::new(),
            memory_limit: limits.memory,
            removed: false,
        };
        cgroup.populate(control, limits, devices)?;
        Ok(cgroup)
    }

    fn populate(
        &mut self,
        control: &DeviceControl,
        limits: &Limits,
        devices: bool,
    ) -> Result<(), SandboxError> {
        match control {
            DeviceControl::V1Devices(_) => {
                if devices {
                    let dir = self.make(&control.own_cgroup()?)?;
                    v1::apply(&dir)?;
                }
                let pids = self.make(&resources::v1_own("pids")?)?;
                resources::v1_pids(&pids, limits.pids)?;
                if let Some(bytes) = limits.memory {
                    let memory = self.make(&resources::v1_own("memory")?)?;
                    resources::v1_memory(&memory, bytes)?;
                    self.memory = Some(memory);
                }
            }
            DeviceControl::V2Bpf(_) => {
                let own = control.own_cgroup()?;
                if limits.needs_cgroup() {
                    resources::v2_enable(&own.join("strata"), limits)?;
                }
                let dir = self.make(&own)?;
                if devices {
                    bpf::attach(&dir)?;
                }
                resources::v2_apply(&dir, limits)?;
                if limits.memory.is_some() {
                    self.memory = Some(dir);
                }
            }
        }
        Ok(())
    }

    /// Makes `<own>/strata/<name>` and records it.
    fn make(&mut self, own: &Path) -> Result<PathBuf, SandboxError> {
        let parent = own.join("strata");
        match fs::create_dir(&parent) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(SandboxError::cgroup("create", &parent, e));
            }
            _ => {}
        }
        let dir = parent.join(&self.name);
        match fs::create_dir(&dir) {
            // Our counter never repeats a name, so this is a leftover of a strata that had our
            // pid and was killed before it could remove it: end what is left there and reuse it.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                remove(&dir)?;
                fs::create_dir(&dir).map_err(|e| SandboxError::cgroup("create", &dir, e))?;
            }
            created => created.map_err(|e| SandboxError::cgroup("create", &dir, e))?,
        }
        self.procs.push(cpath(&dir.join("cgroup.procs"))?);
        self.dirs.push(dir.clone());
        Ok(dir)
    }

    /// `strata-<pid>-<n>`, also the container id under runc, so that runc's own cgroups are
    /// named like ours.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The `cgroup.procs` files to join, for [`join`].
    pub(crate) fn procs(&self) -> &[CString] {
        &self.procs
    }

    /// Records where runc makes the container `id`'s cgroups (`strata/<id>` below its own
    /// cgroup in every hierarchy): below ours where runc joined ours, below this process's
    /// elsewhere; so that [`StepCgroup::remove`] and the guard remove them if runc could not.
    /// runc limits the container's memory to `memory` there, and its out-of-memory kills are
    /// read there.
    pub(crate) fn runtime_cgroups(
        &mut self,
        id: &str,
        memory: Option<u64>,
    ) -> Result<(), SandboxError> {
        let table = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| SandboxError::io("read", "/proc/self/mountinfo", e))?;
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| SandboxError::io("read", "/proc/self/cgroup", e))?;
        let mut out = Vec::new();
        for mount in cgroup_mounts(&table) {
            let ours = self.dirs.iter().find(|d| d.starts_with(&mount.mount_point));
            let base = match ours {
                // runc's `strata` folder below ours goes with ours.
                Some(dir) => {
                    out.push(dir.join("strata"));
                    dir.clone()
                }
                None => match resources::own_in(&own, &mount) {
                    Some(path) => path,
                    None => continue,
                },
            };
            let container = base.join("strata").join(id);
            let is_memory = mount.options.split(',').any(|o| o == "memory");
            if memory.is_some() && (is_memory || mount.fstype == "cgroup2") && self.memory.is_none()
            {
                self.memory = Some(container.clone());
                self.memory_limit = memory;
            }
            out.push(container);
        }
        self.extra.extend(out);
        Ok(())
    }

    /// Every directory a teardown must empty and remove, deepest first.
    pub(crate) fn all_dirs(&self) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = self.extra.iter().chain(&self.dirs).cloned().collect();
        all.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        all
    }

    /// The memory limit when the step was killed for exceeding it.
    pub(crate) fn out_of_memory(&self) -> Option<u64> {
        let dir = self.memory.as_ref()?;
        resources::killed_for_memory(dir).then_some(self.memory_limit?)
    }

    /// Kills what is left in the cgroups and removes them.
    pub(crate) fn remove(mut self) -> Result<(), SandboxError> {
        self.removed = true;
        remove_all(&self.all_dirs())
    }
}

impl Drop for StepCgroup {
    fn drop(&mut self) {
        if !self.removed {
            let _ = remove_all(&self.all_dirs());
        }
    }
}

fn remove_all(dirs: &[PathBuf]) -> Result<(), SandboxError> {
    let mut first = Ok(());
    for dir in dirs {
        let removed = remove(dir);
        if first.is_ok() {
            first = removed;
        }
    }
    first
}

/// How long a cgroup may stay busy with exiting processes before removal gives up.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Kills everything in the cgroup `dir` and below, and removes them, children first.
pub(crate) fn remove(dir: &Path) -> Result<(), SandboxError> {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove(&entry.path())?;
            }
        }
    }
    let start = Instant::now();
    loop {
        kill_all(dir);
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < REMOVE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(SandboxError::cgroup("remove", dir, e)),
        }
    }
}

/// SIGKILLs every process in the cgroup `dir`. The step's processes are normally gone
/// already (its pid namespace died with its init); this is for stragglers.
fn kill_all(dir: &Path) {
    use std::io::Write;
    // cgroup v2 (Linux 5.14+) kills them all at once; v1 has no cgroup.kill.
    let killed = fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))
        .and_then(|mut file| file.write_all(b"1"));
    if killed.is_ok() {
        return;
    }
    let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs
        .lines()
        .filter_map(|l| l.trim().parse::<libc::pid_t>().ok())
    {
        // SAFETY: kill has no memory effects; the pid was in the step's cgroup just now.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is `procs` (`0` names the
/// writer), so that it and everything it forks are confined. Only system calls: safe between
/// fork and exec.
pub(crate) fn join(procs: &CStr) -> Result<(), i32> {
    // SAFETY: open of a NUL-terminated path; write of a one-byte literal; close of our fd.
    unsafe {
        let fd = check(libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) as libc::c_long)?
            as libc::c_int;
        let written = libc::write(fd, c"0".as_ptr().cast(), 1);
        let err = errno();
        libc::close(fd);
        if written != 1 {
            return Err(if written < 0 { err } else { libc::EIO });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 20 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
30 25 0:27 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
31 25 0:28 / /sys/fs/cgroup/cpu\\040set rw,relatime - cgroup cgroup rw,cpuset
35 25 0:32 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn a_leftover_cgroup_under_our_name_is_replaced() -> Result<(), Box<dyn std::error::Error>> {
        let control = DeviceControl::detect()?;
        let parent = control.own_cgroup()?.join("strata");
        let _ = fs::create_dir(&parent);
        // The name the next step of this process will take, as a killed strata with our pid
        // would have left it.
        let next = NEXT_STEP.load(Ordering::Relaxed);
        let stale = parent.join(format!("strata-{}-{next}", std::process::id()));
        fs::create_dir(&stale)?;
        let cgroup = StepCgroup::create(&control, &Limits::default(), true)?;
        assert_eq!(cgroup.dirs[0], stale);
        cgroup.remove()?;
        assert!(!stale.exists());
        Ok(())
    }

    #[test]
    fn finds_v1_devices_and_cgroup2_mounts() {
        let mounts = cgroup_mounts(HYBRID);
        let points: Vec<_> = mounts.iter().map(|m| m.mount_point.clone()).collect();
        assert_eq!(
            points,
            [
                PathBuf::from("/sys/fs/cgroup/devices"),
                PathBuf::from("/sys/fs/cgroup/cpu set"),
                PathBuf::from("/sys/fs/cgroup/unified"),
            ]
        );
        assert_eq!(mounts[0].options, "rw,devices");
        assert_eq!(mounts[2].fstype, "cgroup2");
    }

    #[test]
    fn own_cgroup_lines() {
        let table = "5:devices:/a/b\n4:cpu,cpuacct:/c\n0::/d\n";
        assert_eq!(own_path(table, "devices"), Some("/a/b"));
        assert_eq!(own_path(table, "cpuacct"), Some("/c"));
        assert_eq!(own_path(table, ""), Some("/d"));
        assert_eq!(own_path("5:devices:/a\n", ""), None);
    }

    #[test]
    fn allow_list_is_runcs_without_wildcard_mknod() {
        assert!(ALLOWED_DEVICES.contains(&char_device(1, 3)));
        assert!(!ALLOWED_DEVICES.iter().any(|d| d.major == 7));
        assert_eq!(
            ALLOWED_DEVICES.iter().filter(|d| d.minor.is_none()).count(),
            1
        );
    }
}
