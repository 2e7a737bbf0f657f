//! The executor of real builds: every vertex yields a stack of layer
//! directories (snapshots in overlayfs diff format, bottom first).
//!
//! - a base image's layers come unpacked from [`BaseLayers`] (shared between
//!   builds, keyed by content);
//! - RUN runs in the sandbox on an overlay of its parent's stack, and the
//!   overlay's upper directory becomes its layer;
//! - COPY/ADD and WORKDIR write their new layer directly.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use strata_cache::index::{CacheIndex, CacheRecord};
use strata_cache::snapshots::{BlobRef, Hold, LayerRef, PreparedSnapshot};
use strata_cache::{DockerIgnore, KeyLock};
use strata_sandbox::{Capabilities, MergedView, Network, ProcessSpec, RootFs, Runtime, Seccomp};

use crate::graph::{CopySource, EdgeRole, ExecOp, Op, Vertex, VertexId};
use crate::ops::copy::{self, CopyRequest};
use crate::ops::inline;
use crate::ops::run_mounts::{self, BuildSecrets, MountContext};
use crate::ops::user;
use crate::progress::Stream;
use crate::schedule::{Executor, Job, OpError};
use crate::solve::DEFAULT_DECOMPRESSION_LIMIT;
use crate::sources::ImageError;
use crate::{NetworkMode, Security};

/// One layer of a filesystem: its directory (in overlayfs diff format) and
/// what the cache knows it as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Its directory.
    pub dir: PathBuf,
    /// A step snapshot, or a base-image layer with its blob (which the
    /// exporter reuses instead of packing the directory again).
    pub snapshot: LayerRef,
}

impl Layer {
    /// The blob of a base-image layer.
    pub fn blob(&self) -> Option<&BlobRef> {
        match &self.snapshot {
            LayerRef::Base { blob, .. } => Some(blob),
            LayerRef::Step { .. } => None,
        }
    }
}

/// A filesystem as a stack of layers, bottom first.
pub type Stack = Arc<Vec<Layer>>;

/// Unpacked layers of base images.
pub trait BaseLayers: Send + Sync + 'static {
    /// The layers of the image whose manifest has `digest` (in the local
    /// content store), unpacked.
    fn layers(&self, digest: &str) -> Result<Vec<Layer>, ImageError>;
}

/// Runs vertices into snapshots of the build cache: a vertex whose key is
/// recorded is reused; the others run and are recorded.
pub struct StackExecutor {
    root: PathBuf,
    index: CacheIndex,
    scratch: PathBuf,
    context: PathBuf,
    ignore: DockerIgnore,
    runtime: Arc<dyn Runtime>,
    images: Arc<dyn BaseLayers>,
    /// Vertices that must run even when their key is recorded.
    no_cache: HashSet<VertexId>,
    /// The key lock of each vertex between its cache miss and its record,
    /// so two builds needing the same step run it once.
    locks: Mutex<HashMap<VertexId, KeyLock>>,
    /// Steps whose key lock could not be taken: [`Executor::cached`] can only
    /// report a miss, so the error waits here for [`Executor::execute`].
    lock_failures: Mutex<HashMap<VertexId, OpError>>,
    /// Snapshots this build uses, kept from prune until it ends.
    holds: Mutex<Vec<Hold>>,
    /// The names of the snapshots held.
    held: Mutex<HashSet<String>>,
    /// Keys reused by this build.
    used: Mutex<Vec<[u8; 32]>>,
    /// Records read ahead for the build's steps (see [`StackExecutor::prefetch`]).
    prefetched: Mutex<HashMap<[u8; 32], CacheRecord>>,
    /// The most bytes one ADD archive may decompress to.
    decompression_limit: u64,
    /// The secrets and ssh agents RUN mounts may use.
    secrets: BuildSecrets,
}

/// The hostname RUN steps see, as under BuildKit.
const HOSTNAME: &str = "buildkitsandbox";

