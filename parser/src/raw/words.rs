//! Word scanners over a line: quote-aware words (ARG, ENV, LABEL, heredoc
//! detection), leading `--flags`, and plain whitespace splitting.
//!
//! Scanners return byte ranges into their input, so callers can both slice
//! the text and map the range back to the file.

use super::grammar;

/// The separators BuildKit splits plain word lists on (`[\t\v\f\r ]`).
pub(crate) fn is_split_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{0B}' | '\u{0C}' | '\r')
}

/// Words separated by runs of `[\t\v\f\r ]`, no quote handling.
pub(crate) fn split_whitespace(s: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (is_split_space(c), start) {
            (true, Some(st)) => {
                out.push((st, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(st) = start {
        out.push((st, s.len()));
    }
    out
}

/// Words separated by unquoted, unescaped whitespace; quotes and escapes
/// stay in the words. An escape character at the very end is dropped.
pub(crate) fn quoted_words(s: &str, escape: char) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    // Start of the current word, its end so far, and whether it may be
    // empty (it held quotes).
    let mut word: Option<(usize, usize, bool)> = None;
    let mut quote: Option<char> = None;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        let after = i + c.len_utf8();
        match quote {
            None if c.is_whitespace() => {
                if let Some((st, end, blank_ok)) = word.take()
                    && (blank_ok || end > st)
                {
                    out.push((st, end));
                }
            }
            None => {
                let w = word.get_or_insert((i, i, false));
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    *w = (w.0, after, true);
                } else if c == escape {
                    // The escape and the character it protects both stay.
                    if let Some((j, d)) = chars.next() {
                        w.1 = j + d.len_utf8();
                    }
                } else {
                    w.1 = after;
                }
            }
            Some(q) => {
                let w = word.get_or_insert((i, i, true));
                if c == q {
                    quote = None;
                    w.1 = after;
                } else if c == escape && q != '\'' {
                    match chars.next() {
                        Some((j, d)) => w.1 = j + d.len_utf8(),
                        None => quote = None,
                    }
                } else {
                    w.1 = after;
                }
            }
        }
    }
    if let Some((st, end, blank_ok)) = word
        && (blank_ok || end > st)
    {
        out.push((st, end));
    }
    out
}

/// One leading flag: its raw range and its text with quotes and escapes
/// removed.
pub(crate) struct Flag {
    pub range: (usize, usize),
    pub text: String,
}

/// Reads the leading `--flag` words of `s` (their boundaries come from the
/// pest grammar). Returns them and the offset where the arguments start.
/// A bare `--` ends the flags and is dropped.
pub(crate) fn leading_flags(s: &str, escape: char) -> (Vec<Flag>, usize) {
    let trimmed = s.trim_start();
    if !trimmed.starts_with("--") {
        // The common case: no flags, no grammar run.
        return (Vec::new(), s.len() - trimmed.len());
    }
    let (ranges, end) = grammar::flag_ranges(s, escape);
    let flags = ranges
        .into_iter()
        .filter_map(|(a, b)| {
            let text = unquote_flag(s.get(a..b)?, escape);
            (!text.is_empty()).then_some(Flag {
                range: (a, b),
                text,
            })
        })
        .collect();
    (flags, end)
}

/// A flag word's text: quotes removed, and an escape character replaced by
/// the character it protects (a trailing one is dropped).
fn unquote_flag(word: &str, escape: char) -> String {
    let mut text = String::with_capacity(word.len());
    let mut quote: Option<char> = None;
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match quote {
            None if c == '\'' || c == '"' => quote = Some(c),
            Some(q) if c == q => quote = None,
            _ if c == escape => {
                if let Some(d) = chars.next() {
                    text.push(d);
                }
            }
            _ => text.push(c),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'a>(s: &'a str, r: &[(usize, usize)]) -> Vec<&'a str> {
        r.iter().map(|&(a, b)| &s[a..b]).collect()
    }

    #[test]
    fn quoted() {
        let s = r#"abc="123 456" def x\ y '' z\"#;
        assert_eq!(
            texts(s, &quoted_words(s, '\\')),
            vec![r#"abc="123 456""#, "def", r"x\ y", "''", "z"]
        );
    }

    #[test]
    fn flags() {
        let (f, at) = leading_flags(r#"--a=1 --mount="type=cache" -- x"#, '\\');
        let t: Vec<_> = f.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(t, vec!["--a=1", "--mount=type=cache"]);
        assert_eq!(at, 29);
        let (f, at) = leading_flags("foo bar", '\\');
        assert!(f.is_empty());
        assert_eq!(at, 0);
    }

    #[test]
    fn plain() {
        let s = "a \t b\u{0B}c";
        assert_eq!(texts(s, &split_whitespace(s)), vec!["a", "b", "c"]);
    }
}
