//! Crash safety and sharing between processes: this test binary runs
//! itself as a child (the `#[ignore]`d `*_child` tests, selected by name
//! and configured through environment variables).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use strata_cache::{
    CacheIndex, CacheRecord, KeyLock, LayerRef, PruneOptions, doctor, prune, repair,
};

type R = Result<(), Box<dyn std::error::Error>>;

fn child(name: &str, envs: &[(&str, String)]) -> Result<Command, Box<dyn std::error::Error>> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Ok(cmd)
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set: this test runs as a child"))
}

/// Writes a step whose files all contain the key's hex, commits and
/// records it on `parents`.
fn commit_step(
    index: &CacheIndex,
    key: &[u8; 32],
    parents: &[LayerRef],
) -> Result<CacheRecord, Box<dyn std::error::Error>> {
    let snaps = index.snapshots();
    let p = snaps.prepare()?;
    fs::create_dir(p.path().join("d"))?;
    for f in 0..20 {
        fs::write(p.path().join(format!("d/{f}")), hex::encode(key))?;
    }
    let (id, _hold) = snaps.commit(p, key, parents)?;
    let mut layers = parents.to_vec();
    layers.push(LayerRef::Step { id });
    let record = CacheRecord::new(layers);
    index.put(key, &record)?;
    Ok(record)
}

fn crash_key(run: u8, i: u16) -> [u8; 32] {
    let mut k = [0x5c; 32];
    // Two runs share their keys, so commits meet earlier runs' results and
    // leftovers.
    k[0] = run / 2;
    k[1..3].copy_from_slice(&i.to_be_bytes());
    k
}

#[test]
#[ignore = "child of crash_leaves_a_consistent_cache"]
fn crash_child() -> R {
    let root = env("STRATA_CRASH_ROOT")?;
    let run: u8 = env("STRATA_CRASH_RUN")?.parse()?;
    let index = CacheIndex::open(&root)?;
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(&root).join("committed.log"))?;
    let mut parents = Vec::new();
    for i in 0..u16::MAX {
        let key = crash_key(run, i);
        let record = commit_step(&index, &key, &parents)?;
        // Logged only once put returned: these must survive the kill.
        log.write_all(format!("{}\n", hex::encode(key)).as_bytes())?;
        parents = if record.layers.len() >= 4 {
            Vec::new()
        } else {
            record.layers
        };
    }
    Ok(())
}

/// Every logged record is present, and its top snapshot holds its files.
fn check_logged(root: &Path) -> Result<usize, Box<dyn std::error::Error>> {
    let index = CacheIndex::open(root)?;
    let log = fs::read_to_string(root.join("committed.log")).unwrap_or_default();
    let mut n = 0;
    for line in log.lines().filter(|l| l.len() == 64) {
        let key: [u8; 32] = hex::decode(line)?
            .try_into()
            .map_err(|_| "bad key in log")?;
        let record = index
            .get(&key)?
            .ok_or_else(|| format!("committed record {line} is missing"))?;
        let top = record.layers.last().ok_or("empty record")?.id();
        let dir = index.snapshots().path(top).join("d");
        for f in 0..20 {
            assert_eq!(fs::read_to_string(dir.join(f.to_string()))?, line);
        }
        n += 1;
    }
    Ok(n)
}

#[test]
fn crash_leaves_a_consistent_cache() -> R {
    let root = tempfile::tempdir()?;
    let mut leftovers_seen = 0;
    for run in 0..24u8 {
        let mut c = child(
            "crash_child",
            &[
                ("STRATA_CRASH_ROOT", root.path().display().to_string()),
                ("STRATA_CRASH_RUN", run.to_string()),
            ],
        )?
        .spawn()?;
        std::thread::sleep(Duration::from_millis(20 + (u64::from(run) * 53) % 400));
        // SIGKILL.
        c.kill()?;
        let status = c.wait()?;
        assert!(!status.success(), "run {run}: the child ended by itself");

        let report = doctor(root.path(), true)?;
        assert!(
            report.problems.is_empty(),
            "run {run}: {:?}",
            report.problems
        );
        leftovers_seen += report.reclaimable.len();
        check_logged(root.path())?;
    }
    let committed = check_logged(root.path())?;
    assert!(
        committed > 0,
        "no child committed anything before being killed"
    );

    repair(root.path(), true)?;
    let report = doctor(root.path(), true)?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.reclaimable.is_empty(), "{:?}", report.reclaimable);
    assert_eq!(check_logged(root.path())?, committed);
    eprintln!("{committed} records committed, {leftovers_seen} leftovers seen");
    Ok(())
}

