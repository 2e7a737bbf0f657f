//! `.dockerignore` against the case table in `fixtures/dockerignore/cases.txt`
//! (its header explains the format). Every case runs; all failures are
//! reported together.
#![allow(clippy::unwrap_used)]

use strata_cache::DockerIgnore;

#[test]
fn dockerignore_case_table() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/dockerignore/cases.txt"
    );
    let table = std::fs::read_to_string(path).unwrap();
    let mut failures = Vec::new();
    let mut checks = 0;
    let mut current: Option<(String, Result<DockerIgnore, String>)> = None;
    for (n, line) in table.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(patterns) = line.strip_prefix("== ") {
            let file = patterns.split(" | ").collect::<Vec<_>>().join("\n");
            let parsed = DockerIgnore::parse(&file).map_err(|e| e.to_string());
            current = Some((patterns.to_string(), parsed));
            continue;
        }
        let (patterns, parsed) = current.as_ref().unwrap();
        checks += 1;
        let got = match (line, parsed) {
            ("error", Err(_)) => continue,
            ("error", Ok(_)) => "accepted".to_string(),
            (_, Err(e)) => format!("rejected: {e}"),
            (_, Ok(ignore)) => {
                let (path, expected) = line.rsplit_once(' ').unwrap();
                let excluded = ignore.matches(path);
                if excluded == (expected == "excluded") {
                    continue;
                }
                format!("{path} {}", if excluded { "excluded" } else { "included" })
            }
        };
        failures.push(format!(
            "line {}: [{patterns}] expected `{line}`, got {got}",
            n + 1
        ));
    }
    assert!(checks >= 60, "only {checks} checks read from {path}");
    assert!(
        failures.is_empty(),
        "{} of {checks} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn names_the_excluding_line() {
    let ignore = DockerIgnore::parse("# build output\ntarget\n*.log\n!keep.log\n").unwrap();
    assert_eq!(ignore.excluded_by("debug.log"), Some((3, "*.log")));
    assert_eq!(ignore.excluded_by("target/x/y"), Some((2, "target")));
    assert_eq!(ignore.excluded_by("keep.log"), None);
    let err = DockerIgnore::parse("ok\n[oops\n").unwrap_err();
    assert_eq!(err.line, 2);
}

#[test]
fn skipping_a_directory_is_only_safe_without_exceptions() {
    let plain = DockerIgnore::parse("node_modules\n").unwrap();
    assert!(plain.skips_dir("node_modules"));
    assert!(!plain.skips_dir("src"));
    let with_exception = DockerIgnore::parse("node_modules\n!node_modules/keep\n").unwrap();
    assert!(!with_exception.skips_dir("node_modules"));
}

/// Eight `**/` segments over a 40-deep path: plain backtracking tries every
/// way of splitting the path among them (tens of millions per prefix) and
/// hung for minutes; the memoized matcher decides each (segment, position)
/// pair once. The bound guards against the hang; the bench measures speed.
#[test]
fn many_double_stars_over_a_deep_path_finish_quickly() {
    let deep = vec!["d"; 40].join("/");
    let start = std::time::Instant::now();
    let miss = DockerIgnore::parse(&format!("{}nomatch\n", "**/".repeat(8))).unwrap();
    assert!(!miss.matches(&format!("{deep}/file")));
    let hit = DockerIgnore::parse(&format!("{}d/file\n", "**/d/".repeat(8))).unwrap();
    assert!(hit.matches(&format!("{deep}/file")));
    assert!(!hit.matches(&format!("{}/file", ["d"; 8].join("/"))));
    let elapsed = start.elapsed();
    assert!(
        elapsed < std::time::Duration::from_secs(5),
        "matching took {elapsed:?}"
    );
}
