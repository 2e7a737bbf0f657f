//! The executor's side of `RUN --mount`: each [`ExecMount`] of a step becomes a sandbox
//! [`StepMount`], with whatever must live while the step runs (cache mount locks, views of
//! stages, scratch copies, ssh proxies) kept in [`PreparedMounts`].
//!
//! - A bind from the context shows a copy of exactly the files COPY would take from
//!   `source` (`.dockerignore` applied, owners 0:0), made under the build's scratch folder:
//!   what the step sees is what its key covers, and `rw` writes go nowhere.
//! - A bind from a stage or image shows the path inside a read-only view of its layers
//!   (resolved inside it); with `rw`, a scratch copy of it.
//! - A cache mount is a folder of [`strata_cache::cache_mounts`], held as `sharing` says;
//!   a new one starts as a copy of its `from`/`source` when given.
//! - A secret is a file on a tmpfs of the step's own mount namespace (the sandbox's
//!   [`MountSource::File`]) and/or an environment variable of the process; it is never
//!   written under the state root, and never part of the graph or a key.
//! - An ssh mount is a socket of a proxy ([`super::ssh_proxy`]) that forwards each
//!   connection to the agent the build was given, made with the mount's owner and mode.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use strata_cache::DockerIgnore;
use strata_cache::cache_mounts::{self, CacheMountLease, NewMount, Sharing};
use strata_sandbox::{MergedView, MountSource, SecretBytes, StepMount};

use super::copy::{self, CopyRequest};
use super::executor::Stack;
use super::ssh_proxy::SshProxy;
use crate::graph::{CacheSharing, ExecMount, MountFrom, MountKind};
use crate::schedule::OpError;

/// The secrets and ssh agents a build was given (`--secret`, `--ssh`). Its `Debug` shows
/// ids only.
#[derive(Clone, Default)]
pub struct BuildSecrets {
    secrets: HashMap<String, SecretBytes>,
    ssh: HashMap<String, PathBuf>,
}

impl std::fmt::Debug for BuildSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut secrets: Vec<&String> = self.secrets.keys().collect();
        secrets.sort();
        let mut ssh: Vec<&String> = self.ssh.keys().collect();
        ssh.sort();
        f.debug_struct("BuildSecrets")
            .field("secrets", &secrets)
            .field("ssh", &ssh)
            .finish()
    }
}

impl BuildSecrets {
    /// Adds (or replaces) secret `id`.
    pub fn add_secret(&mut self, id: impl Into<String>, value: SecretBytes) {
        self.secrets.insert(id.into(), value);
    }

    /// Adds (or replaces) the ssh agent `id`, listening on `socket`.
    pub fn add_ssh(&mut self, id: impl Into<String>, socket: PathBuf) {
        self.ssh.insert(id.into(), socket);
    }
}

/// Why a step's mounts cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A `required` secret the build was not given.
    #[error("secret {id} is required but was not given (--secret id={id},src=...)")]
    MissingSecret {
        /// Its id.
        id: String,
    },
    /// A `required` ssh agent the build was not given.
    #[error("ssh agent {id} is required but was not given (--ssh {id}=SOCKET)")]
    MissingSsh {
        /// Its id.
        id: String,
    },
    /// A secret given as an environment variable holds a NUL byte, which no
    /// environment can carry.
    #[error("secret {id} holds a NUL byte and cannot be the environment variable {var}")]
    SecretNul {
        /// Its id.
        id: String,
        /// The variable.
        var: String,
    },
    /// The path a bind or a cache seed names is not in its stage or image.
    #[error("mount source {source_path} does not exist in {from}")]
    MissingSource {
        /// The path.
        source_path: String,
        /// Where it was looked for.
        from: String,
    },
    /// A scratch folder, a view or the ssh proxy could not be made.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What the step's mounts need while it runs; dropped when it ends.
#[derive(Default)]
pub(crate) struct PreparedMounts {
    /// The sandbox's mounts.
    pub mounts: Vec<StepMount>,
    /// Environment entries the mounts add (`env=` secrets, `SSH_AUTH_SOCK`).
    pub env: Vec<String>,
    // Dropped in this order: the proxies before the folders their sockets are in, the views
    // before the scratch folder they are mounted in.
    proxies: Vec<SshProxy>,
    leases: Vec<CacheMountLease>,
    views: Vec<MergedView>,
    scratch: Vec<tempfile::TempDir>,
}

