//! Behaviour every runtime must show, written once and called by each runtime's test file.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use strata_sandbox::{Network, Runtime};

use super::{
    TestResult, busybox_layer, busybox_root, interfaces, rootfs, run, run_cancellable, sh,
};

/// Docker's default capability set as /proc/self/status prints it.
const DOCKER_CAPS: &str = "00000000a80425fb";

pub fn output_lines_and_exit_code(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = busybox_root()?;
    let ran = run(
        rt,
        &root,
        &sh("echo one; echo two >&2; printf 'no newline'; exit 3"),
    )?;
    assert_eq!(ran.code, 3);
    assert_eq!(ran.stdout, ["one", "no newline"]);
    assert_eq!(ran.stderr, ["two"]);
    Ok(())
}

pub fn root_writes_land_in_upper(rt: &dyn Runtime) -> TestResult {
    let (dir, root) = busybox_root()?;
    // Only mounts of this test's folders: other processes may mount
    // elsewhere meanwhile (a peer engine, another test).
    let dir_name = dir.path().to_string_lossy().into_owned();
    let ours = |table: String| -> Vec<String> {
        table
            .lines()
            .filter(|l| l.contains(&dir_name))
            .map(str::to_string)
            .collect()
    };
    let before = ours(super::mount_table()?);
    let ran = run(rt, &root, &sh("touch /escape-test && echo done"))?;
    assert_eq!(
        (ran.code, ran.out()),
        (0, "done".to_string()),
        "stderr: {:?}",
        ran.stderr
    );
    assert!(root.upper.join("escape-test").is_file());
    assert!(
        !Path::new("/escape-test").exists(),
        "the write reached the host's /"
    );
    assert_eq!(
        before,
        ours(super::mount_table()?),
        "host mount table changed"
    );
    let upper = root.upper.to_string_lossy().into_owned();
    for entry in fs::read_dir("/proc")?.flatten() {
        // Processes may exit while we read; only a table we could read counts.
        if let Ok(table) = fs::read_to_string(entry.path().join("mountinfo")) {
            assert!(
                !table.contains(&upper),
                "{} still has the overlay mounted",
                entry.path().display()
            );
        }
    }
    Ok(())
}

pub fn no_mount_and_no_host_paths(rt: &dyn Runtime) -> TestResult {
    let (dir, root) = busybox_root()?;
    let secret = dir.path().join("host-secret");
    fs::write(&secret, "host secret content\n")?;
    let script = format!(
        "mkdir -p /mnt; mount -t tmpfs none /mnt; echo mount=$?; cat {} ; echo cat=$?",
        secret.display()
    );
    let ran = run(rt, &root, &sh(&script))?;
    let mount = ran.stdout.first().cloned().unwrap_or_default();
    assert!(
        mount.starts_with("mount=") && mount != "mount=0",
        "mount: {mount:?}"
    );
    assert_eq!(ran.stdout.last().map(String::as_str), Some("cat=1"));
    assert!(!ran.out().contains("host secret"));
    Ok(())
}

pub fn own_pid_namespace_and_hostname(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = busybox_root()?;
    let ran = run(
        rt,
        &root,
        &sh("tr '\\0' ' ' < /proc/1/cmdline; echo; hostname; echo $$"),
    )?;
    assert_eq!(ran.code, 0, "stderr: {:?}", ran.stderr);
    let cmdline = ran.stdout.first().cloned().unwrap_or_default();
    assert!(
        cmdline.starts_with("sh -c tr "),
        "/proc/1/cmdline is {cmdline:?}"
    );
    assert_eq!(ran.stdout[1..], ["buildkitsandbox", "1"]);
    Ok(())
}

pub fn user_groups_and_capabilities(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = busybox_root()?;
    let script = "id; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status";
    let mut spec = sh(script);
    spec.uid = 1000;
    spec.gid = 1000;
    spec.additional_gids = vec![1000, 50];
    let user = run(rt, &root, &spec)?;
    assert_eq!(
        user.stdout,
        [
            // The kernel keeps supplementary groups sorted.
            "uid=1000(user) gid=1000(user) groups=50(staff),1000(user)",
            "CapPrm:\t0000000000000000",
            "CapEff:\t0000000000000000",
            &format!("CapBnd:\t{DOCKER_CAPS}"),
            "NoNewPrivs:\t1",
        ]
    );
    let root_ran = run(rt, &root, &sh(script))?;
    assert_eq!(
        root_ran.stdout,
        [
            "uid=0(root) gid=0(root)",
            &format!("CapPrm:\t{DOCKER_CAPS}"),
            &format!("CapEff:\t{DOCKER_CAPS}"),
            &format!("CapBnd:\t{DOCKER_CAPS}"),
            "NoNewPrivs:\t1",
        ]
    );
    Ok(())
}

