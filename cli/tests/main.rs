//! The cli's end-to-end tests, in one binary (one link, and the slow tests
//! of every family run in parallel): the real `strata` binary on real
//! roots, checked with tools we did not write. `common` is the one harness;
//! each module is one family (`cargo test -p strata --test main cache_crash::`).

mod common;

mod build_basic;
mod build_image;
mod build_options;
mod cache_admin;
mod cache_concurrency;
mod cache_crash;
mod cache_invalidation;
mod debug_parse;
mod disk_full;
mod registry_e2e;
