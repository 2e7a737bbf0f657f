//! Device probes every runtime must withstand: a RUN step or a base-image layer trying to
//! reach a host block device (a loop device over a file of zeros, the host canary).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_sandbox::Runtime;

use super::loop_device::LoopDevice;
use super::{TestResult, busybox_layer, busybox_root, rootfs, run, sh};

/// The `NAME=N` values a probe script printed, in order.
fn statuses(lines: &[String], name: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(&format!("{name}=")))
        .map(str::to_string)
        .collect()
}

/// Probe A: root makes a node for the host's loop device and writes to it, on the overlay
/// root, on /dev (a tmpfs that allows devices) and in /tmp.
pub fn block_device_made_in_step_is_unusable(rt: &dyn Runtime) -> TestResult {
    let dir = tempfile::tempdir()?;
    let canary = LoopDevice::attach(dir.path())?;
    let layer = busybox_layer(dir.path())?;
    let root = rootfs(dir.path(), vec![layer])?;
    let (major, minor) = (canary.major, canary.minor);
    let script = format!(
        "for p in /l /dev/l /tmp/l; do \
           mknod $p b {major} {minor} && echo X | dd of=$p conv=notrunc && sync; echo write=$?; \
         done"
    );
    let ran = run(rt, &root, &sh(&script))?;
    assert!(
        canary.still_zeros()?,
        "a RUN step wrote the host's {} (stdout {:?}, stderr {:?})",
        canary.device.display(),
        ran.stdout,
        ran.stderr
    );
    let writes = statuses(&ran.stdout, "write");
    assert_eq!(writes.len(), 3, "stdout {:?}", ran.stdout);
    assert!(
        writes.iter().all(|s| s != "0"),
        "a write to the block device succeeded: {:?}, stderr {:?}",
        ran.stdout,
        ran.stderr
    );
    Ok(())
}

/// Probe B: a base-image layer carries a 0666 block node for the host's loop device; neither
/// `nobody` nor root can use it, and the node itself stays in the image.
pub fn forged_layer_block_device_is_unusable(rt: &dyn Runtime) -> TestResult {
    let dir = tempfile::tempdir()?;
    let canary = LoopDevice::attach(dir.path())?;
    let base = busybox_layer(dir.path())?;
    let forged = dir.path().join("forged-layer");
    fs::create_dir_all(forged.join("data"))?;
    let node = forged.join("data/disk");
    let made = Command::new("mknod")
        .args(["-m", "0666"])
        .arg(&node)
        .args(["b", &canary.major.to_string(), &canary.minor.to_string()])
        .status()?;
    assert!(made.success(), "mknod {} failed", node.display());
    let root = rootfs(dir.path(), vec![base, forged])?;
    let script = "test -b /data/disk && echo is-block; \
                  echo X | dd of=/data/disk conv=notrunc && sync; echo write=$?; \
                  head -c 1 /data/disk > /dev/null; echo read=$?";
    for uid in [65534, 0] {
        let mut spec = sh(script);
        spec.uid = uid;
        spec.gid = uid;
        let ran = run(rt, &root, &spec)?;
        assert!(
            canary.still_zeros()?,
            "uid {uid} wrote the host's {} through a layer's device node \
             (stdout {:?}, stderr {:?})",
            canary.device.display(),
            ran.stdout,
            ran.stderr
        );
        assert_eq!(
            ran.stdout.first().map(String::as_str),
            Some("is-block"),
            "the layer's node is not kept as data: {:?}",
            ran.stderr
        );
        assert_eq!(statuses(&ran.stdout, "write"), ["1"], "uid {uid}");
        assert_eq!(statuses(&ran.stdout, "read"), ["1"], "uid {uid}");
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(&node)?.file_type().is_block_device());
    Ok(())
}

/// The standard devices work, and root may make a node for /dev/null (runc allows it).
pub fn standard_devices_work(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = busybox_root()?;
    let script = "mknod /tmp/null c 1 3 && echo mknod-ok; echo x > /dev/null && echo null-ok; \
                  head -c 1 /dev/urandom | wc -c; head -c 2 /dev/zero | wc -c; \
                  echo x > /dev/full; echo full=$?";
    let ran = run(rt, &root, &sh(script))?;
    assert_eq!(
        ran.stdout,
        ["mknod-ok", "null-ok", "1", "2", "full=1"],
        "stderr: {:?}",
        ran.stderr
    );
    Ok(())
}

