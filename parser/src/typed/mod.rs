//! Validating raw nodes into the typed tree: [`parse`].

mod duration;
mod flags;
mod mount;

use crate::error::ParseError;
use crate::instruction::*;
use crate::node::{Node, Word};
use crate::raw::parse_nodes;
use crate::span::Span;
use flags::Flags;

/// Every instruction keyword, for the did-you-mean hint.
const KEYWORDS: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// Parses a Dockerfile into typed stages and instructions, rejecting what
/// BuildKit rejects before a build starts: unknown instructions and flags,
/// bad flag values, instructions before the first `FROM`, ONBUILD misuse.
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    let tree = parse_nodes(src)?;
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &tree.nodes {
        if node.keyword == "from" {
            stages.push(stage(node)?);
            continue;
        }
        let instruction = instruction(node)?;
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(instruction),
            None if matches!(instruction.kind, InstructionKind::Arg(_)) => {
                global_args.push(instruction)
            }
            None => {
                return Err(ParseError::new(
                    format!(
                        "{} comes before the first FROM",
                        node.keyword.to_ascii_uppercase()
                    ),
                    node.keyword_span,
                )
                .with_hint("only ARG may come before FROM; start the stage with FROM <image>"));
            }
        }
    }
    Ok(Dockerfile {
        directives: tree.directives,
        escape: tree.escape,
        global_args,
        stages,
    })
}

fn texts(words: &[Word]) -> Vec<String> {
    words.iter().map(|w| w.text.clone()).collect()
}

fn stage(node: &Node) -> Result<Stage, ParseError> {
    let flags = Flags::read("from", &node.flags, &["platform"])?;
    let platform = flags.value("platform")?.map(|(v, span)| Flag {
        value: v.to_string(),
        span,
    });
    let name = match node.args.as_slice() {
        [_] => None,
        [_, as_kw, name] if as_kw.text.eq_ignore_ascii_case("as") => Some(name.text.clone()),
        [] => {
            return Err(ParseError::new("FROM needs an image", node.keyword_span)
                .with_hint("write FROM <image> [AS <name>]"));
        }
        [_, second, rest @ ..] => {
            // Point at the first word that does not fit `IMAGE AS NAME`.
            let wrong = match rest {
                [_, extra, ..] if second.text.eq_ignore_ascii_case("as") => extra,
                _ => second,
            };
            return Err(ParseError::new(
                "FROM takes an image and optionally AS <name>",
                wrong.span,
            )
            .with_hint("write FROM <image> [AS <name>]"));
        }
    };
    Ok(Stage {
        name,
        base: node.args[0].text.clone(),
        platform,
        span: node.span,
        instructions: Vec::new(),
    })
}

/// The arguments as a command: exec form when they came from JSON.
fn command(node: &Node, args: &[Word]) -> Command {
    if node.json {
        Command::Exec(texts(args))
    } else {
        Command::Shell(
            args.iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        )
    }
}

/// The single argument of USER, WORKDIR, STOPSIGNAL and MAINTAINER.
fn one_arg(node: &Node) -> Result<String, ParseError> {
    match node.args.first() {
        Some(word) if !word.text.trim().is_empty() => Ok(word.text.clone()),
        _ => Err(ParseError::new(
            format!("{} needs an argument", node.keyword.to_ascii_uppercase()),
            node.keyword_span,
        )),
    }
}

fn pairs(node: &Node) -> Vec<(String, String)> {
    node.args
        .chunks(3)
        .filter(|c| c.len() >= 2)
        .map(|c| (c[0].text.clone(), c[1].text.clone()))
        .collect()
}

