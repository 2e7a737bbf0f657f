//! The OCI backend with `runc` and with `crun` in real namespaces (run as
//! root; needs the `runc` and `crun` packages): the same checks as the
//! builtin runtime, once per runtime.

mod common;

/// One test module per runtime, one test per check in each.
macro_rules! oci_checks {
    ($([$module:ident, $kind:expr]),* ; $checks:tt) => {
        $(oci_checks!(@runtime $module, $kind, $checks);)*
    };
    (@runtime $module:ident, $kind:expr, [$($check:ident),* $(,)?]) => {
        mod $module {
            use super::common::{TestResult, checks, mount_checks};
            use strata_sandbox::{OciRuntime, OciRuntimeKind};

            fn runtime() -> Result<OciRuntime, Box<dyn std::error::Error>> {
                Ok(OciRuntime::new($kind)?)
            }

            $(
                #[test]
                fn $check() -> TestResult {
                    checks::$check(&runtime()?)
                }
            )*

            #[test]
            fn extra_mounts_show_what_they_say() -> TestResult {
                mount_checks::extra_mounts_show_what_they_say(&runtime()?)
            }

            #[test]
            fn mount_targets_stay_inside_the_root() -> TestResult {
                mount_checks::mount_targets_stay_inside_the_root(&runtime()?)
            }
        }
    };
}

oci_checks!(
    [runc, OciRuntimeKind::Runc],
    [crun, OciRuntimeKind::Crun];
    [
        output_lines_and_exit_code,
        root_writes_land_in_upper,
        no_mount_and_no_host_paths,
        own_pid_namespace_and_hostname,
        user_groups_and_capabilities,
        network_modes,
        dev_and_sys,
        stacked_layers_and_whiteout,
        many_long_lower_layers,
        concurrent_runs,
        cancellation_kills_the_tree,
        placeholders_leave_no_trace,
        working_directory_is_created,
        missing_program_is_a_runtime_error,
        symlinked_etc_does_not_escape,
        cleanup_does_not_follow_step_symlinks,
        // Docker's read-only and masked paths.
        read_only_proc_and_sys_paths,
        masked_paths_show_nothing,
    ]
);
