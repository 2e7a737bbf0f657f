//! Docker's default capability set, kept for root processes (and as the bounding set of all),
//! or every capability for insecure steps.

use crate::Capabilities;

/// Capability names and numbers (see `capabilities(7)`).
pub(crate) const DOCKER_DEFAULT: [(&str, u32); 14] = [
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_RAW", 13),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_MKNOD", 27),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_SETFCAP", 31),
];

/// Every capability by number (see `capabilities(7)`), as of Linux 5.9.
const ALL: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The names of `set`'s capabilities.
pub(crate) fn names(set: Capabilities) -> Vec<&'static str> {
    let mask = mask(set);
    (0..)
        .zip(ALL)
        .filter(|(n, _)| mask & (1u64 << n) != 0)
        .map(|(_, name)| name)
        .collect()
}

/// `set` as a bit mask (bit n = capability n). "All" is every capability that strata's own
/// bounding set holds: no process can give more, and some hosts withhold a few (this one,
/// a Firecracker guest, has no CAP_SYS_RESOURCE), where asking for them fails `capset`.
pub(crate) fn mask(set: Capabilities) -> u64 {
    match set {
        Capabilities::DockerDefault => docker_default_mask(),
        Capabilities::All => own_bounding_set() & (u64::MAX >> (63 - last_cap())),
    }
}

/// This process's bounding set (`CapBnd` of /proc/self/status); Docker's default set if it
/// cannot be read.
fn own_bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or_else(docker_default_mask)
}

/// The default set as a bit mask (bit n = capability n).
pub(crate) fn docker_default_mask() -> u64 {
    DOCKER_DEFAULT
        .iter()
        .fold(0, |mask, (_, n)| mask | (1u64 << n))
}

/// The highest capability number this kernel knows.
pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
        .min(63) // capability masks are 64 bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_matches_dockers_capeff_for_root() {
        // Docker shows CapEff 00000000a80425fb for a root container.
        assert_eq!(docker_default_mask(), 0xa80425fb);
    }

    #[test]
    fn the_table_numbers_match_dockers_and_all_is_our_bounding_set() {
        for (name, number) in DOCKER_DEFAULT {
            assert_eq!(ALL[number as usize], name);
        }
        assert_eq!(
            names(Capabilities::DockerDefault).len(),
            DOCKER_DEFAULT.len()
        );
        let all = mask(Capabilities::All);
        assert_eq!(all, own_bounding_set());
        assert_eq!(names(Capabilities::All).len() as u32, all.count_ones());
        assert_eq!(all & docker_default_mask(), docker_default_mask());
    }
}
