//! The OCI runtime `config.json` for a step: same namespaces, mounts, capabilities and
//! credentials as the builtin runtime, Docker's default seccomp profile, and the device
//! allow-list as the only cgroup resource.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Capability, Linux, LinuxCapabilities, LinuxDeviceCgroup, LinuxDeviceType,
    LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceType, LinuxPids, LinuxResources, Mount,
    PosixRlimit, PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec, User,
};

use crate::cgroup::ALLOWED_DEVICES;
use crate::docker_paths;
use crate::etc_files::EtcFiles;
use crate::limits::Limits;
use crate::mounts::{self, MountSource, StepMount};
use crate::{Network, ProcessSpec, Seccomp, caps, seccomp};

fn capabilities(set: crate::Capabilities) -> Result<Capabilities, String> {
    caps::names(set)
        .into_iter()
        .map(|name| {
            serde_json::from_value::<Capability>(serde_json::Value::String(name.into()))
                .map_err(|e| format!("capability {name}: {e}"))
        })
        .collect()
}

fn mount(destination: &str, typ: &str, source: &Path, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(destination.into());
    m.set_typ(Some(typ.into()));
    m.set_source(Some(source.to_path_buf()));
    m.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Deny every device, then allow the list (runc adds its own defaults after these).
fn device_rules() -> Vec<LinuxDeviceCgroup> {
    let mut deny_all = LinuxDeviceCgroup::default();
    deny_all.set_allow(false);
    deny_all.set_access(Some("rwm".into()));
    let allowed = ALLOWED_DEVICES.iter().map(|device| {
        let mut rule = LinuxDeviceCgroup::default();
        rule.set_allow(true);
        rule.set_typ(Some(LinuxDeviceType::C));
        rule.set_major(Some(device.major.into()));
        rule.set_minor(device.minor.map(i64::from));
        rule.set_access(Some("rwm".into()));
        rule
    });
    std::iter::once(deny_all).chain(allowed).collect()
}

/// `--ulimit`s as `process.rlimits`.
fn rlimits(limits: &Limits) -> Result<Vec<PosixRlimit>, String> {
    limits
        .ulimits
        .iter()
        .map(|u| {
            let name = u.resource.oci_name();
            let typ =
                serde_json::from_value::<PosixRlimitType>(serde_json::Value::String(name.clone()))
                    .map_err(|e| format!("rlimit {name}: {e}"))?;
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(u.soft)
                .hard(u.hard)
                .build()
                .map_err(|e| format!("rlimit {name}: {e}"))
        })
        .collect()
}

/// The config for running `spec` with the root at `rootfs` (relative to the bundle).
/// `cgroups_path`, when given, is the container's cgroup: runc makes it and applies the
/// memory and pids limits to it. `netns` names the private network namespace the container
/// joins for [`Network::Private`]. `extra` are the step's mounts, targets resolved in its
/// layers; `files` is where their [`MountSource::File`] files are staged
/// ([`crate::mounts::StagedFiles`]).
pub(crate) fn build(
    spec: &ProcessSpec,
    extra: &[StepMount],
    etc: &EtcFiles,
    files: &Path,
    cgroups_path: Option<&str>,
    netns: Option<&Path>,
    limits: &Limits,
) -> Result<Spec, String> {
    let all = capabilities(spec.capabilities)?;
    let kept = if spec.uid == 0 {
        all.clone()
    } else {
        Capabilities::new()
    };
    let mut capabilities = LinuxCapabilities::default();
    capabilities.set_bounding(Some(all));
    capabilities.set_effective(Some(kept.clone()));
    capabilities.set_permitted(Some(kept));
    capabilities.set_inheritable(Some(Capabilities::new()));
    capabilities.set_ambient(Some(Capabilities::new()));

    let mut user = User::default();
    user.set_uid(spec.uid);
    user.set_gid(spec.gid);
    user.set_additional_gids(Some(spec.additional_gids.clone()));

    let mut process = Process::default();
    process.set_terminal(Some(false));
    process.set_user(user);
    process.set_args(Some(spec.argv.clone()));
    process.set_env(Some(spec.env.clone()));
    process.set_cwd(spec.cwd.clone().into());
    process.set_capabilities(Some(capabilities));
    process.set_no_new_privileges(Some(true));
    process.set_rlimits(Some(rlimits(limits)?));

    let mut root = Root::default();
    root.set_path("rootfs".into());
    root.set_readonly(Some(false));

    let nosuid_noexec_nodev = ["nosuid", "noexec", "nodev"];
    let mut mounts = vec![
        mount("/proc", "proc", Path::new("proc"), &nosuid_noexec_nodev),
        mount(
            "/dev",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            Path::new("devpts"),
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            Path::new("shm"),
            &[
                "nosuid",
                "noexec",
                "nodev",
                &format!("size={}k", limits.shm_size.div_ceil(1024)),
                "mode=1777",
            ],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            Path::new("mqueue"),
            &nosuid_noexec_nodev,
        ),
        // sysfs needs a network namespace owned by the mounting user namespace: a rootless
        // step on the host network binds the host's /sys instead (as the builtin runtime).
        if crate::userns::in_user_namespace() && spec.network == Network::Host {
            mount(
                "/sys",
                "bind",
                Path::new("/sys"),
                &["rbind", "nosuid", "noexec", "nodev", "ro"],
            )
        } else {
            mount(
                "/sys",
                "sysfs",
                Path::new("sysfs"),
                &["nosuid", "noexec", "nodev", "ro"],
            )
        },
    ];
    for (source, target) in &etc.binds {
        mounts.push(mount(
            &format!("/{target}"),
            "bind",
            source,
            &["rbind", "ro", "nosuid", "nodev", "noexec"],
        ));
    }
    for (i, m) in extra.iter().enumerate() {
        let target = mounts::clean_target(&m.target).map_err(|e| e.to_string())?;
        mounts.push(match &m.source {
            MountSource::Bind { path, readonly } => mount(
                &target,
                "bind",
                path,
                &[
                    "bind",
                    if *readonly { "ro" } else { "rw" },
                    "nosuid",
                    "nodev",
                ],
            ),
            MountSource::Tmpfs { size } => {
                let size = size.map(|s| format!("size={s}"));
                let mut options = vec!["nosuid", "nodev", "mode=1777"];
                options.extend(size.as_deref());
                mount(&target, "tmpfs", Path::new("tmpfs"), &options)
            }
            MountSource::File { .. } => mount(
                &target,
                "bind",
                &files.join(i.to_string()),
                &["bind", "ro", "nosuid", "nodev", "noexec"],
            ),
        });
    }

    let kinds = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    let mut namespaces: Vec<LinuxNamespace> = kinds
        .into_iter()
        .map(|kind| {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(kind);
            ns
        })
        .collect();
    match (spec.network, netns) {
        (Network::Host, _) => {}
        (Network::None, _) => {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(LinuxNamespaceType::Network);
            namespaces.push(ns);
        }
        (Network::Private, Some(path)) => {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(LinuxNamespaceType::Network);
            ns.set_path(Some(path.to_path_buf()));
            namespaces.push(ns);
        }
        (Network::Private, None) => {
            return Err("a private network needs its namespace's path".into());
        }
    }
    let mut linux = Linux::default();
    // In a rootless build's user namespace no cgroup can be made, and none is needed for
    // devices (see crate::userns): runc then runs with no cgroup resources at all (memory
    // and pids limits were refused before).
    if !crate::userns::in_user_namespace() {
        let mut resources = LinuxResources::default();
        resources.set_devices(Some(device_rules()));
        if cgroups_path.is_some() {
            let bytes = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            if let Some(n) = limits.pids {
                let mut pids = LinuxPids::default();
                pids.set_limit(bytes(n));
                resources.set_pids(Some(pids));
            }
            if let Some(n) = limits.memory {
                // Swap included, as for the other runtimes.
                let memory = LinuxMemoryBuilder::default()
                    .limit(bytes(n))
                    .swap(bytes(n))
                    .build()
                    .map_err(|e| format!("memory limit: {e}"))?;
                resources.set_memory(Some(memory));
            }
        }
        linux.set_resources(Some(resources));
    }
    linux.set_cgroups_path(cgroups_path.map(PathBuf::from));
    linux.set_namespaces(Some(namespaces));
    let masked = docker_paths::MASKED_FILES
        .iter()
        .chain(&docker_paths::MASKED_DIRS);
    linux.set_masked_paths(Some(masked.map(|p| p.to_string()).collect()));
    linux.set_readonly_paths(Some(strings(&docker_paths::READONLY)));
    linux.set_uid_mappings(None);
    linux.set_gid_mappings(None);
    linux.set_devices(None);
    linux.set_sysctl(None);
    linux.set_seccomp(match spec.seccomp {
        Seccomp::DockerDefault => Some(
            seccomp::oci_profile(caps::docker_default_mask())
                .map_err(|e| format!("seccomp profile: {e}"))?,
        ),
        Seccomp::Unconfined => None,
    });

    let mut config = Spec::default();
    config.set_version("1.0.2".into());
    config.set_process(Some(process));
    config.set_root(Some(root));
    config.set_hostname(Some(spec.hostname.clone()));
    config.set_mounts(Some(mounts));
    config.set_annotations(None);
    config.set_linux(Some(linux));
    Ok(config)
}
