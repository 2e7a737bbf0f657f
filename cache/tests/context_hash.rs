//! Build-context hashing: what changes the tree digest, what is read again,
//! and how the persisted metadata cache behaves, on real files.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use strata_cache::{ContextHasher, DockerIgnore, TreeDigest};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn nothing_excluded(_: &str) -> bool {
    false
}

/// A context with a few files, a subdirectory and a cache file next to it.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    cache: PathBuf,
}

impl Fixture {
    fn new() -> Result<Fixture, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("ctx");
        fs::create_dir_all(root.join("src/deep"))?;
        fs::write(root.join("Dockerfile"), "FROM scratch\nCOPY . /\n")?;
        fs::write(root.join("src/main.rs"), "fn main() {}\n")?;
        fs::write(root.join("src/lib.rs"), "pub fn f() {}\n")?;
        fs::write(root.join("src/deep/data.bin"), vec![7u8; 100_000])?;
        let cache = dir.path().join("state/context-hash.bin");
        Ok(Fixture {
            _dir: dir,
            root,
            cache,
        })
    }

    /// A hasher that trusts any entry recorded after the file's last change
    /// (the files here were written moments ago; the racy window is tested
    /// on its own below).
    fn hasher(&self) -> ContextHasher {
        ContextHasher::open(&self.cache).with_racy_window(Duration::ZERO)
    }

    /// One "build": open the cache, hash the whole context, save. Returns
    /// the digest and how many files were actually read.
    fn build(&self) -> Result<(TreeDigest, u64), Box<dyn std::error::Error>> {
        self.build_with(&nothing_excluded)
    }

    fn build_with(
        &self,
        excluded: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(TreeDigest, u64), Box<dyn std::error::Error>> {
        let hasher = self.hasher();
        let digest = hasher.digest_tree(&self.root, &["."], excluded, &|_| false)?;
        hasher.save()?;
        Ok((digest, hasher.files_read()))
    }
}

#[test]
fn unchanged_rebuild_reads_nothing() -> TestResult {
    let fx = Fixture::new()?;
    let (first, read) = fx.build()?;
    assert_eq!(read, 4, "a cold build reads every file");
    assert_eq!(first.entries, 6, "4 files and 2 directories");
    assert_eq!(first.bytes, 100_000 + 22 + 13 + 14);
    let (second, read) = fx.build()?;
    assert_eq!(second, first);
    assert_eq!(read, 0, "a warm build reads no file");
    Ok(())
}

#[test]
fn touching_mtime_keeps_the_digest_and_rereads_only_that_file() -> TestResult {
    let fx = Fixture::new()?;
    let (before, _) = fx.build()?;
    let file = fs::File::options()
        .write(true)
        .open(fx.root.join("src/main.rs"))?;
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))?;
    drop(file);
    let (after, read) = fx.build()?;
    assert_eq!(after, before, "mtime is not part of the digest");
    // The stat tuple changed, so the cache cannot vouch for the content: the
    // touched file (and only it) is read to find out it is the same.
    assert_eq!(read, 1);
    let (_, read) = fx.build()?;
    assert_eq!(read, 0);
    Ok(())
}

#[test]
fn editing_one_file_rereads_only_it_and_changes_the_digest() -> TestResult {
    let fx = Fixture::new()?;
    let (before, _) = fx.build()?;
    fs::write(fx.root.join("src/lib.rs"), "pub fn g() {}\n")?;
    let (after, read) = fx.build()?;
    assert_ne!(after, before);
    assert_eq!(read, 1);
    Ok(())
}

#[test]
fn chmod_changes_the_digest() -> TestResult {
    let fx = Fixture::new()?;
    let (before, _) = fx.build()?;
    fs::set_permissions(
        fx.root.join("src/main.rs"),
        fs::Permissions::from_mode(0o755),
    )?;
    let (after, _) = fx.build()?;
    assert_ne!(after, before);
    // A directory's mode counts too.
    fs::set_permissions(fx.root.join("src/deep"), fs::Permissions::from_mode(0o700))?;
    let (after_dir, read) = fx.build()?;
    assert_ne!(after_dir, after);
    assert_eq!(read, 0, "a directory chmod reads no file");
    Ok(())
}

#[test]
fn ownership_is_not_part_of_the_digest() -> TestResult {
    let fx = Fixture::new()?;
    let (before, _) = fx.build()?;
    std::os::unix::fs::chown(fx.root.join("src/main.rs"), Some(1234), Some(1234))?;
    let (after, _) = fx.build()?;
    assert_eq!(after, before);
    Ok(())
}

