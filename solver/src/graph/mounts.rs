//! The extra mounts of an [`ExecOp`](super::ExecOp) (`RUN --mount`), as the graph and the
//! cache key see them: what is mounted where, never what a cache folder, a secret or an
//! ssh agent holds.

use super::KeyEncoder;

/// One extra mount of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecMount {
    /// Absolute path inside the step; `None` only for a secret exposed as an environment
    /// variable alone.
    pub target: Option<String>,
    /// What is mounted.
    pub kind: MountKind,
}

/// Where a bind mount's or a cache seed's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountFrom {
    /// The build context, with the digest of exactly what `source` exposes (after
    /// `.dockerignore`), as COPY's selection digest.
    Context {
        /// The digest.
        digest: String,
    },
    /// The filesystem of the vertex's input at this index (an [`EdgeRole::Mount`](super::EdgeRole::Mount) input).
    Input(usize),
}

/// How concurrent steps share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSharing {
    /// Every step uses the same folder at once.
    Shared,
    /// A step uses its own folder while another holds the usual one.
    Private,
    /// A step waits until no other step uses the folder.
    Locked,
}

/// What an [`ExecMount`] mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// Files of the context, a stage or an image; writes (with `rw`) are thrown away.
    Bind {
        /// Where the files come from.
        from: MountFrom,
        /// The path inside `from` (`/` for all of it).
        source: String,
        /// Read-only inside the step.
        readonly: bool,
    },
    /// A folder kept under the state root across builds, never in a layer or a key.
    Cache {
        /// Its identity: steps with the same id share the folder.
        id: String,
        /// How concurrent steps share it.
        sharing: CacheSharing,
        /// What a new cache folder starts with, and the path inside it.
        seed: Option<(MountFrom, String)>,
        /// Read-only inside the step.
        readonly: bool,
        /// Mode of a new cache folder.
        mode: u32,
        /// Owner of a new cache folder.
        uid: u32,
        /// Group of a new cache folder.
        gid: u32,
    },
    /// An empty tmpfs.
    Tmpfs {
        /// Size limit in bytes.
        size: Option<u64>,
    },
    /// A secret given to the build, as a file at the target and/or an environment variable.
    Secret {
        /// The secret's id (`--secret id=...`).
        id: String,
        /// Fail when the build has no such secret (else the mount is left out).
        required: bool,
        /// The environment variable that holds it, if any.
        env: Option<String>,
        /// File mode.
        mode: u32,
        /// File owner.
        uid: u32,
        /// File group.
        gid: u32,
    },
    /// An ssh agent socket given to the build (`--ssh id=...`).
    Ssh {
        /// The agent's id.
        id: String,
        /// Fail when the build has no such agent (else the mount is left out).
        required: bool,
        /// Socket mode.
        mode: u32,
        /// Socket owner.
        uid: u32,
        /// Socket group.
        gid: u32,
    },
}

fn encode_from(enc: &mut KeyEncoder, from: &MountFrom) {
    match from {
        MountFrom::Context { digest } => {
            enc.str("context");
            enc.str(digest);
        }
        // The input's own key is part of the vertex's key already.
        MountFrom::Input(i) => {
            enc.str("input");
            enc.u64(*i as u64);
        }
    }
}

/// Feeds the mounts' definitions (never a cache's, secret's or agent's content) to `enc`.
pub(super) fn encode_mounts(enc: &mut KeyEncoder, mounts: &[ExecMount]) {
    enc.u64(mounts.len() as u64);
    for m in mounts {
        enc.opt_str(m.target.as_deref());
        match &m.kind {
            MountKind::Bind {
                from,
                source,
                readonly,
            } => {
                enc.str("bind");
                encode_from(enc, from);
                enc.str(source);
                enc.u64(u64::from(*readonly));
            }
            MountKind::Cache {
                id,
                sharing,
                seed,
                readonly,
                mode,
                uid,
                gid,
            } => {
                enc.str("cache");
                enc.str(id);
                enc.u64(*sharing as u64);
                match seed {
                    None => enc.u64(0),
                    Some((from, source)) => {
                        enc.u64(1);
                        encode_from(enc, from);
                        enc.str(source);
                    }
                }
                enc.u64(u64::from(*readonly));
                for n in [mode, uid, gid] {
                    enc.u64(u64::from(*n));
                }
            }
            MountKind::Tmpfs { size } => {
                enc.str("tmpfs");
                enc.u64(size.map_or(0, |s| s.saturating_add(1)));
            }
            MountKind::Secret {
                id,
                required,
                env,
                mode,
                uid,
                gid,
            } => {
                enc.str("secret");
                enc.str(id);
                enc.u64(u64::from(*required));
                enc.opt_str(env.as_deref());
                for n in [mode, uid, gid] {
                    enc.u64(u64::from(*n));
                }
            }
            MountKind::Ssh {
                id,
                required,
                mode,
                uid,
                gid,
            } => {
                enc.str("ssh");
                enc.str(id);
                enc.u64(u64::from(*required));
                for n in [mode, uid, gid] {
                    enc.u64(u64::from(*n));
                }
            }
        }
    }
}
