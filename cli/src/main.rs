//! The `strata` binary.

mod archive_cmd;
mod build;
mod build_secrets;
mod cache_cmd;
mod debug;
mod diagnostic;
mod docs_cmd;
mod exit;
mod images_cmd;
mod progress;
mod registry_cmd;

use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

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
    #[command(after_help = build::EXAMPLES)]
    Build(Box<build::BuildArgs>),
    /// List the images of the local store.
    Images(images_cmd::ImagesArgs),
    /// Show an image's config, digest and size as JSON (or --format).
    Inspect(images_cmd::InspectArgs),
    /// Remove image names from the local store.
    Rmi {
        /// Names to remove.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Give an image of the local store another name.
    Tag {
        /// An existing name (or sha256: manifest digest).
        source: String,
        /// The new name.
        target: String,
    },
    /// Disk usage of the build cache and the store.
    Du,
    /// Remove build cache entries (never what a tagged image or a running build uses).
    Prune(cache_cmd::PruneArgs),
    /// Check the cache and store for inconsistencies (and --repair them).
    Doctor(cache_cmd::DoctorArgs),
    /// Push an image of the local store to its registry.
    Push(registry_cmd::PushArgs),
    /// Pull an image from its registry into the local store.
    Pull(registry_cmd::PullArgs),
    /// Store credentials for a registry (password from --password-stdin).
    Login(registry_cmd::LoginArgs),
    /// Remove the stored credentials for a registry.
    Logout {
        /// Registry host (default docker.io).
        host: Option<String>,
    },
    /// Write images to an archive (OCI by default, --format docker).
    Save(archive_cmd::SaveArgs),
    /// Read images from an OCI or docker archive into the local store.
    Load(archive_cmd::LoadArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Look inside strata (e.g. `strata debug parse Dockerfile --json`).
    #[command(subcommand)]
    Debug(debug::DebugCommand),
}

impl Command {
    /// Whether the command reads or writes the state root (all but debug, login, logout,
    /// completion).
    fn uses_state_root(&self) -> bool {
        !matches!(
            self,
            Command::Debug(_)
                | Command::Login(_)
                | Command::Logout { .. }
                | Command::Completion { .. }
        )
    }
}

fn main() -> ExitCode {
    // clap exits with 2 on bad usage, as strata's exit codes want.
    let cli = Cli::parse();
    // Chosen before the user namespace, where an ordinary user looks like root.
    let root = build::strata_root();
    // Rootless: before any thread starts (the kernel requires it), so that everything after
    // (unpacking, overlays, steps, the export reading owners) runs as root of the user's own
    // user namespace, with the image's ids mapped to the user's subordinate ids.
    if cli.command.uses_state_root() && !build::is_root() {
        let entered = strata_sandbox::enter_rootless()
            .map_err(|e| exit::rootless_failure(&e))
            .and_then(|()| build::create_private_root(&root));
        if entered.is_err() {
            return ExitCode::from(exit::report(&mut std::io::stderr(), entered));
        }
    }
    let images_cmd_exit = |f: &dyn Fn(&Path) -> Result<(), exit::Failure>| {
        ExitCode::from(exit::report(&mut std::io::stderr(), f(&root)))
    };
    match cli.command {
        Command::Debug(cmd) => ExitCode::from(debug::run(
            &cmd,
            Cli::command(),
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )),
        Command::Build(args) => ExitCode::from(build::run(
            &args,
            &root,
            &mut std::io::stdin(),
            &mut std::io::stderr(),
        )),
        Command::Completion { shell } => {
            docs_cmd::completion(shell, Cli::command(), &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Images(args) => {
            images_cmd_exit(&|root| images_cmd::images(root, &args, &mut std::io::stdout()))
        }
        Command::Inspect(args) => {
            images_cmd_exit(&|root| images_cmd::inspect(root, &args, &mut std::io::stdout()))
        }
        Command::Rmi { names } => {
            images_cmd_exit(&|root| images_cmd::rmi(root, &names, &mut std::io::stdout()))
        }
        Command::Du => images_cmd_exit(&|root| cache_cmd::du(root, &mut std::io::stdout())),
        Command::Prune(args) => {
            images_cmd_exit(&|root| cache_cmd::run_prune(root, &args, &mut std::io::stdout()))
        }
        Command::Doctor(args) => {
            images_cmd_exit(&|root| cache_cmd::doctor(root, &args, &mut std::io::stdout()))
        }
        Command::Tag { source, target } => {
            images_cmd_exit(&|root| images_cmd::tag(root, &source, &target))
        }
        Command::Push(args) => images_cmd_exit(&|root| {
            registry_cmd::push_cmd(root, &args, &mut std::io::stdout(), &mut std::io::stderr())
        }),
        Command::Pull(args) => images_cmd_exit(&|root| {
            registry_cmd::pull_cmd(root, &args, &mut std::io::stdout(), &mut std::io::stderr())
        }),
        Command::Login(args) => images_cmd_exit(&|_| {
            registry_cmd::login_cmd(&args, &mut std::io::stdin(), &mut std::io::stderr())
        }),
        Command::Logout { host } => {
            images_cmd_exit(&|_| registry_cmd::logout_cmd(host.as_deref(), &mut std::io::stderr()))
        }
        Command::Save(args) => images_cmd_exit(&|root| archive_cmd::save(root, &args)),
        Command::Load(args) => {
            images_cmd_exit(&|root| archive_cmd::load(root, &args, &mut std::io::stdout()))
        }
    }
}
