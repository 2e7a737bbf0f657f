//! BuildKit's parser corpus (`shared/conformance/buildkit/parser`) and the
//! real-world Dockerfiles, run against `parse_nodes` and `dump`.
#![allow(clippy::unwrap_used)]

use std::fmt::Write;
use std::fs;
use std::path::{Path, PathBuf};
use strata_parser::{NodeTree, dump, parse_nodes};

fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

fn read(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("{} is not UTF-8: {e}", path.display()))
}

/// A line-by-line comparison showing only the lines that differ.
fn diff(expected: &str, actual: &str) -> String {
    let mut out = String::new();
    let (e, a): (Vec<_>, Vec<_>) = (expected.lines().collect(), actual.lines().collect());
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i), a.get(i));
        if x != y {
            let _ = writeln!(
                out,
                "    line {}:\n      - {}\n      + {}",
                i + 1,
                x.unwrap_or(&"<none>"),
                y.unwrap_or(&"<none>")
            );
        }
    }
    if out.is_empty() {
        out.push_str("    (differs only in line endings or the final newline)\n");
    }
    out
}

#[test]
fn testfiles_dump_matches_result() {
    let root = strata_fixtures::conformance().join("buildkit/parser/testfiles");
    let all = cases(&root);
    let mut failures = Vec::new();
    for case in &all {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let src = read(&case.join("Dockerfile"));
        let expected = read(&case.join("result"));
        match parse_nodes(&src) {
            Err(e) => failures.push(format!(
                "{name}: parse error at {}:{}: {e}",
                e.span.line, e.span.column
            )),
            Ok(tree) => {
                let actual = dump(&tree) + "\n";
                if actual != expected {
                    failures.push(format!(
                        "{name}: dump differs\n{}",
                        diff(&expected, &actual)
                    ));
                }
            }
        }
    }
    assert!(
        all.len() >= 33,
        "expected at least 33 cases, found {}",
        all.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn negative_testfiles_are_rejected() {
    let root = strata_fixtures::conformance().join("buildkit/parser/testfiles-negative");
    let all = cases(&root);
    let mut failures = Vec::new();
    for case in &all {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let src = read(&case.join("Dockerfile"));
        if let Ok(tree) = parse_nodes(&src) {
            failures.push(format!("{name}: accepted, dump:\n{}", dump(&tree)));
        }
    }
    assert!(
        all.len() >= 4,
        "expected at least 4 cases, found {}",
        all.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} negative cases were accepted:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn testfile_line_spans() {
    let path = strata_fixtures::conformance().join("buildkit/parser/testfile-line/Dockerfile");
    let tree = parse_nodes(&read(&path)).unwrap();
    let got: Vec<(u32, u32)> = tree
        .nodes
        .iter()
        .map(|n| (n.span.line, n.span.end_line))
        .collect();
    let mut failures = Vec::new();
    if got != [(5, 5), (11, 12), (17, 31)] {
        failures.push(format!(
            "instruction lines: expected [(5, 5), (11, 12), (17, 31)], got {got:?}"
        ));
    }
    let keywords: Vec<&str> = tree.nodes.iter().map(|n| n.keyword.as_str()).collect();
    if keywords != ["from", "env", "run"] {
        failures.push(format!("keywords: {keywords:?}"));
    }
    if tree.directives.len() != 1 || tree.directives[0].name != "escape" {
        failures.push(format!("directives: {:?}", tree.directives));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every span of the tree lies inside the file and on char boundaries.
fn check_spans(tree: &NodeTree, src: &str, problems: &mut Vec<String>) {
    let mut check = |what: &str, s: strata_parser::Span| {
        let ok = s.start <= s.end
            && s.end <= src.len()
            && src.is_char_boundary(s.start)
            && src.is_char_boundary(s.end)
            && s.line >= 1
            && s.column >= 1
            && s.end_line >= s.line;
        if !ok {
            problems.push(format!("{what}: bad span {s:?}"));
        }
    };
    for d in &tree.directives {
        check("directive", d.span);
    }
    let mut stack: Vec<&strata_parser::Node> = tree.nodes.iter().collect();
    while let Some(n) = stack.pop() {
        check(&n.keyword, n.span);
        check("keyword", n.keyword_span);
        for w in n.flags.iter().chain(&n.args) {
            check(&w.text, w.span);
        }
        for h in &n.heredocs {
            check(&h.name, h.span);
        }
        if let Some(inner) = &n.inner {
            stack.push(inner);
        }
    }
}

#[test]
fn realworld_corpus_parses() {
    let root = strata_fixtures::conformance().join("realworld");
    let mut files: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "Dockerfile"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let src = read(path);
        match parse_nodes(&src) {
            Err(e) => failures.push(format!("{name}: {}:{}: {e}", e.span.line, e.span.column)),
            Ok(tree) => {
                let mut problems = Vec::new();
                check_spans(&tree, &src, &mut problems);
                let again = parse_nodes(&src).map(|t| dump(&t));
                if again.as_deref() != Ok(dump(&tree).as_str()) {
                    problems.push("dump differs between two parses".to_owned());
                }
                if !problems.is_empty() {
                    failures.push(format!("{name}:\n  {}", problems.join("\n  ")));
                }
            }
        }
    }
    assert!(
        files.len() >= 30,
        "expected 30 real-world files, found {}",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} files failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn realworld_heredocs_found() {
    let root = strata_fixtures::conformance().join("realworld");
    let mut total = 0;
    let mut files = 0;
    for entry in fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "Dockerfile") {
            continue;
        }
        let Ok(tree) = parse_nodes(&read(&path)) else {
            continue; // reported by realworld_corpus_parses
        };
        let n: usize = tree.nodes.iter().map(|n| n.heredocs.len()).sum();
        total += n;
        files += usize::from(n > 0);
        for node in &tree.nodes {
            for h in &node.heredocs {
                assert!(
                    !h.content.is_empty() && h.content.ends_with('\n'),
                    "{}: heredoc {} on line {} has an odd body {:?}",
                    path.display(),
                    h.name,
                    h.span.line,
                    h.content
                );
            }
        }
    }
    // Counted by hand from the corpus: openers on instruction lines only
    // (nested `cat <<EOF` inside a body is body text).
    assert_eq!(
        (files, total),
        (8, 33),
        "files with heredocs, heredocs in total"
    );
}
