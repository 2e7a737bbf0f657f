//! Docker's default read-only and masked paths, applied by both runtimes
//! (the builtin one mounts them itself, the OCI spec lists them).

/// Paths made read-only: each is bound onto itself read-only.
pub(crate) const READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Files hidden behind `/dev/null`.
pub(crate) const MASKED_FILES: [&str; 6] = [
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
];

/// Folders hidden behind an empty read-only tmpfs.
pub(crate) const MASKED_DIRS: [&str; 5] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
