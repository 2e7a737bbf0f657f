//! Docker's default seccomp profile, checked with a static probe program (compiled here with
//! `gcc -static` into a layer) that makes one system call per run and prints
//! `<name> <return value> <errno>`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_sandbox::{Capabilities, RootFs, Runtime, Seccomp};

use super::{TestResult, busybox_layer, rootfs, run, sh};

const PROBE_SOURCE: &str = include_str!("seccomp_probe.c");

/// A layer holding `/probe`, the probe compiled static for this host.
fn probe_layer(dir: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let layer = dir.join("probe-layer");
    fs::create_dir_all(&layer)?;
    let source = dir.join("probe.c");
    fs::write(&source, PROBE_SOURCE)?;
    let out = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(layer.join("probe"))
        .arg(&source)
        .output()
        .map_err(|e| {
            format!("gcc (Debian's gcc and libc6-dev) is needed to build the probe: {e}")
        })?;
    if !out.status.success() {
        return Err(format!(
            "gcc -static failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(layer)
}

/// A busybox root with the probe on top.
fn probe_root() -> Result<(tempfile::TempDir, RootFs), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let busybox = busybox_layer(dir.path())?;
    let probe = probe_layer(dir.path())?;
    let root = rootfs(dir.path(), vec![busybox, probe])?;
    Ok((dir, root))
}

/// Runs `/probe <args>` as root in a fresh root and returns its stdout.
fn probe(rt: &dyn Runtime, args: &str) -> Result<String, Box<dyn std::error::Error>> {
    let (_dir, root) = probe_root()?;
    let ran = run(rt, &root, &sh(&format!("/probe {args}")))?;
    assert_eq!(ran.code, 0, "probe {args}: {:?}", ran.stderr);
    Ok(ran.out())
}

/// The key system calls are refused, so a step cannot reach the host's keyrings.
pub fn keyring_calls_are_refused(rt: &dyn Runtime) -> TestResult {
    assert_eq!(probe(rt, "add_key")?, format!("add_key -1 {}", libc::EPERM));
    assert_eq!(probe(rt, "keyctl")?, format!("keyctl -1 {}", libc::EPERM));
    Ok(())
}

/// A key planted on the host root's user keyring cannot be read from a step, and stays.
pub fn host_key_is_out_of_reach(rt: &dyn Runtime) -> TestResult {
    let description = format!("strata-seccomp-canary-{}", std::process::id());
    let payload = "host-secret-canary";
    let added = Command::new("keyctl")
        .args(["add", "user", &description, payload, "@u"])
        .output()
        .map_err(|e| format!("keyctl (Debian's keyutils) is needed to plant the canary: {e}"))?;
    assert!(added.status.success(), "keyctl add: {added:?}");
    let id = String::from_utf8(added.stdout)?.trim().to_string();
    let seen = probe(rt, &format!("read-key {description}"));
    let after = Command::new("keyctl").args(["pipe", &id]).output()?;
    let unlinked = Command::new("keyctl")
        .args(["unlink", &id, "@u"])
        .status()?;
    let seen = seen?;
    assert!(
        !seen.contains(payload),
        "the step read the host key: {seen}"
    );
    assert_eq!(seen, format!("search-key -1 {}", libc::EPERM));
    assert_eq!(String::from_utf8(after.stdout)?, payload, "host canary key");
    assert!(unlinked.success(), "keyctl unlink {id}");
    Ok(())
}

/// No new user namespace (and so no mounts of one's own), no io_uring.
pub fn namespaces_and_io_uring_are_refused(rt: &dyn Runtime) -> TestResult {
    assert_eq!(
        probe(rt, "unshare-user")?,
        format!("unshare-user -1 {}", libc::EPERM)
    );
    assert_eq!(
        probe(rt, "io_uring_setup")?,
        format!("io_uring_setup -1 {}", libc::EPERM)
    );
    // As in Docker, clone3 says ENOSYS, so that C libraries fall back to clone, whose
    // namespace flags the profile can see.
    assert_eq!(probe(rt, "clone3")?, format!("clone3 -1 {}", libc::ENOSYS));
    Ok(())
}

/// The argument filters: AF_VSOCK sockets and personality changes other than Docker's
/// few are refused, ordinary sockets and the personality query are not.
pub fn argument_filters(rt: &dyn Runtime) -> TestResult {
    assert_eq!(
        probe(rt, "socket-vsock")?,
        format!("socket-vsock -1 {}", libc::EPERM)
    );
    let inet = probe(rt, "socket-inet")?;
    assert!(inet.ends_with(" 0") && !inet.contains("-1"), "{inet}");
    let query = probe(rt, "personality-query")?;
    assert!(query.ends_with(" 0") && !query.contains("-1"), "{query}");
    assert_eq!(
        probe(rt, "personality-no-randomize")?,
        format!("personality-no-randomize -1 {}", libc::EPERM)
    );
    Ok(())
}

/// Ordinary work still runs under the filter, which `/proc` reports as mode 2.
pub fn busybox_step_still_works(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = probe_root()?;
    let script = "set -e; mkdir -p /work; cp /etc/passwd /work/p; ls /work; sleep 0.1; id; \
                  grep '^Seccomp:' /proc/self/status; echo done > /work/done";
    let ran = run(rt, &root, &sh(script))?;
    assert_eq!(ran.code, 0, "{:?}", ran.stderr);
    assert_eq!(
        ran.stdout,
        ["p", "uid=0(root) gid=0(root)", "Seccomp:\t2"],
        "{:?}",
        ran.stderr
    );
    assert_eq!(fs::read_to_string(root.upper.join("work/done"))?, "done\n");
    Ok(())
}

/// A spec that lifts the profile (for `--security=insecure`) runs without a filter.
pub fn unconfined_spec_has_no_filter(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = probe_root()?;
    let mut spec = sh("grep '^Seccomp:' /proc/self/status; /probe personality-no-randomize");
    spec.seccomp = Seccomp::Unconfined;
    let ran = run(rt, &root, &spec)?;
    assert_eq!(ran.code, 0, "{:?}", ran.stderr);
    assert_eq!(ran.stdout[0], "Seccomp:\t0");
    assert!(
        !ran.stdout[1].ends_with(&format!(" {}", libc::EPERM)),
        "{:?}",
        ran.stdout
    );
    Ok(())
}

/// An insecure spec (`--security=insecure`: no filter, every capability, as BuildKit gives
/// it) keeps for root every capability that the host lets us have (our bounding set).
pub fn insecure_spec_has_every_capability(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = probe_root()?;
    let mut spec = sh("grep -E '^(CapEff|CapBnd|Seccomp):' /proc/self/status");
    spec.seccomp = Seccomp::Unconfined;
    spec.capabilities = Capabilities::All;
    let ran = run(rt, &root, &spec)?;
    let status = fs::read_to_string("/proc/self/status")?;
    let all = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:\t"))
        .ok_or("no CapBnd in /proc/self/status")?;
    assert_eq!(
        ran.stdout,
        [
            format!("CapEff:\t{all}"),
            format!("CapBnd:\t{all}"),
            "Seccomp:\t0".to_string(),
        ],
        "stderr: {:?}",
        ran.stderr
    );
    Ok(())
}