pub fn network_modes(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = busybox_root()?;
    let mut spec = sh("cat /proc/net/dev; ip link show lo");
    spec.network = Network::None;
    let none = run(rt, &root, &spec)?;
    assert_eq!(
        interfaces(&none.stdout[..none.stdout.len() - 2]),
        BTreeSet::from(["lo".to_string()])
    );
    assert!(
        none.out().contains("state UNKNOWN") || none.out().contains(",UP"),
        "lo is down: {:?}",
        none.stdout
    );
    let host_dev: Vec<String> = fs::read_to_string("/proc/net/dev")?
        .lines()
        .map(String::from)
        .collect();
    let host = run(rt, &root, &sh("cat /proc/net/dev"))?;
    assert!(
        interfaces(&host_dev).len() > 1,
        "the host has only lo; cannot tell host networking apart"
    );
    assert_eq!(interfaces(&host.stdout), interfaces(&host_dev));
    Ok(())
}

pub fn dev_and_sys(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = busybox_root()?;
    let script = "for d in null zero full random urandom tty; do test -c /dev/$d && echo $d; done; \
                  echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c; \
                  test -L /dev/ptmx && echo ptmx; awk '$2 == \"/sys\" { split($4, o, \",\"); print \"sys \" o[1] }' /proc/mounts";
    let ran = run(rt, &root, &sh(script))?;
    assert_eq!(
        ran.stdout,
        [
            "null", "zero", "full", "random", "urandom", "tty", "null-ok", "4", "ptmx", "sys ro"
        ],
        "stderr: {:?}",
        ran.stderr
    );
    Ok(())
}

pub fn stacked_layers_and_whiteout(rt: &dyn Runtime) -> TestResult {
    let dir = tempfile::tempdir()?;
    let base = busybox_layer(dir.path())?;
    fs::write(base.join("etc/hidden"), "lower\n")?;
    fs::write(base.join("etc/kept"), "lower\n")?;
    let top = dir.path().join("top");
    fs::create_dir_all(top.join("etc"))?;
    fs::write(top.join("etc/added"), "top\n")?;
    let whiteout = strata_test_mknod(&top.join("etc/hidden"))?;
    assert!(whiteout, "mknod of a whiteout failed");
    let root = rootfs(dir.path(), vec![base, top])?;
    let ran = run(
        rt,
        &root,
        &sh("cat /etc/added /etc/kept; test -e /etc/hidden || echo hidden-gone"),
    )?;
    assert_eq!(
        ran.stdout,
        ["top", "lower", "hidden-gone"],
        "stderr: {:?}",
        ran.stderr
    );
    Ok(())
}

/// A 0:0 character device (an overlayfs whiteout), made with the host's `mknod`.
fn strata_test_mknod(path: &Path) -> Result<bool, Box<dyn std::error::Error>> {
    let status = std::process::Command::new("mknod")
        .arg(path)
        .args(["c", "0", "0"])
        .status()?;
    Ok(status.success())
}

pub fn many_long_lower_layers(rt: &dyn Runtime) -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut lower = vec![busybox_layer(dir.path())?];
    let long = dir
        .path()
        .join("layers-stored-under-a-deliberately-long-directory-name");
    for i in 0..120 {
        let layer = long.join(format!("{i:0>40}"));
        fs::create_dir_all(layer.join("stack"))?;
        fs::write(layer.join("stack").join(format!("f{i}")), format!("{i}\n"))?;
        lower.push(layer);
    }
    let total: usize = lower.iter().map(|p| p.as_os_str().len() + 1).sum();
    assert!(total > 4096, "layer paths only take {total} bytes");
    let root = rootfs(dir.path(), lower)?;
    let ran = run(
        rt,
        &root,
        &sh("ls /stack | wc -l; cat /stack/f0 /stack/f119"),
    )?;
    assert_eq!(ran.stdout, ["120", "0", "119"], "stderr: {:?}", ran.stderr);
    Ok(())
}

