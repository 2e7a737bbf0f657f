//! The pest grammar (`dockerfile.pest`) and small typed wrappers around it.

use pest::Parser;
use pest_derive::Parser;

/// The generated pest parser for the fixed-shape parts of a line.
#[derive(Parser)]
#[grammar = "dockerfile.pest"]
pub(crate) struct LineGrammar;

/// A `# key=value` comment: byte ranges of key and value inside the line.
pub(crate) struct DirectiveMatch {
    pub key: (usize, usize),
    pub value: (usize, usize),
}

/// Matches a (left-trimmed) line against the directive shape.
pub(crate) fn directive(line: &str) -> Option<DirectiveMatch> {
    if !line.starts_with('#') || !line.contains('=') {
        return None;
    }
    let pairs = LineGrammar::parse(Rule::directive, line).ok()?;
    let mut key = None;
    let mut value = None;
    for pair in pairs.flatten() {
        let span = pair.as_span();
        match pair.as_rule() {
            Rule::directive_key => key = Some((span.start(), span.end())),
            Rule::directive_value => value = Some((span.start(), span.end())),
            _ => {}
        }
    }
    Some(DirectiveMatch {
        key: key?,
        value: value?,
    })
}

/// Leading flags of `s`: the raw byte range of each `--flag` word, and the
/// offset where the flag part ends (after the last flag, or after the bare
/// `--` that ended them; 0 when there are none).
pub(crate) fn flag_ranges(s: &str, escape: char) -> (Vec<(usize, usize)>, usize) {
    // The grammar reads the escape character from the front of its input.
    let mut input = String::with_capacity(s.len() + escape.len_utf8());
    input.push(escape);
    input.push_str(s);
    let shift = escape.len_utf8();
    let Ok(pairs) = LineGrammar::parse(Rule::flag_list, &input) else {
        return (Vec::new(), 0);
    };
    let mut ranges = Vec::new();
    let mut end = 0;
    for pair in pairs.flatten() {
        let span = pair.as_span();
        let range = (
            span.start().saturating_sub(shift),
            span.end().saturating_sub(shift),
        );
        match pair.as_rule() {
            Rule::flag_word => {
                ranges.push(range);
                end = range.1;
            }
            Rule::flag_stop => end = range.1,
            _ => {}
        }
    }
    (ranges, end)
}

/// One element of a JSON array: its byte range in the input and, for
/// strings, the decoded text.
pub(crate) struct JsonElement {
    pub range: (usize, usize),
    pub text: Option<String>,
}

/// Deeper nesting than this is not handed to the recursive grammar.
const MAX_JSON_DEPTH: usize = 64;

/// The outcome of reading a line's rest as a JSON array.
pub(crate) enum Json {
    /// Not JSON (or not an array): the caller falls back to shell form.
    Invalid,
    /// A valid array; `text` is `None` for elements that are not strings.
    Array(Vec<JsonElement>),
    /// Nested too deeply to check; treated as a valid non-string array.
    TooDeep,
}

/// Parses `s` (which the caller made sure starts with `[`) as a JSON array.
pub(crate) fn json_array(s: &str) -> Json {
    match nesting_depth(s) {
        // Unbalanced brackets can never be valid JSON.
        None => return Json::Invalid,
        Some(depth) if depth > MAX_JSON_DEPTH => return Json::TooDeep,
        Some(_) => {}
    }
    let Ok(pairs) = LineGrammar::parse(Rule::json_document, s) else {
        return Json::Invalid;
    };
    let mut out = Vec::new();
    for pair in pairs.flatten() {
        let span = pair.as_span();
        let range = (span.start(), span.end());
        match pair.as_rule() {
            Rule::json_string => {
                let inner = s.get(range.0 + 1..range.1 - 1).unwrap_or("");
                out.push(JsonElement {
                    range,
                    text: Some(decode_json_string(inner)),
                });
            }
            Rule::json_other => out.push(JsonElement { range, text: None }),
            _ => {}
        }
    }
    Json::Array(out)
}

/// Bracket depth outside strings, counted without parsing, so that the
/// recursive grammar never meets input deep enough to exhaust the stack.
/// `None` when the brackets do not balance.
fn nesting_depth(s: &str) -> Option<usize> {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for b in s.bytes() {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.checked_sub(1)?,
            _ => {}
        }
    }
    (depth == 0 && !in_str).then_some(max)
}

