//! Docker's default capability set, kept for root processes (and as the bounding set of all).

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
}