#[test]
#[ignore = "child of processes_share_the_index"]
fn hammer_child() -> R {
    let root = env("STRATA_HAMMER_ROOT")?;
    let id: u8 = env("STRATA_HAMMER_ID")?.parse()?;
    let index = CacheIndex::open(&root)?;
    for i in 0..30u16 {
        let key = crash_key(id * 2 + 100, i);
        let record = commit_step(&index, &key, &[])?;
        if index.get(&key)? != Some(record) {
            return Err(format!("process {id}: record {i} did not read back").into());
        }
        index.touch(&key)?;
        if i % 10 == 0 {
            index.iter()?;
        }
    }
    Ok(())
}

#[test]
fn processes_share_the_index() -> R {
    let root = tempfile::tempdir()?;
    let children: Vec<_> = (0..4u8)
        .map(|id| {
            child(
                "hammer_child",
                &[
                    ("STRATA_HAMMER_ROOT", root.path().display().to_string()),
                    ("STRATA_HAMMER_ID", id.to_string()),
                ],
            )?
            .spawn()
            .map_err(Box::<dyn std::error::Error>::from)
        })
        .collect::<Result<_, _>>()?;
    for c in children {
        let out = c.wait_with_output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let index = CacheIndex::open(root.path())?;
    let all = index.iter()?;
    assert_eq!(all.len(), 120);
    for (key, record) in all {
        assert_eq!(index.get(&key)?, Some(record));
    }
    assert!(doctor(root.path(), false)?.problems.is_empty());
    Ok(())
}

#[test]
fn key_lock_runs_a_step_once() -> R {
    let root = tempfile::tempdir()?;
    let index = Arc::new(CacheIndex::open(root.path())?);
    let runs = Arc::new(AtomicUsize::new(0));
    let key = crash_key(250, 1);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let index = Arc::clone(&index);
            let runs = Arc::clone(&runs);
            std::thread::spawn(move || -> Result<CacheRecord, String> {
                let e = |e: Box<dyn std::error::Error>| e.to_string();
                let root = index.db_path().parent().ok_or("no root")?.to_path_buf();
                let _lock = KeyLock::acquire(&root, &key).map_err(|e| e.to_string())?;
                if let Some(r) = index.get(&key).map_err(|e| e.to_string())? {
                    return Ok(r);
                }
                runs.fetch_add(1, Ordering::SeqCst);
                // Give the other threads time to queue on the lock.
                std::thread::sleep(Duration::from_millis(100));
                commit_step(&index, &key, &[]).map_err(e)
            })
        })
        .collect();
    let mut records = Vec::new();
    for t in threads {
        records.push(t.join().map_err(|_| "thread panicked")??);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(records.windows(2).all(|w| w[0].layers == w[1].layers));

    let held = KeyLock::acquire(root.path(), &key)?;
    assert!(KeyLock::try_acquire(root.path(), &key)?.is_none());
    drop(held);
    assert!(KeyLock::try_acquire(root.path(), &key)?.is_some());

    // Prune removes idle key lock files, not held ones; locking still works
    // after.
    let lock_file = root.path().join("locks").join(hex::encode(key));
    let held = KeyLock::acquire(root.path(), &key)?;
    prune(root.path(), &PruneOptions::default())?;
    assert!(lock_file.exists());
    drop(held);
    prune(root.path(), &PruneOptions::default())?;
    assert!(!lock_file.exists());
    let _again = KeyLock::acquire(root.path(), &key)?;
    assert!(KeyLock::try_acquire(root.path(), &key)?.is_none());
    Ok(())
}
