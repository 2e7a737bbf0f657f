//! The build graph: one vertex per filesystem-changing step, edges from inputs
//! to the vertices that consume them, and a cache key per vertex.
//!
//! This module knows nothing about Dockerfiles; `dockerfile` produces graphs,
//! other front ends may too. Of the parser it uses only two plain enums,
//! [`NetworkMode`] and [`Security`], the workspace's one spelling of them.

use std::fmt;
use std::path::PathBuf;

use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use strata_parser::{NetworkMode, Security};

mod mounts;

pub use mounts::{CacheSharing, ExecMount, MountFrom, MountKind};

/// Identifies a vertex inside one [`BuildGraph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VertexId(NodeIndex);

impl VertexId {
    /// A small number, stable for the graph's life, usable in progress output.
    pub fn index(self) -> usize {
        self.0.index()
    }
}

impl fmt::Display for VertexId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.index())
    }
}

/// Where a base image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// An OCI image layout on disk, and a tag or digest in it.
    Layout {
        /// The layout directory (holding `index.json`).
        path: PathBuf,
        /// A tag (`org.opencontainers.image.ref.name`) or a `sha256:` digest.
        reference: String,
    },
    /// An image of the local store, by name.
    Store {
        /// The name it was tagged with.
        reference: String,
    },
}

/// A base image: where it comes from and, once resolved, its manifest digest
/// in the local content store (so the cache key follows the image's content,
/// not its name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceImageOp {
    /// Where the image comes from.
    pub source: ImageSource,
    /// `sha256:` digest of its manifest, when resolved.
    pub digest: Option<String>,
}

/// Run a process on top of the parent filesystem; what it changes becomes the new layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOp {
    /// The command and its arguments, shell form already wrapped by the front end.
    pub argv: Vec<String>,
    /// `KEY=value` entries, in the order the process sees them.
    pub env: Vec<String>,
    /// `user[:group]`, resolved against the parent's /etc/passwd when run; empty = root.
    pub user: String,
    /// Absolute working directory, created if missing.
    pub cwd: String,
    /// Network mode.
    pub network: NetworkMode,
    /// `--security`: insecure runs without the seccomp filter and with every capability.
    pub security: Security,
    /// Extra mounts (`RUN --mount`), in the order given.
    pub mounts: Vec<ExecMount>,
}

/// Ownership to apply to copied files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chown {
    /// User name or number, resolved against the destination's /etc/passwd.
    pub user: String,
    /// Group name or number; `None` = the user's primary group.
    pub group: Option<String>,
}

/// One selected source file or directory of a copy, with the digest of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Path relative to the source root (the context, or the source vertex's root).
    pub path: String,
    /// Digest of exactly what is copied (contents, modes, links); for a source
    /// vertex whose key already covers its content this may be empty.
    pub digest: String,
}

/// Where the files of a [`CopyOp`] come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// The build context (or a named local context).
    Context {
        /// Name of the context: `"."` for the main one.
        name: String,
    },
    /// The filesystem of another vertex; it is this vertex's input with [`EdgeRole::CopyFrom`].
    Vertex,
}

/// A file whose content the graph holds (a COPY heredoc), copied like a
/// source of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// Its name, which it keeps inside a directory destination.
    pub name: String,
    /// Its content.
    pub content: Vec<u8>,
}

/// The `--chmod` of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileMode {
    /// An octal mode given to every copied file and directory.
    Octal(u32),
    /// A symbolic mode (`u+x,go-w`, `u=rwX,go=rX`) applied to each entry's
    /// own mode; checked by the front end.
    Symbolic(String),
}

