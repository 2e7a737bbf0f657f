//! A failed step shown the way a parse error is: the Dockerfile with a
//! caret under the step's instruction, the cause (with the exit code), and
//! the step's last lines of output.

use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};
use strata_solver::{OpError, StepFailure};

/// The miette view of a failed step.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
struct StepReport {
    message: String,
    #[help]
    output: Option<String>,
    #[label("{label}")]
    at: SourceSpan,
    label: String,
    #[source_code]
    src: NamedSource<String>,
}

/// The failed step as a diagnostic over `src` (the Dockerfile, named
/// `file_name`); `None` for a step with no place in the Dockerfile.
pub fn render_step_failure(step: &StepFailure, file_name: &str, src: &str) -> Option<String> {
    let origin = step.origin.as_ref()?;
    let span = origin.span;
    let label = match &step.error {
        OpError::ExitCode { code } => format!("exit code {code}"),
        _ => "this step failed".to_string(),
    };
    let output = (!step.last_lines.is_empty()).then(|| {
        let lines: Vec<String> = step.last_lines.iter().map(|l| format!("> {l}")).collect();
        format!("last lines of output:\n{}", lines.join("\n"))
    });
    let report = StepReport {
        message: format!("step {} failed: {}", step.name, step.error),
        output,
        at: (span.start, span.end.saturating_sub(span.start)).into(),
        label,
        src: NamedSource::new(file_name, src.to_string()),
    };
    let mut out = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .with_links(false)
        // The step's own lines only: the next one never ran.
        .with_context_lines(0)
        .render_report(&mut out, &report)
        .ok()?;
    Some(out)
}
