//! Every real-world Dockerfile of the conformance corpus parses into typed
//! instructions, Windows ones included (they are only text).
#![allow(clippy::unwrap_used)]

#[test]
fn realworld_corpus_parses_typed() {
    let mut files: Vec<_> = std::fs::read_dir(strata_fixtures::conformance().join("realworld"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    files.sort();
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

#[test]
fn buildkit_cases_never_panic() {
    let dir = strata_fixtures::conformance().join("buildkit/parser/testfiles");
    for entry in std::fs::read_dir(dir).unwrap() {
        let src = std::fs::read_to_string(entry.unwrap().path().join("Dockerfile")).unwrap();
        // Some of these are only parser-stage cases (e.g. unknown
        // instructions); the typed layer may reject them, but must not panic.
        let _ = strata_parser::parse(&src);
    }
}