/// Decodes the inside of a JSON string literal the grammar has validated.
/// Lone surrogates become U+FFFD, as Go's decoder does.
fn decode_json_string(inner: &str) -> String {
    if !inner.contains('\\') {
        return inner.to_owned();
    }
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(pos) = rest.find('\\') {
        out.push_str(&rest[..pos]);
        let esc = &rest[pos + 1..];
        let Some(kind) = esc.chars().next() else {
            break;
        };
        let mut used = 1;
        match kind {
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let first = hex4(esc.get(1..5));
                used = 5;
                match first {
                    Some(hi @ 0xD800..=0xDBFF) => {
                        // A high surrogate pairs with a directly following `\uDC00..`.
                        let lo = esc
                            .get(5..7)
                            .filter(|p| *p == "\\u")
                            .and_then(|_| hex4(esc.get(7..11)))
                            .filter(|lo| (0xDC00..=0xDFFF).contains(lo));
                        match lo {
                            Some(lo) => {
                                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                                used = 11;
                            }
                            None => out.push('\u{FFFD}'),
                        }
                    }
                    Some(c) => out.push(char::from_u32(c).unwrap_or('\u{FFFD}')),
                    None => out.push('\u{FFFD}'),
                }
            }
            other => out.push(other),
        }
        rest = esc.get(used..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

fn hex4(s: Option<&str>) -> Option<u32> {
    u32::from_str_radix(s?, 16).ok()
}

/// A heredoc opener word split into its parts (byte ranges into the word).
pub(crate) struct OpenerMatch {
    pub fd: Option<u32>,
    pub chomp: bool,
    pub rest: (usize, usize),
}

/// Matches one shell word against the heredoc opener shape.
pub(crate) fn heredoc_opener(word: &str) -> Option<OpenerMatch> {
    if !word.contains("<<") {
        return None;
    }
    let pairs = LineGrammar::parse(Rule::heredoc_opener, word).ok()?;
    let mut m = OpenerMatch {
        fd: None,
        chomp: false,
        rest: (word.len(), word.len()),
    };
    for pair in pairs.flatten() {
        let span = pair.as_span();
        match pair.as_rule() {
            Rule::heredoc_fd if !span.as_str().is_empty() => {
                m.fd = span.as_str().parse().ok();
            }
            Rule::heredoc_chomp => m.chomp = true,
            Rule::heredoc_rest => m.rest = (span.start(), span.end()),
            _ => {}
        }
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_shapes() {
        let m = directive("# escape = `").map(|m| m.value);
        assert_eq!(m, Some((11, 12)));
        assert!(directive("#escape=").is_none());
        assert!(directive("# 1x=y").is_none());
    }

    #[test]
    fn json_shapes() {
        assert!(matches!(json_array("[\"a\", \"b\"]"), Json::Array(v) if v.len() == 2));
        assert!(matches!(json_array("['a']"), Json::Invalid));
        assert!(matches!(json_array("[\"a\", [\"b\"]]"), Json::Array(v) if v[1].text.is_none()));
        let deep = "[".repeat(10_000);
        assert!(matches!(json_array(&deep), Json::Invalid));
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(matches!(json_array(&deep), Json::TooDeep));
        assert_eq!(decode_json_string(r"\ud83d\ude00\u0000\/"), "😀\0/");
        assert_eq!(decode_json_string(r"\ud800x"), "\u{FFFD}x");
    }

    #[test]
    fn flag_shapes() {
        let s = r#" --a=1 --m="x y" --e=a\ b -- --not"#;
        let (r, end) = flag_ranges(s, '\\');
        let words: Vec<&str> = r.iter().map(|&(a, b)| &s[a..b]).collect();
        assert_eq!(words, vec!["--a=1", r#"--m="x y""#, r"--e=a\ b"]);
        assert_eq!(&s[end..], " --not");
        let (r, end) = flag_ranges("--a `\n b", '`');
        assert_eq!((r, end), (vec![(0, 3)], 3));
    }

    #[test]
    fn opener_shapes() {
        let m = heredoc_opener("3<<-EOF");
        assert!(matches!(
            m,
            Some(OpenerMatch {
                fd: Some(3),
                chomp: true,
                rest: (4, 7)
            })
        ));
        assert!(heredoc_opener("<<<EOF").is_none());
        assert!(heredoc_opener("a<<EOF").is_none());
    }
}
