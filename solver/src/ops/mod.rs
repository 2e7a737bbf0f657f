//! What vertices do to filesystems.
//!
//! [`FileExecutor`] runs the ops that need no sandbox and no image store:
//! scratch, COPY (from the context or from another vertex) and WORKDIR's
//! mkdir, each into a new layer directory. Exec and image sources are
//! reported as unsupported until the sandbox and cache crates provide their
//! parts; the scheduler and these ops are already wired together.

pub mod copy;
pub mod user;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::graph::{CopySource, EdgeRole, Op};
use crate::schedule::{Executor, Job, OpError};
use strata_cache::DockerIgnore;

/// A filesystem as a stack of layer directories, bottom first.
pub type LayerStack = Arc<Vec<PathBuf>>;

/// Runs file ops into layer directories under `layers_root`, one per vertex
/// (named by its cache key), copying context files from `context_root`.
#[derive(Debug, Clone)]
pub struct FileExecutor {
    layers_root: PathBuf,
    context_root: PathBuf,
    ignore: DockerIgnore,
}

impl FileExecutor {
    /// Layers go under `layers_root`; COPY sources are read from `context_root`.
    pub fn new(layers_root: impl Into<PathBuf>, context_root: impl Into<PathBuf>) -> Self {
        FileExecutor {
            layers_root: layers_root.into(),
            context_root: context_root.into(),
            ignore: DockerIgnore::default(),
        }
    }

    /// Applies the context's `.dockerignore` to COPY and ADD sources.
    pub fn with_ignore(mut self, ignore: DockerIgnore) -> Self {
        self.ignore = ignore;
        self
    }

    fn new_layer(&self, job: &Job<LayerStack>) -> Result<PathBuf, OpError> {
        // The vertex id keeps two vertices with equal keys (identical steps in
        // two stages) from sharing one directory while both run.
        let name = match job.vertex.key {
            Some(k) => format!("{}-{}", job.id, k.to_hex()),
            None => format!("{}", job.id),
        };
        let dir = self.layers_root.join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| {
                OpError::Failed(format!("cannot clear layer {}: {e}", dir.display()))
            })?;
        }
        fs::create_dir_all(&dir)
            .map_err(|e| OpError::Failed(format!("cannot create layer {}: {e}", dir.display())))?;
        Ok(dir)
    }
}

/// The topmost layer of `stack` holding `rel`, if any.
fn find_in_stack<'a>(stack: &'a [PathBuf], rel: &str) -> Option<&'a Path> {
    let rel = rel.trim_start_matches('/');
    stack
        .iter()
        .rev()
        .map(PathBuf::as_path)
        .find(|layer| fs::symlink_metadata(layer.join(rel)).is_ok())
}

fn with_layer(parent: &LayerStack, layer: PathBuf) -> LayerStack {
    let mut stack = parent.as_ref().clone();
    stack.push(layer);
    Arc::new(stack)
}

impl Executor for FileExecutor {
    type Output = LayerStack;

    fn execute(&self, job: Job<LayerStack>) -> Result<LayerStack, OpError> {
        let input = |role: EdgeRole| {
            job.vertex
                .inputs
                .iter()
                .zip(&job.inputs)
                .find(|(i, _)| i.role == role)
                .map(|(_, out)| out.clone())
                .unwrap_or_default()
        };
        match &job.vertex.op {
            Op::SourceScratch => Ok(Arc::default()),
            Op::SourceImage(_) => Err(OpError::Unavailable(
                "image sources need the cache crate's unpack, which is not available yet".into(),
            )),
            Op::Exec(_) => Err(OpError::Unavailable(
                "RUN needs the sandbox crate, which is not available yet".into(),
            )),
            Op::Mkdir(m) => {
                let parent = input(EdgeRole::Parent);
                let layer = self.new_layer(&job)?;
                let target = layer.join(m.path.trim_start_matches('/'));
                fs::create_dir_all(&target).map_err(|e| {
                    OpError::Failed(format!("cannot create directory {}: {e}", m.path))
                })?;
                Ok(with_layer(&parent, layer))
            }
            Op::Copy(c) => {
                let parent = input(EdgeRole::Parent);
                let from_stack = input(EdgeRole::CopyFrom);
                let layer = self.new_layer(&job)?;
                let from_context = matches!(c.source, CopySource::Context { .. });
                // Until merged views of a stack exist, its topmost layer stands
                // in for the destination (and, per selection, the source) root.
                let parent_root = parent.last().map_or(layer.as_path(), PathBuf::as_path);
                let paths: Vec<String> = c.selections.iter().map(|s| s.path.clone()).collect();
                let roots: Vec<(PathBuf, Vec<String>)> = match &c.source {
                    CopySource::Context { .. } => vec![(self.context_root.clone(), paths)],
                    CopySource::Vertex => paths
                        .into_iter()
                        .map(|p| {
                            let root = find_in_stack(&from_stack, &p).ok_or_else(|| {
                                OpError::Failed(format!("{p}: not found in the source stage"))
                            })?;
                            Ok((root.to_path_buf(), vec![p]))
                        })
                        .collect::<Result<_, OpError>>()?,
                };
                for (src_root, sources) in &roots {
                    let req = copy::CopyRequest {
                        src_root,
                        from_context,
                        ignore: &self.ignore,
                        sources,
                        dest: &c.dest,
                        cwd: &c.cwd,
                        parent_root,
                        layer: &layer,
                        chown: c.chown.as_ref(),
                        chmod: c.chmod,
                        extract_archives: c.extract_archives,
                    };
                    copy::copy(&req, &|| job.cancel.is_cancelled()).map_err(|e| match e {
                        copy::CopyError::Cancelled => OpError::Cancelled,
                        e => OpError::Failed(e.to_string()),
                    })?;
                }
                Ok(with_layer(&parent, layer))
            }
        }
    }
}