pub fn concurrent_runs(rt: &dyn Runtime) -> TestResult {
    let results: Vec<Result<Vec<String>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                scope.spawn(move || -> Result<Vec<String>, String> {
                    let (_dir, root) = busybox_root().map_err(|e| e.to_string())?;
                    let ran = run(rt, &root, &sh(&format!("echo run-{i}; hostname")))
                        .map_err(|e| e.to_string())?;
                    Ok(ran.stdout)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    });
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result?, [format!("run-{i}"), "buildkitsandbox".to_string()]);
    }
    Ok(())
}

/// Processes of the host whose arguments are exactly `argv` (zombies,
/// whose command line is empty, are not counted).
fn processes_running(argv: &[&str]) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc")?.flatten() {
        // Processes may exit while we read.
        if fs::read(entry.path().join("cmdline")).is_ok_and(|c| c == want) {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(found)
}

pub fn cancellation_kills_the_tree(rt: &dyn Runtime) -> TestResult {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let (_dir, root) = busybox_root()?;
    // The background sleep has a duration no other process uses, so the
    // host's /proc tells whether it outlived the run. The step says
    // `started` once the sleep is exec'd (before, its command line is the
    // shell's).
    let seconds = format!(
        "{}{}",
        100_000 + std::process::id() % 100_000,
        RUNS.fetch_add(1, Ordering::SeqCst)
    );
    let started = AtomicBool::new(false);
    let spec = sh(&format!(
        "sleep {seconds} & while [ \"$(cat /proc/$!/comm)\" != sleep ]; do :; done; echo started; sleep 100"
    ));
    let lines = std::sync::Mutex::new(Vec::new());
    let seen_running = std::sync::Mutex::new(Vec::new());
    let start = Instant::now();
    let output = |_s, line: &[u8]| {
        if line == b"started" {
            if let (Ok(found), Ok(mut seen)) =
                (processes_running(&["sleep", &seconds]), seen_running.lock())
            {
                *seen = found;
            }
            started.store(true, Ordering::SeqCst);
        }
        if let Ok(mut l) = lines.lock() {
            l.push(line.to_vec());
        }
    };
    let code = rt.run(&root, &spec, &output, &|| started.load(Ordering::SeqCst))?;
    assert_eq!(code, 137);
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "the run was not cut short"
    );
    let seen = seen_running.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(
        seen.len(),
        1,
        "the background `sleep {seconds}` was not seen running"
    );
    // Killing a pid namespace is immediate, its reaping nearly so.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left = processes_running(&["sleep", &seconds])?;
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left = processes_running(&["sleep", &seconds])?;
    }
    assert_eq!(
        left,
        Vec::<String>::new(),
        "the step's background `sleep {seconds}` outlived the cancelled run"
    );
    Ok(())
}

fn list_tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            out.push(entry.path());
            out.extend(list_tree(&entry.path()));
        }
    }
    out
}

pub fn placeholders_leave_no_trace(rt: &dyn Runtime) -> TestResult {
    // An image with neither /etc nor /proc, /dev, /sys.
    let dir = tempfile::tempdir()?;
    let layer = dir.path().join("bin-only");
    fs::create_dir_all(layer.join("bin"))?;
    fs::copy("/bin/busybox", layer.join("bin/busybox"))?;
    symlink("busybox", layer.join("bin/sh"))?;
    let root = rootfs(dir.path(), vec![layer])?;
    let ran = run(rt, &root, &sh("/bin/busybox cat /etc/hostname"))?;
    assert_eq!(ran.stdout, ["buildkitsandbox"]);
    assert_eq!(list_tree(&root.upper), Vec::<PathBuf>::new());

    // An image with /etc: the copy-up of /etc for the placeholders is undone too, while the
    // process's own writes to /etc stay.
    let (_dir, root) = busybox_root()?;
    let ran = run(rt, &root, &sh("cat /etc/hosts"))?;
    assert!(
        ran.stdout.iter().any(|l| l.starts_with("127.0.0.1")),
        "{:?}",
        ran.stdout
    );
    assert_eq!(list_tree(&root.upper), Vec::<PathBuf>::new());
    let (_dir, root) = busybox_root()?;
    run(rt, &root, &sh("echo x > /etc/mine"))?;
    assert_eq!(
        list_tree(&root.upper),
        [root.upper.join("etc"), root.upper.join("etc/mine")]
    );
    Ok(())
}

