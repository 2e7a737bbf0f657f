//! The executor of real builds: every vertex yields a stack of layer
//! directories (snapshots in overlayfs diff format, bottom first).
//!
//! - a base image's layers come unpacked from [`BaseLayers`] (shared between
//!   builds, keyed by content);
//! - RUN runs in the sandbox on an overlay of its parent's stack, and the
//!   overlay's upper directory becomes its layer;
//! - COPY/ADD and WORKDIR write their new layer directly.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_cache::DockerIgnore;
use strata_sandbox::{Network, ProcessSpec, RootFs, Runtime};

use crate::graph::{CopySource, EdgeRole, ExecOp, NetworkMode, Op};
use crate::ops::copy::{self, CopyRequest};
use crate::ops::user;
use crate::ops::view::MergedView;
use crate::progress::Stream;
use crate::schedule::{Executor, Job, OpError};

/// Where a layer's blob already is, for base-image layers: the exporter
/// reuses it instead of packing the directory again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlobRef {
    /// `sha256:` digest of the (compressed) blob.
    pub digest: String,
    /// `sha256:` digest of the uncompressed tar.
    pub diff_id: String,
    /// Blob size in bytes.
    pub size: u64,
    /// The blob's media type.
    pub media_type: String,
}

/// One layer of a filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Its directory, in overlayfs diff format.
    pub dir: PathBuf,
    /// Its blob, when it came from a base image.
    pub blob: Option<LayerBlobRef>,
}

/// A filesystem as a stack of layers, bottom first.
pub type Stack = Arc<Vec<Layer>>;

/// Unpacked layers of base images.
pub trait BaseLayers: Send + Sync + 'static {
    /// The layers of the image whose manifest has `digest` (in the local
    /// content store), unpacked; or one sentence saying why not.
    fn layers(&self, digest: &str) -> Result<Vec<Layer>, String>;
}

/// Runs vertices into layer directories under a build's scratch folder.
pub struct StackExecutor {
    scratch: PathBuf,
    context: PathBuf,
    ignore: DockerIgnore,
    runtime: Arc<dyn Runtime>,
    images: Arc<dyn BaseLayers>,
}

/// The hostname RUN steps see, as under BuildKit.
const HOSTNAME: &str = "buildkitsandbox";

impl StackExecutor {
    /// New layers and temporary views go under `scratch`; COPY reads the
    /// context from `context` (filtered by `ignore`); RUN uses `runtime`;
    /// base images come from `images`.
    pub fn new(
        scratch: impl Into<PathBuf>,
        context: impl Into<PathBuf>,
        ignore: DockerIgnore,
        runtime: Arc<dyn Runtime>,
        images: Arc<dyn BaseLayers>,
    ) -> Self {
        StackExecutor {
            scratch: scratch.into(),
            context: context.into(),
            ignore,
            runtime,
            images,
        }
    }

    /// A fresh, empty directory for the vertex's layer.
    fn new_layer(&self, job: &Job<Stack>) -> Result<PathBuf, OpError> {
        let dir = self.scratch.join(format!("layer-{}", job.id));
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| fail(&dir, "clear", e))?;
        }
        fs::create_dir_all(&dir).map_err(|e| fail(&dir, "create", e))?;
        Ok(dir)
    }

    fn view(&self, stack: &[Layer]) -> Result<MergedView, OpError> {
        let dirs: Vec<PathBuf> = stack.iter().map(|l| l.dir.clone()).collect();
        MergedView::new(&dirs, &self.scratch)
    }

    fn exec(&self, job: &Job<Stack>, e: &ExecOp, parent: &Stack) -> Result<Stack, OpError> {
        let who = {
            let view = self.view(parent)?;
            user::resolve_user(view.root(), &e.user)
                .map_err(|err| OpError::Failed(err.to_string()))?
        };
        let layer = self.new_layer(job)?;
        let work = self.scratch.join(format!("work-{}", job.id));
        fs::create_dir_all(&work).map_err(|err| fail(&work, "create", err))?;
        let root = RootFs {
            lower: parent.iter().map(|l| l.dir.clone()).collect(),
            upper: layer.clone(),
            work: work.clone(),
        };
        let spec = ProcessSpec {
            argv: e.argv.clone(),
            env: e.env.clone(),
            cwd: e.cwd.clone(),
            uid: who.uid,
            gid: who.gid,
            additional_gids: who.additional_gids,
            // Docker's RUN uses the host's network unless told otherwise.
            network: match e.network {
                NetworkMode::None => Network::None,
                NetworkMode::Default | NetworkMode::Host => Network::Host,
            },
            hostname: HOSTNAME.to_string(),
        };
        let log = job.log.clone();
        let output = move |stream: strata_sandbox::Stream, line: &[u8]| {
            let stream = match stream {
                strata_sandbox::Stream::Stdout => Stream::Stdout,
                strata_sandbox::Stream::Stderr => Stream::Stderr,
            };
            log.line(stream, line);
        };
        let cancel = job.cancel.clone();
        let result = self
            .runtime
            .run(&root, &spec, &output, &move || cancel.is_cancelled());
        let _ = fs::remove_dir_all(&work);
        match result {
            Ok(0) => Ok(with_layer(parent, layer)),
            Ok(_) if job.cancel.is_cancelled() => Err(OpError::Cancelled),
            Ok(code) => Err(OpError::ExitCode { code }),
            Err(err) => Err(OpError::Failed(err.to_string())),
        }
    }
}

