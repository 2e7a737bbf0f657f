//! `--secret` and `--ssh` of `strata build`, read into the build's
//! [`BuildSecrets`] as docker's flags are: a secret from a file (`src=`), an
//! environment variable (`env=`, or the id itself), an agent from a socket
//! (`default` is `$SSH_AUTH_SOCK`) or from key files, loaded into an
//! `ssh-agent` of the build's own ([`KeyAgents`], its socket under
//! `$STRATA_ROOT/tmp`, ended with the build). Secret values stay in memory.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strata_solver::{BuildSecrets, SecretBytes};

use crate::exit::Failure;

fn usage(message: String) -> Failure {
    Failure::Usage(message)
}

/// One `--secret` value.
fn secret(spec: &str) -> Result<(String, SecretBytes), Failure> {
    let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(v.to_string()),
            Some(("env", v)) => env = Some(v.to_string()),
            Some(("type", v)) => kind = Some(v.to_string()),
            _ => {
                return Err(usage(format!(
                    "--secret {spec}: unexpected {field:?} (expected id=, src=, env= or type=)"
                )));
            }
        }
    }
    let id = id
        .or_else(|| env.clone())
        .ok_or_else(|| usage(format!("--secret {spec}: no id=")))?;
    let from_file = match kind.as_deref() {
        Some("file") => true,
        Some("env") => false,
        None => src.is_some(),
        Some(other) => {
            return Err(usage(format!(
                "--secret {spec}: type={other} (expected file or env)"
            )));
        }
    };
    let value = if from_file {
        let path = src.unwrap_or_else(|| id.clone());
        std::fs::read(&path)
            .map_err(|e| usage(format!("--secret {spec}: cannot read {path}: {e}")))?
    } else {
        // Without src=, docker reads the variable env= names, else the one the id names.
        let var = env.or(src).unwrap_or_else(|| id.clone());
        std::env::var_os(&var)
            .map(|v| v.into_encoded_bytes())
            .ok_or_else(|| {
                usage(format!(
                    "--secret {spec}: the environment variable {var} is not set"
                ))
            })?
    };
    Ok((id, SecretBytes::new(value)))
}

/// The `ssh-agent`s started for `--ssh ID=KEYFILE`; ended (by their pid) and
/// their folders removed when dropped.
#[derive(Default)]
pub struct KeyAgents {
    agents: Vec<(Child, PathBuf)>,
}

impl Drop for KeyAgents {
    fn drop(&mut self) {
        for (child, dir) in &mut self.agents {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl KeyAgents {
    /// Starts an agent holding `keys`; returns its socket.
    fn start(&mut self, spec: &str, keys: &[PathBuf], root: &Path) -> Result<PathBuf, Failure> {
        let env_err = |what: String| Failure::Environment(format!("--ssh {spec}: {what}"));
        let dir = root.join("tmp").join(format!(
            "ssh-agent-{}-{}",
            std::process::id(),
            self.agents.len()
        ));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| env_err(format!("cannot create {}: {e}", dir.display())))?;
        let sock = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| env_err(format!("cannot start ssh-agent (openssh-client): {e}")))?;
        self.agents.push((child, dir));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            if Instant::now() > deadline {
                return Err(env_err("ssh-agent did not make its socket".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for key in keys {
            let added = Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &sock)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| env_err(format!("cannot run ssh-add: {e}")))?;
            if !added.status.success() {
                return Err(usage(format!(
                    "--ssh {spec}: ssh-add {} failed: {}",
                    key.display(),
                    String::from_utf8_lossy(&added.stderr).trim()
                )));
            }
        }
        Ok(sock)
    }
}

/// One `--ssh` value: `ID` ($SSH_AUTH_SOCK), `ID=SOCKET` or `ID=KEY[,KEY…]`.
fn ssh(spec: &str, root: &Path, agents: &mut KeyAgents) -> Result<(String, PathBuf), Failure> {
    let (id, paths) = match spec.split_once('=') {
        Some((id, paths)) => (
            id.to_string(),
            paths.split(',').map(PathBuf::from).collect::<Vec<_>>(),
        ),
        None => {
            let sock = std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| {
                usage(format!(
                    "--ssh {spec}: SSH_AUTH_SOCK is not set (give {spec}=SOCKET)"
                ))
            })?;
            (spec.to_string(), vec![PathBuf::from(sock)])
        }
    };
    if id.is_empty() {
        return Err(usage(format!("--ssh {spec}: no id")));
    }
    let mut sockets = Vec::new();
    let mut keys = Vec::new();
    for path in paths {
        match std::fs::metadata(&path) {
            Ok(m) if m.file_type().is_socket() => sockets.push(path),
            Ok(m) if m.is_file() => keys.push(path),
            Ok(_) => {
                return Err(usage(format!(
                    "--ssh {spec}: {} is neither an agent socket nor a key file",
                    path.display()
                )));
            }
            Err(e) => return Err(usage(format!("--ssh {spec}: {}: {e}", path.display()))),
        }
    }
    match (sockets.as_slice(), keys.is_empty()) {
        ([socket], true) => Ok((id, socket.clone())),
        ([], false) => Ok((id, agents.start(spec, &keys, root)?)),
        _ => Err(usage(format!(
            "--ssh {spec}: give one agent socket or key files, not both"
        ))),
    }
}

/// The secrets and agents of `--secret` and `--ssh`, with the agents started
/// for key files (keep them until the build ends). `root` is the state root.
pub fn parse(
    secrets: &[String],
    agents: &[String],
    root: &Path,
) -> Result<(BuildSecrets, KeyAgents), Failure> {
    let mut out = BuildSecrets::default();
    let mut started = KeyAgents::default();
    for spec in secrets {
        let (id, value) = secret(spec)?;
        out.add_secret(id, value);
    }
    for spec in agents {
        let (id, path) = ssh(spec, root, &mut started)?;
        out.add_ssh(id, path);
    }
    Ok((out, started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_from_files_and_bad_specs() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cr3t")?;
        let (id, value) = secret(&format!("id=tok,src={}", file.display()))
            .map_err(|f| f.message().to_string())?;
        assert_eq!((id.as_str(), value.expose()), ("tok", &b"s3cr3t"[..]));
        assert!(secret("id=x,bogus=1").is_err());
        assert!(secret(&format!("id=x,src={}/missing", dir.path().display())).is_err());
        let mut agents = KeyAgents::default();
        let dir_file = format!("default={}", dir.path().display());
        assert!(ssh(&dir_file, dir.path(), &mut agents).is_err());
        Ok(())
    }
}
