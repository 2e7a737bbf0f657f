//! The resources a step may use: `docker build`'s `--memory`, `--pids-limit`, `--shm-size`
//! and `--ulimit`, parsed as docker parses them. Every runtime applies the same
//! [`Limits`]: memory and process counts through the step's cgroup ([`crate::cgroup`]),
//! rlimits with `setrlimit` (builtin) or `process.rlimits` (runc, crun), the shm size as the
//! size of the `/dev/shm` tmpfs.

use std::fmt;

/// Docker's default `--shm-size`: 64 MiB.
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

/// Docker refuses a `--memory` below 6 MiB: a runtime cannot even start in less.
pub const MIN_MEMORY: u64 = 6 << 20;

/// The soft `nofile` limit of a step unless `--ulimit nofile=…` says otherwise (containerd's
/// default, and what `select(2)` users need); the hard one is strata's own, inherited as
/// Docker's containers inherit their daemon's (raising it would need `CAP_SYS_RESOURCE`,
/// which a confined host may not give even to root).
pub const DEFAULT_NOFILE_SOFT: u64 = 1024;

/// This process's hard `nofile` limit.
fn own_nofile_hard() -> u64 {
    let mut limit = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit64 writes only into the struct it is given.
    if unsafe { libc::getrlimit64(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_max
    } else {
        DEFAULT_NOFILE_SOFT
    }
}

/// What a step may use. `Default` is Docker's: unlimited memory and processes, a 64 MiB
/// `/dev/shm`, and a soft `nofile` of [`DEFAULT_NOFILE_SOFT`] under strata's own hard limit
/// (other rlimits are strata's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `--memory`: bytes of memory (swap included: a step does not swap past it).
    pub memory: Option<u64>,
    /// `--pids-limit`: processes and threads.
    pub pids: Option<u64>,
    /// `--shm-size`: bytes of the `/dev/shm` tmpfs.
    pub shm_size: u64,
    /// `--ulimit`: rlimits set in the step, one per resource (a later one replaces an earlier).
    pub ulimits: Vec<Ulimit>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: None,
            pids: None,
            shm_size: DEFAULT_SHM_SIZE,
            ulimits: {
                let hard = own_nofile_hard();
                vec![Ulimit {
                    resource: Resource::Nofile,
                    soft: DEFAULT_NOFILE_SOFT.min(hard),
                    hard,
                }]
            },
        }
    }
}

impl Limits {
    /// Memory and pids limits need a cgroup, which a rootless build's user namespace cannot
    /// make: refuse them there rather than run the step unlimited.
    pub(crate) fn refuse_rootless(&self) -> Result<(), crate::SandboxError> {
        let flag = match (self.memory, self.pids) {
            (Some(_), _) => "--memory",
            (None, Some(_)) => "--pids-limit",
            (None, None) => return Ok(()),
        };
        Err(crate::SandboxError::RootlessLimit { flag })
    }

    /// Adds or replaces the rlimit of `ulimit.resource`.
    pub fn set_ulimit(&mut self, ulimit: Ulimit) {
        self.ulimits.retain(|u| u.resource != ulimit.resource);
        self.ulimits.push(ulimit);
    }

    /// Whether the step needs a memory or pids cgroup setting.
    pub(crate) fn needs_cgroup(&self) -> bool {
        self.memory.is_some() || self.pids.is_some()
    }

    /// The `/dev/shm` tmpfs options.
    pub(crate) fn shm_options(&self) -> String {
        format!("mode=1777,size={}k", self.shm_size.div_ceil(1024))
    }
}

/// An rlimit, docker's `--ulimit NAME=SOFT[:HARD]` (`-1` for unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ulimit {
    /// Which limit.
    pub resource: Resource,
    /// The soft limit; `u64::MAX` is unlimited.
    pub soft: u64,
    /// The hard limit; `u64::MAX` is unlimited.
    pub hard: u64,
}

/// An rlimit docker's `--ulimit` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `core`.
    Core,
    /// `cpu`.
    Cpu,
    /// `data`.
    Data,
    /// `fsize`.
    Fsize,
    /// `locks`.
    Locks,
    /// `memlock`.
    Memlock,
    /// `msgqueue`.
    Msgqueue,
    /// `nice`.
    Nice,
    /// `nofile`.
    Nofile,
    /// `nproc`.
    Nproc,
    /// `rss`.
    Rss,
    /// `rtprio`.
    Rtprio,
    /// `rttime`.
    Rttime,
    /// `sigpending`.
    Sigpending,
    /// `stack`.
    Stack,
}

