//! `--secret` and `--ssh` of `strata build`, read into the build's
//! [`BuildSecrets`] as docker's flags are: a secret from a file (`src=`), an
//! environment variable (`env=`, or the id itself), an agent from a socket
//! (`default` is `$SSH_AUTH_SOCK`). Values stay in memory.

use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

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

/// One `--ssh` value.
fn ssh(spec: &str) -> Result<(String, PathBuf), Failure> {
    let (id, path) = match spec.split_once('=') {
        Some((id, path)) => (id.to_string(), PathBuf::from(path)),
        None => {
            let sock = std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| {
                usage(format!(
                    "--ssh {spec}: SSH_AUTH_SOCK is not set (give {spec}=SOCKET)"
                ))
            })?;
            (spec.to_string(), PathBuf::from(sock))
        }
    };
    if id.is_empty() {
        return Err(usage(format!("--ssh {spec}: no id")));
    }
    match std::fs::metadata(&path) {
        Ok(m) if m.file_type().is_socket() => Ok((id, path)),
        Ok(_) => Err(usage(format!(
            "--ssh {spec}: {} is not an agent socket (key files are not supported yet: \
             add the key to an ssh-agent and give its socket)",
            path.display()
        ))),
        Err(e) => Err(usage(format!("--ssh {spec}: {}: {e}", path.display()))),
    }
}

/// The secrets and agents of `--secret` and `--ssh`.
pub fn parse(secrets: &[String], agents: &[String]) -> Result<BuildSecrets, Failure> {
    let mut out = BuildSecrets::default();
    for spec in secrets {
        let (id, value) = secret(spec)?;
        out.add_secret(id, value);
    }
    for spec in agents {
        let (id, path) = ssh(spec)?;
        out.add_ssh(id, path);
    }
    Ok(out)
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
        assert!(ssh(&format!("default={}", file.display())).is_err());
        Ok(())
    }
}
