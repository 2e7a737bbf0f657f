//! The private network ([`Network::Private`], RUN's default) as every runtime must give it:
//! `lo` and a NAT interface, outbound connections that reach a server standing in for the
//! internet, and nothing of the host's loopback or abstract unix sockets. Each check asserts
//! the host canaries saw no connection, and shows with the host's network that its probe
//! does reach them (so it can fail). The slirp4netns helper lives exactly as long as the
//! run, cancelled or not.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::sync::Mutex;

use strata_fixtures::network::{
    AbstractCanary, CANARY_BODY, INTERNET_BODY, Internet, LoopbackCanary, abstract_probe,
};
use strata_sandbox::{Network, ProcessSpec, Runtime, Stream};

use super::{TestResult, busybox_layer, busybox_root, interfaces, rootfs, run, sh};

fn private(script: &str) -> ProcessSpec {
    let mut spec = sh(script);
    spec.network = Network::Private;
    spec
}

pub fn private_network_has_lo_and_a_nat_interface(rt: &dyn Runtime) -> TestResult {
    let canary = LoopbackCanary::start()?;
    let (_dir, root) = busybox_root()?;
    let ran = run(
        rt,
        &root,
        &private("cat /proc/net/dev; echo --; ip -4 addr show; ip route"),
    )?;
    assert_eq!(ran.code, 0, "stderr: {:?}", ran.stderr);
    let split = ran.stdout.iter().position(|l| l == "--").unwrap_or(0);
    assert_eq!(
        interfaces(&ran.stdout[..split]),
        BTreeSet::from(["lo".to_string(), "tap0".to_string()])
    );
    let rest = ran.stdout[split..].join("\n");
    assert!(
        rest.contains("inet 127.0.0.1/8"),
        "lo has no address: {rest}"
    );
    assert!(rest.contains("inet 10.0.2.100/24"), "tap0: {rest}");
    assert!(
        rest.contains("default via 10.0.2.2 dev tap0"),
        "route: {rest}"
    );
    assert_eq!(canary.hits(), 0, "the host's loopback server was reached");
    Ok(())
}

pub fn host_loopback_is_unreachable(rt: &dyn Runtime) -> TestResult {
    let canary = LoopbackCanary::start()?;
    let (_dir, root) = busybox_root()?;
    let port = canary.port;
    // 127.0.0.1 is the step's own loopback; 10.0.2.2 is slirp's gateway, which would be
    // the host's 127.0.0.1 without --disable-host-loopback.
    let probe = format!(
        "for host in 127.0.0.1 10.0.2.2; do timeout 10 wget -q -O- http://$host:{port}/; \
         echo \"$host rc=$?\"; done"
    );
    let ran = run(rt, &root, &private(&probe))?;
    assert!(
        !ran.out().contains(CANARY_BODY),
        "the step read the host's loopback server: {:?}",
        ran.stdout
    );
    for host in ["127.0.0.1", "10.0.2.2"] {
        assert!(
            ran.stdout
                .iter()
                .any(|l| l.starts_with(host) && !l.ends_with("rc=0")),
            "{host}: {:?} {:?}",
            ran.stdout,
            ran.stderr
        );
    }
    assert_eq!(canary.hits(), 0, "the host's loopback server was reached");
    // The same probe with the host's network does reach it.
    let mut host = sh(&format!("timeout 10 wget -q -O- http://127.0.0.1:{port}/"));
    host.network = Network::Host;
    let ran = run(rt, &root, &host)?;
    assert_eq!((ran.code, ran.out()), (0, CANARY_BODY.to_string()));
    assert_eq!(canary.hits(), 1);
    Ok(())
}

