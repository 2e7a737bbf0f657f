//! `strata du`, `strata prune` and `strata doctor`: the build cache and the
//! store of a state root.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use strata_cache::usage::{PruneOptions, UsageLine, prune, usage};

use crate::exit::Failure;

/// `strata prune` options.
#[derive(Debug, Clone, clap::Args)]
pub struct PruneArgs {
    /// Remove every unused cache entry, base layer and cache mount, not only garbage.
    #[arg(short, long)]
    pub all: bool,
    /// Remove least recently used entries until the cache takes at most SIZE (e.g. 10GB, 512MB).
    #[arg(long = "keep-storage", value_name = "SIZE")]
    pub keep_storage: Option<String>,
    /// `until=DURATION` (e.g. until=24h, until=30m): only entries unused for that long;
    /// `type=exec.cachemount`: only the cache mounts (`RUN --mount=type=cache`) no step uses.
    #[arg(long)]
    pub filter: Vec<String>,
}

/// `strata doctor` options.
#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// Also hash every blob of the content store and re-verify every base layer
    /// snapshot (its content against the digest recorded when it was unpacked,
    /// its blobs against its diffID).
    #[arg(long)]
    pub deep: bool,
    /// Fix what can be fixed: remove leftovers, drop dangling records, rebuild the index.
    #[arg(long)]
    pub repair: bool,
}

/// A byte count as docker prints it (`1.2MB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

/// `strata du`.
pub fn du(root: &Path, out: &mut dyn Write) -> Result<(), Failure> {
    let u = usage(root).map_err(|e| Failure::Environment(e.to_string()))?;
    let _ = writeln!(
        out,
        "{:<14} {:>8} {:>12} {:>12}",
        "KIND", "COUNT", "SIZE", "RECLAIMABLE"
    );
    let line = |out: &mut dyn Write, kind: &str, l: &UsageLine| {
        let _ = writeln!(
            out,
            "{kind:<14} {:>8} {:>12} {:>12}",
            l.count,
            human(l.bytes),
            human(l.reclaimable_bytes)
        );
    };
    line(out, "snapshots", &u.snapshots);
    line(out, "blobs", &u.blobs);
    line(out, "cache mounts", &u.cache_mounts);
    let mounts =
        strata_cache::cache_mounts::list(root).map_err(|e| Failure::Environment(e.to_string()))?;
    if !mounts.is_empty() {
        let _ = writeln!(out, "\n{:<40} {:>12}", "CACHE MOUNT ID", "SIZE");
        for m in mounts {
            let _ = writeln!(out, "{:<40} {:>12}", m.id, human(m.bytes));
        }
    }
    Ok(())
}

/// Parses `10GB`, `512MB`, `1.5G`, `100` (bytes); decimal units as docker does.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s}: not a size (e.g. 10GB, 512MB)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("{s}: unknown unit {other:?}")),
    };
    Ok((n * mult) as u64)
}

/// Parses Go-style durations as docker's `until=` takes them: `24h`, `30m`, `1h30m`, `90s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s}: not a duration (e.g. 24h, 30m)"))?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(format!("{s}: unknown unit {c:?} (s, m, h or d)")),
        };
    }
    if !num.is_empty() {
        return Err(format!("{s}: a number without a unit (e.g. 24h)"));
    }
    Ok(Duration::from_secs(total))
}

/// `strata prune`.
pub fn run_prune(root: &Path, args: &PruneArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let keep_storage = match &args.keep_storage {
        Some(s) => Some(parse_size(s).map_err(|e| Failure::Usage(format!("--keep-storage {e}")))?),
        None => None,
    };
    let mut until = None;
    let mut cache_mounts_only = false;
    for f in &args.filter {
        match f.split_once('=') {
            Some(("type", "exec.cachemount")) => cache_mounts_only = true,
            Some(("until", d)) => {
                until =
                    Some(parse_duration(d).map_err(|e| Failure::Usage(format!("--filter {e}")))?)
            }
            _ => {
                return Err(Failure::Usage(format!(
                    "--filter {f}: expected until=DURATION or type=exec.cachemount"
                )));
            }
        }
    }
    let opts = PruneOptions {
        all: args.all,
        keep_storage,
        until,
        cache_mounts_only,
    };
    let report = prune(root, &opts).map_err(|e| Failure::Environment(e.to_string()))?;
    for r in &report.removed {
        let _ = writeln!(out, "deleted: {r}");
    }
    let _ = writeln!(out, "Total reclaimed space: {}", human(report.freed_bytes));
    Ok(())
}

/// `strata doctor`: exit 1 when it finds an inconsistency (after `--repair`,
/// when one is left).
pub fn doctor(root: &Path, args: &DoctorArgs, out: &mut dyn Write) -> Result<(), Failure> {
    if args.repair {
        let actions = strata_cache::repair(root, args.deep)
            .map_err(|e| Failure::Environment(e.to_string()))?;
        for a in actions {
            let _ = writeln!(out, "repaired: {a}");
        }
    }
    let report =
        strata_cache::doctor(root, args.deep).map_err(|e| Failure::Environment(e.to_string()))?;
    for r in &report.reclaimable {
        let _ = writeln!(out, "reclaimable: {r}");
    }
    for p in &report.problems {
        let _ = writeln!(out, "problem: {p}");
    }
    if report.problems.is_empty() {
        let _ = writeln!(out, "ok: no inconsistency");
        Ok(())
    } else {
        Err(Failure::Failed(format!(
            "{} inconsistencies (strata doctor --repair fixes what it can)",
            report.problems.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("512mb"), Ok(512_000_000));
        assert_eq!(parse_size("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_size("2MiB"), Ok(2 * 1024 * 1024));
        assert!(parse_size("ten").is_err());
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5y").is_err());
        assert_eq!(human(999), "999B");
        assert_eq!(human(1_500_000), "1.5MB");
    }
}
