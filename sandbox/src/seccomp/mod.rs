//! Docker's default seccomp profile for every step, unless the spec lifts it
//! ([`crate::Seccomp::Unconfined`]).
//!
//! The profile ([`profile`]) is resolved for the capabilities a step gets (Docker's default
//! set, [`crate::caps`]) and the host's architecture, as Docker resolves it when it starts a
//! container: of the capability-gated rules only `chroot` (CAP_SYS_CHROOT) is in, and
//! `clone` may not ask for new namespaces, `clone3` fails with ENOSYS. runc and crun get the
//! resolved rules as `linux.seccomp` in the bundle's config and compile them with
//! libseccomp; the builtin runtime compiles them here into BPF in the parent, and the child
//! only hands the ready programs to `seccomp(2)` just before `execve`.
//!
//! The compiler is `seccompiler` (rust-vmm's, used by Firecracker), a pure-Rust BPF
//! generator, rather than bindings to libseccomp: it keeps the build free of C libraries and
//! their headers (no libseccomp-dev, no pkg-config), and it yields a plain `Vec` of BPF
//! instructions that the parent prepares and the forked child passes on without allocating.
//! What it does not do, and libseccomp does: filters for a second ABI of the same CPU. The
//! builtin filter covers the native ABI only, so a 32-bit x86 program in a step (the
//! `int 0x80` ABI, which Docker's profile also allows) is killed; x32 calls fail with EPERM.
//! runc and crun, which use libseccomp, allow the 32-bit ABI as Docker does.

mod profile;
mod syscalls;

use std::collections::{BTreeMap, BTreeSet};

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::SandboxError;
use profile::{Gate, RULES, Rule};

/// What a rule does to a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// The call runs.
    Allow,
    /// The call fails with this errno.
    Errno(u32),
}

/// A comparison of one system call argument (all 64 bits, as libseccomp compares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    /// `arg == value`.
    Eq(u64),
    /// `arg < value`.
    Lt(u64),
    /// `arg > value`.
    Gt(u64),
    /// `arg & mask == value`.
    MaskedEq(u64, u64),
}

/// The profile's default: EPERM for anything no rule allows.
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// The host's architecture as Go spells it (`GOARCH`), which is how the profile names them.
fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        other => other,
    }
}

/// The rules that apply to a process with capabilities `caps` (bit n = capability n) on
/// the architecture `arch` (`GOARCH`).
fn resolve(caps: u64, arch: &str) -> impl Iterator<Item = &'static Rule> {
    let has = move |cap: u32| caps & (1u64 << cap) != 0;
    RULES.iter().filter(move |rule| match rule.gate {
        Gate::Always => true,
        Gate::Arches(arches) => arches.contains(&arch),
        Gate::Cap(cap) => has(cap),
        Gate::NoCap(cap) => !has(cap),
        Gate::NoCapNotArches(cap, arches) => !has(cap) && !arches.contains(&arch),
        Gate::NoCapArches(cap, arches) => !has(cap) && arches.contains(&arch),
    })
}

/// The profile for `linux.seccomp` of an OCI config, for a process with capabilities `caps`.
pub(crate) fn oci_profile(caps: u64) -> Result<LinuxSeccomp, OciSpecError> {
    let syscalls = resolve(caps, goarch())
        .map(|rule| {
            let mut call = LinuxSyscall::default();
            call.set_names(rule.names.iter().map(|n| n.to_string()).collect());
            match rule.action {
                Action::Allow => call.set_action(LinuxSeccompAction::ScmpActAllow),
                Action::Errno(errno) => {
                    call.set_action(LinuxSeccompAction::ScmpActErrno);
                    call.set_errno_ret(Some(errno))
                }
            };
            if !rule.args.is_empty() {
                call.set_args(Some(
                    rule.args.iter().map(oci_arg).collect::<Result<_, _>>()?,
                ));
            }
            Ok(call)
        })
        .collect::<Result<_, OciSpecError>>()?;
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(DEFAULT_ERRNO));
    // Docker's architecture map: the native ABI and the others the CPU runs.
    let arches = match goarch() {
        "amd64" => Some(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
        ]),
        "arm64" => Some(vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]),
        _ => None,
    };
    profile.set_architectures(arches);
    profile.set_syscalls(Some(syscalls));
    Ok(profile)
}

fn oci_arg(&(index, cmp): &(u8, Cmp)) -> Result<LinuxSeccompArg, OciSpecError> {
    let (op, value) = match cmp {
        Cmp::Eq(v) => (LinuxSeccompOperator::ScmpCmpEq, v),
        Cmp::Lt(v) => (LinuxSeccompOperator::ScmpCmpLt, v),
        Cmp::Gt(v) => (LinuxSeccompOperator::ScmpCmpGt, v),
        Cmp::MaskedEq(mask, _) => (LinuxSeccompOperator::ScmpCmpMaskedEq, mask),
    };
    let arg = LinuxSeccompArgBuilder::default()
        .index(usize::from(index))
        .op(op)
        .value(value);
    match cmp {
        Cmp::MaskedEq(_, masked) => arg.value_two(masked),
        _ => arg,
    }
    .build()
}

fn compile_error(error: impl std::fmt::Display) -> SandboxError {
    SandboxError::Seccomp {
        message: error.to_string(),
    }
}

