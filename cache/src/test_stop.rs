//! Named stop points for the crash tests.
//!
//! With `STRATA_TEST_STOP_AT=<point>` (or `<point>:<n>`, the n-th time,
//! default the first), the process prints `strata-test-stop <point>:<n>` on
//! stderr when it reaches that point and stops itself with SIGSTOP, so a
//! test can kill it there, knowing exactly what was and was not on disk.
//! Unset (always, outside tests), a point costs one load of a cached value.
//!
//! Points, in the order a step reaches them: `run-output` (a RUN step
//! printed a line and is still running), `snapshot-renamed` (the step's
//! folder is in place, its metadata not yet written), `snapshot-meta-written`
//! (the snapshot is complete, the cache index does not name it yet),
//! `step-recorded` (the index names it); then, while exporting,
//! `blob-written` (one more blob in the content store) and `image-tagging`
//! (every blob written, the tag not yet).

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The variable naming the point to stop at.
pub const STOP_AT_VAR: &str = "STRATA_TEST_STOP_AT";

struct Wanted {
    point: String,
    nth: u32,
    seen: AtomicU32,
}

fn wanted() -> Option<&'static Wanted> {
    static WANTED: OnceLock<Option<Wanted>> = OnceLock::new();
    WANTED
        .get_or_init(|| {
            let value = std::env::var(STOP_AT_VAR).ok()?;
            let (point, nth) = match value.split_once(':') {
                Some((p, n)) => (p.to_string(), n.parse().ok()?),
                None => (value, 1),
            };
            Some(Wanted {
                point,
                nth,
                seen: AtomicU32::new(0),
            })
        })
        .as_ref()
}

/// Stops the process here when `STRATA_TEST_STOP_AT` names `point`.
pub fn point(point: &str) {
    let Some(w) = wanted() else { return };
    if w.point != point || w.seen.fetch_add(1, Ordering::SeqCst) + 1 != w.nth {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "strata-test-stop {point}:{}", w.nth);
    let _ = err.flush();
    drop(err);
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
}
