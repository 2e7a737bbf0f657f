//! Reading OCI image layouts (`oci-layout`, `index.json`, `blobs/`):
//! resolving a reference to an image manifest and its config, selecting a
//! platform in image indexes and Docker manifest lists, and importing an
//! image into the [`ContentStore`].

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    ANNOTATION_REF_NAME, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, Platform,
};
use serde::{Deserialize, Serialize};
use strata_registry::platform;

use crate::store::{ContentStore, Digest, StoreError};

/// How deep indexes may nest before we call it a loop.
const MAX_INDEX_DEPTH: usize = 8;

/// Errors reading a layout; each names the layout, blob or reference.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The folder is not an OCI image layout.
    #[error("{path} is not an OCI image layout: {reason}")]
    NotALayout {
        /// The folder.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A JSON document did not parse.
    #[error("{what}: invalid JSON: {source}")]
    Json {
        /// Which document (index.json or a blob digest).
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A descriptor's digest is not a sha256 digest.
    #[error("unsupported digest {0:?} (only sha256 is supported)")]
    BadDigest(String),
    /// The blob a descriptor points to is absent.
    #[error("blob {digest} is missing from {layout}")]
    BlobMissing {
        /// The blob.
        digest: Digest,
        /// The layout's root.
        layout: PathBuf,
    },
    /// A blob's content does not match its descriptor.
    #[error("blob {digest}: {problem}")]
    BadBlob {
        /// The blob.
        digest: Digest,
        /// Size or digest mismatch.
        problem: String,
    },
    /// A descriptor has a media type that is neither a manifest nor an index.
    #[error("{digest} has media type {media_type}, not an image manifest or index")]
    UnsupportedMediaType {
        /// The blob.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// No manifest has the reference.
    #[error("no image {reference:?} in {layout} (it has: {available})")]
    NotFound {
        /// The reference asked for.
        reference: String,
        /// The layout's root.
        layout: PathBuf,
        /// The tags present, comma-separated.
        available: String,
    },
    /// An empty reference in a layout with other than one manifest.
    #[error("{layout} holds {count} images; name one (tags: {available})")]
    Ambiguous {
        /// The layout's root.
        layout: PathBuf,
        /// How many manifests index.json lists.
        count: usize,
        /// The tags present, comma-separated.
        available: String,
    },
    /// No manifest of an index matches the platform.
    #[error("index {digest} has no image for {platform} (it has: {available})")]
    NoPlatform {
        /// The index.
        digest: Digest,
        /// The platform asked for.
        platform: String,
        /// The platforms present, comma-separated.
        available: String,
    },
    /// Indexes nest deeper than any real image does.
    #[error("index {0} nests too deeply")]
    TooDeep(Digest),
    /// Writing into the content store failed.
    #[error("importing blob {digest}: {source}")]
    Store {
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: StoreError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether the index entry `desc` is for `wanted`.
fn is_for(wanted: &Platform, desc: &Descriptor) -> bool {
    desc.platform()
        .as_ref()
        .is_some_and(|p| platform::matches(wanted, p))
}

/// An image manifest read from a layout, with its config.
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest's descriptor (from index.json or from the index that
    /// listed it, so it may carry a platform and annotations).
    pub descriptor: Descriptor,
    /// The parsed manifest.
    pub manifest: ImageManifest,
    /// The manifest's bytes, as stored.
    pub manifest_bytes: Vec<u8>,
    /// The parsed config.
    pub config: ImageConfiguration,
    /// The config's bytes, as stored, for fields oci-spec does not model
    /// (see [`docker_extras`]).
    pub config_bytes: Vec<u8>,
}

impl Image {
    /// The manifest's digest.
    pub fn digest(&self) -> Result<Digest, LayoutError> {
        digest_of(&self.descriptor)
    }
}

/// Docker-only fields of an image config's `config` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerExtras {
    /// `HEALTHCHECK`.
    pub healthcheck: Option<Healthcheck>,
    /// `ONBUILD` triggers, in order.
    pub on_build: Vec<String>,
    /// `SHELL`.
    pub shell: Option<Vec<String>>,
}

/// A Docker healthcheck, as stored in an image config (durations in
/// nanoseconds, as Docker writes them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Time a check may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Grace period after start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    /// Time between checks during the start period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    /// Failures before unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

/// Reads `Healthcheck`, `OnBuild` and `Shell` from a raw image config.
pub fn docker_extras(raw_config: &[u8]) -> Result<DockerExtras, serde_json::Error> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        config: Option<Inner>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Inner {
        #[serde(default)]
        healthcheck: Option<Healthcheck>,
        #[serde(default)]
        on_build: Option<Vec<String>>,
        #[serde(default)]
        shell: Option<Vec<String>>,
    }
    let raw: Raw = serde_json::from_slice(raw_config)?;
    Ok(raw
        .config
        .map_or_else(DockerExtras::default, |c| DockerExtras {
            healthcheck: c.healthcheck,
            on_build: c.on_build.unwrap_or_default(),
            shell: c.shell,
        }))
}

/// The strata digest of a descriptor.
pub fn digest_of(desc: &Descriptor) -> Result<Digest, LayoutError> {
    Digest::try_from(desc.digest()).map_err(|_| LayoutError::BadDigest(desc.digest().to_string()))
}

/// What a descriptor points to.
enum Kind {
    Manifest,
    Index,
}

fn kind_of(desc: &Descriptor) -> Result<Kind, LayoutError> {
    let media_type = desc.media_type();
    if strata_registry::is_image_manifest(media_type) {
        Ok(Kind::Manifest)
    } else if strata_registry::is_index(media_type) {
        Ok(Kind::Index)
    } else {
        Err(LayoutError::UnsupportedMediaType {
            digest: digest_of(desc)?,
            media_type: media_type.to_string(),
        })
    }
}

/// The annotation `docker save` puts beside the tag: the full reference
/// (`docker.io/library/busybox:latest`).
pub(crate) const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

/// The tag of an index.json entry, if it has one.
pub fn ref_name(desc: &Descriptor) -> Option<&str> {
    annotation(desc, ANNOTATION_REF_NAME)
}

fn annotation<'d>(desc: &'d Descriptor, key: &str) -> Option<&'d str> {
    desc.annotations().as_ref()?.get(key).map(String::as_str)
}

