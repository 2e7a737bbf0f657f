//! Processes as the host sees them in /proc: finding a step's process by a
//! unique argument, and the programs above it.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

use super::Res;

/// Processes with an argument containing `needle` (cmdline, NUL-separated).
pub fn with_arg(needle: &str) -> Res<Vec<u32>> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Gone meanwhile: not a match.
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline
            .split(|b| *b == 0)
            .any(|arg| String::from_utf8_lossy(arg).contains(needle))
        {
            out.push(pid);
        }
    }
    Ok(out)
}

/// The parent of `pid` (field 4 of /proc/PID/stat).
fn parent(pid: u32) -> Res<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(") ").ok_or("bad stat")?.1;
    Ok(after.split(' ').nth(1).ok_or("bad stat")?.parse()?)
}

/// The programs (`argv[0]`) of the processes above `pid`, nearest first,
/// up to and excluding `top`. (Not `/proc/PID/exe`: a runtime's process in
/// a private mount namespace shows an unreachable path there.)
pub fn ancestor_programs(pid: u32, top: u32) -> Res<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut p = parent(pid)?;
    while p != top && p > 1 {
        let cmdline = fs::read(format!("/proc/{p}/cmdline"))?;
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        out.push(PathBuf::from(String::from_utf8_lossy(argv0).into_owned()));
        p = parent(p)?;
    }
    if p != top {
        return Err(format!("process {pid} does not run under {top}").into());
    }
    Ok(out)
}

/// The pids above `pid`, nearest first, up to and excluding `top`.
pub fn ancestor_pids(pid: u32, top: u32) -> Res<Vec<u32>> {
    let mut out = Vec::new();
    let mut p = parent(pid)?;
    while p != top && p > 1 {
        out.push(p);
        p = parent(p)?;
    }
    if p != top {
        return Err(format!("process {pid} does not run under {top}").into());
    }
    Ok(out)
}

/// Whether `pid` is a live process (a zombie, dead but not yet reaped, is not).
pub fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// The processes among `pids` blocked in /proc/locks on one of `inodes`
/// (waiters are the lines with `->`).
pub fn blocked_on(pids: &[u32], inodes: &HashSet<u64>) -> Res<HashSet<u32>> {
    let mut out = HashSet::new();
    for line in fs::read_to_string("/proc/locks")?.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `N: -> FLOCK ADVISORY WRITE PID MAJ:MIN:INODE START END`
        if fields.get(1) != Some(&"->") {
            continue;
        }
        let pid: Option<u32> = fields.get(5).and_then(|p| p.parse().ok());
        let inode: Option<u64> = fields
            .get(6)
            .and_then(|f| f.rsplit(':').next())
            .and_then(|i| i.parse().ok());
        if let (Some(pid), Some(inode)) = (pid, inode)
            && pids.contains(&pid)
            && inodes.contains(&inode)
        {
            out.insert(pid);
        }
    }
    Ok(out)
}
