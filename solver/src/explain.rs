//! `--explain-cache`: why a step could not reuse the previous build.
//!
//! After each build, a summary of every step of the target (its cache key,
//! its parent's key, and the inputs a user changes: command, environment,
//! copied sources with their digests, base image) is saved per build
//! (context, Dockerfile, target). The next build compares each step that
//! ran with the step at the same place in that summary and names the first
//! difference a user can act on.
//!
//! Values of build args and environment are secrets often enough that they
//! are never kept or shown: a summary holds `NAME=<digest>`, where the
//! digest is the first 12 hex of a blake3 hash keyed with 32 random bytes
//! made once per state root (`explain/key`, mode 0600). An unkeyed hash of
//! a short value is found offline by hashing guesses; without the key,
//! which never leaves the root, a summary file (0600 too) tells nothing
//! about a value but whether it changed.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::graph::{BuildGraph, EdgeRole, Op, Vertex, VertexId};

/// One step as the explanation sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSummary {
    /// Its cache key.
    pub key: String,
    /// The instruction, as written.
    pub instruction: String,
    /// The key of the step it builds on, and that step's instruction.
    pub parent: Option<(String, String)>,
    /// The key of the stage or image it copies from.
    pub copy_from: Option<String>,
    /// RUN: command, environment, user, workdir, network.
    pub argv: Vec<String>,
    /// RUN: `KEY=<digest of the value>` pairs (see [`ValueKey`]).
    pub env: Vec<String>,
    /// RUN: user, working directory and network, as one line.
    pub context: String,
    /// COPY/ADD: each source and the digest of what it selects.
    pub sources: Vec<(String, String)>,
    /// FROM: the image's manifest digest.
    pub image: Option<String>,
}

/// The steps of one build, by position (`stage k/n`).
pub type Summary = BTreeMap<String, StepSummary>;

/// A vertex's place (`build 2/4`) and instruction; internal vertices,
/// which have no origin, go by their name.
fn place(v: &Vertex) -> (String, String) {
    match &v.origin {
        Some(o) => (o.position(), o.instruction.clone()),
        None => (v.name.clone(), v.name.clone()),
    }
}

/// The key that digests build-arg and environment values in summaries.
#[derive(Debug, Clone)]
pub struct ValueKey([u8; 32]);

impl ValueKey {
    /// The root's key under `dir` (`$STRATA_ROOT/explain`), made on first
    /// use. Summaries written before there was a key hold plain values:
    /// they are removed then.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("key");
        let mut key = [0u8; 32];
        match std::fs::File::open(&path) {
            Ok(mut f) => {
                f.read_exact(&mut key)?;
                return Ok(ValueKey(key));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(dir)? {
            let p = entry?.path();
            if p.extension().is_some_and(|x| x == "json") {
                std::fs::remove_file(&p)?;
            }
        }
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        let tmp = dir.join(format!("key.tmp{}", std::process::id()));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&key)?;
        f.sync_all()?;
        // Another build may have made one meanwhile: the first link wins.
        match std::fs::hard_link(&tmp, &path) {
            Ok(()) => {
                std::fs::remove_file(&tmp)?;
                Ok(ValueKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&tmp)?;
                Self::open(dir)
            }
            Err(e) => Err(e),
        }
    }

    /// `NAME=value` as `NAME=<12 hex of the keyed digest of value>`.
    fn redact(&self, pair: &str) -> String {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let digest = blake3::keyed_hash(&self.0, value.as_bytes()).to_hex();
        format!("{name}={}", &digest[..12])
    }
}

