//! `strata debug parse` as a user runs it.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn strata() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strata"))
}

#[test]
fn dump_matches_buildkit_result() {
    let case = strata_fixtures::conformance().join("buildkit/parser/testfiles/env");
    let out = strata()
        .args(["debug", "parse", "--dump"])
        .arg(case.join("Dockerfile"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = std::fs::read(case.join("result")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&expected)
    );
}

#[test]
fn json_lists_the_stages() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Dockerfile");
    std::fs::write(
        &file,
        "FROM busybox AS base\nRUN echo hi\nFROM base\nCOPY --from=base /a /b\n",
    )
    .unwrap();
    let out = strata()
        .args(["debug", "parse", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stages = json["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0]["name"], "base");
    assert_eq!(stages[1]["base"], "base");
    assert_eq!(
        stages[1]["instructions"][0]["kind"]["Copy"]["from"]["value"],
        "base"
    );
}

#[test]
fn a_dockerfile_error_exits_2_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Dockerfile");
    std::fs::write(&file, "FROM busybox\nCOPY --chmod=9z9 a /b\n").unwrap();
    let out = strata()
        .args(["debug", "parse", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Dockerfile:2:6"), "{stderr}");
    assert!(stderr.contains("invalid --chmod value"), "{stderr}");
}

#[test]
fn a_missing_file_is_one_line_and_exit_2() {
    let out = strata()
        .args(["debug", "parse", "/nonexistent/Dockerfile"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/Dockerfile"), "{stderr}");
}
