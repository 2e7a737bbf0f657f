//! `strata du`, `strata prune` and `strata doctor` on real roots: doctor
//! fails naming what is wrong (a torn snapshot, a missing blob, a cache
//! record naming nothing) and `--repair` fixes what it can; du counts what
//! is on disk; prune selects by age (`--filter until=`) and by size
//! (`--keep-storage`), least recently used first.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{Env, R, Res, ran_steps};

/// The step snapshot folders (`s-…`) of a root.
fn step_snapshots(root: &Path) -> Res<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root.join("snapshots"))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("s-") && path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// `s-….json` beside a snapshot folder.
fn meta_of(snapshot: &Path) -> PathBuf {
    let mut name = snapshot.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Builds `FROM busybox` + one RUN writing `bytes` bytes, tagged `tag`;
/// returns the steps that ran.
fn build_sized(env: &Env, tag: &str, bytes: u64) -> Res<Vec<String>> {
    let ctx = env.context(
        tag,
        &format!("FROM busybox\nRUN head -c {bytes} /dev/zero > /{tag}.bin\n"),
    )?;
    Ok(ran_steps(&env.build(&ctx, &["-t", tag])?))
}

#[test]
fn doctor_fails_on_a_torn_snapshot_and_repair_removes_it() -> R {
    let env = Env::new()?;
    build_sized(&env, "torn", 1000)?;
    assert_eq!(env.doctor("root", &[])?.code, Some(0));
    let snaps = step_snapshots(&env.root())?;
    let [snap] = snaps.as_slice() else {
        return Err(format!("one step snapshot expected: {snaps:?}").into());
    };
    // Half of its metadata, as a torn write would leave it.
    let meta = meta_of(snap);
    let text = fs::read(&meta)?;
    fs::write(&meta, &text[..text.len() / 2])?;
    // And a leftover of a killed build: reclaimable, not a problem.
    let leftover = env.root().join("snapshots/tmp-leftover");
    fs::create_dir_all(&leftover)?;
    fs::write(leftover.join("junk"), "junk")?;

    let out = env.doctor("root", &[])?;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let id = name_of(snap);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("problem: ") && l.contains(&id) && l.contains("unreadable")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("reclaimable: ") && l.contains("tmp-leftover")),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("inconsistencies"), "{}", out.stderr);

    let repaired = env.doctor("root", &["--repair"])?;
    assert_eq!(repaired.code, Some(0), "{}", repaired.stdout);
    assert!(
        repaired
            .stdout
            .contains(&format!("repaired: removed snapshot {id}")),
        "{}",
        repaired.stdout
    );
    assert!(
        repaired.stdout.contains("repaired: removed 1 leftovers"),
        "{}",
        repaired.stdout
    );
    assert!(!snap.exists() && !meta.exists() && !leftover.exists());
    assert_eq!(env.doctor("root", &[])?.code, Some(0));
    // The step is built again, not taken from a half record.
    assert_eq!(build_sized(&env, "torn", 1000)?.len(), 1);
    Ok(())
}

#[test]
fn doctor_fails_on_a_missing_blob_and_repair_cannot_hide_it() -> R {
    let env = Env::new()?;
    build_sized(&env, "blob", 1000)?;
    let manifest = env.manifest("blob:latest")?;
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .ok_or("no second layer")?
        .to_string();
    fs::remove_file(env.blob(&layer))?;
    for args in [&[][..], &["--repair"][..]] {
        let out = env.doctor("root", args)?;
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stdout);
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("problem: ") && l.contains(&layer) && l.contains("missing")),
            "{args:?}: {}",
            out.stdout
        );
    }
    Ok(())
}

#[test]
fn doctor_fails_on_a_record_naming_nothing_and_repair_drops_it() -> R {
    let env = Env::new()?;
    build_sized(&env, "gone", 1000)?;
    let snaps = step_snapshots(&env.root())?;
    let [snap] = snaps.as_slice() else {
        return Err(format!("one step snapshot expected: {snaps:?}").into());
    };
    fs::remove_dir_all(snap)?;
    fs::remove_file(meta_of(snap))?;
    let out = env.doctor("root", &[])?;
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    let id = name_of(snap);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("problem: cache record ")
                && l.contains(&format!("names snapshot {id} which does not exist"))),
        "{}",
        out.stdout
    );
    let repaired = env.doctor("root", &["--repair"])?;
    assert_eq!(repaired.code, Some(0), "{}", repaired.stdout);
    assert!(
        repaired.stdout.contains("repaired: dropped cache record"),
        "{}",
        repaired.stdout
    );
    assert_eq!(env.doctor("root", &[])?.code, Some(0));
    assert_eq!(build_sized(&env, "gone", 1000)?.len(), 1);
    Ok(())
}

