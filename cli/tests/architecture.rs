//! The layering rules of ARCHITECTURE.md, checked on the source itself so a
//! change that breaks one fails here instead of being found in review:
//! - the cli reaches the solver and the exporter only through their crate roots;
//! - `graph`, `schedule` and `ops` never import the Dockerfile front end (the graph
//!   carries two of the parser's plain enums, `NetworkMode` and `Security`, and nothing else
//!   of it);
//! - no public function of a library crate returns `Result<_, String>`;
//! - one `Digest` and one `NetworkMode` in the workspace.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::R;

const LIBRARY_CRATES: [&str; 6] = [
    "parser", "solver", "sandbox", "cache", "exporter", "registry",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> std::io::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path)?;
                out.push((path, text));
            }
        }
    }
    Ok(out)
}

/// The lines of `files` that contain `needle`, as `path:line: text`.
fn lines_with(files: &[(PathBuf, String)], needle: impl Fn(&str) -> bool) -> Vec<String> {
    let mut hits = Vec::new();
    for (path, text) in files {
        for (n, line) in text.lines().enumerate() {
            if needle(line) {
                hits.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    hits
}

#[test]
fn cli_uses_only_the_solver_and_exporter_roots() -> R {
    let cli = sources(&workspace().join("cli/src"))?;
    // `strata_solver::module::Item` reaches past the root; `strata_solver::Item` does not.
    let deep = lines_with(&cli, |l| {
        ["strata_solver::", "strata_exporter::"]
            .iter()
            .any(|krate| {
                l.split(krate).skip(1).any(|rest| {
                    let word: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    rest[word.len()..].starts_with("::") && word.starts_with(char::is_lowercase)
                })
            })
    });
    assert!(
        deep.is_empty(),
        "the cli imports solver/exporter internals:\n{}",
        deep.join("\n")
    );
    Ok(())
}

#[test]
fn graph_schedule_and_ops_know_no_dockerfile() -> R {
    const PARSER_TYPES_ALLOWED: &str = "use strata_parser::{NetworkMode, Security};";
    let solver = workspace().join("solver/src");
    let mut files = sources(&solver.join("ops"))?;
    for file in ["graph.rs", "schedule.rs"] {
        let path = solver.join(file);
        files.push((path.clone(), fs::read_to_string(&path)?));
    }
    assert!(
        files.len() > 3,
        "solver sources not found under {}",
        solver.display()
    );
    let hits = lines_with(&files, |l| {
        let code = l.split("//").next().unwrap_or("");
        code.contains("dockerfile::")
            || (code.contains("strata_parser") && code.trim() != PARSER_TYPES_ALLOWED)
    });
    assert!(
        hits.is_empty(),
        "front-end imports below the graph:\n{}",
        hits.join("\n")
    );
    Ok(())
}

#[test]
fn no_public_library_function_returns_a_string_error() -> R {
    let mut files = Vec::new();
    for krate in LIBRARY_CRATES {
        files.extend(sources(&workspace().join(krate).join("src"))?);
    }
    // A signature may span lines: join each `pub fn` up to its body's brace.
    let mut hits = Vec::new();
    for (path, text) in &files {
        for (start, _) in text.match_indices("pub fn ") {
            let signature = &text[start..text[start..].find('{').map_or(text.len(), |e| start + e)];
            let flat: String = signature.split_whitespace().collect();
            if flat.contains(",String>") && flat.contains("->Result<") {
                hits.push(format!(
                    "{}: {}",
                    path.display(),
                    signature.lines().next().unwrap_or("")
                ));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "public functions with string errors:\n{}",
        hits.join("\n")
    );
    Ok(())
}

#[test]
fn one_digest_and_one_network_mode() -> R {
    let mut files = Vec::new();
    for krate in LIBRARY_CRATES.iter().chain(&["cli"]) {
        files.extend(sources(&workspace().join(krate).join("src"))?);
    }
    for definition in [
        "pub struct Digest",
        "pub enum NetworkMode",
        "pub struct Platform",
    ] {
        let hits = lines_with(&files, |l| l.trim_start().starts_with(definition));
        assert!(
            hits.len() <= 1,
            "`{definition}` defined more than once:\n{}",
            hits.join("\n")
        );
    }
    Ok(())
}