pub fn host_abstract_socket_is_unreachable(rt: &dyn Runtime) -> TestResult {
    let canary = AbstractCanary::start()?;
    let dir = tempfile::tempdir()?;
    let busybox = busybox_layer(dir.path())?;
    let probe_layer = dir.path().join("probe-layer");
    fs::create_dir_all(probe_layer.join("bin"))?;
    let probe = abstract_probe(dir.path())?;
    fs::copy(&probe, probe_layer.join("bin/abstract-connect"))?;
    let root = rootfs(dir.path(), vec![busybox, probe_layer])?;
    let command = format!("abstract-connect {}", canary.name);
    let ran = run(rt, &root, &private(&command))?;
    assert_eq!(
        (ran.code, ran.out()),
        (1, "connect: Connection refused".to_string()),
        "stderr: {:?}",
        ran.stderr
    );
    assert_eq!(canary.hits(), 0, "the host's abstract socket was reached");
    let mut host = sh(&command);
    host.network = Network::Host;
    let ran = run(rt, &root, &host)?;
    assert_eq!((ran.code, ran.out()), (0, "connected".to_string()));
    assert_eq!(canary.hits(), 1);
    Ok(())
}

/// `block` picks the stand-in's addresses, one per runtime so their tests can overlap.
pub fn outbound_nat_reaches_the_internet_stand_in(rt: &dyn Runtime, block: u8) -> TestResult {
    let canary = LoopbackCanary::start()?;
    let internet = Internet::start(block)?;
    let (_dir, root) = busybox_root()?;
    let ran = run(
        rt,
        &root,
        &private(&format!("timeout 20 wget -q -O- {}", internet.url())),
    )?;
    assert_eq!(
        (ran.code, ran.out()),
        (0, INTERNET_BODY.to_string()),
        "stderr: {:?}",
        ran.stderr
    );
    assert_eq!(canary.hits(), 0, "the host's loopback server was reached");
    Ok(())
}

/// The slirp4netns process serving the namespace whose `readlink /proc/self/ns/net` is
/// `ns`: it was started with a path naming our descriptor of that namespace.
fn helper_serving(ns: &str) -> Option<u32> {
    let ours = format!("/proc/{}/fd/", std::process::id());
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.first()?.ends_with("slirp4netns") {
            return None;
        }
        let path = args.iter().find(|a| a.starts_with(&ours))?;
        let target = fs::read_link(path).ok()?;
        (target.to_string_lossy() == ns).then_some(pid)
    })
}

/// Runs `script` (which prints its namespace first) on a private network, finds the helper
/// while the step runs, and returns it with the run's exit code.
fn run_and_find_helper(
    rt: &dyn Runtime,
    script: &str,
    cancel_once_found: bool,
) -> Result<(i32, Option<u32>), Box<dyn std::error::Error>> {
    let (_dir, root) = busybox_root()?;
    let found = Mutex::new(None);
    let output = |stream: Stream, line: &[u8]| {
        let line = String::from_utf8_lossy(line);
        if stream == Stream::Stdout
            && line.starts_with("net:[")
            && let Ok(mut found) = found.lock()
        {
            *found = helper_serving(&line);
        }
    };
    let cancelled = || cancel_once_found && found.lock().is_ok_and(|f| f.is_some());
    let spec = private(&format!("readlink /proc/self/ns/net; {script}"));
    let code = rt.run(&root, &spec, &output, &cancelled)?;
    Ok((code, found.into_inner().unwrap_or_default()))
}

pub fn no_helper_outlives_the_step(rt: &dyn Runtime) -> TestResult {
    let (code, helper) = run_and_find_helper(rt, "sleep 1", false)?;
    assert_eq!(code, 0);
    let helper = helper.ok_or("no slirp4netns process served the step's namespace")?;
    assert!(
        !Path::new(&format!("/proc/{helper}")).exists(),
        "slirp4netns {helper} outlived its step"
    );
    // A cancelled step ends its helper too.
    let (code, helper) = run_and_find_helper(rt, "sleep 60", true)?;
    assert_ne!(code, 0, "the step was not cancelled");
    let helper = helper.ok_or("no slirp4netns process served the cancelled step")?;
    assert!(
        !Path::new(&format!("/proc/{helper}")).exists(),
        "slirp4netns {helper} outlived its cancelled step"
    );
    Ok(())
}
