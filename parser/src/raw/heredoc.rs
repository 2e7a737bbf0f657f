//! Heredocs: finding openers on RUN/COPY/ADD lines and reading their
//! bodies from the lines that follow.

use super::args::LineCtx;
use super::grammar;
use super::source::Lines;
use super::words::quoted_words;
use crate::error::ParseError;
use crate::node::{Heredoc, Node};
use crate::span::Span;

/// Whether heredocs are looked for on this node: RUN, COPY and ADD in
/// shell form, also when wrapped in ONBUILD.
pub(crate) fn target(node: &mut Node) -> Option<&mut Node> {
    let node = match node.keyword.as_str() {
        "onbuild" => node.inner.as_deref_mut()?,
        _ => node,
    };
    let allowed = matches!(node.keyword.as_str(), "run" | "copy" | "add");
    (allowed && !node.json).then_some(node)
}

/// An opener found on the line, before its body is read.
struct Opener {
    name: String,
    expand: bool,
    chomp: bool,
    fd: Option<u32>,
    /// Joined-text range of the opener (fd, `<<`, word).
    range: (usize, usize),
}

/// Finds the heredoc openers on the logical line, in order.
fn openers(ctx: &LineCtx<'_, '_>) -> Result<Vec<Opener>, ParseError> {
    let text = ctx.logical.text.as_str();
    if !text.contains("<<") {
        return Ok(Vec::new());
    }
    let words = quoted_words(text, ctx.escape);
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&(a, b)) = words.get(i) {
        i += 1;
        let word = &text[a..b];
        let Some(m) = grammar::heredoc_opener(word) else {
            continue;
        };
        let (mut rest, mut end) = (&word[m.rest.0..m.rest.1], b);
        if rest.is_empty() {
            // `<< EOF`: the delimiter is the next word.
            match words.get(i) {
                Some(&(na, nb)) if !text[na..nb].contains('<') => {
                    rest = &text[na..nb];
                    end = nb;
                    i += 1;
                }
                _ => continue,
            }
        }
        let Some((name, quoted)) =
            delimiter(rest).map_err(|msg| ParseError::new(msg, ctx.span(a, end)))?
        else {
            continue;
        };
        out.push(Opener {
            name,
            expand: !quoted,
            chomp: m.chomp,
            fd: m.fd,
            range: (a, end),
        });
    }
    Ok(out)
}

/// The delimiter word with quotes removed, and whether any part was quoted.
/// `Ok(None)` when it is not a single word.
fn delimiter(word: &str) -> Result<Option<(String, bool)>, &'static str> {
    let mut name = String::with_capacity(word.len());
    let mut quoted = false;
    let mut quote: Option<char> = None;
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some('\'') if c == '\'' => quote = None,
            Some('"') if c == '"' => quote = None,
            Some('"') if c == '\\' => match chars.next() {
                Some(d @ ('"' | '\\' | '$' | '`')) => name.push(d),
                Some(d) => {
                    name.push('\\');
                    name.push(d);
                }
                None => name.push('\\'),
            },
            Some(_) => name.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                quoted = true;
            }
            None if c == '\\' => {
                if let Some(d) = chars.next() {
                    name.push(d);
                }
            }
            None if c.is_whitespace() => return Ok(None),
            None => name.push(c),
        }
    }
    if quote.is_some() {
        return Err("unterminated quote in heredoc delimiter");
    }
    if name.is_empty() {
        return Ok(None);
    }
    Ok(Some((name, quoted)))
}

/// Finds the openers on the line and reads each body from `lines`.
/// Returns the heredocs and the file offset where the last terminator
/// line ends (if there were any).
pub(crate) fn collect(
    ctx: &LineCtx<'_, '_>,
    lines: &mut Lines<'_>,
) -> Result<(Vec<Heredoc>, Option<usize>), ParseError> {
    let openers = openers(ctx)?;
    let mut docs = Vec::with_capacity(openers.len());
    let mut last_end = None;
    for op in openers {
        let opener_span = ctx.span(op.range.0, op.range.1);
        let mut content = String::new();
        let mut terminator_end = None;
        for line in lines.by_ref() {
            let mut candidate = line.text;
            if op.chomp {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == op.name {
                terminator_end = Some(line.end());
                break;
            }
            let body = if op.chomp {
                line.raw.trim_start_matches('\t')
            } else {
                line.raw
            };
            content.push_str(body);
        }
        let Some(end) = terminator_end else {
            return Err(
                ParseError::new("unterminated heredoc", opener_span).with_hint(format!(
                    "end the heredoc with a line holding only `{}`",
                    op.name
                )),
            );
        };
        last_end = Some(end);
        docs.push(Heredoc {
            name: op.name,
            content,
            expand: op.expand,
            chomp: op.chomp,
            fd: op.fd,
            span: Span {
                end_line: ctx.source.span(end, end).line,
                end,
                ..opener_span
            },
        });
    }
    Ok((docs, last_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters() {
        assert_eq!(delimiter("EOF"), Ok(Some(("EOF".into(), false))));
        assert_eq!(delimiter("'EOF'"), Ok(Some(("EOF".into(), true))));
        assert_eq!(delimiter("eo'f'"), Ok(Some(("eof".into(), true))));
        assert_eq!(delimiter("\"E\\\"F\""), Ok(Some(("E\"F".into(), true))));
        assert!(delimiter("'EOF").is_err());
        assert_eq!(delimiter("''"), Ok(None));
    }
}
