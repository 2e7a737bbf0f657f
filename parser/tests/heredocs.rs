//! strata's own parser-stage cases: `fixtures/parser/heredoc/<case>/` and
//! `fixtures/parser/directives/<case>/`. Each case is a `Dockerfile` and an
//! `expected` file holding the rendering below; all cases run and all
//! failures are reported together.
//!
//! Rendering of a successful parse: `escape <char>`, one `directive` line
//! per directive, one `warning` line per warning, then per instruction its
//! BuildKit dump line and line range, followed by its heredocs (and those of
//! an ONBUILD's inner instruction) with name, flags and body. A failed parse
//! renders as `error <line>:<column> <message>`.
//!
//! Set `STRATA_BLESS=1` to write the rendering of cases whose `expected` is
//! missing (review it before committing).
#![allow(clippy::unwrap_used)]

use std::fmt::Write;
use std::fs;
use std::path::{Path, PathBuf};
use strata_parser::dump::go_quote;
use strata_parser::{Node, NodeTree, dump, parse_nodes};

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/parser"))
}

fn render_heredocs(out: &mut String, node: &Node) {
    for h in &node.heredocs {
        let fd = h.fd.map_or_else(|| "-".to_owned(), |fd| fd.to_string());
        let _ = writeln!(
            out,
            "  heredoc {} expand={} chomp={} fd={} lines={}-{} col={}",
            go_quote(&h.name),
            h.expand,
            h.chomp,
            fd,
            h.span.line,
            h.span.end_line,
            h.span.column
        );
        let _ = writeln!(out, "    {}", go_quote(&h.content));
    }
    if let Some(inner) = &node.inner {
        render_heredocs(out, inner);
    }
}

fn render(tree: &NodeTree) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "escape {}", tree.escape);
    for d in &tree.directives {
        let _ = writeln!(
            out,
            "directive {} {} line={}",
            d.name,
            go_quote(&d.value),
            d.span.line
        );
    }
    for w in &tree.warnings {
        let _ = writeln!(out, "warning {} line={}", w.message, w.span.line);
    }
    let dumped = dump(tree);
    for (node, line) in tree.nodes.iter().zip(dumped.lines()) {
        let _ = writeln!(
            out,
            "{line} lines={}-{}",
            node.span.line, node.span.end_line
        );
        render_heredocs(&mut out, node);
    }
    out
}

fn outcome(src: &str) -> String {
    match parse_nodes(src) {
        Ok(tree) => render(&tree),
        Err(e) => format!("error {}:{} {}\n", e.span.line, e.span.column, e.message),
    }
}

fn run_suite(dir: &Path, min_cases: usize) {
    let bless = std::env::var_os("STRATA_BLESS").is_some();
    let mut cases: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let src = fs::read_to_string(case.join("Dockerfile")).unwrap();
        let actual = outcome(&src);
        let expected_path = case.join("expected");
        match fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{name}:\n--- expected\n{expected}--- actual\n{actual}"
            )),
            Err(_) if bless => fs::write(&expected_path, &actual).unwrap(),
            Err(_) => failures.push(format!("{name}: no `expected` file; actual:\n{actual}")),
        }
    }
    assert!(
        cases.len() >= min_cases,
        "expected at least {min_cases} cases in {}, found {}",
        dir.display(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn heredoc_cases() {
    run_suite(&fixtures().join("heredoc"), 12);
}

#[test]
fn directive_cases() {
    run_suite(&fixtures().join("directives"), 9);
}
