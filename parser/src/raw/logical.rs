//! Logical lines: physical lines joined at continuations, with a map from
//! positions in the joined text back to byte offsets in the file.

use super::source::{Lines, Source};
use crate::node::Warning;

/// An instruction's text after continuations were joined.
pub(crate) struct Logical {
    pub text: String,
    /// Pieces of `text`, each `(offset in text, offset in file)`; every piece
    /// is a contiguous stretch of the file.
    segments: Vec<(usize, usize)>,
    /// File offset of the first character.
    pub start: usize,
    /// File offset just past the last line that contributed text.
    pub end: usize,
}

impl Logical {
    fn push(&mut self, piece: &str, file_offset: usize) {
        if piece.is_empty() {
            return;
        }
        self.segments.push((self.text.len(), file_offset));
        self.text.push_str(piece);
    }

    fn segment_at(&self, pos: usize) -> Option<(usize, usize)> {
        let i = self
            .segments
            .partition_point(|s| s.0 <= pos)
            .checked_sub(1)?;
        self.segments.get(i).copied()
    }

    /// File offsets of the range `a..b` of the joined text.
    pub fn file_range(&self, a: usize, b: usize) -> (usize, usize) {
        let start = match self.segment_at(a) {
            Some((j, f)) => f + (a - j),
            None => self.start,
        };
        if b <= a {
            return (start, start);
        }
        // The segment holding the last byte tells where the range ends.
        let end = match self.segment_at(b - 1) {
            Some((j, f)) => f + (b - j),
            None => start,
        };
        (start, end.max(start))
    }
}

/// If `line` continues on the next line, the length of the part to keep:
/// it ends with the escape character (then optional spaces or tabs) that is
/// not itself escaped. A line holding only the escape character keeps
/// nothing.
pub(crate) fn continuation(line: &str, escape: char) -> Option<usize> {
    let body = line.trim_end_matches([' ', '\t']).strip_suffix(escape)?;
    if body.ends_with(escape) {
        return None;
    }
    Some(body.len())
}

/// Whether a line is a comment (first non-blank character `#`).
pub(crate) fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Joins the instruction starting at `first` (whose leading whitespace is
/// already gone: `text` starts at `offset`) with its continuation lines.
/// Comment lines inside the continuation are skipped, and so are blank
/// ones, which give a warning.
pub(crate) fn join(
    first: &str,
    offset: usize,
    lines: &mut Lines<'_>,
    escape: char,
    source: &Source<'_>,
    warnings: &mut Vec<Warning>,
) -> Logical {
    let mut logical = Logical {
        text: String::with_capacity(first.len()),
        segments: Vec::with_capacity(1),
        start: offset,
        end: offset + first.len(),
    };
    let mut cont = continuation(first, escape);
    logical.push(&first[..cont.unwrap_or(first.len())], offset);
    let mut warned = false;
    while cont.is_some() {
        let Some(line) = lines.next() else { break };
        if is_comment(line.text) {
            continue;
        }
        if line.text.trim_start().is_empty() {
            if !warned {
                warned = true;
                warnings.push(Warning {
                    message: "empty continuation line".to_owned(),
                    span: source.span(line.start, line.end()),
                });
            }
            continue;
        }
        cont = continuation(line.text, escape);
        logical.push(&line.text[..cont.unwrap_or(line.text.len())], line.start);
        logical.end = line.end();
    }
    logical
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_rules() {
        assert_eq!(continuation("a \\", '\\'), Some(2));
        assert_eq!(continuation("a \\ \t", '\\'), Some(2));
        assert_eq!(continuation("\\", '\\'), Some(0));
        assert_eq!(continuation("a\\\\", '\\'), None);
        assert_eq!(continuation("a`", '`'), Some(1));
        assert_eq!(continuation("a\\", '`'), None);
    }
}
