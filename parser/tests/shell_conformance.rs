//! BuildKit's shell conformance tables (`envVarTest`, `wordsTest`) plus
//! table tests for forms those files do not cover.
#![allow(clippy::unwrap_used)]

use strata_parser::shell::{ExpandError, Lexer};

fn read(name: &str) -> String {
    let path = strata_fixtures::conformance()
        .join("buildkit/shell")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn env_var_env() -> Vec<(String, String)> {
    [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn env_var_test() {
    let text = read("envVarTest");
    let env = env_var_env();
    let lexer = Lexer::new('\\');
    let (mut failures, mut run, mut windows) = (Vec::new(), 0, 0);
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        assert_eq!(fields.len(), 3, "line {}: {line:?}", n + 1);
        if fields[0] == "W" {
            windows += 1;
            continue;
        }
        assert!(
            fields[0] == "A" || fields[0] == "U",
            "line {}: unknown platform {:?}",
            n + 1,
            fields[0]
        );
        run += 1;
        let got = lexer.process_word(fields[1], env.as_slice());
        let ok = match (&got, fields[2]) {
            (Err(_), "error") => true,
            (Ok(s), exp) => exp != "error" && s == exp,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "line {}: {:?} expected {:?} got {got:?}",
                n + 1,
                fields[1],
                fields[2]
            ));
        }
    }
    // Counted from the file: 226 `A` + 2 `U` cases run, 2 `W` cases skipped.
    assert_eq!((run, windows), (228, 2), "(A/U cases run, W cases skipped)");
    assert!(
        failures.is_empty(),
        "{} of {run} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn words_test() {
    let text = read("wordsTest");
    let lexer = Lexer::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();
    let (mut failures, mut run, mut env_lines) = (Vec::new(), 0, 0);
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            let (k, v) = rest.trim_start().split_once('=').unwrap();
            env.push((k.to_string(), v.to_string()));
            env_lines += 1;
            continue;
        }
        let (input, expected) = line.split_once('|').unwrap();
        let (input, expected) = (input.trim(), expected.trim_start());
        run += 1;
        let got = lexer.process_words(input, env.as_slice());
        let ok = match &got {
            Err(_) => expected == "error",
            Ok(words) => expected != "error" && *words == expected.split(',').collect::<Vec<_>>(),
        };
        if !ok {
            failures.push(format!(
                "line {}: {input:?} expected {expected:?} got {got:?}",
                n + 1
            ));
        }
    }
    // Counted from the file (`grep -v '^#' wordsTest`): 28 lines, 4 of them
    // ENV lines and 24 cases, each with exactly one `|`.
    assert_eq!((run, env_lines), (24, 4), "(cases run, ENV lines)");
    assert!(
        failures.is_empty(),
        "{} of {run} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn word(lexer: &Lexer, w: &str) -> Result<String, ExpandError> {
    let env: &[(&str, &str)] = &[
        ("SET", "value"),
        ("EMPTY", ""),
        ("P", "/usr/local/bin/app.tar.gz"),
        ("STAR", "a*b"),
    ];
    lexer.process_word(w, env)
}

#[test]
fn extra_table() {
    let l = Lexer::new('\\');
    let cases: &[(&str, &str)] = &[
        ("${SET-w}", "value"),
        ("${EMPTY-w}", ""),
        ("${UNSET-w}", "w"),
        ("${SET+w}", "w"),
        ("${EMPTY+w}", "w"),
        ("${UNSET+w}", ""),
        ("${EMPTY:-w}", "w"),
        ("${EMPTY:+w}", ""),
        ("${EMPTY?m}", ""),
        ("${P#*/}", "usr/local/bin/app.tar.gz"),
        ("${P##*/}", "app.tar.gz"),
        ("${P%.*}", "/usr/local/bin/app.tar"),
        ("${P%%.*}", "/usr/local/bin/app"),
        ("${P#/usr}", "/local/bin/app.tar.gz"),
        ("${P%.t?r.gz}", "/usr/local/bin/app"),
        ("${P/local/opt}", "/usr/opt/bin/app.tar.gz"),
        ("${P//\\//_}", "_usr_local_bin_app.tar.gz"),
        ("${P/\\/*/x}", "x"),
        ("${STAR/\\*/-}", "a-b"),
        ("${STAR/*/-}", "-"),
        ("${P/$SET/x}", "/usr/local/bin/app.tar.gz"),
        ("${SET/$SET/x}", "x"),
        ("${SET//a}", "vlue"),
        ("${UNSET#x}", ""),
    ];
    let mut failures = Vec::new();
    for (input, exp) in cases {
        match word(&l, input) {
            Ok(got) if got == *exp => {}
            other => failures.push(format!("{input:?}: expected {exp:?} got {other:?}")),
        }
    }
    for bad in [
        "${SET:=w}",
        "${SET=w}",
        "${SET:#p}",
        "${SET:%p}",
        "${}",
        "${.}",
        "${:}",
        "${SET",
    ] {
        if word(&l, bad).is_ok() {
            failures.push(format!("{bad:?}: expected an error"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn required_messages() {
    let l = Lexer::new('\\');
    let e = word(&l, "${UNSET?need $SET}").unwrap_err();
    assert_eq!(e.to_string(), "UNSET: need value");
    let e = word(&l, "${EMPTY:?is empty}").unwrap_err();
    assert_eq!(e.to_string(), "EMPTY: is empty");
    assert!(word(&l, "${UNSET:?}").is_err());
    assert_eq!(word(&l, "${SET:?m}").unwrap(), "value");
    assert_eq!(
        word(&l, "${SET:=x}").unwrap_err().to_string(),
        "unsupported modifier (:=) in substitution"
    );
    assert_eq!(
        word(&l, "${foo").unwrap_err().to_string(),
        "missing '}' in \"${foo\""
    );
}

#[test]
fn backtick_escape() {
    let l = Lexer::new('`');
    assert_eq!(word(&l, "a`$SET").unwrap(), "a$SET");
    assert_eq!(word(&l, "C:\\dir\\$SET").unwrap(), "C:\\dir\\value");
    assert_eq!(word(&l, "\"`\"q`x\"").unwrap(), "\"q`x");
    assert_eq!(
        l.process_words("a` b c", &[("X", "1")][..]).unwrap(),
        vec!["a b", "c"]
    );
}

#[test]
fn matched_sets() {
    let l = Lexer::new('\\');
    let env: &[(&str, &str)] = &[("A", "1")];
    let exp = l.expand("$A ${B:-x}", env, true).unwrap();
    assert_eq!(exp.words, vec!["1", "x"]);
    assert!(exp.matched.contains("A") && exp.unmatched.contains("B"));
}
