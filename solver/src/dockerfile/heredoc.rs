//! Heredocs on RUN and COPY/ADD lines, lowered as BuildKit does (the
//! Dockerfile reference's "Here-Documents"; the parser has already read the
//! bodies, tabs stripped for `<<-`):
//!
//! - RUN whose whole command is one heredoc (`RUN <<EOF`): the body is the
//!   script, run by the stage's shell, or by the interpreter its `#!` line
//!   names. The delimiter's quoting changes nothing here (BuildKit ignores
//!   it: the shell or interpreter reads the body as code either way).
//! - any other RUN with heredocs (`RUN <<EOF bash`, `RUN <<A cat > a && <<B
//!   cat > b`, `RUN python3 <<EOF`): the command line and every body, each
//!   ended by its delimiter, go to the shell, which feeds them as heredocs
//!   (so a quoted delimiter keeps `$VAR` as written, as in any shell).
//! - COPY/ADD `<<NAME` sources: files named NAME holding the body, expanded
//!   with the stage's ARGs and ENV unless the delimiter was quoted, made
//!   0644 (BuildKit's `Mkfile` mode) and then copied like any source, so
//!   `--chmod`/`--chown` apply.

use strata_parser::Heredoc;
use strata_parser::shell::{Env, ExpandError, Lexer};

use crate::graph::InlineFile;

/// The argv of a RUN with heredocs; `shell_form` wraps a command in the
/// stage's shell.
pub(super) fn run_argv(
    command: &str,
    docs: &[Heredoc],
    shell_form: impl Fn(&str) -> Vec<String>,
) -> Vec<String> {
    if let [doc] = docs
        && is_bare_opener(command)
    {
        return match doc.content.strip_prefix("#!") {
            Some(rest) => shell_form(&interpreted(rest, &doc.content)),
            None => shell_form(&doc.content),
        };
    }
    let mut full = command.to_string();
    for doc in docs {
        full.push('\n');
        full.push_str(&doc.content);
        full.push_str(&doc.name);
    }
    shell_form(&full)
}

/// Whether the command is one heredoc opener and nothing else (`<<EOF`,
/// `<<-'EOF'`, `3<< EOF`): BuildKit then runs the body as the script.
fn is_bare_opener(command: &str) -> bool {
    let c = command
        .trim()
        .trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = c.strip_prefix("<<") else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest).trim_start();
    !rest.is_empty() && !rest.contains('<') && single_word(rest)
}

/// Whether `s` is one shell word (whitespace only inside quotes).
fn single_word(s: &str) -> bool {
    let mut quote = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\\') => {
                chars.next();
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => return false,
            _ => {}
        }
    }
    true
}

/// A shell command running `script` (whose first line is `#!` + `shebang`)
/// with that interpreter, as the kernel would run the file BuildKit mounts
/// at `/dev/pipes/NAME`: the interpreter, its one optional argument (the
/// rest of the line), then the script's path. The script is handed over on
/// file descriptor 3 (`/dev/fd/3`), so nothing is written to the layer and
/// the step's standard input stays as it is.
fn interpreted(shebang: &str, script: &str) -> String {
    let line = shebang.lines().next().unwrap_or("").trim();
    let (interp, arg) = match line.split_once([' ', '\t']) {
        Some((i, a)) => (i, Some(a.trim())),
        None => (line, None),
    };
    let mut cmd = format!("exec {}", quote(interp));
    if let Some(a) = arg.filter(|a| !a.is_empty()) {
        cmd.push(' ');
        cmd.push_str(&quote(a));
    }
    let delim = delimiter_for(script);
    cmd.push_str(&format!(" /dev/fd/3 3<<'{delim}'\n{script}"));
    if !script.ends_with('\n') {
        cmd.push('\n');
    }
    cmd.push_str(&delim);
    cmd
}

/// `s` in single quotes for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A heredoc delimiter no line of `script` equals.
fn delimiter_for(script: &str) -> String {
    let mut n = 0u32;
    loop {
        let d = format!("STRATA_SCRIPT_{n}");
        if !script.lines().any(|l| l == d) {
            return d;
        }
        n += 1;
    }
}

/// COPY/ADD sources split into paths and heredoc openers, in order: each
/// opener word (`<<EOF`, or `<<` followed by the delimiter word) takes the
/// next heredoc. `None` when the openers and the heredocs do not pair up
/// (a heredoc opened where no source is, such as the destination).
pub(super) fn split_sources<'a>(
    sources: &[String],
    docs: &'a [Heredoc],
) -> Option<(Vec<String>, Vec<&'a Heredoc>)> {
    let mut paths = Vec::new();
    let mut inline = Vec::new();
    let mut next = docs.iter();
    let mut words = sources.iter();
    while let Some(w) = words.next() {
        let digits = w.trim_start_matches(|c: char| c.is_ascii_digit());
        let Some(rest) = digits.strip_prefix("<<").filter(|r| !r.starts_with('<')) else {
            paths.push(w.clone());
            continue;
        };
        if rest.strip_prefix('-').unwrap_or(rest).is_empty() {
            // `<< EOF`: the delimiter is the next word.
            words.next()?;
        }
        inline.push(next.next()?);
    }
    next.next().is_none().then_some((paths, inline))
}

