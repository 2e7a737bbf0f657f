//! `RUN --mount`: the parser's mounts become the graph's [`ExecMount`]s, with BuildKit's
//! defaults (the Dockerfile reference's tables):
//!
//! - `bind`: from the context unless `from=` names a stage, a `--build-context` or an
//!   image; `source` defaults to the root of `from`; read-only unless `rw`. A context
//!   source carries the digest of exactly the files it exposes (after `.dockerignore`), so
//!   the step's key follows them as COPY's does.
//! - `cache`: `id` defaults to the target; `sharing=shared`; mode 0755, uid and gid 0.
//! - `tmpfs`: `size` in bytes, or with a `k`, `m` or `g` suffix.
//! - `secret`: `id` defaults to the target's base name, the target to `/run/secrets/<id>`
//!   (none when only `env=` is given); mode 0400.
//! - `ssh`: `id` defaults to `default`, the target to `/run/buildkit/ssh_agent.<N>` (N
//!   counting the step's ssh mounts from 0); mode 0600.
//!
//! A relative target is inside the working directory, as in BuildKit. Every value may use
//! the stage's variables.

use strata_parser::{Mount, MountType, Sharing};

use super::Lowerer;
use super::error::LowerError;
use super::stages::{self, StageState};
use crate::graph::{CacheSharing, EdgeRole, ExecMount, Input, MountFrom, MountKind, VertexId};

