//! Build-context hashing on a generated tree: 20,000 small files in 200
//! directories plus 22 files of 10 MiB, about 300 MB in all, written once
//! per run into a temp dir. "cold" hashes with no metadata cache (the page
//! cache is warm, so this measures hashing, not the disk); "warm" opens a
//! saved cache and hashes again, as a rebuild with nothing changed does;
//! "load_cache" is the share of that spent reading the cache file.

use std::fs;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_cache::ContextHasher;

const DIRS: usize = 200;
const FILES_PER_DIR: usize = 100;
const LARGE_FILES: usize = 22;
const LARGE_SIZE: usize = 10 << 20;

/// Deterministic filler (xorshift), so content is not trivially compressible
/// and every file differs.
fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Writes the tree; returns its total size in bytes.
fn generate(root: &Path) -> std::io::Result<u64> {
    let mut total = 0u64;
    let mut buf = vec![0u8; LARGE_SIZE];
    for d in 0..DIRS {
        let dir = root.join(format!("pkg{:02}/mod{:02}", d / 10, d % 10));
        fs::create_dir_all(&dir)?;
        for f in 0..FILES_PER_DIR {
            let seed = (d * FILES_PER_DIR + f) as u64;
            // 512 B .. 8.5 KiB, about 4.5 KiB on average.
            let size = 512 + (seed as usize * 7919) % 8192;
            fill(&mut buf[..size], seed);
            fs::write(dir.join(format!("file{f:03}.txt")), &buf[..size])?;
            total += size as u64;
        }
    }
    let assets = root.join("assets");
    fs::create_dir_all(&assets)?;
    for i in 0..LARGE_FILES {
        fill(&mut buf, 1_000_000 + i as u64);
        fs::write(assets.join(format!("blob{i:02}.bin")), &buf)?;
        total += LARGE_SIZE as u64;
    }
    Ok(total)
}

fn hash(cache: &Path, root: &Path) -> (ContextHasher, strata_cache::TreeDigest) {
    let hasher = ContextHasher::open(cache);
    let digest = hasher.digest_tree(root, &["."], &|_| false, &|_| false);
    match digest {
        Ok(d) => (hasher, d),
        Err(e) => panic!("hashing the generated tree failed: {e}"),
    }
}

fn context_hash(c: &mut Criterion) {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("no temp dir: {e}"),
    };
    let root = dir.path().join("ctx");
    let total = match generate(&root) {
        Ok(t) => t,
        Err(e) => panic!("generating the tree failed: {e}"),
    };
    // Past the racy window, so that the saved entries are trusted.
    std::thread::sleep(Duration::from_millis(1100));
    let no_cache = dir.path().join("absent/cache.bin");
    let cache = dir.path().join("state/cache.bin");
    let (hasher, reference) = hash(&cache, &root);
    if let Err(e) = hasher.save() {
        panic!("saving the cache failed: {e}");
    }
    eprintln!(
        "tree: {} entries, {} bytes, cache file {} bytes",
        reference.entries,
        reference.bytes,
        fs::metadata(&cache).map(|m| m.len()).unwrap_or(0)
    );

    let mut group = c.benchmark_group("context_hash_20k_files_300MB");
    group.throughput(Throughput::Bytes(total));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("cold", |b| {
        b.iter(|| {
            let (h, d) = hash(&no_cache, &root);
            assert_eq!(d, reference);
            assert_eq!(h.files_read(), (DIRS * FILES_PER_DIR + LARGE_FILES) as u64);
        })
    });
    group.bench_function("warm", |b| {
        b.iter(|| {
            let (h, d) = hash(&cache, &root);
            assert_eq!(d, reference);
            assert_eq!(h.files_read(), 0);
        })
    });
    group.finish();

    // The part of "warm" spent loading the cache file (20k entries).
    c.bench_function("context_hash_load_cache_20k_entries", |b| {
        b.iter(|| assert_eq!(ContextHasher::open(&cache).cached_entries(), 20_022))
    });
}

criterion_group!(benches, context_hash);
criterion_main!(benches);
