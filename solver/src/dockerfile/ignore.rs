//! Which files the Dockerfile front end reads besides the context: the
//! Dockerfile's default name, and the ignore file, where
//! `<Dockerfile>.dockerignore` beside a named Dockerfile wins over
//! `CONTEXT/.dockerignore`, as in BuildKit.

use std::path::{Path, PathBuf};

use strata_cache::DockerIgnore;

/// An ignore file that cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    /// The file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The ignore file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A pattern is invalid.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The ignore file.
        path: PathBuf,
        /// Which pattern and why.
        #[source]
        source: strata_cache::dockerignore::IgnoreError,
    },
}

/// The Dockerfile of a build: `file` when given (`-f`), else `CONTEXT/Dockerfile`.
pub fn dockerfile_path(context: &Path, file: Option<&Path>) -> PathBuf {
    file.map_or_else(|| context.join("Dockerfile"), Path::to_path_buf)
}

/// The context's ignore rules; `file` is the Dockerfile named with `-f`
/// (`None` or `-` when there is none on disk). No ignore file: nothing ignored.
pub fn read_ignore(context: &Path, file: Option<&Path>) -> Result<DockerIgnore, IgnoreError> {
    let beside_dockerfile = file.filter(|p| *p != Path::new("-")).map(|p| {
        let mut name = p.as_os_str().to_owned();
        name.push(".dockerignore");
        PathBuf::from(name)
    });
    let path = beside_dockerfile
        .into_iter()
        .chain(std::iter::once(context.join(".dockerignore")))
        .find(|p| p.is_file());
    let Some(path) = path else {
        return Ok(DockerIgnore::default());
    };
    let text = std::fs::read_to_string(&path).map_err(|source| IgnoreError::Read {
        path: path.clone(),
        source,
    })?;
    DockerIgnore::parse(&text).map_err(|source| IgnoreError::Parse { path, source })
}