/// Summarizes the steps `ids` of `graph`, values digested with `key`.
pub fn summarize(graph: &BuildGraph, ids: &[VertexId], key: &ValueKey) -> Summary {
    let mut out = Summary::new();
    for &id in ids {
        let Some(v) = graph.vertex(id) else { continue };
        let (pos, instruction) = place(v);
        let key_of = |role: EdgeRole| {
            v.inputs
                .iter()
                .find(|i| i.role == role)
                .and_then(|i| graph.vertex(i.vertex))
        };
        let mut s = StepSummary {
            key: v.key.map(|k| k.to_hex()).unwrap_or_default(),
            instruction,
            parent: key_of(EdgeRole::Parent)
                .map(|p| (p.key.map(|k| k.to_hex()).unwrap_or_default(), place(p).1)),
            copy_from: key_of(EdgeRole::CopyFrom)
                .map(|p| p.key.map(|k| k.to_hex()).unwrap_or_default()),
            ..StepSummary::default()
        };
        match &v.op {
            Op::Exec(e) => {
                s.argv = e.argv.clone();
                s.env = e.env.iter().map(|pair| key.redact(pair)).collect();
                s.context = format!("user={} workdir={} network={:?}", e.user, e.cwd, e.network);
                if !e.mounts.is_empty() {
                    // Definitions and context digests only: no cache, secret or agent content.
                    s.context.push_str(&format!(" mounts={:?}", e.mounts));
                }
            }
            Op::Copy(c) => {
                // A heredoc file counts as a source named `<<NAME`.
                let inline = c.inline.iter().map(|f| {
                    let digest = blake3::hash(&f.content).to_hex().to_string();
                    (format!("<<{}", f.name), digest)
                });
                s.sources = c
                    .selections
                    .iter()
                    .map(|sel| (sel.path.clone(), sel.digest.clone()))
                    .chain(inline)
                    .collect();
            }
            Op::SourceImage(i) => s.image = i.digest.clone(),
            Op::Mkdir(_) | Op::SourceScratch | Op::Link => {}
        }
        out.insert(pos, s);
    }
    out
}

/// Why `now` (which ran) could not reuse the previous build's step at the
/// same place, `before`; one sentence.
pub fn reason(before: Option<&StepSummary>, now: &StepSummary, no_cache: bool) -> String {
    if no_cache {
        return "the cache was not consulted (--no-cache or --no-cache-filter)".into();
    }
    let Some(b) = before else {
        return "no earlier build had this step".into();
    };
    if b.key == now.key {
        return "its result was no longer in the cache (pruned, or recorded by an interrupted build)".into();
    }
    if b.instruction != now.instruction {
        return format!("the instruction changed (was `{}`)", b.instruction);
    }
    if let (Some(bi), Some(ni)) = (&b.image, &now.image)
        && bi != ni
    {
        return format!("the base image changed ({bi} → {ni})");
    }
    if b.parent.as_ref().map(|p| &p.0) != now.parent.as_ref().map(|p| &p.0) {
        let what = now.parent.as_ref().map_or("", |p| p.1.as_str());
        return format!("the step before it changed (`{what}`)");
    }
    if b.copy_from != now.copy_from {
        return "the stage or image it copies from changed".into();
    }
    let changed: Vec<&str> = now
        .sources
        .iter()
        .filter(|(path, digest)| !b.sources.iter().any(|(p, d)| p == path && d == digest))
        .map(|(p, _)| p.as_str())
        .collect();
    if !changed.is_empty() {
        return format!("files of the build context changed: {}", changed.join(", "));
    }
    if b.env != now.env {
        let name = |pair: &str| pair.split_once('=').map_or(pair, |p| p.0).to_string();
        let names = |env: &[String]| env.iter().map(|p| name(p)).collect::<Vec<_>>();
        let (was, is) = (names(&b.env), names(&now.env));
        let diff: Vec<String> = now
            .env
            .iter()
            .filter(|e| !b.env.contains(e))
            .map(|e| match name(e) {
                n if was.contains(&n) => format!("{n} changed"),
                n => format!("{n} (new)"),
            })
            .chain(
                was.iter()
                    .filter(|n| !is.contains(n))
                    .map(|n| format!("{n} (now unset)")),
            )
            .collect();
        return format!("build args or environment changed: {}", diff.join(", "));
    }
    if b.argv != now.argv || b.context != now.context {
        return "its command, user, workdir or network changed".into();
    }
    "its definition changed".into()
}