pub fn working_directory_is_created(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = busybox_root()?;
    let mut spec = sh("pwd");
    spec.cwd = "/work/dir".into();
    let ran = run(rt, &root, &spec)?;
    assert_eq!(ran.stdout, ["/work/dir"]);
    assert!(root.upper.join("work/dir").is_dir());
    Ok(())
}

pub fn run_cancelled_before_start(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = busybox_root()?;
    let ran = run_cancellable(rt, &root, &sh("sleep 100"), &|| true)?;
    assert_eq!(ran.code, 137);
    Ok(())
}

/// The OCI runtimes report a missing program in their log, which becomes the error.
pub fn missing_program_is_a_runtime_error(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = busybox_root()?;
    let mut spec = sh("");
    spec.argv = vec!["/bin/foo".into()];
    let err = run(rt, &root, &spec).err().ok_or("a missing program ran")?;
    assert!(
        matches!(err, strata_sandbox::SandboxError::OciRuntime { .. }),
        "{err:?}"
    );
    let text = err.to_string().to_lowercase();
    assert!(
        text.contains("/bin/foo") && text.contains("no such file or directory"),
        "{text}"
    );
    Ok(())
}

/// An image whose /etc is a symlink to an absolute path must not make the runtime create its
/// /etc/hosts placeholder at that path on the host.
pub fn symlinked_etc_does_not_escape(rt: &dyn Runtime) -> TestResult {
    let dir = tempfile::tempdir()?;
    let layer = dir.path().join("layer");
    fs::create_dir_all(layer.join("bin"))?;
    fs::copy("/bin/busybox", layer.join("bin/busybox"))?;
    symlink("busybox", layer.join("bin/sh"))?;
    let outside = dir.path().join("outside");
    fs::create_dir(&outside)?;
    symlink(&outside, layer.join("etc"))?;
    let root = rootfs(dir.path(), vec![layer])?;
    let ran = run(rt, &root, &sh("echo ran"));
    assert_eq!(
        fs::read_dir(&outside)?.count(),
        0,
        "the runtime wrote through the /etc symlink ({:?})",
        ran.map(|r| r.stdout)
    );
    Ok(())
}