/// What [`prepare`] reads from the executor.
pub(crate) struct MountContext<'a> {
    pub root: &'a Path,
    pub scratch: &'a Path,
    pub context: &'a Path,
    pub ignore: &'a DockerIgnore,
    pub secrets: &'a BuildSecrets,
    pub decompression_limit: u64,
}

/// A failed file operation of `action` on `path`, as a [`MountError`].
pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> MountError {
    let path = path.to_path_buf();
    move |source| MountError::Io {
        action,
        path,
        source,
    }
}

impl MountContext<'_> {
    fn scratch_dir(&self, prepared: &mut PreparedMounts) -> Result<PathBuf, OpError> {
        let dir = tempfile::Builder::new()
            .prefix("mount-")
            .tempdir_in(self.scratch)
            .map_err(io("create a mount folder in", self.scratch))?;
        let path = dir.path().to_path_buf();
        prepared.scratch.push(dir);
        Ok(path)
    }

    /// Copies `source` of `src_root` (the context when `from_context`) into `into`, as
    /// COPY `source` `/` would; returns the path showing `source` itself.
    fn copy_into(
        &self,
        src_root: &Path,
        from_context: bool,
        source: &str,
        into: &Path,
        empty: &Path,
    ) -> Result<PathBuf, OpError> {
        let sources = [source.to_string()];
        let req = CopyRequest {
            src_root,
            from_context,
            ignore: self.ignore,
            sources: &sources,
            dest: "/",
            cwd: "/",
            parent_root: empty,
            users_root: empty,
            layer: into,
            chown: None,
            chmod: None,
            extract_archives: false,
            decompression_limit: self.decompression_limit,
            parents: false,
            exclude: &[],
        };
        copy::copy(&req, &|| false)?;
        let shown =
            copy::rootpath::in_root(src_root, source, true).map_err(io("resolve", src_root))?;
        let is_dir = fs::metadata(&shown).is_ok_and(|m| m.is_dir());
        Ok(if is_dir {
            into.to_path_buf()
        } else {
            let name = shown.file_name().map(PathBuf::from).unwrap_or_default();
            into.join(name)
        })
    }

    /// The folder a cache seed is copied from, and whether it is the context.
    fn seed_root(
        &self,
        from: &MountFrom,
        inputs: &[Stack],
        prepared: &mut PreparedMounts,
    ) -> Result<(PathBuf, bool), OpError> {
        match from {
            MountFrom::Context { .. } => Ok((self.context.to_path_buf(), true)),
            MountFrom::Input(i) => {
                let stack = inputs.get(*i).cloned().unwrap_or_default();
                let dirs: Vec<PathBuf> = stack.iter().map(|l| l.dir.clone()).collect();
                let view = MergedView::new(&dirs, self.scratch)?;
                let root = view.root().to_path_buf();
                prepared.views.push(view);
                Ok((root, false))
            }
        }
    }

    /// The host path showing `source` of `from`: a scratch copy when `writable` or from
    /// the context, else the path inside a view of the input's layers.
    fn source_path(
        &self,
        from: &MountFrom,
        source: &str,
        writable: bool,
        inputs: &[Stack],
        prepared: &mut PreparedMounts,
    ) -> Result<PathBuf, OpError> {
        let empty = self.scratch_dir(prepared)?;
        match from {
            MountFrom::Context { .. } => {
                let into = self.scratch_dir(prepared)?;
                self.copy_into(self.context, true, source, &into, &empty)
            }
            MountFrom::Input(i) => {
                let stack = inputs.get(*i).cloned().unwrap_or_default();
                let dirs: Vec<PathBuf> = stack.iter().map(|l| l.dir.clone()).collect();
                let view = MergedView::new(&dirs, self.scratch)?;
                let inside = copy::rootpath::in_root(view.root(), source, true)
                    .map_err(io("resolve", view.root()))?;
                if fs::symlink_metadata(&inside).is_err() {
                    return Err(MountError::MissingSource {
                        source_path: source.to_string(),
                        from: "its stage or image".into(),
                    }
                    .into());
                }
                let path = if writable {
                    let into = self.scratch_dir(prepared)?;
                    self.copy_into(view.root(), false, source, &into, &empty)?
                } else {
                    inside
                };
                prepared.views.push(view);
                Ok(path)
            }
        }
    }
}

