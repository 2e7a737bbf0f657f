//! Why a Dockerfile cannot be lowered; each error names the line.

use strata_parser::Span;
use strata_parser::shell::ExpandError;

use super::entitlements::Entitlement;
use super::scope::ScopeTooLarge;
use super::stages::RefError;
use crate::graph::GraphError;
use crate::sources::ImageError;

/// Why a Dockerfile cannot be lowered; each names the line.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    /// Variable expansion failed.
    #[error("line {line}: {source}")]
    Expand {
        /// 1-based line.
        line: u32,
        /// The instruction whose word failed.
        span: Span,
        /// What failed.
        #[source]
        source: ExpandError,
    },
    /// An ARG or ENV would make its scope's variables too large.
    #[error("line {line}: {source}")]
    ScopeTooLarge {
        /// 1-based line.
        line: u32,
        /// The ARG or ENV instruction.
        span: Span,
        /// The limit.
        #[source]
        source: ScopeTooLarge,
    },
    /// A reference (`--target`, `oci-layout://`) is invalid.
    #[error("line {line}: {source}")]
    Ref {
        /// 1-based line (0 for command-line options).
        line: u32,
        /// What failed.
        #[source]
        source: RefError,
    },
    /// A value is invalid (chmod, ...).
    #[error("line {line}: {message}")]
    Invalid {
        /// 1-based line.
        line: u32,
        /// One sentence.
        message: String,
    },
    /// An instruction feature strata does not support yet.
    #[error("line {line}: {what} is not supported yet")]
    Unsupported {
        /// 1-based line.
        line: u32,
        /// The feature.
        what: String,
    },
    /// A base image cannot be found or read.
    #[error("line {line}: {reference}: {source}")]
    Image {
        /// 1-based line.
        line: u32,
        /// The image as named.
        reference: String,
        /// Why (boxed: it is large, and rare).
        #[source]
        source: Box<ImageError>,
    },
    /// An ONBUILD trigger of the base image does not parse.
    #[error("line {line}: ONBUILD trigger `{trigger}` of the base image: {message}")]
    Trigger {
        /// The FROM line.
        line: u32,
        /// The trigger as stored in the image.
        trigger: String,
        /// The parser's message.
        message: String,
    },
    /// A RUN flag (or the build's `--network=host`) needs an entitlement the build was not
    /// given: nothing runs.
    #[error("{}{what} needs the {entitlement} entitlement: add --allow {entitlement}", line_prefix(*.line))]
    NotEntitled {
        /// 1-based line of the RUN; 0 for the build's own flags.
        line: u32,
        /// The flag in the RUN instruction.
        span: Option<Span>,
        /// The flag as written (`RUN --network=host`, `--network=host`).
        what: String,
        /// What `--allow` must name.
        entitlement: Entitlement,
    },
    /// The Dockerfile has no stage.
    #[error("the Dockerfile has no FROM instruction")]
    NoStage,
    /// Internal graph error.
    #[error(transparent)]
    Graph(#[from] GraphError),
}

impl LowerError {
    /// Whether the environment is at fault (a registry unreachable or
    /// refusing the credentials) rather than the Dockerfile or its images.
    pub fn is_environment(&self) -> bool {
        matches!(self, LowerError::Image { source, .. } if source.is_environment())
    }

    /// Where in the Dockerfile the error points, for errors a caret can
    /// show, with the message to show there.
    pub fn at(&self) -> Option<(Span, String)> {
        match self {
            LowerError::Expand { span, source, .. } => Some((*span, source.to_string())),
            LowerError::ScopeTooLarge { span, source, .. } => Some((*span, source.to_string())),
            LowerError::NotEntitled {
                span: Some(span),
                what,
                entitlement,
                ..
            } => Some((
                *span,
                format!("{what} needs the {entitlement} entitlement: add --allow {entitlement}"),
            )),
            _ => None,
        }
    }
}

/// `line N: `, or nothing for the build's own flags (line 0).
fn line_prefix(line: u32) -> String {
    if line == 0 {
        String::new()
    } else {
        format!("line {line}: ")
    }
}

/// Refuses an instruction feature strata does not support yet.
pub(super) fn unsupported<T>(line: u32, what: &str) -> Result<T, LowerError> {
    Err(LowerError::Unsupported {
        line,
        what: what.to_string(),
    })
}