/// `strata du`'s line for `kind`: count, size and reclaimable bytes.
fn du_line(du: &str, kind: &str) -> Res<(u64, f64, f64)> {
    let line = du
        .lines()
        .find(|l| l.starts_with(kind))
        .ok_or_else(|| format!("no {kind} line in:\n{du}"))?;
    let fields: Vec<&str> = line[kind.len()..].split_whitespace().collect();
    let [count, size, reclaimable] = fields.as_slice() else {
        return Err(format!("bad du line {line}").into());
    };
    Ok((count.parse()?, bytes(size)?, bytes(reclaimable)?))
}

/// `1.5MB` → 1.5e6 (du's decimal units).
fn bytes(text: &str) -> Res<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or("no unit")?;
    let (n, unit) = text.split_at(split);
    let mult = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return Err(format!("unknown unit in {text}").into()),
    };
    Ok(n.parse::<f64>()? * mult)
}

#[test]
fn du_counts_what_is_on_disk_and_prune_frees_the_leftovers() -> R {
    let env = Env::new()?;
    build_sized(&env, "du", 3_000_000)?;
    let leftover = env.root().join("snapshots/tmp-leftover");
    fs::create_dir_all(&leftover)?;
    fs::write(leftover.join("junk"), vec![1u8; 1_000_000])?;

    let du = env.strata(&["du"]).ok()?.stdout;
    let (count, size, reclaimable) = du_line(&du, "snapshots")?;
    let folders = fs::read_dir(env.root().join("snapshots"))?
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (n.starts_with("s-") || n.starts_with("l-")) && e.path().is_dir()
        })
        .count();
    assert_eq!(count as usize, folders, "{du}");
    // The step's 3 MB, busybox and the 1 MB leftover.
    let busybox = fs::metadata("/bin/busybox")?.len() as f64;
    assert!(
        size >= 4.0e6 + busybox * 0.95 && size < 4.2e6 + busybox * 1.1,
        "{du}"
    );
    assert!(reclaimable >= 1.0e6, "{du}");
    let blobs = fs::read_dir(env.root().join("store/blobs/sha256"))?.count();
    assert_eq!(du_line(&du, "blobs")?.0 as usize, blobs, "{du}");

    let pruned = env.strata(&["prune"]).ok()?.stdout;
    assert!(pruned.contains("tmp-leftover"), "{pruned}");
    let after = env.strata(&["du"]).ok()?.stdout;
    let (_, size_after, _) = du_line(&after, "snapshots")?;
    assert!(
        (size - size_after - 1.0e6).abs() < 0.1e6,
        "before:\n{du}after:\n{after}"
    );
    // Nothing a tagged image or a record needs went.
    assert_eq!(build_sized(&env, "du", 3_000_000)?, Vec::<String>::new());
    Ok(())
}

/// The `deleted: s-…` lines of a prune.
fn deleted_steps(prune: &str) -> Vec<&str> {
    prune
        .lines()
        .filter_map(|l| l.strip_prefix("deleted: "))
        .filter(|n| n.starts_with("s-"))
        .collect()
}

#[test]
fn prune_filter_until_removes_only_entries_unused_that_long() -> R {
    let env = Env::new()?;
    let old = build_sized(&env, "old", 1000)?;
    std::thread::sleep(Duration::from_millis(3500));
    build_sized(&env, "new", 1000)?;
    let out = env.strata(&["prune", "--filter", "until=1h"]).ok()?.stdout;
    assert_eq!(deleted_steps(&out), Vec::<&str>::new(), "{out}");
    let out = env.strata(&["prune", "--filter", "until=2s"]).ok()?.stdout;
    assert_eq!(deleted_steps(&out).len(), 1, "{out}");
    // The old step runs again; the new one is still cached.
    assert_eq!(build_sized(&env, "new", 1000)?, Vec::<String>::new());
    assert_eq!(build_sized(&env, "old", 1000)?, old);
    let bad = env.strata(&["prune", "--filter", "since=2s"]).output()?;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    Ok(())
}

#[test]
fn prune_keep_storage_removes_the_least_recently_used_first() -> R {
    let env = Env::new()?;
    let busybox = fs::metadata("/bin/busybox")?.len();
    assert!(busybox < 3_000_000, "busybox is {busybox} bytes");
    let first = build_sized(&env, "first", 4_000_000)?;
    // Records are ordered by their time in seconds.
    std::thread::sleep(Duration::from_millis(1100));
    build_sized(&env, "second", 4_000_000)?;
    // busybox + 8 MB is over 7 MB; without the first step it is not.
    let out = env.strata(&["prune", "--keep-storage", "7MB"]).ok()?.stdout;
    assert_eq!(deleted_steps(&out).len(), 1, "{out}");
    assert_eq!(
        build_sized(&env, "second", 4_000_000)?,
        Vec::<String>::new()
    );
    assert_eq!(build_sized(&env, "first", 4_000_000)?, first);
    let bad = env.strata(&["prune", "--keep-storage", "lots"]).output()?;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    Ok(())
}