const RESOURCES: [(&str, Resource, u32); 15] = [
    ("core", Resource::Core, libc::RLIMIT_CORE),
    ("cpu", Resource::Cpu, libc::RLIMIT_CPU),
    ("data", Resource::Data, libc::RLIMIT_DATA),
    ("fsize", Resource::Fsize, libc::RLIMIT_FSIZE),
    ("locks", Resource::Locks, libc::RLIMIT_LOCKS),
    ("memlock", Resource::Memlock, libc::RLIMIT_MEMLOCK),
    ("msgqueue", Resource::Msgqueue, libc::RLIMIT_MSGQUEUE),
    ("nice", Resource::Nice, libc::RLIMIT_NICE),
    ("nofile", Resource::Nofile, libc::RLIMIT_NOFILE),
    ("nproc", Resource::Nproc, libc::RLIMIT_NPROC),
    ("rss", Resource::Rss, libc::RLIMIT_RSS),
    ("rtprio", Resource::Rtprio, libc::RLIMIT_RTPRIO),
    ("rttime", Resource::Rttime, libc::RLIMIT_RTTIME),
    ("sigpending", Resource::Sigpending, libc::RLIMIT_SIGPENDING),
    ("stack", Resource::Stack, libc::RLIMIT_STACK),
];

impl Resource {
    /// docker's name (`nofile`).
    pub fn name(self) -> &'static str {
        RESOURCES
            .iter()
            .find(|(_, r, _)| *r == self)
            .map_or("", |(name, _, _)| name)
    }

    /// The `RLIMIT_*` number.
    pub(crate) fn number(self) -> u32 {
        RESOURCES
            .iter()
            .find(|(_, r, _)| *r == self)
            .map_or(0, |(_, _, n)| *n)
    }

    /// The OCI `process.rlimits` type (`RLIMIT_NOFILE`).
    pub(crate) fn oci_name(self) -> String {
        format!("RLIMIT_{}", self.name().to_ascii_uppercase())
    }
}

/// A `--memory`, `--shm-size`, `--pids-limit` or `--ulimit` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Not a size docker understands (`2g`, `512m`, `64MiB`, `1048576`).
    #[error("{value:?}: not a size (a number with an optional unit b, k, m, g, t or p)")]
    Size {
        /// The value given.
        value: String,
    },
    /// A memory limit too small for any process to start.
    #[error("{value:?}: the minimum memory limit is 6 MiB")]
    MemoryTooSmall {
        /// The value given.
        value: String,
    },
    /// A zero `--shm-size`.
    #[error("{value:?}: the shm size must be more than 0")]
    ShmZero {
        /// The value given.
        value: String,
    },
    /// Not a whole number of processes.
    #[error("{value:?}: not a process count (a whole number; 0 or -1 for unlimited)")]
    Pids {
        /// The value given.
        value: String,
    },
    /// Not `NAME=SOFT[:HARD]` with a known name and numbers.
    #[error("{value:?}: {reason}")]
    Ulimit {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// docker's size grammar for `--memory` and `--shm-size` (go-units' `RAMInBytes`): a
/// number, optionally fractional, then an optional binary unit `b`, `k`, `m`, `g`, `t`, `p`,
/// which may be followed by `b` or `ib` (`2g`, `2gb`, `2GiB`, `1.5g`, `64m`, `1024`).
pub fn parse_size(value: &str) -> Result<u64, LimitError> {
    let bad = || LimitError::Size {
        value: value.to_string(),
    };
    let text = value.trim();
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let unit = unit.trim_start_matches(' ').to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(bad());
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let mut bytes = whole.checked_shl(shift).filter(|b| b >> shift == whole);
    if !fraction.is_empty() {
        // Exact enough: the fraction of the unit, rounded down to a byte.
        let digits = fraction.len().min(18) as u32;
        let numerator: u128 = fraction[..digits as usize].parse().map_err(|_| bad())?;
        let extra = (numerator << shift) / 10u128.pow(digits);
        bytes = bytes.and_then(|b| b.checked_add(u64::try_from(extra).ok()?));
    }
    bytes.ok_or_else(bad)
}

/// `--memory`: a size of at least [`MIN_MEMORY`].
pub fn parse_memory(value: &str) -> Result<u64, LimitError> {
    let bytes = parse_size(value)?;
    if bytes < MIN_MEMORY {
        return Err(LimitError::MemoryTooSmall {
            value: value.to_string(),
        });
    }
    Ok(bytes)
}

/// `--shm-size`: a size above 0.
pub fn parse_shm_size(value: &str) -> Result<u64, LimitError> {
    match parse_size(value)? {
        0 => Err(LimitError::ShmZero {
            value: value.to_string(),
        }),
        bytes => Ok(bytes),
    }
}

/// `--pids-limit`: a count, `None` for unlimited (`0` and `-1`, as docker takes them).
pub fn parse_pids(value: &str) -> Result<Option<u64>, LimitError> {
    match value.trim() {
        "0" | "-1" => Ok(None),
        n => n.parse::<u64>().map(Some).map_err(|_| LimitError::Pids {
            value: value.to_string(),
        }),
    }
}

/// `--ulimit NAME=SOFT[:HARD]` (the hard limit is the soft one when missing; `-1` is
/// unlimited; the soft limit may not exceed the hard one).
pub fn parse_ulimit(value: &str) -> Result<Ulimit, LimitError> {
    let bad = |reason: String| LimitError::Ulimit {
        value: value.to_string(),
        reason,
    };
    let (name, limits) = value
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=SOFT[:HARD]".into()))?;
    let resource = RESOURCES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, r, _)| *r)
        .ok_or_else(|| {
            let names: Vec<_> = RESOURCES.iter().map(|(n, _, _)| *n).collect();
            bad(format!(
                "unknown limit {name:?} (one of {})",
                names.join(", ")
            ))
        })?;
    let number = |text: &str| match text {
        "-1" => Ok(u64::MAX),
        n => n
            .parse::<u64>()
            .map_err(|_| bad(format!("{text:?} is not a number or -1"))),
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((soft, hard)) => (number(soft)?, number(hard)?),
        None => {
            let both = number(limits)?;
            (both, both)
        }
    };
    if soft > hard {
        return Err(bad(format!(
            "the soft limit {soft} is above the hard limit {hard}"
        )));
    }
    Ok(Ulimit {
        resource,
        soft,
        hard,
    })
}