impl StackExecutor {
    /// The cache of state root `root` holds the snapshots; temporary views
    /// go under `scratch`; COPY reads the context from `context` (filtered
    /// by `ignore`); RUN uses `runtime`; base images come from `images`.
    pub fn new(
        root: &Path,
        scratch: impl Into<PathBuf>,
        context: impl Into<PathBuf>,
        ignore: DockerIgnore,
        runtime: Arc<dyn Runtime>,
        images: Arc<dyn BaseLayers>,
    ) -> Result<Self, OpError> {
        let index = CacheIndex::open(root)?;
        Ok(StackExecutor {
            root: root.to_path_buf(),
            index,
            scratch: scratch.into(),
            context: context.into(),
            ignore,
            runtime,
            images,
            no_cache: HashSet::new(),
            locks: Mutex::default(),
            lock_failures: Mutex::default(),
            holds: Mutex::default(),
            held: Mutex::default(),
            used: Mutex::default(),
            prefetched: Mutex::default(),
            decompression_limit: DEFAULT_DECOMPRESSION_LIMIT,
            secrets: BuildSecrets::default(),
        })
    }

    /// Gives RUN mounts the build's secrets and ssh agents.
    pub fn with_secrets(mut self, secrets: BuildSecrets) -> Self {
        self.secrets = secrets;
        self
    }

    /// Refuses ADD archives that decompress to more than `limit` bytes.
    pub fn with_decompression_limit(mut self, limit: u64) -> Self {
        self.decompression_limit = limit;
        self
    }

    /// These vertices run even when the cache has them (`--no-cache`,
    /// `--no-cache-filter`); their results are still recorded.
    pub fn with_no_cache(mut self, vertices: impl IntoIterator<Item = VertexId>) -> Self {
        self.no_cache = vertices.into_iter().collect();
        self
    }

    /// A fresh, empty snapshot for the vertex's layer.
    fn new_layer(&self) -> Result<PreparedSnapshot, OpError> {
        Ok(self.index.snapshots().prepare()?)
    }

    /// Records the vertex's new layer on top of `parent`; releases its key lock.
    fn commit(
        &self,
        job: &Job<Stack>,
        parent: &Stack,
        layer: PreparedSnapshot,
    ) -> Result<Stack, OpError> {
        let key = job
            .vertex
            .key
            .map(|k| k.0)
            .ok_or_else(|| OpError::NoKey(job.vertex.name.clone()))?;
        let parents: Vec<LayerRef> = parent.iter().map(|l| l.snapshot.clone()).collect();
        let (id, hold) = self.index.snapshots().commit(layer, &key, &parents)?;
        let mut layers = parents;
        layers.push(LayerRef::Step { id: id.clone() });
        self.index.put(&key, &CacheRecord::new(layers))?;
        strata_cache::test_stop::point("step-recorded");
        if let Ok(mut held) = self.held.lock() {
            held.insert(id.as_str().to_string());
        }
        self.keep(vec![hold]);
        if let Ok(mut locks) = self.locks.lock() {
            locks.remove(&job.id);
        }
        let mut stack = parent.as_ref().clone();
        stack.push(Layer {
            dir: self.index.snapshots().path(&id),
            snapshot: LayerRef::Step { id },
        });
        Ok(Arc::new(stack))
    }

    /// The holds on every snapshot this build used, for whoever reads the
    /// layers after the build (the export) to keep them from prune.
    pub fn take_holds(&self) -> Vec<Hold> {
        self.holds
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default()
    }

    fn keep(&self, holds: Vec<Hold>) {
        if let Ok(mut all) = self.holds.lock() {
            all.extend(holds);
        }
    }

    /// Reads the records of the steps of `graph` in one go, so each step's
    /// lookup needs no database access of its own (a miss still asks the
    /// index again: another build may have recorded it since).
    pub fn prefetch(&self, graph: &crate::graph::BuildGraph) {
        let keys: Vec<[u8; 32]> = graph
            .ids()
            .into_iter()
            .filter_map(|id| graph.vertex(id))
            .filter(|v| is_step(&v.op))
            .filter_map(|v| v.key.map(|k| k.0))
            .collect();
        if let (Ok(found), Ok(mut map)) = (self.index.get_many(&keys), self.prefetched.lock()) {
            *map = found;
        }
    }

