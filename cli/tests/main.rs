//! The cli's end-to-end tests, in one binary (one link, and the slow tests
//! of every family run in parallel): the real `strata` binary on real
//! roots, checked with tools we did not write. `common` is the one harness;
//! each module is one family (`cargo test -p strata --test main cache_crash::`).

mod common;

mod architecture;
mod build_basic;
mod build_image;
mod build_options;
mod cache_admin;
mod cache_concurrency;
mod cache_crash;
mod cache_invalidation;
mod copy_flags;
mod debug_parse;
mod disk_full;
mod heredoc;
mod hostile_text;
mod layers;
mod library_api;
mod limits;
mod names;
mod network;
mod registry_e2e;
mod rootless;
mod run_mounts;
mod terminal;

/// `autotests = false` (cli/Cargo.toml): a file of tests/ that no `mod`
/// line above names would never be compiled or run, so none may exist.
#[test]
fn every_file_of_tests_is_a_module_here() -> common::R {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let main = std::fs::read_to_string(dir.join("main.rs"))?;
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(module) = name.strip_suffix(".rs")
            && module != "main"
            && !main.lines().any(|l| l == format!("mod {module};"))
        {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "add `mod …;` to tests/main.rs for {missing:?}"
    );
    Ok(())
}
