//! Parse errors: values with a span, rendered by `render` (miette) for users.

use crate::span::Span;

/// A Dockerfile mistake: where it is, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// One sentence of cause, e.g. `unknown instruction: RUNN`.
    pub message: String,
    /// The exact place the caret points at.
    pub span: Span,
    /// A hint where one helps, e.g. `did you mean RUN?`.
    pub hint: Option<String>,
}

impl ParseError {
    pub fn new(message: impl Into<String>, span: Span) -> Self {
        ParseError {
            message: message.into(),
            span,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}