/// Copy selected files into a new layer on top of the parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOp {
    /// Where the files come from.
    pub source: CopySource,
    /// What is copied, in the order given.
    pub selections: Vec<Selection>,
    /// Destination as written; a trailing `/` means a directory. Relative to `cwd`.
    pub dest: String,
    /// Working directory of the stage at this point.
    pub cwd: String,
    /// Ownership to apply; `None` keeps 0:0.
    pub chown: Option<Chown>,
    /// Mode to apply to every copied file and directory.
    pub chmod: Option<FileMode>,
    /// Unpack local tar archives (ADD).
    pub extract_archives: bool,
    /// Heredoc files, copied before the selections.
    pub inline: Vec<InlineFile>,
    /// `--parents`: each source keeps its path (from the root, or from a
    /// `/./` in it) below the destination.
    pub parents: bool,
    /// `--exclude` patterns: matching entries are not copied.
    pub exclude: Vec<String>,
}

/// Create a directory (WORKDIR) if it does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MkdirOp {
    /// Absolute path.
    pub path: String,
    /// Owner as `user[:group]`; empty = root.
    pub owner: String,
}

/// What a vertex does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A base image's layers.
    SourceImage(SourceImageOp),
    /// The empty filesystem.
    SourceScratch,
    /// Run a process.
    Exec(ExecOp),
    /// Copy files.
    Copy(CopyOp),
    /// Create a directory.
    Mkdir(MkdirOp),
    /// Stack the layers of the input with role [`EdgeRole::Linked`] (a
    /// `COPY --link` made on the empty filesystem) on the parent's, without
    /// changing either: the linked layer stays the same blob whatever the
    /// parent is.
    Link,
}

impl Op {
    /// A short name for the kind of op, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::SourceImage(_) => "source-image",
            Op::SourceScratch => "scratch",
            Op::Exec(_) => "exec",
            Op::Copy(_) => "copy",
            Op::Mkdir(_) => "mkdir",
            Op::Link => "link",
        }
    }
}

/// How a vertex uses one of its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeRole {
    /// The filesystem this vertex builds on.
    Parent,
    /// A filesystem files are copied from.
    CopyFrom,
    /// Layers stacked on the parent ([`Op::Link`]).
    Linked,
    /// The filesystem whose `/etc/passwd` and `/etc/group` resolve a copy's
    /// `--chown` names when the copy's parent is not its stage (`--link`).
    Users,
    /// A filesystem a mount of an [`ExecOp`] shows ([`MountFrom::Input`]).
    Mount,
}

/// An input of a vertex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Input {
    /// The producing vertex.
    pub vertex: VertexId,
    /// How it is used.
    pub role: EdgeRole,
}

/// A byte range of the front end's source and the line it starts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceSpan {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// Byte offset of the start.
    pub start: usize,
    /// Byte offset just past the end.
    pub end: usize,
}

/// Where a vertex comes from in the front end's source: which stage, which
/// step of it, and the instruction. Progress, explain and error reports read
/// it; its [`Display`](fmt::Display) is the step's progress name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The stage's name, or `stage-N` for an unnamed one.
    pub stage: String,
    /// The stage's 0-based position in the source.
    pub stage_index: usize,
    /// 1-based step number within the stage.
    pub step: usize,
    /// The stage's number of steps.
    pub steps: usize,
    /// The instruction's first line, as written.
    pub instruction: String,
    /// Where the instruction is (the stage's FROM for a base image's ONBUILD trigger).
    pub span: SourceSpan,
}

impl Origin {
    /// `build 2/4`: the step's place, stable across builds of the same source.
    pub fn position(&self) -> String {
        format!("{} {}/{}", self.stage, self.step, self.steps)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.position(), self.instruction)
    }
}

/// A step of the build.
#[derive(Debug, Clone)]
pub struct Vertex {
    /// What it does.
    pub op: Op,
    /// Its inputs, in a fixed order (the order matters for the cache key).
    pub inputs: Vec<Input>,
    /// Human-readable name for progress, e.g. `[build 2/4] RUN make`.
    pub name: String,
    /// The instruction it comes from; `None` for internal vertices.
    pub origin: Option<Origin>,
    /// Cache key; filled by [`BuildGraph::compute_keys`].
    pub key: Option<CacheKey>,
}