/// A byte count the way the OOM message shows it: the largest binary unit that divides it
/// (`2 GiB`, `512 MiB`), else bytes.
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [
            (50, "PiB"),
            (40, "TiB"),
            (30, "GiB"),
            (20, "MiB"),
            (10, "KiB"),
        ] {
            if n != 0 && n.is_multiple_of(1u64 << shift) {
                return write!(f, "{} {unit}", n >> shift);
            }
        }
        write!(f, "{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("10 m"), Ok(10 << 20));
        for bad in ["", "g", "2x", "-1", "1.2.3", ".5g", "2gg", "99999999999p"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            parse_memory("5m"),
            Err(LimitError::MemoryTooSmall { .. })
        ));
        assert!(parse_shm_size("0").is_err());
    }

    #[test]
    fn pids_and_ulimits() {
        assert_eq!(parse_pids("100"), Ok(Some(100)));
        assert_eq!(parse_pids("-1"), Ok(None));
        assert_eq!(parse_pids("0"), Ok(None));
        assert!(parse_pids("ten").is_err());
        let u = parse_ulimit("nofile=1024:2048");
        assert_eq!(
            u,
            Ok(Ulimit {
                resource: Resource::Nofile,
                soft: 1024,
                hard: 2048
            })
        );
        assert_eq!(parse_ulimit("core=-1").map(|u| u.hard), Ok(u64::MAX));
        for bad in [
            "nofile",
            "files=1",
            "nofile=2:1",
            "nofile=a:b",
            "nofile=1:2:3",
        ] {
            assert!(parse_ulimit(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Resource::Nofile.oci_name(), "RLIMIT_NOFILE");
        assert_eq!(Resource::Nofile.number(), libc::RLIMIT_NOFILE);
    }

    #[test]
    fn later_ulimit_replaces_the_default() {
        let mut limits = Limits::default();
        limits.set_ulimit(Ulimit {
            resource: Resource::Nofile,
            soft: 10,
            hard: 20,
        });
        assert_eq!(limits.ulimits.len(), 1);
        assert_eq!(limits.ulimits[0].soft, 10);
    }

    #[test]
    fn bytes_shown_in_the_largest_whole_unit() {
        assert_eq!(Bytes(2 << 30).to_string(), "2 GiB");
        assert_eq!(Bytes(96 << 20).to_string(), "96 MiB");
        assert_eq!(Bytes(1000).to_string(), "1000 bytes");
        assert_eq!(DEFAULT_SHM_SIZE, 64 << 20);
        assert_eq!(Limits::default().shm_options(), "mode=1777,size=65536k");
    }
}
