//! The OCI backend with `crun` in real namespaces (run as root; needs the `crun` package).

mod common;

use common::{TestResult, checks};
use strata_sandbox::{OciRuntime, OciRuntimeKind};

fn runtime() -> Result<OciRuntime, Box<dyn std::error::Error>> {
    Ok(OciRuntime::new(OciRuntimeKind::Crun)?)
}

#[test]
fn output_lines_and_exit_code() -> TestResult {
    checks::output_lines_and_exit_code(&runtime()?)
}

#[test]
fn root_writes_land_in_upper() -> TestResult {
    checks::root_writes_land_in_upper(&runtime()?)
}

#[test]
fn no_mount_and_no_host_paths() -> TestResult {
    checks::no_mount_and_no_host_paths(&runtime()?)
}

#[test]
fn own_pid_namespace_and_hostname() -> TestResult {
    checks::own_pid_namespace_and_hostname(&runtime()?)
}

#[test]
fn user_groups_and_capabilities() -> TestResult {
    checks::user_groups_and_capabilities(&runtime()?)
}

#[test]
fn network_modes() -> TestResult {
    checks::network_modes(&runtime()?)
}

#[test]
fn dev_and_sys() -> TestResult {
    checks::dev_and_sys(&runtime()?)
}

#[test]
fn stacked_layers_and_whiteout() -> TestResult {
    checks::stacked_layers_and_whiteout(&runtime()?)
}

#[test]
fn many_long_lower_layers() -> TestResult {
    checks::many_long_lower_layers(&runtime()?)
}

#[test]
fn concurrent_runs() -> TestResult {
    checks::concurrent_runs(&runtime()?)
}

#[test]
fn cancellation_kills_the_tree() -> TestResult {
    checks::cancellation_kills_the_tree(&runtime()?)
}

#[test]
fn placeholders_leave_no_trace() -> TestResult {
    checks::placeholders_leave_no_trace(&runtime()?)
}

#[test]
fn working_directory_is_created() -> TestResult {
    checks::working_directory_is_created(&runtime()?)
}

#[test]
fn missing_program_is_a_runtime_error() -> TestResult {
    checks::missing_program_is_a_runtime_error(&runtime()?)
}

#[test]
fn symlinked_etc_does_not_escape() -> TestResult {
    checks::symlinked_etc_does_not_escape(&runtime()?)
}

#[test]
fn cleanup_does_not_follow_step_symlinks() -> TestResult {
    checks::cleanup_does_not_follow_step_symlinks(&runtime()?)
}
