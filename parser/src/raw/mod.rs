//! BuildKit's parser stage: text → [`NodeTree`].
//!
//! The work is split by concern: `source` indexes physical lines and turns
//! byte offsets into spans, `directives` reads the `# key=value` block at
//! the top, `logical` joins continuation lines, `args` splits a logical
//! line per instruction (with `words` for word lists and the pest grammar in
//! `grammar` for directives, flags, JSON and heredoc openers), and `heredoc`
//! reads heredoc bodies.

mod args;
mod directives;
mod grammar;
mod heredoc;
mod logical;
mod source;
mod words;

use crate::error::ParseError;
use crate::node::NodeTree;
use args::LineCtx;
use directives::DirectiveBlock;
use source::Source;

/// Parses a Dockerfile into raw nodes: directives read, comments dropped,
/// continuations joined, each instruction split into keyword, flags and
/// arguments, heredoc bodies attached. Nothing is expanded.
///
/// Errors: a repeated or invalid directive, an over-long line, an
/// `ENV`/`LABEL` without value or with a word lacking `=`, a JSON array
/// holding non-strings, an unterminated heredoc, and a file with no
/// instructions.
pub fn parse_nodes(src: &str) -> Result<NodeTree, ParseError> {
    let source = Source::new(src);
    source.check_line_lengths()?;
    let mut block = DirectiveBlock::new();
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.text.trim_start();
        let offset = line.start + (line.text.len() - trimmed.len());
        if block.observe(trimmed, offset, &source)? {
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let escape = block.escape;
        let logical = logical::join(trimmed, offset, &mut lines, escape, &source, &mut warnings);
        if logical.text.trim().is_empty() {
            // Only escape characters and blank lines: nothing to parse.
            continue;
        }
        let ctx = LineCtx {
            source: &source,
            logical: &logical,
            escape,
        };
        let mut node = args::build(&ctx, 0, logical.text.len())?;
        let node_start = node.span.start;
        if let Some(target) = heredoc::target(&mut node) {
            let (docs, end) = heredoc::collect(&ctx, &mut lines)?;
            target.heredocs = docs;
            if let Some(end) = end {
                // The instruction (and an ONBUILD's inner one) runs through
                // the last terminator line.
                target.span = source.span(target.span.start, end);
                node.span = source.span(node_start, end);
            }
        }
        nodes.push(node);
    }
    if nodes.is_empty() {
        let end = src.len();
        return Err(
            ParseError::new("file with no instructions", source.span(end, end))
                .with_hint("a Dockerfile needs at least a FROM instruction"),
        );
    }
    Ok(NodeTree {
        directives: block.directives,
        escape: block.escape,
        nodes,
        warnings,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_nodes;
    use crate::node::Node;
    use crate::span::Span;

    fn span_ok(src: &str, s: Span) -> bool {
        s.start <= s.end
            && s.end <= src.len()
            && src.is_char_boundary(s.start)
            && src.is_char_boundary(s.end)
            && s.line >= 1
            && s.column >= 1
            && s.end_line >= s.line
    }

    fn node_ok(src: &str, n: &Node) -> bool {
        span_ok(src, n.span)
            && span_ok(src, n.keyword_span)
            && n.flags.iter().chain(&n.args).all(|w| span_ok(src, w.span))
            && n.heredocs.iter().all(|h| span_ok(src, h.span))
            && n.inner.as_deref().is_none_or(|i| node_ok(src, i))
    }

    /// Random token soup: parsing never panics and every span is in bounds.
    #[test]
    fn never_panics_on_token_soup() {
        const TOKENS: &[&str] = &[
            "RUN ",
            "FROM ",
            "ONBUILD ",
            "ENV ",
            "LABEL ",
            "COPY ",
            "ADD ",
            "CMD ",
            "HEALTHCHECK ",
            "ARG ",
            "USER ",
            "\\",
            "`",
            "\n",
            "\r\n",
            " ",
            "\t",
            "#",
            "# escape=`\n",
            "# syntax=x\n",
            "<<EOF",
            "<<-'E'",
            "3<<",
            "EOF",
            "\tE",
            "[",
            "]",
            "\"",
            "'",
            ",",
            "=",
            "--",
            "--mount=",
            "a",
            "é",
            "\u{feff}",
            "{",
            "}",
            "1",
            "\\u0000",
            "\u{0}",
            "\u{a0}",
            ":",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let src: String = (0..len)
                .map(|_| TOKENS[(next() % TOKENS.len() as u64) as usize])
                .collect();
            match parse_nodes(&src) {
                Ok(tree) => {
                    for n in &tree.nodes {
                        assert!(node_ok(&src, n), "bad span for {src:?}: {n:?}");
                    }
                    let _ = crate::dump::dump(&tree);
                }
                Err(e) => assert!(span_ok(&src, e.span), "bad error span for {src:?}: {e:?}"),
            }
        }
    }

    #[test]
    fn long_line_is_rejected() {
        let src = format!("FROM a\nRUN {}\n", "x".repeat(70_000));
        let err = parse_nodes(&src).unwrap_err();
        assert_eq!(err.span.line, 2);
        assert!(err.message.contains("65535"));
        // Unbalanced deep brackets are shell form; balanced ones are a
        // nested (non-string) array; deep ONBUILD chains are refused.
        let open = format!("FROM a\nRUN {}\n", "[".repeat(30_000));
        assert!(!parse_nodes(&open).unwrap().nodes[1].json);
        let nested = format!(
            "FROM a\nRUN [{}]\n",
            "[]".repeat(20_000).replace("][", "],[")
        );
        assert!(parse_nodes(&nested).is_err());
        let balanced = format!("FROM a\nRUN {}{}\n", "[".repeat(20_000), "]".repeat(20_000));
        assert!(parse_nodes(&balanced).is_err());
        let onbuild = format!("FROM a\n{}RUN x\n", "ONBUILD ".repeat(5_000));
        assert!(parse_nodes(&onbuild).is_err());
        assert!(parse_nodes("FROM a\nONBUILD ONBUILD RUN x\n").is_ok());
    }

    /// A maximal line of tiny words stays fast (spans are not quadratic).
    #[test]
    fn many_words_on_one_line() {
        let words = "é ".repeat(21_000);
        let src = format!(
            "FROM a\nARG {words}\nEXPOSE {words}\nENV {}\n",
            "k=v ".repeat(16_000)
        );
        let started = std::time::Instant::now();
        let tree = parse_nodes(&src).unwrap();
        assert_eq!(tree.nodes[1].args.len(), 21_000);
        assert_eq!(tree.nodes[3].args.len(), 48_000);
        assert_eq!(tree.nodes[2].args[20_999].span.column, 8 + 2 * 20_999);
        assert!(
            started.elapsed().as_secs() < 5,
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn bom_keeps_byte_offsets_but_not_columns() {
        let tree = parse_nodes("\u{feff}FROM a\r\nRUN b\r\n").unwrap();
        let from = &tree.nodes[0];
        assert_eq!((from.keyword_span.column, from.keyword_span.start), (1, 3));
        assert_eq!(tree.nodes[1].args[0].text, "b");
        assert_eq!(tree.nodes[1].span.start, 11);
    }

    #[test]
    fn spans_map_through_continuations() {
        let src = "FROM a\nRUN echo \\\n  wörld \\\n  x\n";
        let tree = parse_nodes(src).unwrap();
        let run = &tree.nodes[1];
        assert_eq!(run.args[0].text, "echo   wörld   x");
        assert_eq!((run.span.line, run.span.end_line), (2, 4));
        assert_eq!(
            &src[run.args[0].span.start..run.args[0].span.end],
            "echo \\\n  wörld \\\n  x"
        );
        let tree = parse_nodes("FROM a\nENV k=v \\\n  k2=\"w x\"\n").unwrap();
        let v2 = &tree.nodes[1].args[4];
        assert_eq!(v2.text, "\"w x\"");
        assert_eq!((v2.span.line, v2.span.column), (3, 6));
    }
}