/// The file a COPY heredoc becomes: its body expanded with `scope` unless
/// the delimiter was quoted.
pub(super) fn inline_file(
    doc: &Heredoc,
    scope: &(impl Env + ?Sized),
) -> Result<InlineFile, ExpandError> {
    let content = if doc.expand {
        // BuildKit expands the body with the default escape (`\`) whatever
        // the file's escape directive.
        Lexer::new('\\').process_word(&heredoc_word(&doc.content), scope)?
    } else {
        doc.content.clone()
    };
    Ok(InlineFile {
        name: doc.name.clone(),
        content: content.into_bytes(),
    })
}

/// A heredoc body as a word for the shell lexer, so that it expands as a
/// shell heredoc does: `$VAR` and `${VAR…}` expand; quotes are plain text;
/// a backslash escapes only `$`, `` ` ``, `\` and a newline (which it
/// removes with itself) and is kept before anything else.
fn heredoc_word(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + body.len() / 8);
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek().copied() {
                Some(n @ ('$' | '`' | '\\')) => {
                    chars.next();
                    out.push('\\');
                    out.push(n);
                }
                Some('\n') => {
                    chars.next();
                }
                _ => out.push_str("\\\\"),
            },
            '\'' | '"' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(cmd: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), cmd.into()]
    }

    fn doc(name: &str, content: &str) -> Heredoc {
        Heredoc {
            name: name.into(),
            content: content.into(),
            expand: true,
            chomp: false,
            fd: None,
            span: strata_parser::Span::default(),
        }
    }

    #[test]
    fn bare_openers() {
        for c in [
            "<<EOF",
            "<<-EOF",
            "<< EOF",
            "<<'EOF'",
            "3<<EOF",
            " <<\"E O F\" ",
        ] {
            assert!(is_bare_opener(c), "{c}");
        }
        for c in ["<<EOF bash", "cat <<EOF", "<<A <<B", "<<", "python3 <<EOF"] {
            assert!(!is_bare_opener(c), "{c}");
        }
    }

    #[test]
    fn a_bare_heredoc_is_the_script_and_others_go_to_the_shell() {
        let body = doc("EOF", "echo one\necho two\n");
        assert_eq!(
            run_argv("<<EOF", std::slice::from_ref(&body), sh),
            sh("echo one\necho two\n")
        );
        assert_eq!(
            run_argv("<<EOF bash", &[body], sh),
            sh("<<EOF bash\necho one\necho two\nEOF")
        );
        let (a, b) = (doc("FILE1", "I am\nfirst\n"), doc("FILE2", "second\n"));
        assert_eq!(
            run_argv("<<FILE1 cat > f1 && <<FILE2 cat > f2", &[a, b], sh),
            sh("<<FILE1 cat > f1 && <<FILE2 cat > f2\nI am\nfirst\nFILE1\nsecond\nFILE2")
        );
    }

    #[test]
    fn a_shebang_names_the_interpreter() {
        let script = "#!/usr/bin/env python3 -u\nprint('STRATA_SCRIPT_0')\nSTRATA_SCRIPT_0\n";
        let argv = run_argv("<<EOF", &[doc("EOF", script)], sh);
        assert_eq!(
            argv[2],
            format!(
                "exec '/usr/bin/env' 'python3 -u' /dev/fd/3 3<<'STRATA_SCRIPT_1'\n{script}STRATA_SCRIPT_1"
            )
        );
    }

    #[test]
    fn sources_pair_with_heredocs_in_order() {
        let docs = [doc("A", "a\n"), doc("B", "b\n")];
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (paths, inline) =
            split_sources(&words(&["<<A", "x.txt", "<<-B"]), &docs).unwrap_or_default();
        assert_eq!(paths, vec!["x.txt".to_string()]);
        assert_eq!(
            inline.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            ["A", "B"]
        );
        let (_, inline) = split_sources(&words(&["<<", "A", "<<B"]), &docs).unwrap_or_default();
        assert_eq!(inline.len(), 2);
        assert!(
            split_sources(&words(&["<<A"]), &docs).is_none(),
            "B has no source"
        );
    }

    #[test]
    fn bodies_expand_like_a_shell_heredoc() -> Result<(), ExpandError> {
        let scope = [("FOO", "bar")];
        let body = "hello ${FOO} '$FOO' \"x\" \\$FOO \\n a\\\nb ${NONE:-d}\n";
        let f = inline_file(&doc("EOT", body), &scope[..])?;
        assert_eq!(
            String::from_utf8_lossy(&f.content),
            "hello bar 'bar' \"x\" $FOO \\n ab d\n"
        );
        let quoted = Heredoc {
            expand: false,
            ..doc("EOT", body)
        };
        assert_eq!(inline_file(&quoted, &scope[..])?.content, body.as_bytes());
        Ok(())
    }
}
