//! Host devices stay out of reach of every runtime (run as root; needs `losetup`, `runc` and
//! `crun`): a step that makes a node for a host block device, and a base-image layer that
//! carries one, cannot write the device; the allow-list is runc's default without its
//! wildcard `mknod`. The canary is a loop device over a file of zeros that must stay zeros.

mod common;

/// One test module per runtime, one test per device check in each.
macro_rules! device_checks {
    ($([$module:ident, $runtime:expr]),* ; $checks:tt) => {
        $(device_checks!(@runtime $module, $runtime, $checks);)*
    };
    (@runtime $module:ident, $runtime:expr, [$($check:ident),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use strata_sandbox::{Builtin, DeviceControl, OciRuntime, OciRuntimeKind};

            #[allow(unused_imports)]
            use super::common::device_checks::cgroup2_mount;
            use super::common::{TestResult, device_checks};

            $(
                #[test]
                fn $check() -> TestResult {
                    let runtime = $runtime;
                    device_checks::$check(&runtime)
                }
            )*
        }
    };
}

device_checks!(
    [builtin, Builtin::default()],
    // The cgroup v2 BPF device filter, forced on this host's cgroup2 mount even where the v1
    // devices controller exists (on a pure v2 host it is what runs by default).
    [builtin_cgroup2, Builtin::with_device_control(DeviceControl::V2Bpf(cgroup2_mount()?))];
    [
        block_device_made_in_step_is_unusable,
        forged_layer_block_device_is_unusable,
        standard_devices_work,
        only_standard_devices_can_be_made,
        mounts_are_nodev,
        root_is_nodev_not_nosuid,
        step_cgroup_is_removed,
    ]
);

// crun bind-remounts the root it is given without `nodev`, so there the device cgroup alone
// keeps the layers' device nodes closed.
device_checks!(
    [crun, OciRuntime::new(OciRuntimeKind::Crun)?],
    [
        crun_cgroup2,
        OciRuntime::new(OciRuntimeKind::Crun)?
            .with_device_control(DeviceControl::V2Bpf(cgroup2_mount()?))
    ];
    [
        block_device_made_in_step_is_unusable,
        forged_layer_block_device_is_unusable,
        standard_devices_work,
        only_standard_devices_can_be_made,
        mounts_are_nodev,
        step_cgroup_is_removed,
    ]
);

// runc adds `mknod` of every device to the rules it is given (its default), so there a step
// can make a block node, which probe A shows it cannot open.
device_checks!(
    [runc, OciRuntime::new(OciRuntimeKind::Runc)?];
    [
        block_device_made_in_step_is_unusable,
        forged_layer_block_device_is_unusable,
        standard_devices_work,
        mounts_are_nodev,
        root_is_nodev_not_nosuid,
        step_cgroup_is_removed,
    ]
);

/// A step whose device cgroup cannot be made does not run: here the "hierarchy" is a plain
/// directory, so neither the v1 rules nor the BPF filter can be applied.
#[test]
fn no_device_cgroup_no_step() -> common::TestResult {
    use strata_sandbox::{Builtin, DeviceControl, OciRuntime, OciRuntimeKind, Runtime};
    let not_cgroups = tempfile::tempdir()?;
    let fake = not_cgroups.path().to_path_buf();
    let runtimes: Vec<(&str, Box<dyn Runtime>)> = vec![
        (
            "builtin v1",
            Box::new(Builtin::with_device_control(DeviceControl::V1Devices(
                fake.clone(),
            ))),
        ),
        (
            "builtin v2",
            Box::new(Builtin::with_device_control(DeviceControl::V2Bpf(
                fake.clone(),
            ))),
        ),
        (
            "crun v1",
            Box::new(
                OciRuntime::new(OciRuntimeKind::Crun)?
                    .with_device_control(DeviceControl::V1Devices(fake.clone())),
            ),
        ),
    ];
    for (name, rt) in runtimes {
        let (_dir, root) = common::busybox_root()?;
        let err = common::run(rt.as_ref(), &root, &common::sh("touch /ran"))
            .err()
            .ok_or_else(|| format!("{name}: the step ran without its device cgroup"))?;
        assert!(
            matches!(err, strata_sandbox::SandboxError::Cgroup { .. }),
            "{name}: {err}"
        );
        assert!(
            err.to_string().starts_with("step cgroup: "),
            "{name}: {err}"
        );
        assert!(!root.upper.join("ran").exists(), "{name}: the step ran");
    }
    Ok(())
}
