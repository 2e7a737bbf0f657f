//! `strata completion SHELL` and `strata debug man DIR`: shell completions
//! and man pages, generated from the same clap definitions as the parser.

use std::io::Write;
use std::path::Path;

use crate::exit::Failure;

/// Writes the completion script for `shell` to `out`.
pub fn completion(shell: clap_complete::Shell, mut app: clap::Command, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut app, "strata", out);
}

/// Writes `strata.1` and one page per subcommand (`strata-build.1`, …) into `dir`.
pub fn man(app: clap::Command, dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .and_then(|()| clap_mangen::generate_to(app, dir))
        .map_err(|e| Failure::Failed(format!("cannot write man pages to {}: {e}", dir.display())))
}
