//! The `strata` binary.

mod build;
mod debug;
mod progress;

use std::process::ExitCode;

use clap::Parser;

/// strata: a Dockerfile build engine.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Build an image from a Dockerfile and a context directory.
    Build(build::BuildArgs),
    /// Look inside strata (e.g. `strata debug parse Dockerfile --json`).
    #[command(subcommand)]
    Debug(debug::DebugCommand),
}

fn main() -> ExitCode {
    // clap exits with 2 on bad usage, as strata's exit codes want.
    let cli = Cli::parse();
    match cli.command {
        Command::Debug(cmd) => ExitCode::from(debug::run(
            &cmd,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )),
        Command::Build(args) => ExitCode::from(build::run(
            &args,
            &build::strata_root(),
            &mut std::io::stdin(),
            &mut std::io::stderr(),
        )),
    }
}
