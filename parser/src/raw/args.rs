//! Splitting one logical line into keyword, flags and arguments, the way
//! BuildKit's parser stage does for each instruction.

use super::grammar::{self, Json};
use super::logical::Logical;
use super::source::Source;
use super::words::{is_split_space, leading_flags, quoted_words, split_whitespace};
use crate::error::ParseError;
use crate::node::{Node, Word};
use crate::span::Span;

/// Shared context for building the nodes of one logical line.
pub(crate) struct LineCtx<'s, 'l> {
    pub source: &'s Source<'s>,
    pub logical: &'l Logical,
    pub escape: char,
}

impl LineCtx<'_, '_> {
    fn text(&self) -> &str {
        &self.logical.text
    }

    /// The file span of the range `a..b` of the joined text.
    pub fn span(&self, a: usize, b: usize) -> Span {
        let (start, end) = self.logical.file_range(a, b);
        self.source.span(start, end)
    }

    fn word(&self, a: usize, b: usize) -> Word {
        Word {
            text: self.text().get(a..b).unwrap_or("").to_owned(),
            span: self.span(a, b),
        }
    }

    fn error(&self, message: impl Into<String>, a: usize, b: usize) -> ParseError {
        ParseError::new(message, self.span(a, b))
    }
}

/// Builds the node for the text `lo..hi` of the logical line (the whole
/// line, or the rest of an ONBUILD).
pub(crate) fn build(ctx: &LineCtx<'_, '_>, lo: usize, hi: usize) -> Result<Node, ParseError> {
    build_nested(ctx, lo, hi, 0)
}

/// ONBUILD may wrap ONBUILD only this deep here (the typed layer rejects
/// any nesting); the limit keeps recursion bounded on hostile input.
const MAX_ONBUILD_DEPTH: usize = 4;

fn build_nested(
    ctx: &LineCtx<'_, '_>,
    lo: usize,
    hi: usize,
    depth: usize,
) -> Result<Node, ParseError> {
    let text = ctx.text();
    let line = text.get(lo..hi).unwrap_or("");
    let start = lo + (line.len() - line.trim_start().len());
    let end = lo + line.trim_end().len();
    let body = text.get(start..end).unwrap_or("");
    let kw_len = body.find(is_split_space).unwrap_or(body.len());
    let kw_end = start + kw_len;
    let keyword = body[..kw_len].to_lowercase();
    let after_kw =
        kw_end + (body[kw_len..].len() - body[kw_len..].trim_start_matches(is_split_space).len());

    let (flags, args_at) = leading_flags(text.get(after_kw..end).unwrap_or(""), ctx.escape);
    let flags = flags
        .into_iter()
        .map(|f| Word {
            text: f.text,
            span: ctx.span(after_kw + f.range.0, after_kw + f.range.1),
        })
        .collect();
    let rest_raw = text.get(after_kw + args_at..end).unwrap_or("");
    let rest_at = after_kw + args_at + (rest_raw.len() - rest_raw.trim_start().len());

    let (start_f, _) = ctx.logical.file_range(start, start);
    let node_span = ctx.source.span(start_f, ctx.logical.end.max(start_f));
    let mut node = Node {
        keyword,
        keyword_span: ctx.span(start, kw_end),
        flags,
        args: Vec::new(),
        json: false,
        heredocs: Vec::new(),
        inner: None,
        // The top-level node keeps the whole joined line; an ONBUILD's
        // inner node keeps the part after the ONBUILD keyword.
        original: text
            .get(if lo == 0 { 0 } else { start }..hi)
            .unwrap_or("")
            .to_owned(),
        span: node_span,
    };
    let r = Rest { at: rest_at, end };
    match node.keyword.as_str() {
        "run" | "cmd" | "entrypoint" | "shell" => {
            (node.args, node.json) = json_or_whole(ctx, r)?;
        }
        "add" | "copy" | "volume" => (node.args, node.json) = json_or_words(ctx, r)?,
        "from" | "expose" => node.args = plain_words(ctx, r),
        "env" => node.args = name_values(ctx, r, "ENV")?,
        "label" => node.args = name_values(ctx, r, "LABEL")?,
        "arg" => {
            node.args = quoted_words(r.str(ctx), ctx.escape)
                .into_iter()
                .map(|(a, b)| ctx.word(r.at + a, r.at + b))
                .collect();
        }
        "maintainer" | "user" | "workdir" | "stopsignal" if r.end > r.at => {
            node.args.push(ctx.word(r.at, r.end));
        }
        "healthcheck" => (node.args, node.json) = healthcheck(ctx, r)?,
        "onbuild" if r.end > r.at => {
            if depth >= MAX_ONBUILD_DEPTH {
                return Err(ctx.error("ONBUILD nested too deeply", start, end));
            }
            node.inner = Some(Box::new(build_nested(ctx, r.at, r.end, depth + 1)?));
        }
        // Unknown instructions (and the ones above with nothing after the
        // keyword) get no arguments here; the typed layer rejects unknown
        // keywords with the keyword's span.
        _ => {}
    }
    Ok(node)
}