    /// The recorded stack of `key`, if every layer of it is still there;
    /// its layers are held (once each per build) and the key is marked used
    /// by [`StackExecutor::finish`].
    fn lookup(&self, key: &[u8; 32]) -> Option<Stack> {
        let ahead = self.prefetched.lock().ok().and_then(|mut m| m.remove(key));
        let record = match ahead {
            Some(r) => r,
            None => self.index.get(key).ok().flatten()?,
        };
        // Prune orders by last use to the hour at best; a record used within
        // the last hour needs no write.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let recently = now.saturating_sub(record.last_used) < 3600;
        let snaps = self.index.snapshots();
        {
            let mut held = self.held.lock().ok()?;
            for layer in &record.layers {
                let id = layer.id().as_str().to_string();
                if !held.contains(&id) {
                    // Pruned between the read and the hold: a miss.
                    let hold = snaps.hold(layer.id()).ok()?;
                    if !snaps.exists(layer.id()) {
                        return None;
                    }
                    held.insert(id);
                    self.keep(vec![hold]);
                }
            }
        }
        if !recently && let Ok(mut used) = self.used.lock() {
            used.push(*key);
        }
        Some(Arc::new(
            record
                .layers
                .into_iter()
                .map(|l| Layer {
                    dir: snaps.path(l.id()),
                    snapshot: l,
                })
                .collect(),
        ))
    }

    /// Marks this build's cache hits as used (for least-recently-used
    /// pruning), in one write.
    pub fn finish(&self) {
        let used = self.used.lock().map(|u| u.clone()).unwrap_or_default();
        // Only prune's ordering depends on it.
        let _ = self.index.touch_all(&used);
    }

    fn view(&self, stack: &[Layer]) -> Result<MergedView, OpError> {
        let dirs: Vec<PathBuf> = stack.iter().map(|l| l.dir.clone()).collect();
        Ok(MergedView::new(&dirs, &self.scratch)?)
    }

    fn exec(&self, job: &Job<Stack>, e: &ExecOp, parent: &Stack) -> Result<Stack, OpError> {
        let who = {
            let view = self.view(parent)?;
            user::resolve_user(view.root(), &e.user)?
        };
        let cx = MountContext {
            root: &self.root,
            scratch: &self.scratch,
            context: &self.context,
            ignore: &self.ignore,
            secrets: &self.secrets,
            decompression_limit: self.decompression_limit,
        };
        // Held until the step ends: cache mount locks, views, copies, ssh proxies.
        let mounts = run_mounts::prepare(&cx, &e.mounts, &e.env, &job.inputs)?;
        let mut layer = self.new_layer()?;
        let work = layer.work_dir()?;
        let root = RootFs {
            lower: parent.iter().map(|l| l.dir.clone()).collect(),
            upper: layer.path().to_path_buf(),
            work,
        };
        let spec = ProcessSpec {
            argv: e.argv.clone(),
            env: e.env.iter().chain(&mounts.env).cloned().collect(),
            cwd: e.cwd.clone(),
            uid: who.uid,
            gid: who.gid,
            additional_gids: who.additional_gids,
            // As in BuildKit: a network of its own with outbound access by default; the
            // host's only with the build's entitlement, checked by the front end.
            network: match e.network {
                NetworkMode::Default => Network::Private,
                NetworkMode::None => Network::None,
                NetworkMode::Host => Network::Host,
            },
            hostname: HOSTNAME.to_string(),
            seccomp: match e.security {
                Security::Sandbox => Seccomp::DockerDefault,
                Security::Insecure => Seccomp::Unconfined,
            },
            capabilities: match e.security {
                Security::Sandbox => Capabilities::DockerDefault,
                Security::Insecure => Capabilities::All,
            },
            mounts: mounts.mounts.clone(),
        };
        let log = job.log.clone();
        let output = move |stream: strata_sandbox::Stream, line: &[u8]| {
            let stream = match stream {
                strata_sandbox::Stream::Stdout => Stream::Stdout,
                strata_sandbox::Stream::Stderr => Stream::Stderr,
            };
            log.line(stream, line);
            strata_cache::test_stop::point("run-output");
        };
        let cancel = job.cancel.clone();
        let result = self
            .runtime
            .run(&root, &spec, &output, &move || cancel.is_cancelled());
        drop((spec, mounts));
        match result {
            Ok(0) => self.commit(job, parent, layer),
            Ok(_) if job.cancel.is_cancelled() => Err(OpError::Cancelled),
            Ok(code) => Err(OpError::ExitCode { code }),
            Err(err) => Err(err.into()),
        }
    }
}

fn fail(path: &Path, action: &'static str, source: std::io::Error) -> OpError {
    OpError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
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
        .map_err(|e| fail(dir, "set the times of", e.into()))?;
    }
    Ok(())
}

/// Ops whose results the cache records (base images are shared by
/// content already; scratch is nothing).
fn is_step(op: &Op) -> bool {
    matches!(op, Op::Exec(_) | Op::Copy(_) | Op::Mkdir(_))
}

