//! Leftovers of a killed strata: step cgroups `strata/strata-<pid>-<n>` (and runc's cgroups,
//! which carry the same names) whose strata is gone. The step guard ([`crate::guard`]) ends a
//! killed build's steps at once; this catches what it could not (a guard killed too, a host
//! that crashed with the cgroups on a persistent hierarchy).

use std::fs;
use std::path::Path;

use super::{cgroup_mounts, remove, resources};
use crate::SandboxError;

/// Kills every process of the step cgroups of dead strata processes, in every cgroup
/// hierarchy below this process's own, and removes them; returns how many were removed.
/// A cgroup whose pid belongs to a live process (strata or not) is left alone.
pub fn sweep_stale_cgroups() -> Result<usize, SandboxError> {
    let table = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| SandboxError::io("read", "/proc/self/mountinfo", e))?;
    let own = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| SandboxError::io("read", "/proc/self/cgroup", e))?;
    let mut removed = 0;
    for mount in cgroup_mounts(&table) {
        let Some(dir) = resources::own_in(&own, &mount) else {
            continue;
        };
        let parent = dir.join("strata");
        let Ok(entries) = fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(owner) else {
                continue;
            };
            if !alive(pid) {
                remove(&entry.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// The strata pid in a step cgroup name `strata-<pid>-<n>`.
fn owner(name: &str) -> Option<u32> {
    let (pid, n) = name.strip_prefix("strata-")?.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Whether a process `pid` exists (this one counts as alive).
fn alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_give_their_strata_pid() {
        assert_eq!(owner("strata-123-4"), Some(123));
        assert_eq!(owner("strata-123"), None);
        assert_eq!(owner("strata-a-4"), None);
        assert_eq!(owner("other-1-2"), None);
        assert!(alive(std::process::id()));
    }
}