impl Lowerer<'_> {
    /// The mounts of a RUN and the inputs they add after the parent (`inputs` holds the
    /// vertex's inputs so far; [`MountFrom::Input`] indexes it).
    pub(super) fn run_mounts(
        &mut self,
        st: &StageState,
        mounts: &[Mount],
        cwd: &str,
        inputs: &mut Vec<Input>,
        line: u32,
    ) -> Result<Vec<ExecMount>, LowerError> {
        let scope = &st.scope;
        let mut out = Vec::new();
        let mut ssh_count = 0;
        for m in mounts {
            let word = |lowerer: &Self, w: &Option<String>| -> Result<Option<String>, LowerError> {
                w.as_deref()
                    .map(|w| lowerer.expand(scope, w, line))
                    .transpose()
            };
            let target = word(self, &m.target)?
                .filter(|t| !t.is_empty())
                .map(|t| absolute(cwd, &t));
            let source = word(self, &m.source)?;
            let from = word(self, &m.from)?.filter(|f| !f.is_empty());
            let id = word(self, &m.id)?.filter(|i| !i.is_empty());
            let need_target = |what: &str| {
                target.clone().ok_or_else(|| LowerError::Invalid {
                    line,
                    message: format!("--mount=type={what} needs a target"),
                })
            };
            let mount = match m.kind {
                MountType::Bind => {
                    let source = clean_source(source.as_deref());
                    let from = self.mount_from(from.as_deref(), &source, inputs, line)?;
                    ExecMount {
                        target: Some(need_target("bind")?),
                        kind: MountKind::Bind {
                            from,
                            source,
                            readonly: m.readonly,
                        },
                    }
                }
                MountType::Cache => {
                    let target = need_target("cache")?;
                    let seed = match from.as_deref() {
                        None => None,
                        Some(f) => {
                            let source = clean_source(source.as_deref());
                            let from = self.mount_from(Some(f), &source, inputs, line)?;
                            Some((from, source))
                        }
                    };
                    ExecMount {
                        kind: MountKind::Cache {
                            id: id.unwrap_or_else(|| target.clone()),
                            sharing: match m.sharing {
                                Sharing::Shared => CacheSharing::Shared,
                                Sharing::Private => CacheSharing::Private,
                                Sharing::Locked => CacheSharing::Locked,
                            },
                            seed,
                            readonly: m.readonly,
                            mode: m.mode.unwrap_or(0o755),
                            uid: m.uid.unwrap_or(0),
                            gid: m.gid.unwrap_or(0),
                        },
                        target: Some(target),
                    }
                }
                MountType::Tmpfs => {
                    let size = match word(self, &m.size)? {
                        None => None,
                        Some(s) => Some(parse_size(&s).ok_or_else(|| LowerError::Invalid {
                            line,
                            message: format!("--mount=type=tmpfs,size={s} is not a size"),
                        })?),
                    };
                    ExecMount {
                        target: Some(need_target("tmpfs")?),
                        kind: MountKind::Tmpfs { size },
                    }
                }
                MountType::Secret => {
                    let env = word(self, &m.env)?.filter(|e| !e.is_empty());
                    // The parser fills in /run/secrets/<id or source> when no target and
                    // no env are given.
                    let id = id
                        .or(source)
                        .or_else(|| target.as_deref().map(base_name))
                        .ok_or_else(|| LowerError::Invalid {
                            line,
                            message: "--mount=type=secret needs an id or a target".into(),
                        })?;
                    ExecMount {
                        target,
                        kind: MountKind::Secret {
                            id,
                            required: m.required,
                            env,
                            mode: m.mode.unwrap_or(0o400),
                            uid: m.uid.unwrap_or(0),
                            gid: m.gid.unwrap_or(0),
                        },
                    }
                }
                MountType::Ssh => {
                    let target =
                        target.unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{ssh_count}"));
                    ssh_count += 1;
                    ExecMount {
                        target: Some(target),
                        kind: MountKind::Ssh {
                            id: id.unwrap_or_else(|| "default".into()),
                            required: m.required,
                            mode: m.mode.unwrap_or(0o600),
                            uid: m.uid.unwrap_or(0),
                            gid: m.gid.unwrap_or(0),
                        },
                    }
                }
            };
            out.push(mount);
        }
        Ok(out)
    }

    /// Where a bind's or a cache seed's files come from: the context (no `from`), or a
    /// stage, named context or image added as an input.
    fn mount_from(
        &mut self,
        from: Option<&str>,
        source: &str,
        inputs: &mut Vec<Input>,
        line: u32,
    ) -> Result<MountFrom, LowerError> {
        match from {
            None => {
                let digest = match &self.opts.context {
                    Some(files) => files
                        .digest(source)
                        .unwrap_or_else(|why| format!("unreadable: {why}")),
                    None => String::new(),
                };
                Ok(MountFrom::Context { digest })
            }
            Some(from) => {
                let vertex = self.source_vertex(from, line)?;
                inputs.push(Input {
                    vertex,
                    role: EdgeRole::Mount,
                });
                Ok(MountFrom::Input(inputs.len() - 1))
            }
        }
    }

    /// The vertex a `--from`/`from=` word names: an earlier stage (by name or number)
    /// unless a `--build-context` of that name replaces it, else an image.
    pub(super) fn source_vertex(&mut self, from: &str, line: u32) -> Result<VertexId, LowerError> {
        let current = self.done.len();
        if self.named_context(from).is_none()
            && let Some(i) = stages::resolve_stage(&self.names, current, from, true)
            && let Some(d) = self.done.get(i)
        {
            return Ok(d.last);
        }
        let (op, _) = self.source_image(from, line)?;
        Ok(self.graph.add(op, format!("[internal] {from}"), vec![])?)
    }
}

/// A target inside the working directory unless absolute.
fn absolute(cwd: &str, target: &str) -> String {
    if target.starts_with('/') {
        target.to_string()
    } else {
        format!("{}/{target}", cwd.trim_end_matches('/'))
    }
}

/// A source path inside `from`, relative, `.` for all of it.
fn clean_source(source: Option<&str>) -> String {
    let s = source.unwrap_or("").trim_start_matches('/');
    if s.is_empty() { ".".into() } else { s.into() }
}

fn base_name(path: &str) -> String {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .to_string()
}

/// `1024`, `64k`, `10m`, `1g` (also `kb`, `mb`, `gb`, any case) in bytes.
fn parse_size(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &lower[digits.len()..];
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_targets_and_ids() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("ten"), None);
        assert_eq!(absolute("/app", "cache"), "/app/cache");
        assert_eq!(absolute("/", "cache"), "/cache");
        assert_eq!(base_name("/run/secrets/token"), "token");
        assert_eq!(clean_source(Some("/")), ".");
        assert_eq!(clean_source(Some("/src/a")), "src/a");
    }
}
