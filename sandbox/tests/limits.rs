//! Resource limits under every runtime (run as root; needs `runc` and `crun`): a memory hog
//! over `--memory` is killed and reported as out of memory, a fork bomb stops at the pids
//! limit while the host still forks, `ulimit` inside is the one set, `/dev/shm` has the size
//! set; and the next build's sweep ends what a killed strata left in a step cgroup.

mod common;

/// One test module per runtime, one test per limit check in each.
macro_rules! limit_checks {
    ($([$module:ident, $make:expr]),* ; $checks:tt) => {
        $(limit_checks!(@runtime $module, $make, $checks);)*
    };
    (@runtime $module:ident, $make:expr, [$($check:ident),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use strata_sandbox::{Builtin, Limits, OciRuntime, OciRuntimeKind, Runtime};

            use super::common::{TestResult, limit_checks};

            fn runtime(
                limits: Limits,
                temp: &std::path::Path,
            ) -> Result<Box<dyn Runtime>, Box<dyn std::error::Error>> {
                type Make = fn(
                    Limits,
                    std::path::PathBuf,
                ) -> Result<Box<dyn Runtime>, strata_sandbox::SandboxError>;
                let make: Make = $make;
                Ok(make(limits, temp.to_path_buf())?)
            }

            $(
                #[test]
                fn $check() -> TestResult {
                    limit_checks::$check(&runtime)
                }
            )*
        }
    };
}

limit_checks!(
    [builtin, |l, t| Ok(Box::new(Builtin::default().with_limits(l).with_temp_dir(t)))],
    [runc, |l, t| {
        let rt = OciRuntime::new(OciRuntimeKind::Runc)?;
        Ok(Box::new(rt.with_limits(l).with_temp_dir(t)))
    }],
    [crun, |l, t| {
        let rt = OciRuntime::new(OciRuntimeKind::Crun)?;
        Ok(Box::new(rt.with_limits(l).with_temp_dir(t)))
    }];
    [
        memory_hog_is_killed_and_reported,
        fork_bomb_stops_at_the_pids_limit,
        ulimits_are_set,
        shm_has_the_size_set,
        temp_folders_go_where_told,
    ]
);

#[test]
fn sweep_ends_a_dead_strata_step_cgroup() -> common::TestResult {
    common::limit_checks::sweep_ends_a_dead_strata_step_cgroup()
}
