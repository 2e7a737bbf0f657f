//! RUN's default network on every runtime (run as root; needs `slirp4netns`, `runc`, `crun`,
//! `gcc` and `ip`): a private namespace with outbound NAT through slirp4netns that reaches a
//! stand-in for the internet but not the host's loopback or abstract unix sockets, and a
//! helper that never outlives its step.

mod common;

/// One test module per runtime, one test per network check in each; `$block` keeps the
/// runtimes' internet stand-ins apart.
macro_rules! network_checks {
    ($([$module:ident, $runtime:expr, $block:expr]),* ; $checks:tt) => {
        $(network_checks!(@runtime $module, $runtime, $block, $checks);)*
    };
    (@runtime $module:ident, $runtime:expr, $block:expr, [$($check:ident),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use strata_sandbox::{Builtin, OciRuntime, OciRuntimeKind};

            use super::common::{TestResult, network_checks};

            $(
                #[test]
                fn $check() -> TestResult {
                    let runtime = $runtime;
                    network_checks::$check(&runtime)
                }
            )*

            #[test]
            fn outbound_nat_reaches_the_internet_stand_in() -> TestResult {
                let runtime = $runtime;
                network_checks::outbound_nat_reaches_the_internet_stand_in(&runtime, $block)
            }
        }
    };
}

network_checks!(
    [builtin, Builtin::default(), 1],
    [runc, OciRuntime::new(OciRuntimeKind::Runc)?, 2],
    [crun, OciRuntime::new(OciRuntimeKind::Crun)?, 3];
    [
        private_network_has_lo_and_a_nat_interface,
        host_loopback_is_unreachable,
        host_abstract_socket_is_unreachable,
        no_helper_outlives_the_step,
    ]
);
