//! FROM and the images `--from` names: a stage starts from an earlier
//! stage, from scratch or from a base image (a named `--build-context`,
//! `oci-layout://` or the store), and the base's ONBUILD triggers run first.

use strata_parser::{Instruction, Stage};

use super::error::LowerError;
use super::metadata::StageConfig;
use super::scope::StageScope;
use super::stages::{self, StageState, makes_vertex, origin};
use super::{Done, Lowerer};
use crate::graph::{ImageSource, Op, SourceImageOp, VertexId};
use crate::image_config::ImageConfig;

/// How a stage begins.
enum BaseVertex {
    /// From an earlier stage's last vertex.
    Stage(VertexId),
    /// From nothing.
    Scratch,
    /// From an image (its source op).
    Image(Box<Op>),
}

/// Parses an ONBUILD trigger stored in a base image's config.
fn parse_trigger(trigger: &str, line: u32) -> Result<Instruction, LowerError> {
    let invalid = |message: String| LowerError::Trigger {
        line,
        trigger: trigger.to_string(),
        message,
    };
    let df = strata_parser::parse(&format!("FROM scratch\n{trigger}\n"))
        .map_err(|e| invalid(e.to_string()))?;
    df.stages
        .into_iter()
        .next()
        .and_then(|s| s.instructions.into_iter().next())
        .ok_or_else(|| invalid("it is empty".into()))
}

impl Lowerer<'_> {
    /// A base image named by FROM or `--from`: resolved through
    /// [`super::LowerOptions::images`] when there is a resolver (its digest
    /// goes into the op, its config starts the stage), else left by name with
    /// an empty config.
    pub(super) fn source_image(
        &mut self,
        reference: &str,
        line: u32,
    ) -> Result<(Op, ImageConfig), LowerError> {
        let source = self.image_source(reference, line)?;
        let (digest, config) = match &self.opts.images {
            None => (None, ImageConfig::default()),
            Some(images) => {
                let r = images
                    .resolve(&source)
                    .map_err(|source| LowerError::Image {
                        line,
                        reference: reference.to_string(),
                        source: Box::new(source),
                    })?;
                (Some(r.digest), r.config)
            }
        };
        Ok((Op::SourceImage(SourceImageOp { source, digest }), config))
    }

    pub(super) fn named_context(&self, name: &str) -> Option<ImageSource> {
        self.opts
            .build_contexts
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
            .map(|c| c.source.clone())
    }

    /// An image reference as a source: a named context, `oci-layout://`, or the store.
    fn image_source(&self, reference: &str, line: u32) -> Result<ImageSource, LowerError> {
        if let Some(src) = self.named_context(reference) {
            return Ok(src);
        }
        match stages::parse_oci_layout(reference) {
            Some(r) => r.map_err(|source| LowerError::Ref { line, source }),
            None => Ok(ImageSource::Store {
                reference: reference.to_string(),
            }),
        }
    }

    /// Lowers stage `index`: its base, its base's ONBUILD triggers, then its
    /// instructions.
    pub(super) fn stage(&mut self, index: usize, stage: &Stage) -> Result<Done, LowerError> {
        let label = stage
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{index}"));
        let line = stage.span.line;
        self.at = stage.span;
        let base = self.expand(&self.globals, &stage.base, line)?;
        let (base_vertex, mut config) = if self.named_context(&base).is_none()
            && let Some(i) = stages::resolve_stage(&self.names, index, &base, false)
            && let Some(d) = self.done.get(i)
        {
            (
                BaseVertex::Stage(d.last),
                StageConfig::from_base(d.config.config.clone()),
            )
        } else if base.eq_ignore_ascii_case("scratch") {
            (
                BaseVertex::Scratch,
                StageConfig::from_base(ImageConfig::default()),
            )
        } else {
            let (op, config) = self.source_image(&base, line)?;
            (
                BaseVertex::Image(Box::new(op)),
                StageConfig::from_base(config),
            )
        };
        // The base's ONBUILD triggers run first, in this stage; the new image
        // starts with no triggers of its own (Docker's rule).
        let triggers: Vec<(String, Instruction)> = std::mem::take(&mut config.config.on_build)
            .into_iter()
            .map(|t| parse_trigger(&t, line).map(|ins| (t, ins)))
            .collect::<Result<_, _>>()?;
        let steps = 1 + triggers
            .iter()
            .map(|(_, i)| i)
            .chain(&stage.instructions)
            .filter(|i| makes_vertex(i))
            .count();
        let from = origin(&label, index, (1, steps), self.text(stage.span), stage.span);
        let last = match base_vertex {
            BaseVertex::Stage(v) => v,
            BaseVertex::Scratch => self.graph.add_step(Op::SourceScratch, from, vec![])?,
            BaseVertex::Image(op) => self.graph.add_step(*op, from, vec![])?,
        };
        let scope = StageScope::new(&self.opts.build_args, &config.config.env);
        let mut st = StageState::new(last, scope, config, (label, index), steps);
        for (text, ins) in &triggers {
            self.instruction(&mut st, ins, text.clone(), stage.span)?;
        }
        for ins in &stage.instructions {
            let text = self.text(ins.span);
            self.instruction(&mut st, ins, text, ins.span)?;
        }
        Ok(Done {
            last: st.last,
            config: st.config,
        })
    }
}
