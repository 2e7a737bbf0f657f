//! Layer writing throughput: a ~50 MB snapshot archived with each compression.

use std::fs;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_cache::ContentStore;
use strata_exporter::{Compression, CompressionKind, write_layer};

const FILES: usize = 500;
const FILE_SIZE: usize = 100 * 1024;

/// 500 files of 100 KiB of text that compresses about as well as binaries
/// and source do (3–4×), in 10 directories.
fn make_snapshot(root: &Path) -> std::io::Result<u64> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut total = 0;
    for i in 0..FILES {
        let dir = root.join(format!("d{}", i % 10));
        fs::create_dir_all(&dir)?;
        let mut content = Vec::with_capacity(FILE_SIZE);
        while content.len() < FILE_SIZE {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            content.extend_from_slice(format!("{:x} word{} ", x % 65536, x % 97).as_bytes());
        }
        content.truncate(FILE_SIZE);
        fs::write(dir.join(format!("f{i}")), &content)?;
        total += content.len() as u64;
    }
    Ok(total)
}

fn bench(c: &mut Criterion) {
    let Ok(dir) = tempfile::tempdir() else {
        panic!("cannot create a temporary directory");
    };
    let snapshot = dir.path().join("snapshot");
    let total = match make_snapshot(&snapshot) {
        Ok(total) => total,
        Err(e) => panic!("cannot build the snapshot: {e}"),
    };
    let store = match ContentStore::open(dir.path().join("store")) {
        Ok(store) => store,
        Err(e) => panic!("cannot open the store: {e}"),
    };

    let mut group = c.benchmark_group("write_layer_50MB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(total));
    for (name, kind) in [
        ("gzip", CompressionKind::Gzip),
        ("zstd", CompressionKind::Zstd),
        ("uncompressed", CompressionKind::Uncompressed),
    ] {
        let compression = Compression { kind, level: None };
        group.bench_function(name, |b| {
            b.iter(|| {
                if let Err(e) = write_layer(&snapshot, compression, &store, Some(0)) {
                    panic!("write_layer failed: {e}");
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