/// The arguments part of a line: `at..end` in the joined text, trimmed.
#[derive(Clone, Copy)]
struct Rest {
    at: usize,
    end: usize,
}

impl Rest {
    fn str<'c>(&self, ctx: &'c LineCtx<'_, '_>) -> &'c str {
        ctx.text().get(self.at..self.end).unwrap_or("")
    }
}

const NOT_STRINGS: &str = "when using JSON array syntax, arrays must be comprised of strings only";

/// Tries the rest as a JSON array of strings. `Ok(None)` means "not JSON".
fn try_json(ctx: &LineCtx<'_, '_>, r: Rest) -> Result<Option<Vec<Word>>, ParseError> {
    let s = r.str(ctx);
    if !s.starts_with('[') {
        return Ok(None);
    }
    match grammar::json_array(s) {
        Json::Invalid => Ok(None),
        Json::TooDeep => Err(ctx.error("JSON array nested too deeply", r.at, r.end)),
        Json::Array(elements) => {
            let mut words = Vec::with_capacity(elements.len());
            for el in elements {
                let (a, b) = (r.at + el.range.0, r.at + el.range.1);
                match el.text {
                    Some(text) => words.push(Word {
                        text,
                        span: ctx.span(a, b),
                    }),
                    None => {
                        return Err(ctx
                            .error(NOT_STRINGS, a, b)
                            .with_hint("quote this element, or write the command in shell form"));
                    }
                }
            }
            Ok(Some(words))
        }
    }
}

/// RUN, CMD, ENTRYPOINT, SHELL: JSON array, else the whole rest.
fn json_or_whole(ctx: &LineCtx<'_, '_>, r: Rest) -> Result<(Vec<Word>, bool), ParseError> {
    if let Some(words) = try_json(ctx, r)? {
        return Ok((words, true));
    }
    if r.end > r.at {
        return Ok((vec![ctx.word(r.at, r.end)], false));
    }
    Ok((Vec::new(), false))
}

/// ADD, COPY, VOLUME: JSON array, else whitespace-separated words.
fn json_or_words(ctx: &LineCtx<'_, '_>, r: Rest) -> Result<(Vec<Word>, bool), ParseError> {
    if let Some(words) = try_json(ctx, r)? {
        return Ok((words, true));
    }
    Ok((plain_words(ctx, r), false))
}

fn plain_words(ctx: &LineCtx<'_, '_>, r: Rest) -> Vec<Word> {
    split_whitespace(r.str(ctx))
        .into_iter()
        .map(|(a, b)| ctx.word(r.at + a, r.at + b))
        .collect()
}

/// HEALTHCHECK: the first word, then the command as for CMD.
fn healthcheck(ctx: &LineCtx<'_, '_>, r: Rest) -> Result<(Vec<Word>, bool), ParseError> {
    let s = r.str(ctx);
    let first = s.find(char::is_whitespace).unwrap_or(s.len());
    if first == 0 {
        return Ok((Vec::new(), false));
    }
    let after = &s[first..];
    let cmd_at = r.at + first + (after.len() - after.trim_start().len());
    let mut args = vec![ctx.word(r.at, r.at + first)];
    let (cmd, json) = json_or_whole(
        ctx,
        Rest {
            at: cmd_at,
            end: r.end,
        },
    )?;
    args.extend(cmd);
    Ok((args, json))
}

/// ENV and LABEL: `key value...` (legacy) or `k=v k2=v2`, as triples of
/// key, value and separator.
fn name_values(ctx: &LineCtx<'_, '_>, r: Rest, what: &str) -> Result<Vec<Word>, ParseError> {
    let s = r.str(ctx);
    let words = quoted_words(s, ctx.escape);
    let Some(&(a0, b0)) = words.first() else {
        return Ok(Vec::new());
    };
    if !s[a0..b0].contains('=') {
        // Legacy form: the key is everything up to the first whitespace,
        // the value everything after it.
        let Some(key_end) = s.find(is_split_space) else {
            return Err(ctx
                .error(format!("{what} must have two arguments"), r.at, r.end)
                .with_hint(format!("write `{what} {s}=<value>`")));
        };
        let tail = &s[key_end..];
        let value_at = key_end + (tail.len() - tail.trim_start_matches(is_split_space).len());
        return Ok(vec![
            ctx.word(r.at, r.at + key_end),
            ctx.word(r.at + value_at, r.end),
            Word {
                text: String::new(),
                span: ctx.span(r.at + key_end, r.at + key_end),
            },
        ]);
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for (a, b) in words {
        let word = &s[a..b];
        let Some(eq) = word.find('=') else {
            return Err(ctx
                .error(
                    format!(
                        "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
                    ),
                    r.at + a,
                    r.at + b,
                )
                .with_hint("every word must be name=value"));
        };
        let eq = r.at + a + eq;
        out.push(ctx.word(r.at + a, eq));
        out.push(ctx.word(eq + 1, r.at + b));
        out.push(ctx.word(eq, eq + 1));
    }
    Ok(out)
}
