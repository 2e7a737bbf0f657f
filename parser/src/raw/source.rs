//! The original text: physical lines, and byte offsets turned into spans.

use crate::error::ParseError;
use crate::span::Span;
use std::cell::Cell;

/// BuildKit reads lines with a 64 KiB buffer; longer lines are an error.
pub(crate) const MAX_LINE_BYTES: usize = 65_535;

/// The file being parsed, with an index of where each physical line starts.
pub(crate) struct Source<'a> {
    pub text: &'a str,
    /// Byte offset of the first byte of every physical line.
    line_starts: Vec<usize>,
    /// Length of a leading UTF-8 byte-order mark (0 or 3).
    bom: usize,
    /// The last column computed, as `(line index, offset, column)`. Spans
    /// are mostly asked for left to right, so counting characters from
    /// there keeps a line with thousands of words linear, not quadratic.
    last_column: Cell<(usize, usize, u32)>,
}

impl<'a> Source<'a> {
    pub fn new(text: &'a str) -> Self {
        let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
        let mut line_starts = Vec::with_capacity(text.len() / 40 + 1);
        line_starts.push(0);
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Source {
            text,
            line_starts,
            bom,
            last_column: Cell::new((usize::MAX, 0, 1)),
        }
    }

    /// Rejects a physical line longer than BuildKit's limit.
    pub fn check_line_lengths(&self) -> Result<(), ParseError> {
        let len = self.text.len();
        for (i, &start) in self.line_starts.iter().enumerate() {
            let end = self
                .line_starts
                .get(i + 1)
                .map_or(len, |next| next.saturating_sub(1));
            if end.saturating_sub(start) > MAX_LINE_BYTES {
                return Err(ParseError::new(
                    format!("dockerfile line greater than max allowed size of {MAX_LINE_BYTES}"),
                    self.span(start, end),
                ));
            }
        }
        Ok(())
    }

    /// The physical lines, first to last.
    pub fn lines(&self) -> Lines<'a> {
        Lines {
            text: self.text,
            pos: 0,
            no: 0,
            bom: self.bom,
        }
    }

    fn line_index(&self, off: usize) -> usize {
        self.line_starts
            .partition_point(|&s| s <= off)
            .saturating_sub(1)
    }

    fn column(&self, line_idx: usize, off: usize) -> u32 {
        let mut start = self.line_starts.get(line_idx).copied().unwrap_or(0);
        if line_idx == 0 {
            start = start.max(self.bom).min(off);
        }
        let (cached_line, cached_off, cached_col) = self.last_column.get();
        let (from, base) = if cached_line == line_idx && (start..=off).contains(&cached_off) {
            (cached_off, cached_col)
        } else {
            (start, 1)
        };
        let count = self.text.get(from..off).map_or(0, |s| s.chars().count());
        let column = base.saturating_add(to_u32(count));
        self.last_column.set((line_idx, off, column));
        column
    }

    /// The span of the byte range `start..end` of the original text.
    pub fn span(&self, start: usize, end: usize) -> Span {
        let end = end.max(start);
        let line = self.line_index(start);
        let end_line = if end > start {
            self.line_index(end - 1)
        } else {
            line
        };
        Span {
            line: to_u32(line + 1),
            column: self.column(line, start),
            end_line: to_u32(end_line + 1),
            start,
            end,
        }
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One physical line.
#[derive(Clone, Copy)]
pub(crate) struct Line<'a> {
    /// Byte offset of `text` in the file.
    pub start: usize,
    /// The line without its `\n`, trailing `\r`s, or (line 1) the BOM.
    pub text: &'a str,
    /// The line with its line ending, as heredoc bodies keep it.
    pub raw: &'a str,
}

impl Line<'_> {
    /// Offset just past the line's content (before the line ending).
    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }
}

/// Iterator over physical lines; a final line without `\n` counts.
pub(crate) struct Lines<'a> {
    text: &'a str,
    pos: usize,
    no: u32,
    bom: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        let rest = self.text.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let (mut raw, next) = match rest.find('\n') {
            Some(i) => (&rest[..=i], self.pos + i + 1),
            None => (rest, self.text.len()),
        };
        let mut start = self.pos;
        if self.no == 0 && self.bom > 0 {
            raw = raw.get(self.bom..).unwrap_or("");
            start += self.bom;
        }
        let text = raw.trim_end_matches(['\n', '\r']);
        self.pos = next;
        self.no = self.no.saturating_add(1);
        Some(Line { start, text, raw })
    }
}
