//! Shared test helpers: busybox root layers and a runner that collects output.
#![allow(dead_code)] // each test binary uses a different subset

pub mod checks;
pub mod device_checks;
pub mod limit_checks;
pub mod loop_device;
pub mod mount_checks;
pub mod network_checks;
pub mod seccomp_checks;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use strata_sandbox::{
    Capabilities, Network, ProcessSpec, RootFs, Runtime, SandboxError, Seccomp, Stream,
};
use tempfile::TempDir;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The interface names in the lines of `/proc/net/dev` (after its two header lines).
pub fn interfaces(net_dev: &[String]) -> std::collections::BTreeSet<String> {
    net_dev
        .iter()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|name| name.trim().to_string())
        .collect()
}

/// A layer with /bin/busybox and its applets, /etc/passwd and /etc/group.
pub fn busybox_layer(dir: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err("/bin/busybox is missing: install Debian's busybox-static".into());
    }
    let layer = dir.join("busybox-layer");
    fs::create_dir_all(layer.join("bin"))?;
    fs::create_dir_all(layer.join("etc"))?;
    fs::create_dir_all(layer.join("tmp"))?;
    fs::copy(busybox, layer.join("bin/busybox"))?;
    let list = Command::new(busybox).arg("--list").output()?;
    for applet in String::from_utf8(list.stdout)?.lines() {
        if applet != "busybox" {
            symlink("busybox", layer.join("bin").join(applet))?;
        }
    }
    fs::write(
        layer.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
    )?;
    fs::write(
        layer.join("etc/group"),
        "root:x:0:\nstaff:x:50:\nuser:x:1000:\n",
    )?;
    Ok(layer)
}

/// A root of `lower` plus fresh upper and work dirs under `dir`.
pub fn rootfs(dir: &Path, lower: Vec<PathBuf>) -> Result<RootFs, Box<dyn std::error::Error>> {
    let upper = dir.join("upper");
    let work = dir.join("work");
    fs::create_dir(&upper)?;
    fs::create_dir(&work)?;
    Ok(RootFs { lower, upper, work })
}

/// A temp dir and a busybox root in it.
pub fn busybox_root() -> Result<(TempDir, RootFs), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let layer = busybox_layer(dir.path())?;
    let root = rootfs(dir.path(), vec![layer])?;
    Ok((dir, root))
}

/// A root process spec running `sh -c script`.
pub fn sh(script: &str) -> ProcessSpec {
    ProcessSpec {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        additional_gids: vec![],
        network: Network::Host,
        hostname: "buildkitsandbox".into(),
        seccomp: Seccomp::DockerDefault,
        capabilities: Capabilities::DockerDefault,
        mounts: vec![],
    }
}

/// What a run printed.
pub struct Ran {
    pub code: i32,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl Ran {
    pub fn out(&self) -> String {
        self.stdout.join("\n")
    }
}

/// Runs `spec` and collects its output lines.
pub fn run(rt: &dyn Runtime, root: &RootFs, spec: &ProcessSpec) -> Result<Ran, SandboxError> {
    run_cancellable(rt, root, spec, &|| false)
}

pub fn run_cancellable(
    rt: &dyn Runtime,
    root: &RootFs,
    spec: &ProcessSpec,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<Ran, SandboxError> {
    let lines = Mutex::new((Vec::new(), Vec::new()));
    let output = |stream: Stream, line: &[u8]| {
        let text = String::from_utf8_lossy(line).into_owned();
        if let Ok(mut l) = lines.lock() {
            match stream {
                Stream::Stdout => l.0.push(text),
                Stream::Stderr => l.1.push(text),
            }
        }
    };
    let code = rt.run(root, spec, &output, cancelled)?;
    let (stdout, stderr) = lines.into_inner().unwrap_or_default();
    Ok(Ran {
        code,
        stdout,
        stderr,
    })
}

/// The host's mount table without the per-mount ids that change on every read.
pub fn mount_table() -> Result<String, std::io::Error> {
    fs::read_to_string("/proc/self/mountinfo")
}