/// A blake3 digest of a vertex's canonical definition and its inputs' keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from(self.0).to_hex().to_string()
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.to_hex())
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Errors building or checking a graph.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// An input named a vertex that is not in the graph.
    #[error("vertex {vertex} ({name}) has an input {input} that is not in the graph")]
    UnknownInput {
        /// The vertex being added.
        vertex: String,
        /// Its name.
        name: String,
        /// The missing input.
        input: VertexId,
    },
    /// The graph has a cycle (a front-end bug: stages cannot depend on themselves).
    #[error("the build graph has a cycle through vertex {0}")]
    Cycle(VertexId),
}

/// A DAG of build steps.
#[derive(Debug, Default, Clone)]
pub struct BuildGraph {
    graph: StableDiGraph<Vertex, EdgeRole>,
}

impl BuildGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a vertex consuming `inputs`, which must already be in the graph.
    pub fn add(
        &mut self,
        op: Op,
        name: impl Into<String>,
        inputs: Vec<Input>,
    ) -> Result<VertexId, GraphError> {
        self.insert(op, name.into(), None, inputs)
    }

    /// Adds the vertex of a front-end step; its name is the origin's display.
    pub fn add_step(
        &mut self,
        op: Op,
        origin: Origin,
        inputs: Vec<Input>,
    ) -> Result<VertexId, GraphError> {
        self.insert(op, origin.to_string(), Some(origin), inputs)
    }

    fn insert(
        &mut self,
        op: Op,
        name: String,
        origin: Option<Origin>,
        inputs: Vec<Input>,
    ) -> Result<VertexId, GraphError> {
        for input in &inputs {
            if !self.graph.contains_node(input.vertex.0) {
                return Err(GraphError::UnknownInput {
                    vertex: format!("#{}", self.graph.node_count()),
                    name,
                    input: input.vertex,
                });
            }
        }
        let id = VertexId(self.graph.add_node(Vertex {
            op,
            inputs: inputs.clone(),
            name,
            origin,
            key: None,
        }));
        for input in inputs {
            self.graph.add_edge(input.vertex.0, id.0, input.role);
        }
        Ok(id)
    }

    /// The vertex with this id.
    pub fn vertex(&self, id: VertexId) -> Option<&Vertex> {
        self.graph.node_weight(id.0)
    }

    /// Number of vertices.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// True when the graph has no vertex.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// All vertex ids, in insertion order.
    pub fn ids(&self) -> Vec<VertexId> {
        self.graph.node_indices().map(VertexId).collect()
    }

    /// The vertices that consume `id`'s output.
    pub fn dependents(&self, id: VertexId) -> Vec<VertexId> {
        let mut out: Vec<VertexId> = self
            .graph
            .edges_directed(id.0, Direction::Outgoing)
            .map(|e| VertexId(e.target()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// `targets` and every vertex they transitively depend on, sorted by id.
    pub fn ancestors(&self, targets: &[VertexId]) -> Vec<VertexId> {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack: Vec<VertexId> = targets.to_vec();
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            if let Some(v) = self.vertex(id) {
                stack.extend(v.inputs.iter().map(|i| i.vertex));
            }
        }
        seen.into_iter().collect()
    }

    /// Vertex ids in an order where inputs come first.
    pub fn topological_order(&self) -> Result<Vec<VertexId>, GraphError> {
        petgraph::algo::toposort(&self.graph, None)
            .map(|order| order.into_iter().map(VertexId).collect())
            .map_err(|cycle| GraphError::Cycle(VertexId(cycle.node_id())))
    }

    /// Computes every vertex's cache key from its op and its inputs' keys.
    pub fn compute_keys(&mut self) -> Result<(), GraphError> {
        for id in self.topological_order()? {
            let Some(vertex) = self.graph.node_weight(id.0) else {
                continue;
            };
            let mut enc = KeyEncoder::new();
            encode_op(&mut enc, &vertex.op);
            enc.u64(vertex.inputs.len() as u64);
            for input in &vertex.inputs {
                enc.str(match input.role {
                    EdgeRole::Parent => "parent",
                    EdgeRole::CopyFrom => "copy-from",
                    EdgeRole::Linked => "linked",
                    EdgeRole::Users => "users",
                    EdgeRole::Mount => "mount",
                });
                // Inputs precede this vertex in topological order, so their keys exist.
                let key = self
                    .graph
                    .node_weight(input.vertex.0)
                    .and_then(|v| v.key)
                    .map(|k| k.0)
                    .unwrap_or([0; 32]);
                enc.bytes(&key);
            }
            let key = CacheKey(*enc.finish().as_bytes());
            if let Some(v) = self.graph.node_weight_mut(id.0) {
                v.key = Some(key);
            }
        }
        Ok(())
    }
}

/// Feeds an unambiguous encoding (tag + length-prefixed fields) to blake3, so
/// that two different definitions can never produce the same byte stream.
struct KeyEncoder(blake3::Hasher);

impl KeyEncoder {
    fn new() -> Self {
        let mut h = blake3::Hasher::new();
        h.update(b"strata-cache-key-v1\0");
        Self(h)
    }
    fn u64(&mut self, v: u64) {
        self.0.update(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.update(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn strs(&mut self, v: &[String]) {
        self.u64(v.len() as u64);
        for s in v {
            self.str(s);
        }
    }
    fn opt_str(&mut self, v: Option<&str>) {
        match v {
            None => self.u64(0),
            Some(s) => {
                self.u64(1);
                self.str(s);
            }
        }
    }
    fn finish(self) -> blake3::Hash {
        self.0.finalize()
    }
}

fn encode_op(enc: &mut KeyEncoder, op: &Op) {
    enc.str(op.kind());
    match op {
        Op::SourceScratch => {}
        // A resolved image is known by its content alone; an unresolved one by
        // where it comes from.
        Op::SourceImage(SourceImageOp {
            digest: Some(digest),
            ..
        }) => {
            enc.str("digest");
            enc.str(digest);
        }
        Op::SourceImage(SourceImageOp {
            source: ImageSource::Layout { path, reference },
            digest: None,
        }) => {
            enc.str("layout");
            enc.bytes(path.as_os_str().as_encoded_bytes());
            enc.str(reference);
        }
        Op::SourceImage(SourceImageOp {
            source: ImageSource::Store { reference },
            digest: None,
        }) => {
            enc.str("store");
            enc.str(reference);
        }
        Op::Exec(e) => {
            enc.strs(&e.argv);
            enc.strs(&e.env);
            enc.str(&e.user);
            enc.str(&e.cwd);
            enc.str(e.network.as_str());
            // Only insecure steps say so, which keeps every other key as it was.
            if e.security == Security::Insecure {
                enc.str("security=insecure");
            }
            mounts::encode_mounts(enc, &e.mounts);
        }
        Op::Copy(c) => {
            match &c.source {
                CopySource::Context { name } => {
                    enc.str("context");
                    enc.str(name);
                }
                CopySource::Vertex => enc.str("vertex"),
            }
            enc.u64(c.selections.len() as u64);
            for s in &c.selections {
                enc.str(&s.path);
                enc.str(&s.digest);
            }
            enc.str(&c.dest);
            enc.str(&c.cwd);
            match &c.chown {
                None => enc.u64(0),
                Some(ch) => {
                    enc.u64(1);
                    enc.str(&ch.user);
                    enc.opt_str(ch.group.as_deref());
                }
            }
            match &c.chmod {
                None => enc.u64(0),
                Some(FileMode::Octal(m)) => {
                    enc.u64(1);
                    enc.u64(u64::from(*m));
                }
                Some(FileMode::Symbolic(m)) => {
                    enc.u64(2);
                    enc.str(m);
                }
            }
            enc.u64(u64::from(c.extract_archives));
            enc.u64(c.inline.len() as u64);
            for f in &c.inline {
                enc.str(&f.name);
                enc.bytes(&f.content);
            }
            enc.u64(u64::from(c.parents));
            enc.strs(&c.exclude);
        }
        Op::Mkdir(m) => {
            enc.str(&m.path);
            enc.str(&m.owner);
        }
        Op::Link => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(cmd: &str) -> Op {
        Op::Exec(ExecOp {
            argv: vec!["/bin/sh".into(), "-c".into(), cmd.into()],
            env: vec!["PATH=/bin".into()],
            user: String::new(),
            cwd: "/".into(),
            network: NetworkMode::Default,
            security: Security::Sandbox,
            mounts: vec![],
        })
    }

    fn parent(v: VertexId) -> Vec<Input> {
        vec![Input {
            vertex: v,
            role: EdgeRole::Parent,
        }]
    }

    fn key(g: &BuildGraph, v: VertexId) -> CacheKey {
        g.vertex(v).and_then(|v| v.key).unwrap_or(CacheKey([0; 32]))
    }

    #[test]
    fn keys_are_deterministic_and_depend_on_inputs() -> Result<(), GraphError> {
        let build = |base_cmd: &str| -> Result<(BuildGraph, VertexId), GraphError> {
            let mut g = BuildGraph::new();
            let s = g.add(Op::SourceScratch, "scratch", vec![])?;
            let a = g.add(exec(base_cmd), "a", parent(s))?;
            let b = g.add(exec("echo b"), "b", parent(a))?;
            g.compute_keys()?;
            Ok((g, b))
        };
        let (g1, b1) = build("echo a")?;
        let (g2, b2) = build("echo a")?;
        let (g3, b3) = build("echo A")?;
        assert_eq!(key(&g1, b1), key(&g2, b2));
        assert_ne!(
            key(&g1, b1),
            key(&g3, b3),
            "a changed parent changes the key"
        );
        Ok(())
    }

    #[test]
    fn names_do_not_change_keys_but_fields_do() -> Result<(), GraphError> {
        let mut g = BuildGraph::new();
        let s = g.add(Op::SourceScratch, "scratch", vec![])?;
        let a = g.add(exec("x"), "one name", parent(s))?;
        let b = g.add(exec("x"), "another name", parent(s))?;
        let mut op = exec("x");
        if let Op::Exec(e) = &mut op {
            e.network = NetworkMode::None;
        }
        let c = g.add(op, "c", parent(s))?;
        let mut op = exec("x");
        if let Op::Exec(e) = &mut op {
            e.security = Security::Insecure;
        }
        let d = g.add(op, "d", parent(s))?;
        g.compute_keys()?;
        assert_eq!(key(&g, a), key(&g, b));
        assert_ne!(key(&g, a), key(&g, c));
        assert_ne!(
            key(&g, a),
            key(&g, d),
            "insecure steps have keys of their own"
        );
        Ok(())
    }

    #[test]
    fn copy_key_covers_content_digests() -> Result<(), GraphError> {
        let copy = |digest: &str| {
            Op::Copy(CopyOp {
                source: CopySource::Context { name: ".".into() },
                selections: vec![Selection {
                    path: "a.txt".into(),
                    digest: digest.into(),
                }],
                dest: "/app/".into(),
                cwd: "/".into(),
                chown: None,
                chmod: None,
                extract_archives: false,
                inline: Vec::new(),
                parents: false,
                exclude: Vec::new(),
            })
        };
        let mut g = BuildGraph::new();
        let s = g.add(Op::SourceScratch, "scratch", vec![])?;
        let a = g.add(copy("sha256:1"), "a", parent(s))?;
        let b = g.add(copy("sha256:2"), "b", parent(s))?;
        g.compute_keys()?;
        assert_ne!(key(&g, a), key(&g, b));
        Ok(())
    }

    #[test]
    fn unknown_input_is_rejected_and_ancestors_are_found() -> Result<(), GraphError> {
        let mut g = BuildGraph::new();
        let s = g.add(Op::SourceScratch, "s", vec![])?;
        let a = g.add(exec("a"), "a", parent(s))?;
        let lonely = g.add(exec("z"), "z", parent(s))?;
        assert_eq!(g.ancestors(&[a]), vec![s, a]);
        assert_eq!(g.dependents(s), vec![a, lonely]);
        let mut other = BuildGraph::new();
        assert!(other.add(exec("b"), "b", parent(a)).is_err());
        Ok(())
    }
}
