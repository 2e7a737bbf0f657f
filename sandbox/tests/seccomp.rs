//! Docker's default seccomp profile under every runtime (run as root; needs `runc`, `crun`,
//! `gcc` with a static C library for the probe and `keyctl` for the host canary): the key,
//! namespace and io_uring calls are refused, the argument filters hold, a key planted on the
//! host's root keyring stays out of reach, ordinary busybox work still runs, and a spec
//! can lift the profile.

mod common;

/// One test module per runtime, one test per seccomp check in each.
macro_rules! seccomp_checks {
    ($([$module:ident, $runtime:expr]),* ; $checks:tt) => {
        $(seccomp_checks!(@runtime $module, $runtime, $checks);)*
    };
    (@runtime $module:ident, $runtime:expr, [$($check:ident),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use strata_sandbox::{Builtin, OciRuntime, OciRuntimeKind};

            use super::common::{TestResult, seccomp_checks};

            $(
                #[test]
                fn $check() -> TestResult {
                    let runtime = $runtime;
                    seccomp_checks::$check(&runtime)
                }
            )*
        }
    };
}

seccomp_checks!(
    [builtin, Builtin::default()],
    [runc, OciRuntime::new(OciRuntimeKind::Runc)?],
    [crun, OciRuntime::new(OciRuntimeKind::Crun)?];
    [
        keyring_calls_are_refused,
        host_key_is_out_of_reach,
        namespaces_and_io_uring_are_refused,
        argument_filters,
        busybox_step_still_works,
        unconfined_spec_has_no_filter,
        insecure_spec_has_every_capability,
    ]
);
