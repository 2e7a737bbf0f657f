//! The raw syntax tree: BuildKit's parser stage.
//!
//! Logical lines are split into a keyword, its `--flags` and its arguments,
//! and nothing is expanded. `dump` renders this tree in BuildKit's format;
//! the typed layer (`instruction`) is built from it.

use crate::span::Span;
use serde::Serialize;

/// A word of the source with where it came from. For words that span a
/// continuation, `span` covers the whole stretch of the file they came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Word {
    pub text: String,
    pub span: Span,
}

/// One heredoc opened on an instruction line (`<<EOF`, `<<-EOF`, `3<<'EOF'`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter word with quotes removed.
    pub name: String,
    /// The body, each line ending in `\n`; tabs already stripped for `<<-`.
    pub content: String,
    /// False when any part of the delimiter was quoted.
    pub expand: bool,
    /// True for `<<-`.
    pub chomp: bool,
    /// The file descriptor number written before `<<`, if any.
    pub fd: Option<u32>,
    pub span: Span,
}

/// One instruction as BuildKit's parser stage sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The keyword in lower case (`run`, `from`, ...), also for unknown ones.
    pub keyword: String,
    pub keyword_span: Span,
    /// Leading `--flag[=value]` words, quotes removed and escapes applied.
    pub flags: Vec<Word>,
    /// Arguments split the way BuildKit splits them for this keyword; for ENV
    /// and LABEL, triples of key, value and separator (`=` or empty).
    pub args: Vec<Word>,
    /// True when the arguments came from a JSON array (exec form).
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
    /// For ONBUILD: the wrapped instruction.
    pub inner: Option<Box<Node>>,
    /// The logical line after continuations were joined (escape removed).
    pub original: String,
    /// From the first character of the keyword to the end of the last line
    /// of the instruction (heredoc bodies included).
    pub span: Span,
}

/// A parser directive from the top of the file (`# escape=\``).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// Lower-case name: `syntax`, `escape` or `check`.
    pub name: String,
    pub value: String,
    pub span: Span,
}

/// A non-fatal finding, such as an empty line inside a continuation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub message: String,
    pub span: Span,
}

/// The whole file at the parser stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeTree {
    pub directives: Vec<Directive>,
    /// The escape character in force (`\\` or `` ` ``).
    pub escape: char,
    pub nodes: Vec<Node>,
    pub warnings: Vec<Warning>,
}
