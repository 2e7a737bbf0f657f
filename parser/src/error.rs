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

/// Renders an error the way a user sees it: `file:line:col`, the source
/// line, a caret under the exact place, the cause and a hint. Plain text
/// without colours, so it reads the same in a terminal, a CI log and a test.
pub fn render(err: &ParseError, file_name: &str, src: &str) -> String {
    use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource};
    let report = Report {
        message: err.message.clone(),
        hint: err.hint.clone(),
        at: (err.span.start, err.span.end.saturating_sub(err.span.start)).into(),
        // miette appends `:line:col` to the name itself.
        src: NamedSource::new(file_name, src.to_string()),
    };
    let mut out = String::new();
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .with_links(false);
    if handler.render_report(&mut out, &report).is_err() {
        // Rendering only fails on a broken span; still say what is wrong.
        out = format!(
            "{file_name}:{}:{}: {}\n",
            err.span.line, err.span.column, err.message
        );
    }
    out
}

/// The miette view of a [`ParseError`], with its source attached.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
struct Report {
    message: String,
    #[help]
    hint: Option<String>,
    #[label("here")]
    at: miette::SourceSpan,
    #[source_code]
    src: miette::NamedSource<String>,
}