#[test]
fn excluded_file_is_never_read_and_does_not_count() -> TestResult {
    let fx = Fixture::new()?;
    fs::write(fx.root.join("secret.log"), "one")?;
    let ignore = DockerIgnore::parse("*.log\n")?;
    let excluded = |p: &str| ignore.matches(p);
    let (before, read) = fx.build_with(&excluded)?;
    assert_eq!(read, 4, "secret.log was not read");
    fs::write(fx.root.join("secret.log"), "two, longer")?;
    let (after, read) = fx.build_with(&excluded)?;
    assert_eq!(after, before);
    assert_eq!(read, 0);
    // Without the exclusion the file is part of the digest.
    let (all, _) = fx.build()?;
    assert_ne!(all, before);
    Ok(())
}

#[test]
fn excluded_directory_is_not_descended_unless_asked() -> TestResult {
    let fx = Fixture::new()?;
    let asked = Mutex::new(Vec::new());
    let excluded = |p: &str| {
        if let Ok(mut a) = asked.lock() {
            a.push(p.to_string());
        }
        p == "src"
    };
    let hasher = fx.hasher();
    let skipped = hasher.digest_tree(&fx.root, &["."], &excluded, &|_| false)?;
    assert_eq!(hasher.files_read(), 1, "only the Dockerfile");
    assert_eq!(skipped.entries, 1);
    let seen = asked.lock().map(|a| a.clone()).unwrap_or_default();
    assert!(
        seen.iter().all(|p| !p.starts_with("src/")),
        "nothing below an excluded directory is looked at: {seen:?}"
    );

    // With an exception (`src` excluded, `!src/main.rs`), the walk descends
    // and keeps what is re-included, but not the directory itself.
    let ignore = DockerIgnore::parse("src\n!src/main.rs\n")?;
    let hasher = fx.hasher();
    let kept = hasher.digest_tree(
        &fx.root,
        &["."],
        &|p: &str| ignore.matches(p),
        &|d: &str| !ignore.skips_dir(d),
    )?;
    assert_eq!(kept.entries, 2, "Dockerfile and src/main.rs");
    assert_eq!(kept.bytes, 22 + 13);
    Ok(())
}

#[test]
fn symlink_target_change_changes_the_digest() -> TestResult {
    let fx = Fixture::new()?;
    symlink("src/main.rs", fx.root.join("link"))?;
    let (before, _) = fx.build()?;
    fs::remove_file(fx.root.join("link"))?;
    symlink("src/lib.rs", fx.root.join("link"))?;
    let (after, read) = fx.build()?;
    assert_ne!(after, before);
    assert_eq!(read, 0, "a symlink's target is read, not a file");
    Ok(())
}

#[test]
fn symlinks_are_not_followed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("cache.bin");
    let ctx = |name: &str| -> Result<PathBuf, Box<dyn std::error::Error>> {
        let root = dir.path().join(name);
        fs::create_dir(&root)?;
        Ok(root)
    };
    let hash = |root: &Path| -> Result<(TreeDigest, u64), Box<dyn std::error::Error>> {
        let hasher = ContextHasher::open(&cache).with_racy_window(Duration::ZERO);
        let d = hasher.digest_tree(root, &["."], &nothing_excluded, &|_| false)?;
        Ok((d, hasher.files_read()))
    };

    let link = ctx("link")?;
    symlink("/etc/passwd", link.join("passwd"))?;
    let (via_link, read) = hash(&link)?;
    assert_eq!(read, 0, "/etc/passwd was not opened");

    let dangling = ctx("dangling")?;
    symlink("/nonexistent/passwd", dangling.join("passwd"))?;
    let (d, _) = hash(&dangling)?;
    assert_ne!(d, via_link, "the target string is what counts");

    let copy = ctx("copy")?;
    fs::copy("/etc/passwd", copy.join("passwd"))?;
    let (d, read) = hash(&copy)?;
    assert_eq!(read, 1);
    assert_ne!(d, via_link, "a symlink is not its target's content");

    // A selected path through a symlinked directory is refused, naming it.
    symlink("/etc", link.join("etc"))?;
    let hasher = ContextHasher::open(&cache);
    let err = hasher
        .digest_tree(&link, &["etc/passwd"], &nothing_excluded, &|_| false)
        .err()
        .ok_or("a path through a symlink was accepted")?;
    assert!(err.to_string().contains("etc"), "{err}");
    assert_eq!(hasher.files_read(), 0);
    // Selecting the symlink itself hashes the link, not /etc.
    let only = hasher.digest_tree(&link, &["etc"], &nothing_excluded, &|_| false)?;
    assert_eq!(only.entries, 1);
    assert_eq!(hasher.files_read(), 0);
    Ok(())
}