/// `mknod` of anything but the standard character devices fails, even on /dev.
pub fn only_standard_devices_can_be_made(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = busybox_root()?;
    // 7:0 loop0, 8:0 sda, 1:1 /dev/mem, 10:229 /dev/fuse, 4:0 tty0.
    let script = "for d in 'b 7 0' 'b 8 0' 'c 1 1' 'c 10 229' 'c 4 0'; do \
                    mknod /dev/probe $d; echo mknod=$?; rm -f /dev/probe; \
                  done";
    let ran = run(rt, &root, &sh(script))?;
    assert_eq!(
        statuses(&ran.stdout, "mknod"),
        ["1", "1", "1", "1", "1"],
        "stderr: {:?}",
        ran.stderr
    );
    Ok(())
}

/// A mount's target and options.
type MountEntry = (String, Vec<String>);

/// The step's mounts.
fn step_mounts(rt: &dyn Runtime) -> Result<Vec<MountEntry>, Box<dyn std::error::Error>> {
    let (_dir, root) = busybox_root()?;
    let ran = run(rt, &root, &sh("cat /proc/mounts"))?;
    assert_eq!(ran.code, 0, "stderr: {:?}", ran.stderr);
    ran.stdout
        .iter()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            match (fields.get(1), fields.get(3)) {
                (Some(target), Some(options)) => Ok((
                    target.to_string(),
                    options.split(',').map(str::to_string).collect(),
                )),
                _ => Err(format!("bad /proc/mounts line {line:?}").into()),
            }
        })
        .collect()
}

/// Docker's masked files: runc and crun bind a /dev/null (allowed: 1:3) over them.
const MASKED_FILES: [&str; 5] = [
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/latency_stats",
];

/// Every mount of the step below the root is `nodev` except its own /dev and /dev/pts. runc
/// and crun make the masks and read-only views of /proc and /sys themselves, without `nodev`:
/// those are accepted when read-only (nothing can be made in them) or a masked file.
pub fn mounts_are_nodev(rt: &dyn Runtime) -> TestResult {
    let mounts = step_mounts(rt)?;
    assert!(mounts.len() > 5, "{mounts:?}");
    for (target, options) in mounts {
        let has = |flag: &str| options.iter().any(|o| o == flag);
        let runtime_mask = (target.starts_with("/proc/") || target.starts_with("/sys/"))
            && (has("ro") || MASKED_FILES.contains(&target.as_str()));
        if !["/", "/dev", "/dev/pts"].contains(&target.as_str()) && !runtime_mask {
            assert!(has("nodev"), "{target}: {options:?}");
        }
    }
    Ok(())
}

/// The root (the overlay of the layers) is `nodev` and keeps setuid programs working.
pub fn root_is_nodev_not_nosuid(rt: &dyn Runtime) -> TestResult {
    let mounts = step_mounts(rt)?;
    let (_, options) = mounts
        .iter()
        .find(|(target, _)| target == "/")
        .ok_or_else(|| format!("no root mount in {mounts:?}"))?;
    assert!(options.iter().any(|o| o == "nodev"), "/: {options:?}");
    assert!(!options.iter().any(|o| o == "nosuid"), "/: {options:?}");
    Ok(())
}

/// The mount point of the cgroup hierarchy a `/proc/self/cgroup` line belongs to: the v1
/// hierarchy with `controllers`, or cgroup2 for an empty list.
fn hierarchy_mount(controllers: &str) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let table = fs::read_to_string("/proc/self/mountinfo")?;
    for line in table.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = left.split(' ').nth(4).unwrap_or_default();
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or_default();
        let options = right.nth(1).unwrap_or_default();
        let found = if controllers.is_empty() {
            fstype == "cgroup2"
        } else {
            fstype == "cgroup"
                && controllers
                    .split(',')
                    .all(|c| options.split(',').any(|o| o == c))
        };
        if found {
            return Ok(PathBuf::from(mount_point));
        }
    }
    Err(format!("no cgroup hierarchy for {controllers:?} is mounted").into())
}

/// Where this host mounts its cgroup2 hierarchy.
pub fn cgroup2_mount() -> Result<PathBuf, Box<dyn std::error::Error>> {
    hierarchy_mount("")
}

/// The step runs in a `strata/strata-<pid>-<n>` cgroup that is gone after the run.
pub fn step_cgroup_is_removed(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = busybox_root()?;
    let ran = run(rt, &root, &sh("cat /proc/self/cgroup"))?;
    let mut step_cgroups = Vec::new();
    for line in &ran.stdout {
        let mut parts = line.splitn(3, ':');
        let (_, Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if path.contains("/strata/strata-") {
            let mount = hierarchy_mount(controllers)?;
            step_cgroups.push(mount.join(path.trim_start_matches('/')));
        }
    }
    assert!(
        !step_cgroups.is_empty(),
        "the step ran in no strata cgroup: {:?}",
        ran.stdout
    );
    for dir in step_cgroups {
        assert!(!Path::new(&dir).exists(), "{} is left", dir.display());
    }
    Ok(())
}