fn fail(path: &Path, what: &str, e: std::io::Error) -> OpError {
    OpError::Failed(format!("cannot {what} {}: {e}", path.display()))
}

/// Creates `path` (WORKDIR) in `layer` as seen on top of `below`: missing
/// directories are made 0755 and owned by `owner`; existing ones are
/// repeated in the layer with their own mode, owner and mtime, so the
/// overlay does not change them.
fn mkdir_in_layer(
    below: &Path,
    layer: &Path,
    path: &str,
    owner: (u32, u32),
) -> Result<(), OpError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut rel = PathBuf::new();
    let mut kept = Vec::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        rel.push(part);
        let existing = fs::metadata(below.join(&rel))
            .ok()
            .filter(fs::Metadata::is_dir);
        let dir = layer.join(&rel);
        fs::create_dir(&dir).map_err(|e| fail(&dir, "create", e))?;
        let (mode, uid, gid) = match &existing {
            Some(m) => (m.mode() & 0o7777, m.uid(), m.gid()),
            None => (0o755, owner.0, owner.1),
        };
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| fail(&dir, "chown", e))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
            .map_err(|e| fail(&dir, "chmod", e))?;
        if let Some(m) = existing {
            kept.push((dir, m));
        }
    }
    // Times last, deepest first: creating a child changes its parent's mtime.
    for (dir, m) in kept.iter().rev() {
        let atime = nix::sys::time::TimeSpec::new(m.atime(), m.atime_nsec());
        let mtime = nix::sys::time::TimeSpec::new(m.mtime(), m.mtime_nsec());
        nix::sys::stat::utimensat(
            None,
            dir,
            &atime,
            &mtime,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| OpError::Failed(format!("cannot set times of {}: {e}", dir.display())))?;
    }
    Ok(())
}

fn with_layer(parent: &Stack, dir: PathBuf) -> Stack {
    let mut stack = parent.as_ref().clone();
    stack.push(Layer { dir, blob: None });
    Arc::new(stack)
}

impl Executor for StackExecutor {
    type Output = Stack;

    fn execute(&self, job: Job<Stack>) -> Result<Stack, OpError> {
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
            Op::SourceImage(s) => {
                let digest = s.digest.as_deref().ok_or_else(|| {
                    OpError::Failed("the base image was not resolved before the build".into())
                })?;
                self.images
                    .layers(digest)
                    .map(Arc::new)
                    .map_err(OpError::Failed)
            }
            Op::Exec(e) => self.exec(&job, e, &input(EdgeRole::Parent)),
            Op::Mkdir(m) => {
                let parent = input(EdgeRole::Parent);
                let view = self.view(&parent)?;
                let owner = user::resolve_user(view.root(), &m.owner)
                    .map_err(|e| OpError::Failed(e.to_string()))?;
                let layer = self.new_layer(&job)?;
                mkdir_in_layer(view.root(), &layer, &m.path, (owner.uid, owner.gid))?;
                Ok(with_layer(&parent, layer))
            }
            Op::Copy(c) => {
                let parent = input(EdgeRole::Parent);
                let parent_view = self.view(&parent)?;
                let from_view = match c.source {
                    CopySource::Vertex => Some(self.view(&input(EdgeRole::CopyFrom))?),
                    CopySource::Context { .. } => None,
                };
                let src_root = from_view
                    .as_ref()
                    .map_or(self.context.as_path(), MergedView::root);
                let layer = self.new_layer(&job)?;
                let sources: Vec<String> = c.selections.iter().map(|s| s.path.clone()).collect();
                let req = CopyRequest {
                    src_root,
                    from_context: from_view.is_none(),
                    ignore: &self.ignore,
                    sources: &sources,
                    dest: &c.dest,
                    cwd: &c.cwd,
                    parent_root: parent_view.root(),
                    layer: &layer,
                    chown: c.chown.as_ref(),
                    chmod: c.chmod,
                    extract_archives: c.extract_archives,
                };
                copy::copy(&req, &|| job.cancel.is_cancelled())
                    .map_err(|e| OpError::Failed(e.to_string()))?;
                if job.cancel.is_cancelled() {
                    return Err(OpError::Cancelled);
                }
                Ok(with_layer(&parent, layer))
            }
        }
    }
}