/// A step that replaces /etc with a symlink to a host directory must not make the placeholder
/// cleanup delete files there.
pub fn cleanup_does_not_follow_step_symlinks(rt: &dyn Runtime) -> TestResult {
    let dir = tempfile::tempdir()?;
    let layer = dir.path().join("layer");
    fs::create_dir_all(layer.join("bin"))?;
    fs::copy("/bin/busybox", layer.join("bin/busybox"))?;
    symlink("busybox", layer.join("bin/sh"))?;
    fs::create_dir(layer.join("real-etc"))?;
    symlink("real-etc", layer.join("etc"))?;
    let victim = dir.path().join("victim");
    fs::create_dir(&victim)?;
    fs::write(victim.join("hosts"), "keep me\n")?;
    let root = rootfs(dir.path(), vec![layer])?;
    let script = format!(
        "/bin/busybox rm /etc && /bin/busybox ln -s {} /etc && echo replaced",
        victim.display()
    );
    let ran = run(rt, &root, &sh(&script))?;
    assert_eq!(ran.stdout, ["replaced"], "stderr: {:?}", ran.stderr);
    assert!(
        victim.join("hosts").exists(),
        "cleanup deleted a host file through the step's symlink"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Docker's read-only and masked /proc and /sys paths. Listed here on their
// own (not taken from the crate) so that dropping one from the runtimes fails.
// ---------------------------------------------------------------------------

/// Paths Docker mounts read-only (plus /sys, which is mounted read-only).
const READ_ONLY_PATHS: [&str; 6] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/sys",
];

/// Paths Docker masks: files read as empty, folders list nothing.
const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// A global (not namespaced), harmless sysctl: the host canary.
const CANARY_SYSCTL: &str = "/proc/sys/kernel/printk_ratelimit";

/// Every read-only path refuses a write (opening its first file for writing
/// with truncation, which writes nothing), and a real write to a global
/// sysctl fails and leaves the host's value alone.
pub fn read_only_proc_and_sys_paths(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = busybox_root()?;
    let before = fs::read_to_string(CANARY_SYSCTL)?;
    let value: u64 = before.trim().parse()?;
    let script = format!(
        "for p in {}; do \
           if [ ! -e $p ]; then echo \"$p: absent\"; continue; fi; \
           t=$(find $p -type f 2>/dev/null | head -n 1); \
           msg=$( {{ : > ${{t:-$p/no-file}}; }} 2>&1 ); echo \"$p: ${{msg##*: }}\"; \
         done; \
         msg=$( {{ echo {} > {CANARY_SYSCTL}; }} 2>&1 ); echo \"canary: ${{msg##*: }}\"",
        READ_ONLY_PATHS.join(" "),
        value + 1,
    );
    let ran = run(rt, &root, &sh(&script));
    let after = fs::read_to_string(CANARY_SYSCTL)?;
    if after != before {
        // Put the host back before failing.
        fs::write(CANARY_SYSCTL, &before)?;
    }
    assert_eq!(after, before, "a step changed the host's {CANARY_SYSCTL}");
    let ran = ran?;
    // A path the host's kernel lacks (e.g. /proc/sysrq-trigger without
    // CONFIG_MAGIC_SYSRQ) has nothing to protect, and is absent in the step too.
    let expected: Vec<String> = READ_ONLY_PATHS
        .iter()
        .map(|p| match Path::new(p).exists() {
            true => format!("{p}: Read-only file system"),
            false => format!("{p}: absent"),
        })
        .chain(["canary: Read-only file system".to_string()])
        .collect();
    assert_eq!(ran.stdout, expected, "stderr: {:?}", ran.stderr);
    Ok(())
}

/// What a path shows on the host: absent, empty, or with something in it.
fn host_shows(path: &Path) -> Result<&'static str, std::io::Error> {
    use std::io::Read;
    let shows = |any: bool| if any { "1" } else { "0" };
    match fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok("absent"),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => Ok(shows(fs::read_dir(path)?.next().is_some())),
        Ok(_) => {
            let mut byte = [0u8; 1];
            Ok(shows(fs::File::open(path)?.read(&mut byte)? > 0))
        }
    }
}

/// The names in each masked folder of the host.
fn host_listings() -> Vec<(&'static str, BTreeSet<std::ffi::OsString>)> {
    MASKED_PATHS
        .iter()
        .filter_map(|p| {
            let names = fs::read_dir(p).ok()?.flatten().map(|e| e.file_name());
            Some((*p, names.collect()))
        })
        .collect()
}

/// Every masked path that shows something on the host shows nothing in the
/// step (one that is absent on the host may be absent or empty); the step's
/// attempt to create a file in each masked folder leaves the host's alone.
pub fn masked_paths_show_nothing(rt: &dyn Runtime) -> TestResult {
    let (_dir, root) = busybox_root()?;
    let before = host_listings();
    let script = format!(
        "for p in {}; do \
           if [ -d $p ]; then touch $p/strata-canary 2>/dev/null; \
             echo \"$p $(ls -A $p | head -n 1 | wc -l)\"; \
           elif [ -e $p ]; then echo \"$p $(head -c 1 $p | wc -c)\"; \
           else echo \"$p absent\"; fi; \
         done",
        MASKED_PATHS.join(" ")
    );
    let ran = run(rt, &root, &sh(&script))?;
    assert_eq!(
        before,
        host_listings(),
        "a masked folder of the host changed"
    );
    assert_eq!(ran.code, 0, "stderr: {:?}", ran.stderr);
    let mut problems = Vec::new();
    let mut shown_on_host = 0;
    for path in MASKED_PATHS {
        let host = host_shows(Path::new(path))?;
        shown_on_host += usize::from(host == "1");
        let inside = ran
            .stdout
            .iter()
            .find_map(|l| l.strip_prefix(path)?.strip_prefix(' '))
            .unwrap_or("<no line>");
        let ok = match host {
            "absent" => inside == "absent" || inside == "0",
            _ => inside == "0",
        };
        if !ok {
            problems.push(format!("{path}: host {host}, step {inside}"));
        }
    }
    assert!(
        problems.is_empty(),
        "masked paths show something in the step:\n{}",
        problems.join("\n")
    );
    assert!(
        shown_on_host >= 2,
        "only {shown_on_host} of Docker's masked paths show anything on this host; \
         the check cannot tell masking apart"
    );
    Ok(())
}
