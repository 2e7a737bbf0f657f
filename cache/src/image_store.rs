//! The local image store: `$STRATA_ROOT/store` is an OCI image layout whose
//! blobs are the [`ContentStore`]'s, and whose `index.json` lists the tagged
//! images, each tag being the entry's `org.opencontainers.image.ref.name`
//! (`demo:latest`), so `skopeo inspect oci:$ROOT/store:demo:latest` and
//! `umoci` read it as is.
//!
//! `index.json` is rewritten under an exclusive `flock` on `index.json.lock`
//! (several strata processes may tag at once), into a temporary file that is
//! fsynced and then renamed over the old one, so readers never see half of it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{ANNOTATION_REF_NAME, Descriptor, MediaType, Platform};

use crate::layout::{CONTAINERD_IMAGE_NAME, Image, LayoutError, OciLayout, digest_of, ref_name};
use crate::store::{ContentStore, Digest, StoreError};

/// Errors of the image store; each names the image, file or blob.
#[derive(Debug, thiserror::Error)]
pub enum ImageStoreError {
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The image name cannot be a reference.
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The manifest to tag is not in the content store.
    #[error("cannot tag {name}: manifest {digest} is not in the store")]
    MissingManifest {
        /// The normalized name.
        name: String,
        /// The manifest's digest.
        digest: Digest,
    },
    /// Reading the layout failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The content store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// index.json could not be serialized.
    #[error("writing {path}: {source}")]
    Serialize {
        /// The index file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ImageStoreError + '_ {
    move |source| ImageStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Normalizes an image name to `name:tag`: `demo` → `demo:latest`,
/// `a/b:1` unchanged, `host:5000/x` → `host:5000/x:latest` (a colon before
/// the last `/` is a registry port, not a tag). `name@sha256:…` is kept.
pub fn normalize_name(name: &str) -> Result<String, ImageStoreError> {
    let invalid = |reason| ImageStoreError::InvalidName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("contains whitespace"));
    }
    if name.contains('@') {
        return Ok(name.to_string());
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    if name.ends_with('/') || last.is_empty() || last.starts_with(':') {
        return Err(invalid("has no repository name"));
    }
    if last.ends_with(':') {
        return Err(invalid("has an empty tag"));
    }
    if last.contains(':') {
        Ok(name.to_string())
    } else {
        Ok(format!("{name}:latest"))
    }
}

/// The tagged images of a strata root, an OCI layout sharing the content
/// store's blobs.
#[derive(Debug, Clone)]
pub struct ImageStore {
    content: ContentStore,
    layout: OciLayout,
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root` (`$STRATA_ROOT/store`).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ImageStoreError> {
        let root = root.into();
        let content = ContentStore::open(&root)?;
        let marker = root.join("oci-layout");
        if !marker.is_file() {
            write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let store = ImageStore {
            layout: OciLayout::open(&root)?,
            content,
        };
        if !store.index_path().is_file() {
            store.update(|_| false)?;
        }
        Ok(store)
    }

    /// The content store (the layout's blobs).
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// The store as an OCI layout, to read tagged images with
    /// [`OciLayout::image`].
    pub fn layout(&self) -> &OciLayout {
        &self.layout
    }

    fn index_path(&self) -> PathBuf {
        self.layout.root().join("index.json")
    }

    /// Points `name` (normalized) at `manifest`, replacing any previous
    /// image of that name. Returns the normalized name.
    pub fn tag(&self, name: &str, manifest: &Descriptor) -> Result<String, ImageStoreError> {
        let name = normalize_name(name)?;
        let digest = digest_of(manifest)?;
        if !self.content.has(&digest) {
            return Err(ImageStoreError::MissingManifest { name, digest });
        }
        // Already so: nothing to write (an unchanged rebuild stays read-only).
        if let Some(current) = self.resolve(&name)?
            && current.digest() == manifest.digest()
        {
            return Ok(name);
        }
        let mut entry = manifest.clone();
        let mut annotations = entry.annotations().clone().unwrap_or_default();
        // A descriptor resolved from another layout carries that layout's
        // names; only ours may remain.
        annotations.remove(CONTAINERD_IMAGE_NAME);
        annotations.insert(ANNOTATION_REF_NAME.to_string(), name.clone());
        entry.set_annotations(Some(annotations));
        crate::test_stop::point("image-tagging");
        self.update(|list| {
            list.retain(|d| ref_name(d) != Some(name.as_str()));
            list.push(entry);
            true
        })?;
        Ok(name)
    }

    /// The manifest descriptor tagged `name` (normalized), or the first
    /// entry whose digest is `name` when it is a `sha256:` digest.
    pub fn resolve(&self, name: &str) -> Result<Option<Descriptor>, ImageStoreError> {
        let list = self.layout.index()?.manifests().clone();
        if name.starts_with("sha256:") {
            return Ok(list.into_iter().find(|d| d.digest().to_string() == name));
        }
        let name = normalize_name(name)?;
        Ok(list
            .into_iter()
            .find(|d| ref_name(d) == Some(name.as_str())))
    }

    /// The image tagged `name` (or with that manifest digest), following an
    /// index by `platform`; `None` when no such tag exists.
    pub fn image(&self, name: &str, platform: &Platform) -> Result<Option<Image>, ImageStoreError> {
        match self.resolve(name)? {
            Some(desc) => Ok(Some(self.layout.image(&desc, platform)?)),
            None => Ok(None),
        }
    }

    /// Every tagged image, sorted by name.
    pub fn list(&self) -> Result<Vec<(String, Descriptor)>, ImageStoreError> {
        let mut out: Vec<(String, Descriptor)> = self
            .layout
            .index()?
            .manifests()
            .iter()
            .filter_map(|d| Some((ref_name(d)?.to_string(), d.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Removes the tag `name` (normalized); false when there was none. The
    /// blobs stay until garbage collection.
    pub fn untag(&self, name: &str) -> Result<bool, ImageStoreError> {
        let name = normalize_name(name)?;
        let mut removed = false;
        self.update(|list| {
            let before = list.len();
            list.retain(|d| ref_name(d) != Some(name.as_str()));
            removed = list.len() != before;
            removed
        })?;
        Ok(removed)
    }

    /// Read-modify-write of index.json under the lock. `change` edits the
    /// manifest list and says whether anything changed.
    fn update(
        &self,
        change: impl FnOnce(&mut Vec<Descriptor>) -> bool,
    ) -> Result<(), ImageStoreError> {
        let lock_path = self.layout.root().join("index.json.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err(&lock_path)(e.into()))?;

        let path = self.index_path();
        let exists = path.is_file();
        let mut list = if exists {
            self.layout.index()?.manifests().clone()
        } else {
            Vec::new()
        };
        if !change(&mut list) && exists {
            return Ok(());
        }
        // Through a Value so object keys come out sorted (oci-spec keeps
        // annotations in a HashMap).
        let serialize = |source| ImageStoreError::Serialize {
            path: path.clone(),
            source,
        };
        let value = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MediaType::ImageIndex.to_string(),
            "manifests": serde_json::to_value(&list).map_err(serialize)?,
        });
        let bytes = serde_json::to_vec_pretty(&value).map_err(serialize)?;
        write_atomic(&path, &bytes)
        // The lock is released when `lock` is dropped.
    }
}

/// Writes `bytes` to a temporary file beside `path`, fsyncs it and renames
/// it over `path`, then fsyncs the folder.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageStoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    tmp.write_all(bytes).map_err(io_err(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}
