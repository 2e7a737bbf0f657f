//! The real-world Dockerfiles of the conformance corpus: each parses into
//! typed instructions (Windows ones included: they are only text) and dumps
//! exactly as its reviewed golden file; and BuildKit's parser cases through
//! the typed layer.
#![allow(clippy::unwrap_used)]

/// The real-world corpus's Dockerfiles, sorted by path.
fn corpus() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(strata_fixtures::conformance().join("realworld"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    files.sort();
    files
}

#[test]
fn realworld_corpus_parses_typed() {
    let files = corpus();
    assert!(
        files.len() >= 30,
        "expected 30 files, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let src = std::fs::read_to_string(path).unwrap();
        match strata_parser::parse(&src) {
            Ok(df) if df.stages.is_empty() => {
                failures.push(format!("{}: no stages", path.display()))
            }
            Ok(df) => {
                for stage in &df.stages {
                    for ins in &stage.instructions {
                        assert!(ins.span.end <= src.len() && ins.span.start < ins.span.end);
                    }
                }
            }
            Err(e) => failures.push(strata_parser::render(&e, &path.display().to_string(), &src)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// BuildKit's parser cases through the typed layer: all parse except eight,
/// each rejected for the reason BuildKit's instruction layer would give
/// (the parser-stage cases include CMD with no FROM, unknown flags and
/// `HEALTHCHECK CONNECT`).
#[test]
fn buildkit_cases_through_the_typed_layer() {
    let dir = strata_fixtures::conformance().join("buildkit/parser/testfiles");
    let mut rejected = Vec::new();
    let mut cases = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let case = entry.unwrap().path();
        let src = std::fs::read_to_string(case.join("Dockerfile")).unwrap();
        cases += 1;
        if let Err(e) = strata_parser::parse(&src) {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            rejected.push((name, e.message));
        }
    }
    rejected.sort();
    let before_from = "CMD comes before the first FROM";
    let expected = [
        ("flags", "unknown flag for COPY: --user"),
        ("health", "HEALTHCHECK needs CMD or NONE"),
        ("jeztah-invalid-json-json-inside-string", before_from),
        ("jeztah-invalid-json-json-inside-string-double", before_from),
        ("jeztah-invalid-json-single-quotes", before_from),
        ("jeztah-invalid-json-unterminated-bracket", before_from),
        ("jeztah-invalid-json-unterminated-string", before_from),
        ("json", before_from),
    ]
    .map(|(n, m)| (n.to_string(), m.to_string()));
    assert_eq!(cases, 33);
    assert_eq!(rejected, expected);
}

/// Each real-world file's BuildKit dump equals its reviewed golden file
/// `tests/snapshots/realworld/<name>.dump` (see the README there).
/// `STRATA_BLESS=1` writes a missing golden file, never an existing one.
#[test]
fn realworld_dumps_match_golden_files() {
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/realworld");
    let bless = std::env::var_os("STRATA_BLESS").is_some();
    let files = corpus();
    assert_eq!(files.len(), 30, "real-world files");
    let mut failures = Vec::new();
    for path in &files {
        let src = std::fs::read_to_string(path).unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let actual = match strata_parser::parse_nodes(&src) {
            Ok(tree) => strata_parser::dump(&tree) + "\n",
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let expected_path = golden.join(format!("{name}.dump"));
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => {
                let (e, a): (Vec<_>, Vec<_>) =
                    (expected.lines().collect(), actual.lines().collect());
                let first = (0..e.len().max(a.len()))
                    .find(|&i| e.get(i) != a.get(i))
                    .unwrap_or(0);
                failures.push(format!(
                    "{name}: line {}\n  - {}\n  + {}",
                    first + 1,
                    e.get(first).unwrap_or(&"<none>"),
                    a.get(first).unwrap_or(&"<none>")
                ));
            }
            Err(_) if bless => std::fs::write(&expected_path, &actual).unwrap(),
            Err(_) => failures.push(format!(
                "{name}: no golden file {}",
                expected_path.display()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files differ from their golden dump:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