/// Where the summary of the builds of one (context, Dockerfile as named
/// with `-f`, target) is kept under the state root.
pub fn summary_path(
    root: &Path,
    context: &Path,
    dockerfile: Option<&Path>,
    target: Option<&str>,
) -> PathBuf {
    let identity = format!(
        "{}\0{}\0{}",
        context
            .canonicalize()
            .unwrap_or_else(|_| context.to_path_buf())
            .display(),
        dockerfile
            .map(|f| f.display().to_string())
            .unwrap_or_default(),
        target.unwrap_or_default()
    );
    root.join("explain").join(format!(
        "{}.json",
        &blake3::hash(identity.as_bytes()).to_hex()[..32]
    ))
}

/// The saved summary of the previous build with this identity, if any.
pub fn load(path: &Path) -> Summary {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Saves `summary` for the next build, readable by the root's owner only
/// (through a rename: never half a file).
pub fn save(path: &Path, summary: &Summary) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec(summary).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(key: &str) -> StepSummary {
        StepSummary {
            key: key.into(),
            instruction: "RUN make".into(),
            parent: Some(("p1".into(), "COPY . /src".into())),
            env: vec!["PATH=/bin".into(), "VERSION=1".into()],
            ..StepSummary::default()
        }
    }

    #[test]
    fn names_the_first_actionable_difference() {
        let before = step("a");
        assert_eq!(
            reason(None, &before, false),
            "no earlier build had this step"
        );
        let mut now = step("b");
        now.env = vec!["PATH=/bin".into(), "VERSION=2".into(), "NEW=x".into()];
        assert_eq!(
            reason(Some(&before), &now, false),
            "build args or environment changed: VERSION changed, NEW (new)"
        );
        now.env = vec!["VERSION=1".into()];
        assert_eq!(
            reason(Some(&before), &now, false),
            "build args or environment changed: PATH (now unset)"
        );
        let mut now = step("b");
        now.parent = Some(("p2".into(), "COPY . /src".into()));
        assert_eq!(
            reason(Some(&before), &now, false),
            "the step before it changed (`COPY . /src`)"
        );
        let mut b = step("a");
        b.sources = vec![
            ("first.txt".into(), "d1".into()),
            ("src/".into(), "d2".into()),
        ];
        let mut now = b.clone();
        now.key = "b".into();
        now.sources[1].1 = "d3".into();
        assert_eq!(
            reason(Some(&b), &now, false),
            "files of the build context changed: src/"
        );
        assert!(reason(Some(&before), &step("a"), false).starts_with("its result was no longer"));
        assert!(reason(Some(&before), &step("b"), true).contains("--no-cache"));
    }

    #[test]
    fn values_are_keyed_digests_and_files_are_private() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let explain = dir.path().join("explain");
        std::fs::create_dir_all(&explain)?;
        let old = explain.join("old.json");
        std::fs::write(&old, "{\"env\":[\"DB_PASSWORD=hunter2\"]}")?;
        let key = ValueKey::open(&explain)?;
        assert!(!old.exists(), "a summary with plain values was kept");
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode(&explain.join("key"))?, 0o600);
        assert_eq!(ValueKey::open(&explain)?.0, key.0, "the key changed");

        let redacted = key.redact("DB_PASSWORD=hunter2");
        assert!(!redacted.contains("hunter2"), "{redacted}");
        let (name, digest) = redacted.split_once('=').ok_or("no =")?;
        assert_eq!(name, "DB_PASSWORD");
        assert_eq!(digest.len(), 12);
        assert_ne!(redacted, key.redact("DB_PASSWORD=hunter3"));
        // Keyed: not the plain hash anyone can compute from a guess.
        assert!(!blake3::hash(b"hunter2").to_hex().starts_with(digest));
        let other = ValueKey::open(&dir.path().join("other"))?;
        assert_ne!(redacted, other.redact("DB_PASSWORD=hunter2"));

        let path = explain.join("s.json");
        let mut summary = Summary::new();
        summary.insert("stage 1/1".into(), step("a"));
        save(&path, &summary)?;
        assert_eq!(mode(&path)?, 0o600);
        assert_eq!(mode(&explain)?, 0o700);
        Ok(())
    }
}
