//! COPY heredoc files, written to a scratch folder for the copy to read as
//! it reads the context: mode 0644 and owned by root (BuildKit's `Mkfile`),
//! modified now, so `--chmod` and `--chown` apply as to any source.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::graph::InlineFile;
use crate::schedule::OpError;

/// A folder under `scratch` holding `files`, removed when dropped.
pub(crate) fn write(scratch: &Path, files: &[InlineFile]) -> Result<tempfile::TempDir, OpError> {
    let fail = |path: &Path, action, source| OpError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let dir = tempfile::Builder::new()
        .prefix("heredoc-")
        .tempdir_in(scratch)
        .map_err(|e| fail(scratch, "create", e))?;
    for f in files {
        let path = dir.path().join(&f.name);
        fs::write(&path, &f.content).map_err(|e| fail(&path, "write", e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .map_err(|e| fail(&path, "chmod", e))?;
    }
    Ok(dir)
}

/// The files' names as copy sources: wildcard characters escaped, so a
/// delimiter such as `A*` names its own file.
pub(crate) fn sources(files: &[InlineFile]) -> Vec<String> {
    files
        .iter()
        .map(|f| {
            let mut s = String::with_capacity(f.name.len());
            for c in f.name.chars() {
                if matches!(c, '*' | '?' | '[' | '\\') {
                    s.push('\\');
                }
                s.push(c);
            }
            s
        })
        .collect()
}