/// Makes what the step's mounts show. `inputs` are the vertex's inputs' outputs, in the
/// order of its inputs ([`MountFrom::Input`] indexes them).
pub(crate) fn prepare(
    cx: &MountContext<'_>,
    mounts: &[ExecMount],
    env: &[String],
    inputs: &[Stack],
) -> Result<PreparedMounts, OpError> {
    let mut prepared = PreparedMounts::default();
    let mut ssh_sock: Option<String> = None;
    for m in mounts {
        let target = m.target.clone();
        let source = match &m.kind {
            MountKind::Bind {
                from,
                source,
                readonly,
            } => {
                let path = cx.source_path(from, source, !readonly, inputs, &mut prepared)?;
                Some(MountSource::Bind {
                    path,
                    readonly: *readonly,
                })
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
                let seed_root = match seed {
                    Some((from, source)) => {
                        Some((cx.seed_root(from, inputs, &mut prepared)?, source))
                    }
                    None => None,
                };
                let empty = cx.scratch_dir(&mut prepared)?;
                let fill = |into: &Path| -> Result<(), strata_cache::CacheError> {
                    if let Some(((root, from_context), source)) = &seed_root {
                        cx.copy_into(root, *from_context, source, into, &empty)
                            .map_err(|e| strata_cache::CacheError::Io {
                                path: into.to_path_buf(),
                                source: std::io::Error::other(e.to_string()),
                            })?;
                    }
                    Ok(())
                };
                let new = NewMount {
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                    seed: Some(&fill),
                };
                let lease = cache_mounts::acquire(
                    cx.root,
                    id,
                    match sharing {
                        CacheSharing::Shared => Sharing::Shared,
                        CacheSharing::Private => Sharing::Private,
                        CacheSharing::Locked => Sharing::Locked,
                    },
                    &new,
                )?;
                let path = lease.path().to_path_buf();
                prepared.leases.push(lease);
                Some(MountSource::Bind {
                    path,
                    readonly: *readonly,
                })
            }
            MountKind::Tmpfs { size } => Some(MountSource::Tmpfs { size: *size }),
            MountKind::Secret {
                id,
                required,
                env: var,
                mode,
                uid,
                gid,
            } => match cx.secrets.secrets.get(id) {
                None if *required => {
                    return Err(MountError::MissingSecret { id: id.clone() }.into());
                }
                // BuildKit leaves an optional secret that was not given out.
                None => None,
                Some(value) => {
                    if let Some(var) = var {
                        if value.expose().contains(&0) {
                            return Err(MountError::SecretNul {
                                id: id.clone(),
                                var: var.clone(),
                            }
                            .into());
                        }
                        let text = String::from_utf8_lossy(value.expose());
                        prepared.env.push(format!("{var}={text}"));
                    }
                    target.as_ref().map(|_| MountSource::File {
                        contents: value.clone(),
                        mode: *mode,
                        uid: *uid,
                        gid: *gid,
                    })
                }
            },
            MountKind::Ssh {
                id,
                required,
                mode,
                uid,
                gid,
            } => match cx.secrets.ssh.get(id) {
                None if *required => {
                    return Err(MountError::MissingSsh { id: id.clone() }.into());
                }
                None => None,
                Some(agent) => {
                    let dir = cx.scratch_dir(&mut prepared)?;
                    let proxy =
                        SshProxy::start(agent, &dir.join("agent.sock"), *mode, (*uid, *gid))?;
                    let path = proxy.socket().to_path_buf();
                    prepared.proxies.push(proxy);
                    if ssh_sock.is_none() {
                        ssh_sock = target.clone();
                    }
                    Some(MountSource::Bind {
                        path,
                        readonly: false,
                    })
                }
            },
        };
        if let (Some(target), Some(source)) = (target, source) {
            prepared.mounts.push(StepMount { target, source });
        }
    }
    // BuildKit points SSH_AUTH_SOCK at the first agent unless the step sets it.
    if let Some(sock) = ssh_sock
        && !env.iter().any(|kv| kv.starts_with("SSH_AUTH_SOCK="))
    {
        prepared.env.push(format!("SSH_AUTH_SOCK={sock}"));
    }
    Ok(prepared)
}
