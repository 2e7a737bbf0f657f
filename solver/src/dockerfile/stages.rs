//! Stages and targets: `--from`/`FROM` names resolved to stages,
//! `--target`, `oci-layout://` references and `--build-context` values, and
//! the numbering of a stage's steps (`[stage k/n]`) into vertex origins.

use std::path::PathBuf;

use strata_parser::{Instruction, InstructionKind, Span};

use super::metadata::StageConfig;
use super::scope::StageScope;
use crate::graph::{ImageSource, Origin, SourceSpan, VertexId};

/// A reference that cannot be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RefError {
    /// `oci-layout://` must be followed by an absolute path.
    #[error(
        "invalid oci-layout reference {0:?}: expected oci-layout:///absolute/path[:tag|@digest]"
    )]
    Layout(String),
    /// `--build-context` is `NAME=VALUE`.
    #[error("invalid --build-context {0:?}: expected NAME=oci-layout:///path[:tag]")]
    BuildContext(String),
    /// `--target` names no stage.
    #[error("target stage {0:?} could not be found")]
    UnknownTarget(String),
}

/// Parses `oci-layout:///path[:tag|@sha256:...]`; `None` when `s` is not an
/// oci-layout reference at all. The tag defaults to `latest`.
pub fn parse_oci_layout(s: &str) -> Option<Result<ImageSource, RefError>> {
    let rest = s.strip_prefix("oci-layout://")?;
    let bad = || RefError::Layout(s.to_string());
    let (path, reference) = if let Some((p, d)) = rest.split_once('@') {
        (p, d.to_string())
    } else {
        match rest.rsplit_once(':') {
            // A ':' inside the path (before a '/') is not a tag separator.
            Some((p, t)) if !t.contains('/') && !t.is_empty() => (p, t.to_string()),
            _ => (rest, "latest".to_string()),
        }
    };
    if !path.starts_with('/') || reference.is_empty() {
        return Some(Err(bad()));
    }
    Some(Ok(ImageSource::Layout {
        path: PathBuf::from(path),
        reference,
    }))
}

/// One `--build-context NAME=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedContext {
    /// The name it replaces in FROM and `--from` (compared case-insensitively).
    pub name: String,
    /// The image it stands for.
    pub source: ImageSource,
}

/// Parses `NAME=oci-layout:///path[:tag]` (the only kind supported so far).
pub fn parse_build_context(s: &str) -> Result<NamedContext, RefError> {
    let (name, value) = s
        .split_once('=')
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| RefError::BuildContext(s.to_string()))?;
    let source = parse_oci_layout(value).ok_or_else(|| RefError::BuildContext(s.to_string()))??;
    Ok(NamedContext {
        name: name.to_string(),
        source,
    })
}

/// Resolves a `--from`/`FROM` word to an earlier stage: by name
/// (case-insensitive), or for `--from` by number. `names[i]` is stage i's
/// name; only stages before `current` count (a stage cannot use itself or a
/// later one).
pub fn resolve_stage(
    names: &[Option<String>],
    current: usize,
    word: &str,
    allow_index: bool,
) -> Option<usize> {
    let earlier = &names[..current.min(names.len())];
    if let Some(i) = earlier
        .iter()
        .position(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(word)))
    {
        return Some(i);
    }
    if allow_index && let Ok(i) = word.parse::<usize>() {
        return (i < earlier.len()).then_some(i);
    }
    None
}

/// The index of the `--target` stage (the last stage when `None`).
pub fn target_stage(names: &[Option<String>], target: Option<&str>) -> Result<usize, RefError> {
    match target {
        None => names
            .len()
            .checked_sub(1)
            .ok_or_else(|| RefError::UnknownTarget(String::new())),
        Some(t) => names
            .iter()
            .position(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t)))
            .ok_or_else(|| RefError::UnknownTarget(t.to_string())),
    }
}

/// A stage being lowered: its last vertex, its scope and config, and the
/// numbering of its steps.
pub(super) struct StageState {
    /// Its last vertex so far.
    pub last: VertexId,
    pub scope: StageScope,
    pub config: StageConfig,
    label: String,
    index: usize,
    step: usize,
    steps: usize,
}

impl StageState {
    /// A stage whose step 1 (FROM) is `last`; `steps` counts them all.
    pub fn new(
        last: VertexId,
        scope: StageScope,
        config: StageConfig,
        (label, index): (String, usize),
        steps: usize,
    ) -> Self {
        StageState {
            last,
            scope,
            config,
            label,
            index,
            step: 2,
            steps,
        }
    }

    /// The origin of the next step, e.g. `[build 2/4] RUN make`.
    pub fn next_origin(&mut self, instruction: String, span: Span) -> Origin {
        let o = origin(
            &self.label,
            self.index,
            (self.step, self.steps),
            instruction,
            span,
        );
        self.step += 1;
        o
    }
}

/// A step's origin; `step` is (k, n).
pub(super) fn origin(
    label: &str,
    index: usize,
    step: (usize, usize),
    instruction: String,
    span: Span,
) -> Origin {
    Origin {
        stage: label.to_string(),
        stage_index: index,
        step: step.0,
        steps: step.1,
        instruction,
        span: SourceSpan {
            line: span.line,
            column: span.column,
            start: span.start,
            end: span.end,
        },
    }
}

/// Instructions that add a vertex (a step in progress output).
pub(super) fn makes_vertex(ins: &Instruction) -> bool {
    matches!(
        ins.kind,
        InstructionKind::Run { .. }
            | InstructionKind::Copy(_)
            | InstructionKind::Add(..)
            | InstructionKind::Workdir(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_layout_refs() {
        let l = |p: &str, r: &str| {
            Some(Ok(ImageSource::Layout {
                path: PathBuf::from(p),
                reference: r.into(),
            }))
        };
        assert_eq!(parse_oci_layout("oci-layout:///img:v1"), l("/img", "v1"));
        assert_eq!(
            parse_oci_layout("oci-layout:///a/img"),
            l("/a/img", "latest")
        );
        assert_eq!(
            parse_oci_layout("oci-layout:///img@sha256:ab"),
            l("/img", "sha256:ab")
        );
        assert!(matches!(parse_oci_layout("oci-layout://rel"), Some(Err(_))));
        assert_eq!(parse_oci_layout("busybox"), None);
    }

    #[test]
    fn build_contexts() {
        let c = parse_build_context("busybox=oci-layout:///l:bb");
        assert_eq!(c.as_ref().map(|c| c.name.as_str()), Ok("busybox"));
        assert!(parse_build_context("busybox").is_err());
        assert!(parse_build_context("x=docker-image://alpine").is_err());
    }

    #[test]
    fn stage_resolution_and_targets() {
        let names = vec![Some("Base".to_string()), None, Some("final".to_string())];
        assert_eq!(resolve_stage(&names, 2, "base", false), Some(0));
        assert_eq!(resolve_stage(&names, 2, "1", true), Some(1));
        assert_eq!(resolve_stage(&names, 2, "1", false), None);
        assert_eq!(
            resolve_stage(&names, 1, "final", false),
            None,
            "later stage"
        );
        assert_eq!(target_stage(&names, None), Ok(2));
        assert_eq!(target_stage(&names, Some("BASE")), Ok(0));
        assert!(target_stage(&names, Some("nope")).is_err());
    }
}
