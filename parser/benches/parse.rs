//! Parses the whole real-world corpus (`shared/conformance/realworld`): the
//! figure to watch is the time per file, since the parser runs on every build.
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn corpus() -> Vec<String> {
    let dir = strata_fixtures::conformance();
    let Ok(entries) = std::fs::read_dir(dir.join("realworld")) else {
        panic!("conformance data not found at {}", dir.display());
    };
    let mut files: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    files.sort();
    files
}

fn bench_parse(c: &mut Criterion) {
    let files = corpus();
    let bytes: usize = files.iter().map(String::len).sum();
    let mut group = c.benchmark_group("realworld");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(format!("parse {} files", files.len()), |b| {
        b.iter(|| {
            for src in &files {
                let parsed = strata_parser::parse(std::hint::black_box(src));
                std::hint::black_box(parsed.is_ok());
            }
        })
    });
    group.bench_function(format!("parse_nodes {} files", files.len()), |b| {
        b.iter(|| {
            for src in &files {
                std::hint::black_box(strata_parser::parse_nodes(std::hint::black_box(src)).is_ok());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