#[test]
fn corrupt_or_truncated_cache_is_ignored() -> TestResult {
    let fx = Fixture::new()?;
    let (good, _) = fx.build()?;
    let bytes = fs::read(&fx.cache)?;
    assert!(bytes.len() > 100, "the cache file was written");

    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0xff;
    let damaged = [
        flipped,
        bytes[..bytes.len() / 3].to_vec(),
        Vec::new(),
        b"not a cache at all".to_vec(),
    ];
    for damage in damaged {
        fs::write(&fx.cache, &damage)?;
        assert_eq!(fx.hasher().cached_entries(), 0);
        let (d, read) = fx.build()?;
        assert_eq!(d, good);
        assert_eq!(read, 4, "nothing trusted from a damaged cache");
        // The save replaced it with a good one.
        let (d, read) = fx.build()?;
        assert_eq!(d, good);
        assert_eq!(read, 0);
    }
    Ok(())
}

#[test]
fn freshly_changed_files_are_not_served_from_the_cache() -> TestResult {
    // The default racy window: a file changed less than a second before it
    // was hashed may be rewritten within the same timestamp granule without
    // its stat tuple changing, so its digest is not reused.
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("ctx");
    fs::create_dir(&root)?;
    let cache = dir.path().join("cache.bin");
    let file = root.join("f");
    for round in 0..20u8 {
        fs::write(&file, [b'a', round])?;
        let hasher = ContextHasher::open(&cache);
        let a = hasher.digest_tree(&root, &["f"], &nothing_excluded, &|_| false)?;
        // Rewritten right away, same size: on a coarse clock the tuple can
        // be identical; the result must still follow the content.
        fs::write(&file, [b'b', round])?;
        let b = hasher.digest_tree(&root, &["f"], &nothing_excluded, &|_| false)?;
        assert_ne!(a, b, "round {round}: stale digest served");
        // Even with the tuple unchanged, a racy entry is read again...
        let again = hasher.digest_tree(&root, &["f"], &nothing_excluded, &|_| false)?;
        assert_eq!(again, b);
        assert_eq!(hasher.files_read(), 3);
        // ...and is not persisted.
        hasher.save()?;
        assert_eq!(ContextHasher::open(&cache).cached_entries(), 0);
    }
    Ok(())
}

#[test]
fn selections_errors_and_single_files() -> TestResult {
    let fx = Fixture::new()?;
    let hasher = fx.hasher();
    let none = |_: &str| false;
    let whole = hasher.digest_tree(&fx.root, &["."], &none, &none)?;
    let src = hasher.digest_tree(&fx.root, &["src"], &none, &none)?;
    assert_eq!(src.entries, 5, "src, its 3 files and src/deep");
    let overlapping = hasher.digest_tree(&fx.root, &["src/main.rs", "src"], &none, &none)?;
    assert_eq!(overlapping, src, "overlaps counted once");
    let also_whole = hasher.digest_tree(&fx.root, &["Dockerfile", "./src/"], &none, &none)?;
    assert_eq!(also_whole, whole);
    let single = hasher.digest_tree(&fx.root, &["src/deep/data.bin"], &none, &none)?;
    assert_eq!((single.entries, single.bytes), (1, 100_000));

    let missing = hasher
        .digest_tree(&fx.root, &["src/nope.rs"], &none, &none)
        .err()
        .ok_or("a missing path was accepted")?;
    assert!(missing.to_string().contains("src/nope.rs"), "{missing}");
    let outside = hasher
        .digest_tree(&fx.root, &["../etc"], &none, &none)
        .err()
        .ok_or("a path outside the context was accepted")?;
    assert!(outside.to_string().contains("../etc"), "{outside}");
    Ok(())
}