fn instruction(node: &Node) -> Result<Instruction, ParseError> {
    let kind = match node.keyword.as_str() {
        "run" => run(node)?,
        "cmd" => {
            no_flags(node, "cmd")?;
            InstructionKind::Cmd(command(node, &node.args))
        }
        "entrypoint" => {
            no_flags(node, "entrypoint")?;
            InstructionKind::Entrypoint(command(node, &node.args))
        }
        "shell" => {
            no_flags(node, "shell")?;
            if !node.json {
                let span = node.args.first().map_or(node.keyword_span, |w| w.span);
                return Err(
                    ParseError::new("SHELL requires the arguments as a JSON array", span)
                        .with_hint(r#"write SHELL ["/bin/sh", "-c"]"#),
                );
            }
            InstructionKind::Shell(texts(&node.args))
        }
        "env" => {
            no_flags(node, "env")?;
            InstructionKind::Env(pairs(node))
        }
        "label" => {
            no_flags(node, "label")?;
            InstructionKind::Label(pairs(node))
        }
        "arg" => {
            no_flags(node, "arg")?;
            arg(node)?
        }
        "expose" => {
            no_flags(node, "expose")?;
            InstructionKind::Expose(texts(&node.args))
        }
        "volume" => {
            no_flags(node, "volume")?;
            InstructionKind::Volume(texts(&node.args))
        }
        "user" => {
            no_flags(node, "user")?;
            InstructionKind::User(one_arg(node)?)
        }
        "workdir" => {
            no_flags(node, "workdir")?;
            InstructionKind::Workdir(one_arg(node)?)
        }
        "stopsignal" => {
            no_flags(node, "stopsignal")?;
            InstructionKind::StopSignal(one_arg(node)?)
        }
        "maintainer" => {
            no_flags(node, "maintainer")?;
            InstructionKind::Maintainer(one_arg(node)?)
        }
        "healthcheck" => healthcheck(node)?,
        "onbuild" => onbuild(node)?,
        "copy" => InstructionKind::Copy(copy_spec(node, false)?.0),
        "add" => {
            let (spec, options) = copy_spec(node, true)?;
            InstructionKind::Add(spec, options)
        }
        other => return Err(unknown_instruction(other, node.keyword_span)),
    };
    Ok(Instruction {
        kind,
        span: node.span,
    })
}

fn unknown_instruction(keyword: &str, span: Span) -> ParseError {
    let upper = keyword.to_ascii_uppercase();
    let err = ParseError::new(format!("unknown instruction: {upper}"), span);
    let best = KEYWORDS
        .iter()
        .map(|k| (edit_distance(keyword, k), k))
        .min()
        .filter(|(d, _)| *d <= 2);
    match best {
        Some((_, k)) => err.with_hint(format!("did you mean {}?", k.to_ascii_uppercase())),
        None => err,
    }
}

/// Levenshtein distance, for short keywords only.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

fn run(node: &Node) -> Result<InstructionKind, ParseError> {
    let flags = Flags::read("run", &node.flags, &["mount", "network", "security"])?;
    let mounts = flags
        .values("mount")?
        .into_iter()
        .map(|(v, span)| mount::parse_mount(v, span))
        .collect::<Result<_, _>>()?;
    let network = flags.choice(
        "network",
        "network mode",
        &[
            ("default", NetworkMode::Default),
            ("none", NetworkMode::None),
            ("host", NetworkMode::Host),
        ],
    )?;
    let security = flags.choice(
        "security",
        "security mode",
        &[
            ("sandbox", Security::Sandbox),
            ("insecure", Security::Insecure),
        ],
    )?;
    Ok(InstructionKind::Run {
        mounts,
        network,
        security,
        command: command(node, &node.args),
        heredocs: node.heredocs.clone(),
    })
}

fn arg(node: &Node) -> Result<InstructionKind, ParseError> {
    if node.args.is_empty() {
        return Err(ParseError::new("ARG needs a name", node.keyword_span)
            .with_hint("write ARG NAME or ARG NAME=default"));
    }
    let decls = node
        .args
        .iter()
        .map(|w| {
            let (name, default) = match w.text.split_once('=') {
                Some((n, d)) => (n, Some(d.to_string())),
                None => (w.text.as_str(), None),
            };
            if name.is_empty() {
                return Err(ParseError::new("ARG name is empty", w.span));
            }
            Ok(ArgDecl {
                name: name.to_string(),
                default,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(InstructionKind::Arg(decls))
}

fn duration_flag(flags: &Flags, name: &str) -> Result<Option<std::time::Duration>, ParseError> {
    match flags.value(name)? {
        None => Ok(None),
        Some((v, span)) => duration::parse_go_duration(v).map(Some).ok_or_else(|| {
            ParseError::new(format!("invalid duration for --{name}: {v:?}"), span)
                .with_hint("use a duration such as 30s, 1m30s or 500ms")
        }),
    }
}

fn healthcheck(node: &Node) -> Result<InstructionKind, ParseError> {
    let allowed = [
        "interval",
        "timeout",
        "start-period",
        "start-interval",
        "retries",
    ];
    let flags = Flags::read("healthcheck", &node.flags, &allowed)?;
    let Some(first) = node.args.first() else {
        return Err(ParseError::new(
            "HEALTHCHECK needs CMD or NONE",
            node.keyword_span,
        ));
    };
    match first.text.to_ascii_uppercase().as_str() {
        "NONE" => {
            if let Some(extra) = node.args.get(1).or(node.flags.first()) {
                return Err(ParseError::new(
                    "HEALTHCHECK NONE takes no arguments",
                    extra.span,
                ));
            }
            Ok(InstructionKind::Healthcheck(None))
        }
        "CMD" => {
            let retries = match flags.value("retries")? {
                None => None,
                Some((v, span)) => Some(v.parse::<u32>().map_err(|_| {
                    ParseError::new(format!("invalid value for --retries: {v:?}"), span)
                        .with_hint("use a whole number such as 3")
                })?),
            };
            Ok(InstructionKind::Healthcheck(Some(HealthConfig {
                command: command(node, &node.args[1..]),
                interval: duration_flag(&flags, "interval")?,
                timeout: duration_flag(&flags, "timeout")?,
                start_period: duration_flag(&flags, "start-period")?,
                start_interval: duration_flag(&flags, "start-interval")?,
                retries,
            })))
        }
        other => Err(
            ParseError::new(format!("unknown HEALTHCHECK type {other:?}"), first.span)
                .with_hint("write HEALTHCHECK CMD <command> or HEALTHCHECK NONE"),
        ),
    }
}

fn onbuild(node: &Node) -> Result<InstructionKind, ParseError> {
    no_flags(node, "onbuild")?;
    let Some(inner) = node.inner.as_deref() else {
        return Err(
            ParseError::new("ONBUILD needs an instruction", node.keyword_span)
                .with_hint("write ONBUILD <INSTRUCTION>, e.g. ONBUILD RUN make"),
        );
    };
    match inner.keyword.as_str() {
        "onbuild" => Err(ParseError::new(
            "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            inner.keyword_span,
        )),
        "from" | "maintainer" => Err(ParseError::new(
            format!(
                "{} isn't allowed as an ONBUILD trigger",
                inner.keyword.to_ascii_uppercase()
            ),
            inner.keyword_span,
        )),
        _ => Ok(InstructionKind::Onbuild(Box::new(instruction(inner)?))),
    }
}

/// Rejects any flag on an instruction that takes none.
fn no_flags(node: &Node, keyword: &str) -> Result<(), ParseError> {
    Flags::read(keyword, &node.flags, &[]).map(|_| ())
}

fn copy_spec(node: &Node, add: bool) -> Result<(CopySpec, AddOptions), ParseError> {
    let keyword = if add { "add" } else { "copy" };
    let common = ["from", "chown", "chmod", "link", "parents", "exclude"];
    let add_only = ["checksum", "keep-git-dir", "unpack"];
    let allowed: Vec<&str> = if add {
        common.iter().chain(add_only.iter()).copied().collect()
    } else {
        common.to_vec()
    };
    let flags = Flags::read(keyword, &node.flags, &allowed)?;
    let (dest, sources) = match node.args.split_last() {
        Some((dest, sources)) if !sources.is_empty() => (dest, sources),
        _ => {
            let upper = keyword.to_ascii_uppercase();
            return Err(ParseError::new(
                format!("{upper} needs a source and a destination"),
                node.keyword_span,
            )
            .with_hint(format!("write {upper} <src>... <dest>")));
        }
    };
    let chown = flags.value("chown")?.map(|(v, span)| {
        let (user, group) = match v.split_once(':') {
            Some((u, g)) => (u.to_string(), Some(g.to_string())),
            None => (v.to_string(), None),
        };
        Flag {
            value: Chown { user, group },
            span,
        }
    });
    let chmod = match flags.value("chmod")? {
        None => None,
        Some((v, span)) => Some(Flag {
            value: chmod(v, span)?,
            span,
        }),
    };
    let spec = CopySpec {
        from: flags.value("from")?.map(|(v, span)| Flag {
            value: v.to_string(),
            span,
        }),
        chown,
        chmod,
        link: flags.boolean("link")?.unwrap_or(false),
        parents: flags.boolean("parents")?.unwrap_or(false),
        exclude: flags
            .values("exclude")?
            .into_iter()
            .map(|(v, _)| v.to_string())
            .collect(),
        sources: texts(sources),
        dest: dest.text.clone(),
        heredocs: node.heredocs.clone(),
    };
    let options = AddOptions {
        checksum: flags.value("checksum")?.map(|(v, _)| v.to_string()),
        keep_git_dir: flags.boolean("keep-git-dir")?.unwrap_or(false),
        unpack: flags.boolean("unpack")?,
    };
    Ok((spec, options))
}

fn chmod(text: &str, span: Span) -> Result<Chmod, ParseError> {
    // A variable, or a symbolic mode (`u+x,go-w`, Dockerfile 1.14): the
    // solver expands and checks it.
    if text.contains(['$', '+', '-', '=']) {
        return Ok(Chmod::Unexpanded(text.to_string()));
    }
    match u32::from_str_radix(text, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(Chmod::Octal(mode)),
        _ => Err(
            ParseError::new(format!("invalid --chmod value {text:?}"), span).with_hint(
                "use an octal mode such as 0644 or 755, or a symbolic one such as u+x,go-w",
            ),
        ),
    }
}
