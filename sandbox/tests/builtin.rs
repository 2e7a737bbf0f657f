//! The builtin runtime in real namespaces (run as root).

mod common;

use common::{TestResult, checks, mount_checks, rootfs, run, sh};
use strata_sandbox::{Builtin, SandboxError};

#[test]
fn output_lines_and_exit_code() -> TestResult {
    checks::output_lines_and_exit_code(&Builtin::default())
}

#[test]
fn missing_program_is_an_exec_error() -> TestResult {
    let (_dir, root) = common::busybox_root()?;
    let mut spec = sh("");
    spec.argv = vec!["/bin/foo".into()];
    let err = run(&Builtin::default(), &root, &spec)
        .err()
        .ok_or("a missing program ran")?;
    assert!(matches!(err, SandboxError::Exec { .. }));
    assert_eq!(err.to_string(), "exec /bin/foo: no such file or directory");
    spec.argv = vec!["no-such-tool".into()];
    let err = run(&Builtin::default(), &root, &spec)
        .err()
        .ok_or("a missing program ran")?;
    assert_eq!(
        err.to_string(),
        "exec no-such-tool: no such file or directory"
    );
    Ok(())
}

#[test]
fn scratch_root_mounts_with_no_layers() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = rootfs(dir.path(), vec![])?;
    let mut spec = sh("");
    spec.argv = vec!["/bin/sh".into()];
    let err = run(&Builtin::default(), &root, &spec)
        .err()
        .ok_or("ran a shell in an empty root")?;
    assert_eq!(err.to_string(), "exec /bin/sh: no such file or directory");
    assert_eq!(
        std::fs::read_dir(&root.upper)?.count(),
        0,
        "placeholders left in upper"
    );
    Ok(())
}

#[test]
fn root_writes_land_in_upper() -> TestResult {
    checks::root_writes_land_in_upper(&Builtin::default())
}

#[test]
fn no_mount_and_no_host_paths() -> TestResult {
    checks::no_mount_and_no_host_paths(&Builtin::default())
}

#[test]
fn own_pid_namespace_and_hostname() -> TestResult {
    checks::own_pid_namespace_and_hostname(&Builtin::default())
}

#[test]
fn user_groups_and_capabilities() -> TestResult {
    checks::user_groups_and_capabilities(&Builtin::default())
}

#[test]
fn network_modes() -> TestResult {
    checks::network_modes(&Builtin::default())
}

#[test]
fn dev_and_sys() -> TestResult {
    checks::dev_and_sys(&Builtin::default())
}

#[test]
fn stacked_layers_and_whiteout() -> TestResult {
    checks::stacked_layers_and_whiteout(&Builtin::default())
}

#[test]
fn many_long_lower_layers() -> TestResult {
    checks::many_long_lower_layers(&Builtin::default())
}

#[test]
fn concurrent_runs() -> TestResult {
    checks::concurrent_runs(&Builtin::default())
}

#[test]
fn cancellation_kills_the_tree() -> TestResult {
    checks::cancellation_kills_the_tree(&Builtin::default())
}

#[test]
fn run_cancelled_before_start() -> TestResult {
    checks::run_cancelled_before_start(&Builtin::default())
}

#[test]
fn placeholders_leave_no_trace() -> TestResult {
    checks::placeholders_leave_no_trace(&Builtin::default())
}

#[test]
fn working_directory_is_created() -> TestResult {
    checks::working_directory_is_created(&Builtin::default())
}

#[test]
fn symlinked_etc_does_not_escape() -> TestResult {
    checks::symlinked_etc_does_not_escape(&Builtin::default())
}

#[test]
fn cleanup_does_not_follow_step_symlinks() -> TestResult {
    checks::cleanup_does_not_follow_step_symlinks(&Builtin::default())
}

// Docker's read-only and masked paths.

#[test]
fn read_only_proc_and_sys_paths() -> TestResult {
    checks::read_only_proc_and_sys_paths(&Builtin::default())
}

#[test]
fn masked_paths_show_nothing() -> TestResult {
    checks::masked_paths_show_nothing(&Builtin::default())
}

#[test]
fn extra_mounts_show_what_they_say() -> TestResult {
    mount_checks::extra_mounts_show_what_they_say(&Builtin::default())
}

#[test]
fn mount_targets_stay_inside_the_root() -> TestResult {
    mount_checks::mount_targets_stay_inside_the_root(&Builtin::default())
}