impl Executor for StackExecutor {
    type Output = Stack;

    fn cached(&self, id: VertexId, vertex: &Vertex) -> Option<Stack> {
        let key = vertex.key?.0;
        if !is_step(&vertex.op) {
            return None;
        }
        let use_cache = !self.no_cache.contains(&id);
        if use_cache && let Some(stack) = self.lookup(&key) {
            return Some(stack);
        }
        // A miss: the key lock is held from here until the result is
        // recorded (or the step fails), so a concurrent build that needs the
        // same step waits, then hits; look again once it is ours.
        let lock = match KeyLock::acquire(&self.root, &key) {
            Ok(lock) => lock,
            Err(e) => {
                let error = OpError::KeyLock {
                    path: KeyLock::path(&self.root, &key),
                    source: Box::new(e),
                };
                // A poisoned map is still usable; the error must not be lost.
                let mut failures = self.lock_failures.lock().unwrap_or_else(|p| p.into_inner());
                failures.insert(id, error);
                return None;
            }
        };
        if use_cache && let Some(stack) = self.lookup(&key) {
            return Some(stack);
        }
        // As above: a poisoned map must not drop the lock.
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.insert(id, lock);
        None
    }

    fn execute(&self, job: Job<Stack>) -> Result<Stack, OpError> {
        let lock_failure = self
            .lock_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&job.id);
        if let Some(error) = lock_failure {
            return Err(error);
        }
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
                let digest = s.digest.as_deref().ok_or(OpError::Unresolved)?;
                Ok(Arc::new(self.images.layers(digest)?))
            }
            Op::Exec(e) => self.exec(&job, e, &input(EdgeRole::Parent)),
            Op::Mkdir(m) => {
                let parent = input(EdgeRole::Parent);
                let view = self.view(&parent)?;
                let owner = user::resolve_user(view.root(), &m.owner)?;
                let layer = self.new_layer()?;
                mkdir_in_layer(view.root(), layer.path(), &m.path, (owner.uid, owner.gid))?;
                drop(view);
                self.commit(&job, &parent, layer)
            }
            Op::Copy(c) => {
                let parent = input(EdgeRole::Parent);
                let parent_view = self.view(&parent)?;
                let has_users = job.vertex.inputs.iter().any(|i| i.role == EdgeRole::Users);
                let users_view = if has_users {
                    Some(self.view(&input(EdgeRole::Users))?)
                } else {
                    None
                };
                let from_view = match c.source {
                    CopySource::Vertex => Some(self.view(&input(EdgeRole::CopyFrom))?),
                    CopySource::Context { .. } => None,
                };
                let src_root = from_view
                    .as_ref()
                    .map_or(self.context.as_path(), MergedView::root);
                let layer = self.new_layer()?;
                let sources: Vec<String> = c.selections.iter().map(|s| s.path.clone()).collect();
                let req = CopyRequest {
                    src_root,
                    from_context: from_view.is_none(),
                    ignore: &self.ignore,
                    sources: &sources,
                    dest: &c.dest,
                    cwd: &c.cwd,
                    parent_root: parent_view.root(),
                    users_root: users_view
                        .as_ref()
                        .map_or(parent_view.root(), MergedView::root),
                    layer: layer.path(),
                    chown: c.chown.as_ref(),
                    chmod: c.chmod.as_ref(),
                    extract_archives: c.extract_archives,
                    decompression_limit: self.decompression_limit,
                    parents: c.parents,
                    exclude: &c.exclude,
                };
                let cancelled = || job.cancel.is_cancelled();
                if !c.inline.is_empty() {
                    let dir = inline::write(&self.scratch, &c.inline)?;
                    let names = inline::sources(&c.inline);
                    let inline_req = CopyRequest {
                        src_root: dir.path(),
                        from_context: false,
                        sources: &names,
                        parents: false,
                        extract_archives: false,
                        ..req
                    };
                    copy::copy(&inline_req, &cancelled)?;
                }
                if !sources.is_empty() {
                    copy::copy(&req, &cancelled)?;
                }
                if job.cancel.is_cancelled() {
                    return Err(OpError::Cancelled);
                }
                drop((parent_view, users_view, from_view));
                self.commit(&job, &parent, layer)
            }
            Op::Link => {
                let mut stack = input(EdgeRole::Parent).as_ref().clone();
                stack.extend(input(EdgeRole::Linked).iter().cloned());
                Ok(Arc::new(stack))
            }
        }
    }
}
