//! `-o/--output` specifications, as docker buildx spells them:
//! `type=oci,dest=out.tar`, `type=docker,dest=out.tar`, `type=local,dest=dir`,
//! `type=tar,dest=out.tar`, `type=image` (the local store), or a bare path
//! (= `type=local,dest=PATH`).

use std::path::PathBuf;

/// Where a build's result goes besides the local store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// The local image store (what `-t` alone does).
    Image,
    /// An OCI image layout in a tar file.
    Oci(PathBuf),
    /// A docker-archive tar file (`docker load`).
    Docker(PathBuf),
    /// The final filesystem, copied to a directory.
    Local(PathBuf),
    /// The final filesystem as one tar file.
    Tar(PathBuf),
}

impl OutputSpec {
    /// How progress names it, e.g. `oci archive out.tar`.
    pub fn describe(&self) -> String {
        match self {
            OutputSpec::Image => "to the image store".to_string(),
            OutputSpec::Oci(p) => format!("oci archive {}", p.display()),
            OutputSpec::Docker(p) => format!("docker archive {}", p.display()),
            OutputSpec::Local(p) => format!("files to {}", p.display()),
            OutputSpec::Tar(p) => format!("files as tar {}", p.display()),
        }
    }

    /// Parses one `-o` value; the error is one sentence for the user.
    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.contains('=') {
            if s.is_empty() {
                return Err("--output needs a value such as type=oci,dest=image.tar".into());
            }
            return Ok(OutputSpec::Local(PathBuf::from(s)));
        }
        let mut kind = None;
        let mut dest = None;
        for field in s.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| format!("--output {s}: `{field}` is not key=value"))?;
            match k.trim() {
                "type" => kind = Some(v.trim().to_string()),
                "dest" => dest = Some(PathBuf::from(v.trim())),
                // BuildKit accepts these for images; the store names come from -t.
                "name" | "compression" | "compression-level" | "oci-mediatypes" => {}
                other => return Err(format!("--output {s}: unknown key `{other}`")),
            }
        }
        let kind = kind.ok_or_else(|| format!("--output {s}: missing type="))?;
        let need_dest = |dest: Option<PathBuf>| {
            dest.ok_or_else(|| format!("--output {s}: type={kind} needs dest=PATH"))
        };
        match kind.as_str() {
            "image" => Ok(OutputSpec::Image),
            "oci" => Ok(OutputSpec::Oci(need_dest(dest)?)),
            "docker" => Ok(OutputSpec::Docker(need_dest(dest)?)),
            "local" => Ok(OutputSpec::Local(need_dest(dest)?)),
            "tar" => Ok(OutputSpec::Tar(need_dest(dest)?)),
            other => Err(format!(
                "--output {s}: unknown type `{other}` (expected image, oci, docker, local or tar)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_forms() {
        assert_eq!(
            OutputSpec::parse("type=oci,dest=a.tar"),
            Ok(OutputSpec::Oci("a.tar".into()))
        );
        assert_eq!(
            OutputSpec::parse("type=docker,dest=/x/b.tar"),
            Ok(OutputSpec::Docker("/x/b.tar".into()))
        );
        assert_eq!(
            OutputSpec::parse("out"),
            Ok(OutputSpec::Local("out".into()))
        );
        assert_eq!(OutputSpec::parse("type=image"), Ok(OutputSpec::Image));
        assert_eq!(
            OutputSpec::parse("type=tar,dest=fs.tar"),
            Ok(OutputSpec::Tar("fs.tar".into()))
        );
        let err = OutputSpec::parse("type=local").err().unwrap_or_default();
        assert!(err.contains("needs dest=PATH"), "{err}");
        let err = OutputSpec::parse("type=zip,dest=x")
            .err()
            .unwrap_or_default();
        assert!(err.contains("unknown type `zip`"), "{err}");
        let err = OutputSpec::parse("type=oci,dset=x")
            .err()
            .unwrap_or_default();
        assert!(err.contains("unknown key `dset`"), "{err}");
    }
}