/// An OCI image layout on disk.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

impl OciLayout {
    /// Opens the layout at `root`, checking its `oci-layout` file.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, LayoutError> {
        let root = root.into();
        let marker = root.join("oci-layout");
        let bytes = fs::read(&marker).map_err(|e| LayoutError::NotALayout {
            path: root.clone(),
            reason: format!("reading oci-layout: {e}"),
        })?;
        let version = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("imageLayoutVersion")?.as_str().map(str::to_string));
        match version {
            Some(v) if v.starts_with("1.") => Ok(OciLayout { root }),
            Some(v) => Err(LayoutError::NotALayout {
                path: root,
                reason: format!("unsupported imageLayoutVersion {v}"),
            }),
            None => Err(LayoutError::NotALayout {
                path: root,
                reason: "oci-layout has no imageLayoutVersion".to_string(),
            }),
        }
    }

    /// The layout's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob lives in this layout.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// The parsed `index.json`.
    pub fn index(&self) -> Result<ImageIndex, LayoutError> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        serde_json::from_slice(&bytes).map_err(|source| LayoutError::Json {
            what: path.display().to_string(),
            source,
        })
    }

    /// Reads a blob, checking its size and digest against `desc`.
    pub fn read_blob(&self, desc: &Descriptor) -> Result<Vec<u8>, LayoutError> {
        let digest = digest_of(desc)?;
        let bytes = match fs::read(self.blob_path(&digest)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LayoutError::BlobMissing {
                    digest,
                    layout: self.root.clone(),
                });
            }
            Err(e) => return Err(io_err(&self.blob_path(&digest))(e)),
        };
        if bytes.len() as u64 != desc.size() {
            return Err(LayoutError::BadBlob {
                problem: format!("size is {}, descriptor says {}", bytes.len(), desc.size()),
                digest,
            });
        }
        let actual = Digest::of(&bytes);
        if actual != digest {
            return Err(LayoutError::BadBlob {
                digest,
                problem: format!("content hashes to {actual}"),
            });
        }
        Ok(bytes)
    }

    /// Resolves `reference` (a tag, i.e. an `org.opencontainers.image.ref.name`
    /// annotation, or else an `io.containerd.image.name` one as `docker save`
    /// writes; a `sha256:` digest; or empty for the only image) to an image
    /// manifest, choosing `platform` in indexes and manifest lists.
    pub fn resolve(&self, reference: &str, platform: &Platform) -> Result<Image, LayoutError> {
        let desc = self.find(reference, platform)?;
        self.image(&desc, platform)
    }

    /// The manifest `desc` points to (following indexes by `platform`), with
    /// its config.
    pub fn image(&self, desc: &Descriptor, platform: &Platform) -> Result<Image, LayoutError> {
        let mut desc = desc.clone();
        for _ in 0..MAX_INDEX_DEPTH {
            match kind_of(&desc)? {
                Kind::Manifest => return self.load_manifest(desc),
                Kind::Index => {
                    let bytes = self.read_blob(&desc)?;
                    let index: ImageIndex = parse(&bytes, &desc)?;
                    desc = select_platform(&index, platform, &desc)?;
                }
            }
        }
        Err(LayoutError::TooDeep(digest_of(&desc)?))
    }

    fn load_manifest(&self, descriptor: Descriptor) -> Result<Image, LayoutError> {
        let manifest_bytes = self.read_blob(&descriptor)?;
        let manifest: ImageManifest = parse(&manifest_bytes, &descriptor)?;
        let config_bytes = self.read_blob(manifest.config())?;
        let config = parse(&config_bytes, manifest.config())?;
        Ok(Image {
            descriptor,
            manifest,
            manifest_bytes,
            config,
            config_bytes,
        })
    }

    /// The index.json entry (or nested index entry) `reference` names.
    fn find(&self, reference: &str, platform: &Platform) -> Result<Descriptor, LayoutError> {
        let index = self.index()?;
        let manifests = index.manifests();
        if reference.is_empty() {
            return match manifests.as_slice() {
                [only] => Ok(only.clone()),
                _ => Err(LayoutError::Ambiguous {
                    layout: self.root.clone(),
                    count: manifests.len(),
                    available: tags(manifests),
                }),
            };
        }
        if reference.starts_with("sha256:") {
            let digest: Digest = reference
                .parse()
                .map_err(|_| LayoutError::BadDigest(reference.to_string()))?;
            if let Some(found) = self.find_digest(manifests, &digest, 0)? {
                return Ok(found);
            }
        } else {
            let mut named: Vec<&Descriptor> = manifests
                .iter()
                .filter(|d| ref_name(d) == Some(reference))
                .collect();
            if named.is_empty() {
                // `docker save` also names entries by their full reference.
                named = manifests
                    .iter()
                    .filter(|d| annotation(d, CONTAINERD_IMAGE_NAME) == Some(reference))
                    .collect();
            }
            // Several entries may share a tag, one per platform.
            let chosen = match named.as_slice() {
                [one] => Some(*one),
                many => many
                    .iter()
                    .find(|d| is_for(platform, d))
                    .or(many.first())
                    .copied(),
            };
            if let Some(d) = chosen {
                return Ok(d.clone());
            }
        }
        Err(LayoutError::NotFound {
            reference: reference.to_string(),
            layout: self.root.clone(),
            available: tags(manifests),
        })
    }

    /// A descriptor with `digest` among `list` or in the indexes it holds.
    fn find_digest(
        &self,
        list: &[Descriptor],
        digest: &Digest,
        depth: usize,
    ) -> Result<Option<Descriptor>, LayoutError> {
        if let Some(d) = list
            .iter()
            .find(|d| digest_of(d).is_ok_and(|x| &x == digest))
        {
            return Ok(Some(d.clone()));
        }
        if depth >= MAX_INDEX_DEPTH {
            return Ok(None);
        }
        for d in list {
            if matches!(kind_of(d), Ok(Kind::Index)) {
                let bytes = self.read_blob(d)?;
                let index: ImageIndex = parse(&bytes, d)?;
                if let Some(found) = self.find_digest(index.manifests(), digest, depth + 1)? {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// Copies the image's manifest, config and layers into `store`,
    /// verifying every digest and size. Blobs already there are skipped.
    pub fn import(&self, image: &Image, store: &ContentStore) -> Result<(), LayoutError> {
        let mut blobs = vec![&image.descriptor, image.manifest.config()];
        blobs.extend(image.manifest.layers());
        for desc in blobs {
            self.import_blob(desc, store)?;
        }
        Ok(())
    }

    fn import_blob(&self, desc: &Descriptor, store: &ContentStore) -> Result<(), LayoutError> {
        let digest = digest_of(desc)?;
        if store.has(&digest) {
            return Ok(());
        }
        let path = self.blob_path(&digest);
        let mut file = File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                LayoutError::BlobMissing {
                    digest: digest.clone(),
                    layout: self.root.clone(),
                }
            } else {
                io_err(&path)(e)
            }
        })?;
        let store_err = |source| LayoutError::Store {
            digest: digest.clone(),
            source,
        };
        let mut writer = store.writer().map_err(store_err)?;
        io::copy(&mut file, &mut writer).map_err(io_err(&path))?;
        if writer.size() != desc.size() {
            return Err(LayoutError::BadBlob {
                problem: format!("size is {}, descriptor says {}", writer.size(), desc.size()),
                digest,
            });
        }
        writer.commit(Some(&digest)).map_err(store_err)?;
        Ok(())
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    desc: &Descriptor,
) -> Result<T, LayoutError> {
    serde_json::from_slice(bytes).map_err(|source| LayoutError::Json {
        what: desc.digest().to_string(),
        source,
    })
}

fn tags(list: &[Descriptor]) -> String {
    let names: Vec<&str> = list.iter().filter_map(ref_name).collect();
    if names.is_empty() {
        "no tags".to_string()
    } else {
        names.join(", ")
    }
}

/// The manifest of `index` for `platform`. An index with a single entry
/// without a platform is taken as is.
fn select_platform(
    index: &ImageIndex,
    platform: &Platform,
    index_desc: &Descriptor,
) -> Result<Descriptor, LayoutError> {
    let manifests = index.manifests();
    if let Some(d) = manifests.iter().find(|d| is_for(platform, d)) {
        return Ok(d.clone());
    }
    if let [only] = manifests.as_slice()
        && only.platform().is_none()
    {
        return Ok(only.clone());
    }
    let available: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| platform::display(p).to_string())
        .collect();
    Err(LayoutError::NoPlatform {
        digest: digest_of(index_desc)?,
        platform: platform::display(platform).to_string(),
        available: available.join(", "),
    })
}