/// The BPF programs for a process with capabilities `caps`, in the order to install them:
/// the allow-list (default EPERM) first, then one program per other errno a rule returns.
/// The kernel runs every installed program and, among equal actions, takes the newest's
/// answer, so `clone3` gets ENOSYS rather than the allow-list's EPERM.
pub(crate) fn compile(caps: u64) -> Result<Vec<BpfProgram>, SandboxError> {
    if syscalls::TABLE.is_empty() {
        return Err(compile_error(format_args!(
            "no system call table for {}",
            std::env::consts::ARCH
        )));
    }
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(compile_error)?;
    let mut by_action: BTreeMap<u32, Calls> = BTreeMap::new();
    for rule in resolve(caps, goarch()) {
        let key = match rule.action {
            Action::Allow => 0,
            Action::Errno(errno) => errno,
        };
        by_action.entry(key).or_default().add(rule)?;
    }
    by_action
        .into_iter()
        .map(|(errno, calls)| {
            let (mismatch, matched) = if errno == 0 {
                (SeccompAction::Errno(DEFAULT_ERRNO), SeccompAction::Allow)
            } else {
                (SeccompAction::Allow, SeccompAction::Errno(errno))
            };
            let filter = SeccompFilter::new(calls.into_rules(), mismatch, matched, arch)
                .map_err(compile_error)?;
            BpfProgram::try_from(filter).map_err(compile_error)
        })
        .collect()
}

/// The calls one program matches: some whatever their arguments, others only when one of
/// their argument rules holds.
#[derive(Default)]
struct Calls {
    any_args: BTreeSet<i64>,
    some_args: BTreeMap<i64, Vec<SeccompRule>>,
}

impl Calls {
    fn add(&mut self, rule: &Rule) -> Result<(), SandboxError> {
        for name in rule.names {
            // A name this architecture lacks is skipped, as libseccomp does.
            let Some(nr) = syscalls::number(name) else {
                continue;
            };
            if rule.args.is_empty() {
                self.any_args.insert(nr);
                continue;
            }
            let conditions = rule
                .args
                .iter()
                .map(|&(index, cmp)| {
                    let (op, value) = match cmp {
                        Cmp::Eq(v) => (SeccompCmpOp::Eq, v),
                        Cmp::Lt(v) => (SeccompCmpOp::Lt, v),
                        Cmp::Gt(v) => (SeccompCmpOp::Gt, v),
                        Cmp::MaskedEq(mask, v) => (SeccompCmpOp::MaskedEq(mask), v),
                    };
                    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
                        .map_err(compile_error)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let rule = SeccompRule::new(conditions).map_err(compile_error)?;
            self.some_args.entry(nr).or_default().push(rule);
        }
        Ok(())
    }

    /// seccompiler's form: an empty rule list matches the call whatever its arguments.
    fn into_rules(self) -> BTreeMap<i64, Vec<SeccompRule>> {
        let mut rules = self.some_args;
        for nr in self.any_args {
            rules.insert(nr, Vec::new());
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::docker_default_mask;

    fn resolved_names(action: Action, with_args: bool) -> BTreeSet<&'static str> {
        resolve(docker_default_mask(), "amd64")
            .filter(|rule| rule.action == action && rule.args.is_empty() != with_args)
            .flat_map(|rule| rule.names.iter().copied())
            .collect()
    }

    #[test]
    fn docker_default_caps_gate_the_profile_as_docker_does() {
        let allowed = resolved_names(Action::Allow, false);
        for name in [
            "read",
            "execve",
            "chroot",
            "arch_prctl",
            "modify_ldt",
            "ptrace",
        ] {
            assert!(allowed.contains(name), "{name} should be allowed");
        }
        for name in [
            "add_key",
            "keyctl",
            "request_key",
            "unshare",
            "mount",
            "setns",
            "clone",
            "clone3",
            "bpf",
            "io_uring_setup",
            "io_uring_enter",
            "open_by_handle_at",
            "reboot",
            "syslog",
            "kexec_load",
            "userfaultfd",
            "socket",
            "personality",
            "set_tls",
        ] {
            assert!(
                !allowed.contains(name),
                "{name} should not be allowed outright"
            );
        }
        let filtered = resolved_names(Action::Allow, true);
        assert_eq!(filtered, BTreeSet::from(["clone", "personality", "socket"]));
        assert_eq!(
            resolved_names(Action::Errno(libc::ENOSYS as u32), false),
            BTreeSet::from(["clone3"])
        );
    }

    #[test]
    fn with_sys_admin_clone_is_unfiltered_and_clone3_allowed() {
        let admin = docker_default_mask() | (1 << 21);
        let rules: Vec<_> = resolve(admin, "amd64").collect();
        assert!(rules.iter().all(|r| r.action == Action::Allow));
        assert!(
            rules
                .iter()
                .any(|r| r.args.is_empty() && r.names.contains(&"clone3"))
        );
        assert!(
            !rules
                .iter()
                .any(|r| !r.args.is_empty() && r.names == ["clone"])
        );
    }

    #[test]
    fn oci_profile_names_the_clone_filter() -> Result<(), Box<dyn std::error::Error>> {
        let json = serde_json::to_value(oci_profile(docker_default_mask())?)?;
        assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(json["defaultErrnoRet"], 1);
        let clone = json["syscalls"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["names"] == serde_json::json!(["clone"]))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            clone["args"],
            serde_json::json!([{
                "index": 0, "value": 0x7E02_0000u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"
            }])
        );
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn compiles_two_programs_within_the_kernel_limit() -> Result<(), SandboxError> {
        let programs = compile(docker_default_mask())?;
        assert_eq!(programs.len(), 2);
        // BPF_MAXINSNS
        assert!(programs.iter().all(|p| !p.is_empty() && p.len() <= 4096));
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn table_numbers_match_the_kernel() {
        assert_eq!(syscalls::number("read"), Some(0));
        assert_eq!(syscalls::number("chroot"), Some(161));
        assert_eq!(syscalls::number("cachestat"), Some(451));
        assert_eq!(syscalls::number("fstat64"), None);
    }
}
