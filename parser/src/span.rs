//! Source positions.

use serde::Serialize;

/// A place in the Dockerfile: 1-based line and column (columns count
/// characters) of the first byte, the 1-based last line, and the byte range
/// in the original text (BOM included, so it can be handed to miette as is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    pub line: u32,
    pub column: u32,
    pub end_line: u32,
    pub start: usize,
    pub end: usize,
}
