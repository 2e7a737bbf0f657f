//! strata's own typed-layer cases: `fixtures/parser/typed/<case>/` holds a
//! `Dockerfile` and an `expected` file: for a successful parse, the last
//! stage's instructions as pretty JSON (spans left out, so the file reads as
//! what was understood); for a rejected one, `error <line>:<column> <message>`.
//! They cover `RUN --mount` option parsing and ONBUILD nesting. All cases run
//! and all failures are reported together. `STRATA_BLESS=1` writes a missing
//! `expected` (review it before committing).
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::PathBuf;

/// Drops every `span`/`keyword_span` key, recursively.
fn without_spans(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| k != "span");
            map.values_mut().for_each(without_spans);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(without_spans),
        _ => {}
    }
}

fn render(src: &str) -> String {
    match strata_parser::parse(src) {
        Ok(df) => {
            let instrs = &df.stages.last().unwrap().instructions;
            let mut json = serde_json::to_value(instrs).unwrap();
            without_spans(&mut json);
            serde_json::to_string_pretty(&json).unwrap() + "\n"
        }
        Err(e) => format!("error {}:{} {}\n", e.span.line, e.span.column, e.message),
    }
}

#[test]
fn typed_fixture_cases() {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/parser/typed"
    ));
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 20,
        "only {} cases in {}",
        cases.len(),
        dir.display()
    );
    let bless = std::env::var_os("STRATA_BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let src = fs::read_to_string(case.join("Dockerfile")).unwrap();
        let got = render(&src);
        let expected_path = case.join("expected");
        match fs::read_to_string(&expected_path) {
            Ok(expected) if expected == got => {}
            Ok(expected) => failures.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}",
                case.display()
            )),
            Err(_) if bless => fs::write(&expected_path, &got).unwrap(),
            Err(_) => failures.push(format!("{}: no expected file", case.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
