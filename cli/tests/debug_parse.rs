//! `strata debug parse` as a user runs it.

use crate::common::{R, strata};

#[test]
fn dump_matches_buildkit_result() -> R {
    let case = strata_fixtures::conformance().join("buildkit/parser/testfiles/env");
    let file = case.join("Dockerfile");
    let out = strata(&["debug", "parse", "--dump", file.to_str().ok_or("path")?]).ok()?;
    let expected = std::fs::read(case.join("result"))?;
    assert_eq!(out.stdout, String::from_utf8_lossy(&expected));
    Ok(())
}

#[test]
fn json_lists_the_stages() -> R {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("Dockerfile");
    std::fs::write(
        &file,
        "FROM busybox AS base\nRUN echo hi\nFROM base\nCOPY --from=base /a /b\n",
    )?;
    let out = strata(&["debug", "parse", "--json", file.to_str().ok_or("path")?]).ok()?;
    let json: serde_json::Value = serde_json::from_str(&out.stdout)?;
    let stages = json["stages"].as_array().ok_or("no stages")?;
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0]["name"], "base");
    assert_eq!(stages[1]["base"], "base");
    assert_eq!(
        stages[1]["instructions"][0]["kind"]["Copy"]["from"]["value"],
        "base"
    );
    Ok(())
}

#[test]
fn a_dockerfile_error_exits_2_with_its_place() -> R {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("Dockerfile");
    std::fs::write(&file, "FROM busybox\nCOPY --chmod=9z9 a /b\n")?;
    let out = strata(&["debug", "parse", "--json", file.to_str().ok_or("path")?]).output()?;
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("Dockerfile:2:6"), "{}", out.stderr);
    assert!(
        out.stderr.contains("invalid --chmod value"),
        "{}",
        out.stderr
    );
    Ok(())
}

#[test]
fn a_missing_file_is_one_line_and_exit_2() -> R {
    let out = strata(&["debug", "parse", "/nonexistent/Dockerfile"]).output()?;
    assert_eq!(out.code, Some(2));
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("/nonexistent/Dockerfile"),
        "{}",
        out.stderr
    );
    Ok(())
}
