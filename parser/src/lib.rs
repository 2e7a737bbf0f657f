//! strata-parser: Dockerfile text → syntax tree. Pure: no I/O.
//!
//! Two layers, as in BuildKit: [`parse_nodes`] splits the text into raw
//! [`Node`]s (keyword, flags, arguments, heredocs, spans; nothing expanded),
//! which [`dump`] renders in BuildKit's test format; [`parse`] validates those
//! nodes into a typed [`Dockerfile`]. Shell-word expansion lives in [`shell`]
//! and is called later by the solver with the scope it knows.

pub mod dump;
pub mod error;
pub mod instruction;
pub mod node;
pub mod raw;
pub mod shell;
pub mod span;
mod typed;

pub use dump::dump;
pub use error::{ParseError, render};
pub use instruction::*;
pub use node::{Directive, Heredoc, Node, NodeTree, Warning, Word};
pub use raw::parse_nodes;
pub use span::Span;
pub use typed::parse;
