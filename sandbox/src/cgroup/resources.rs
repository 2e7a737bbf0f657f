//! Memory and process limits of a step's cgroup, and its out-of-memory counter: the v1
//! `memory` and `pids` controllers on hybrid hosts, the same controllers of cgroup2
//! elsewhere. Swap is limited with memory (a step does not swap past `--memory`), so a step
//! over its limit is killed rather than slowed down.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{CgroupMount, cgroup_mounts, own_path};
use crate::SandboxError;
use crate::limits::Limits;

/// This process's cgroup in the v1 hierarchy of `controller`.
pub(super) fn v1_own(controller: &'static str) -> Result<PathBuf, SandboxError> {
    let table = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| SandboxError::io("read", "/proc/self/mountinfo", e))?;
    let mount = cgroup_mounts(&table)
        .into_iter()
        .find(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == controller))
        .ok_or(SandboxError::NoController { controller })?;
    let own = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| SandboxError::io("read", "/proc/self/cgroup", e))?;
    own_path(&own, controller)
        .map(|path| mount.mount_point.join(path.trim_start_matches('/')))
        .ok_or(SandboxError::NoController { controller })
}

/// This process's cgroup in the hierarchy mounted as `mount` (`own` is `/proc/self/cgroup`).
pub(super) fn own_in(own: &str, mount: &CgroupMount) -> Option<PathBuf> {
    let options: Vec<&str> = mount.options.split(',').collect();
    let path = own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if mount.fstype == "cgroup2" {
            controllers.is_empty()
        } else {
            !controllers.is_empty() && controllers.split(',').all(|c| options.contains(&c))
        };
        matches.then_some(path)
    })?;
    Some(mount.mount_point.join(path.trim_start_matches('/')))
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), SandboxError> {
    let path = dir.join(file);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| SandboxError::cgroup("write a limit to", path, e))
}

/// `pids.max`, when limited.
pub(super) fn v1_pids(dir: &Path, pids: Option<u64>) -> Result<(), SandboxError> {
    match pids {
        Some(n) => write(dir, "pids.max", &n.to_string()),
        None => Ok(()),
    }
}

/// `memory.limit_in_bytes`, then the same for memory plus swap where swap is accounted.
pub(super) fn v1_memory(dir: &Path, bytes: u64) -> Result<(), SandboxError> {
    write(dir, "memory.limit_in_bytes", &bytes.to_string())?;
    if dir.join("memory.memsw.limit_in_bytes").exists() {
        write(dir, "memory.memsw.limit_in_bytes", &bytes.to_string())?;
    }
    Ok(())
}

/// Turns on the controllers `limits` needs for the children of `parent` (and `parent`
/// itself, made here if missing): the cgroup2 rule is that a controller reaches a cgroup only
/// through its parent's `cgroup.subtree_control`.
pub(super) fn v2_enable(parent: &Path, limits: &Limits) -> Result<(), SandboxError> {
    match fs::create_dir(parent) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(SandboxError::cgroup("create", parent, e));
        }
        _ => {}
    }
    let own = parent.parent().unwrap_or(parent);
    let wanted: Vec<&str> = [
        limits.memory.map(|_| "+memory"),
        limits.pids.map(|_| "+pids"),
    ]
    .into_iter()
    .flatten()
    .collect();
    for dir in [own, parent] {
        write(dir, "cgroup.subtree_control", &wanted.join(" "))?;
    }
    Ok(())
}

/// `memory.max` and `memory.swap.max` (0), `pids.max`.
pub(super) fn v2_apply(dir: &Path, limits: &Limits) -> Result<(), SandboxError> {
    if let Some(bytes) = limits.memory {
        write(dir, "memory.max", &bytes.to_string())?;
        if dir.join("memory.swap.max").exists() {
            write(dir, "memory.swap.max", "0")?;
        }
    }
    if let Some(n) = limits.pids {
        write(dir, "pids.max", &n.to_string())?;
    }
    Ok(())
}

/// Whether the kernel killed a process of `dir` for exceeding its memory limit: `oom_kill`
/// of `memory.events` (v2, counted up the tree) or `memory.oom_control` (v1, counted in the
/// victim's own cgroup, so `dir` must be the one the step's processes are in).
pub(super) fn killed_for_memory(dir: &Path) -> bool {
    ["memory.events", "memory.oom_control"]
        .iter()
        .find_map(|file| fs::read_to_string(dir.join(file)).ok())
        .and_then(|text| counter(&text, "oom_kill"))
        .is_some_and(|n| n > 0)
}

/// The value of the `name value` line of a cgroup key-value file.
fn counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_oom_kill_counters() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(counter(v1, "oom_kill"), Some(3));
        let v2 = "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(counter(v2, "oom_kill"), Some(1));
        assert_eq!(counter(v2, "absent"), None);
    }

    #[test]
    fn own_cgroup_of_each_mount() {
        let own = "9:name=systemd:/s\n4:cpu,cpuacct:/c\n2:pids:/p\n0::/u\n";
        let mount = |point: &str, fstype: &str, options: &str| CgroupMount {
            mount_point: PathBuf::from(point),
            fstype: fstype.into(),
            options: options.into(),
        };
        let cases = [
            (
                mount("/cg/systemd", "cgroup", "rw,name=systemd"),
                "/cg/systemd/s",
            ),
            (mount("/cg/cpu", "cgroup", "rw,cpu,cpuacct"), "/cg/cpu/c"),
            (mount("/cg/pids", "cgroup", "rw,pids"), "/cg/pids/p"),
            (mount("/cg/unified", "cgroup2", "rw"), "/cg/unified/u"),
        ];
        for (mount, want) in cases {
            assert_eq!(own_in(own, &mount), Some(PathBuf::from(want)));
        }
        assert_eq!(
            own_in(own, &mount("/cg/memory", "cgroup", "rw,memory")),
            None
        );
    }
}
