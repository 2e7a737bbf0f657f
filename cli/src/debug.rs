//! `strata debug ...`: tools for looking inside strata.

use std::io::{Read, Write};
use std::path::PathBuf;

/// Subcommands of `strata debug`.
#[derive(Debug, clap::Subcommand)]
pub enum DebugCommand {
    /// Parse a Dockerfile and print BuildKit's dump (default) or the typed tree as JSON.
    Parse(ParseArgs),
    /// Write man pages (strata.1, strata-build.1, …) into a directory.
    Man {
        /// Where the pages go (made if missing).
        dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct ParseArgs {
    /// The Dockerfile to read (`-` for standard input).
    pub file: PathBuf,
    /// Print the tree in BuildKit's parser test format (the default).
    #[arg(long, conflicts_with = "json")]
    pub dump: bool,
    /// Print the typed instructions as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a debug command (`app` is strata's whole command line, for the man
/// pages); returns the process exit code.
pub fn run(cmd: &DebugCommand, app: clap::Command, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match cmd {
        DebugCommand::Parse(args) => parse(args, out, err),
        DebugCommand::Man { dir } => crate::exit::report(err, crate::docs_cmd::man(app, dir)),
    }
}

fn read_source(file: &PathBuf) -> std::io::Result<String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(file)
    }
}

fn parse(args: &ParseArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let name = args.file.display().to_string();
    let src = match read_source(&args.file) {
        Ok(src) => src,
        Err(e) => {
            let _ = writeln!(err, "error: cannot read {name}: {e}");
            return 2;
        }
    };
    let text = if args.json {
        strata_parser::parse(&src).and_then(|df| {
            serde_json::to_string_pretty(&df)
                .map_err(|e| strata_parser::ParseError::new(e.to_string(), Default::default()))
        })
    } else {
        strata_parser::parse_nodes(&src).map(|tree| strata_parser::dump(&tree))
    };
    match text {
        Ok(text) => {
            let _ = writeln!(out, "{text}");
            0
        }
        Err(e) => {
            let _ = write!(err, "{}", strata_parser::render(&e, &name, &src));
            2
        }
    }
}