#[test]
fn file_digest_is_blake3_of_the_content() -> TestResult {
    let fx = Fixture::new()?;
    let path = fx.root.join("src/main.rs");
    let hasher = fx.hasher();
    let meta = fs::symlink_metadata(&path)?;
    let d = hasher.file_digest(&path, &meta)?;
    assert_eq!(d, *blake3::hash(b"fn main() {}\n").as_bytes());
    let big = fx.root.join("big");
    let content: Vec<u8> = (0..9_000_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(&big, &content)?;
    let d = hasher.file_digest(&big, &fs::symlink_metadata(&big)?)?;
    assert_eq!(d, *blake3::hash(&content).as_bytes(), "chunked path");
    assert_eq!(hasher.bytes_read(), 13 + 9_000_000);
    let err = hasher
        .file_digest(
            &fx.root.join("src"),
            &fs::symlink_metadata(fx.root.join("src"))?,
        )
        .err()
        .ok_or("a directory was hashed as a file")?;
    assert!(err.to_string().contains("src"), "{err}");
    Ok(())
}

#[test]
fn concurrent_savers_never_leave_a_torn_file() -> TestResult {
    // Two "processes" (hashers of two contexts) keep saving to one cache
    // file while a third keeps loading it: every load sees one writer's
    // complete file, never a mix or a fragment.
    let one = Fixture::new()?;
    let two = Fixture::new()?;
    // Big enough that a file is written in many system calls.
    for (fx, n) in [(&one, 1000), (&two, 1001)] {
        fs::create_dir(fx.root.join("many"))?;
        for i in 0..n {
            fs::write(fx.root.join(format!("many/{i}")), i.to_string())?;
        }
    }
    let cache = one.cache.clone();
    let hash_into = |fx: &Fixture| -> Result<ContextHasher, String> {
        let h = ContextHasher::open(&cache).with_racy_window(Duration::ZERO);
        h.digest_tree(&fx.root, &["."], &nothing_excluded, &|_| false)
            .map_err(|e| e.to_string())?;
        Ok(h)
    };
    let (h1, h2) = (hash_into(&one)?, hash_into(&two)?);
    assert_eq!((h1.cached_entries(), h2.cached_entries()), (1004, 1005));
    let done = std::sync::atomic::AtomicBool::new(false);
    let writer = |fx: &Fixture, h: &ContextHasher| {
        for i in 0..20 {
            // Something must change for `save` to write: move an mtime,
            // which makes the next hash record a new entry.
            let f = fs::File::options()
                .write(true)
                .open(fx.root.join("Dockerfile"))
                .map_err(|e| e.to_string())?;
            f.set_modified(SystemTime::now() - Duration::from_secs(10 + i))
                .map_err(|e| e.to_string())?;
            h.digest_tree(&fx.root, &["."], &nothing_excluded, &|_| false)
                .map_err(|e| e.to_string())?;
            h.save().map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    };
    let seen = std::thread::scope(|s| -> Result<Vec<usize>, String> {
        let w1 = s.spawn(|| writer(&one, &h1));
        let w2 = s.spawn(|| writer(&two, &h2));
        let reader = s.spawn(|| {
            let mut seen = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Relaxed);
                // Once a file exists, every load must find a whole one (a
                // torn file would load as empty: 0).
                if cache.exists() {
                    seen.push(ContextHasher::open(&cache).cached_entries());
                }
                if finished {
                    break;
                }
            }
            seen
        });
        w1.join().map_err(|_| "writer panicked")??;
        w2.join().map_err(|_| "writer panicked")??;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().map_err(|_| "reader panicked".to_string())
    })?;
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|n| [1004, 1005].contains(n)),
        "a load saw a partial cache: {:?}",
        seen.iter()
            .filter(|n| ![1004, 1005].contains(n))
            .collect::<Vec<_>>()
    );
    Ok(())
}

#[test]
fn very_deep_trees_do_not_exhaust_the_stack() -> TestResult {
    // 1,500 nested directories: the walk queues directories instead of
    // recursing, so depth costs heap, not stack.
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("ctx");
    let mut deepest = root.clone();
    for _ in 0..1500 {
        deepest.push("a");
    }
    fs::create_dir_all(&deepest)?;
    fs::write(deepest.join("f"), "bottom")?;
    let hasher = ContextHasher::open(&dir.path().join("cache.bin"));
    let d = hasher.digest_tree(&root, &["."], &nothing_excluded, &|_| false)?;
    assert_eq!((d.entries, d.bytes), (1501, 6));
    assert_eq!(hasher.files_read(), 1);
    Ok(())
}

#[test]
fn snapshot_digest_covers_owners_xattrs_and_the_root() -> TestResult {
    use strata_cache::context_hash::snapshot_digest;
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("snap");
    fs::create_dir_all(root.join("etc"))?;
    fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n")?;
    symlink("etc/passwd", root.join("link"))?;
    let first = snapshot_digest(&root)?;
    assert_eq!(snapshot_digest(&root)?, first, "not deterministic");
    assert_eq!(first.entries, 4, "root, etc, etc/passwd, link");

    let mut seen = vec![first.digest];
    let mut changed = |what: &str| -> TestResult {
        let d = snapshot_digest(&root)?.digest;
        assert!(!seen.contains(&d), "{what} left the digest unchanged");
        seen.push(d);
        Ok(())
    };
    std::os::unix::fs::lchown(root.join("etc/passwd"), Some(1000), Some(1000))?;
    changed("chown")?;
    rustix::fs::lsetxattr(
        root.join("etc"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )?;
    changed("an opaque marker")?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700))?;
    changed("the root's mode")?;
    fs::write(root.join("POISONED"), "")?;
    changed("a new empty file")?;
    fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh!\n")?;
    changed("new content")?;
    Ok(())
}
