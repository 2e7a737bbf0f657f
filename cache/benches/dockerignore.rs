//! `.dockerignore` matching: a hostile file (eight `**/` segments that never
//! match, over a 40-deep path) and an ordinary one (a few plain, `*` and
//! `**` patterns with an exception) over paths of a typical project.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use strata_cache::DockerIgnore;

fn hostile(c: &mut Criterion) {
    let ignore = match DockerIgnore::parse(&format!("{}nomatch\n", "**/".repeat(8))) {
        Ok(i) => i,
        Err(e) => panic!("hostile pattern: {e}"),
    };
    let path = format!("{}/file", vec!["d"; 40].join("/"));
    c.bench_function("dockerignore/hostile_40_deep", |b| {
        b.iter(|| ignore.matches(black_box(&path)))
    });
}

fn normal(c: &mut Criterion) {
    let text = "target\nnode_modules\n**/*.log\n*.tmp\n.git\n!keep.log\ndocs/**/*.png\n";
    let ignore = match DockerIgnore::parse(text) {
        Ok(i) => i,
        Err(e) => panic!("ordinary patterns: {e}"),
    };
    let paths = [
        "src/main.rs",
        "src/cache/index/entry.rs",
        "target/debug/build/out.o",
        "logs/2024/01/app.log",
        "keep.log",
        "docs/guide/images/arch.png",
        "README.md",
    ];
    c.bench_function("dockerignore/normal_7_paths", |b| {
        b.iter(|| {
            paths
                .iter()
                .filter(|p| ignore.matches(black_box(p)))
                .count()
        })
    });
}

criterion_group!(benches, hostile, normal);
criterion_main!(benches);
