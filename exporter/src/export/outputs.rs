//! `-o/--output` specifications, as docker buildx spells them, and writing
//! them: `type=oci,dest=out.tar`, `type=docker,dest=out.tar`,
//! `type=local,dest=dir`, `type=tar,dest=out.tar`, `type=image[,name=N][,push=true]`
//! (the local store, and its registry with `push=true`),
//! `type=registry[,name=N]` (= `type=image,push=true`), or a bare path
//! (= `type=local,dest=PATH`).

use std::path::PathBuf;

use strata_cache::ImageStore;
use strata_solver::ops::Layer;

use crate::{ExportError, ImageRef, output};

/// Where a build's result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The local image store, under `names` besides the `-t` ones; pushed
    /// to their registry when `push` (under the `-t` names when `names` is empty).
    Image {
        /// Names given with `name=`.
        names: Vec<String>,
        /// `push=true` or `type=registry`.
        push: bool,
    },
    /// An OCI image layout in a tar file.
    Oci(PathBuf),
    /// A docker-archive tar file (`docker load`).
    Docker(PathBuf),
    /// The final filesystem, copied to a directory.
    Local(PathBuf),
    /// The final filesystem as one tar file.
    Tar(PathBuf),
}

/// An `-o` value that cannot be understood; one sentence for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OutputError(String);

impl Output {
    /// How progress names it, e.g. `oci archive out.tar`.
    pub fn describe(&self) -> String {
        match self {
            Output::Image { .. } => "to the image store".to_string(),
            Output::Oci(p) => format!("oci archive {}", p.display()),
            Output::Docker(p) => format!("docker archive {}", p.display()),
            Output::Local(p) => format!("files to {}", p.display()),
            Output::Tar(p) => format!("files as tar {}", p.display()),
        }
    }

    /// Parses one `-o` value.
    pub fn parse(s: &str) -> Result<Self, OutputError> {
        let err = |m: String| OutputError(m);
        if !s.contains('=') {
            if s.is_empty() {
                return Err(err(
                    "--output needs a value such as type=oci,dest=image.tar".into(),
                ));
            }
            return Ok(Output::Local(PathBuf::from(s)));
        }
        let mut kind = None;
        let mut dest = None;
        let mut names = Vec::new();
        let mut push = false;
        for field in s.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| err(format!("--output {s}: `{field}` is not key=value")))?;
            let v = v.trim();
            match k.trim() {
                "type" => kind = Some(v.to_string()),
                "dest" => dest = Some(PathBuf::from(v)),
                "name" => names.push(v.to_string()),
                "push" => {
                    push = v
                        .parse()
                        .map_err(|_| err(format!("--output {s}: push={v} is not true or false")))?;
                }
                // BuildKit accepts these for images; strata takes them from other flags.
                "compression" | "compression-level" | "oci-mediatypes" => {}
                other => return Err(err(format!("--output {s}: unknown key `{other}`"))),
            }
        }
        let kind = kind.ok_or_else(|| err(format!("--output {s}: missing type=")))?;
        let need_dest = |dest: Option<PathBuf>| {
            dest.ok_or_else(|| err(format!("--output {s}: type={kind} needs dest=PATH")))
        };
        match kind.as_str() {
            "image" => Ok(Output::Image { names, push }),
            "registry" => Ok(Output::Image { names, push: true }),
            "oci" => Ok(Output::Oci(need_dest(dest)?)),
            "docker" => Ok(Output::Docker(need_dest(dest)?)),
            "local" => Ok(Output::Local(need_dest(dest)?)),
            "tar" => Ok(Output::Tar(need_dest(dest)?)),
            other => Err(err(format!(
                "--output {s}: unknown type `{other}` (expected image, registry, oci, docker, local or tar)"
            ))),
        }
    }
}

/// Writes one file output of the image built (`Image` outputs are the
/// store's and the registry's, written by the caller).
pub(crate) fn write(
    store: &ImageStore,
    image: &ImageRef,
    stack: &[Layer],
    tags: &[String],
    output: &Output,
) -> Result<(), ExportError> {
    let dirs: Vec<PathBuf> = stack.iter().map(|l| l.dir.clone()).collect();
    let content = store.content();
    match output {
        Output::Image { .. } => Ok(()),
        Output::Oci(dest) => {
            output::oci_archive(content, &[(image.manifest.clone(), tags.to_vec())], dest)
        }
        Output::Docker(dest) => output::docker_archive(content, &image.manifest_digest, tags, dest),
        Output::Local(dest) => output::local_dir(&dirs, dest),
        Output::Tar(dest) => output::tar_stream(&dirs, dest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(s: &str) -> String {
        Output::parse(s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn parses_buildx_forms() {
        assert_eq!(
            Output::parse("type=oci,dest=a.tar"),
            Ok(Output::Oci("a.tar".into()))
        );
        assert_eq!(
            Output::parse("type=docker,dest=/x/b.tar"),
            Ok(Output::Docker("/x/b.tar".into()))
        );
        assert_eq!(Output::parse("out"), Ok(Output::Local("out".into())));
        assert_eq!(
            Output::parse("type=image"),
            Ok(Output::Image {
                names: vec![],
                push: false
            })
        );
        assert_eq!(
            Output::parse("type=tar,dest=fs.tar"),
            Ok(Output::Tar("fs.tar".into()))
        );
        assert!(message("type=local").contains("needs dest=PATH"));
        assert!(message("type=zip,dest=x").contains("unknown type `zip`"));
        assert!(message("type=oci,dset=x").contains("unknown key `dset`"));
        assert!(message("type=image,push=maybe").contains("push=maybe"));
    }

    #[test]
    fn push_is_an_image_output() {
        let pushed = Ok(Output::Image {
            names: vec!["127.0.0.1:5000/a:1".into()],
            push: true,
        });
        assert_eq!(
            Output::parse("type=registry,name=127.0.0.1:5000/a:1"),
            pushed
        );
        assert_eq!(
            Output::parse("type=image,name=127.0.0.1:5000/a:1,push=true"),
            pushed
        );
    }
}
