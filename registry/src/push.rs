//! `push_image`: every blob (skipped when present, mounted when another
//! repository has it, uploaded otherwise) in parallel, then the manifest.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use oci_spec::image::{Descriptor, MediaType};

use crate::client::Client;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::Reference;

/// Where a blob's bytes come from; it may be opened more than once (retries).
#[derive(Clone, Debug)]
pub enum BlobSource {
    /// A file holding exactly the blob.
    Path(PathBuf),
    /// The blob in memory.
    Bytes(std::sync::Arc<[u8]>),
}

impl BlobSource {
    fn open(&self) -> Result<Box<dyn Read + '_>> {
        match self {
            BlobSource::Path(p) => {
                File::open(p)
                    .map(|f| Box::new(f) as Box<dyn Read>)
                    .map_err(|e| Error::Io {
                        what: format!("opening blob file {}", p.display()),
                        source: e,
                    })
            }
            BlobSource::Bytes(b) => Ok(Box::new(&b[..])),
        }
    }
}

/// A blob to push with its descriptor.
#[derive(Clone, Debug)]
pub struct PushBlob {
    /// Digest, size and media type.
    pub descriptor: Descriptor,
    /// The bytes.
    pub source: BlobSource,
}

/// Options for [`Client::push_image`].
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// Blobs transferred at the same time (at least 1).
    pub parallelism: usize,
    /// Repositories on the same registry to try cross-repository mounts from.
    pub mount_from: Vec<String>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            parallelism: 4,
            mount_from: Vec::new(),
        }
    }
}

/// What happened to one blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobAction {
    /// The repository already had it.
    Skipped,
    /// Linked from this repository without transferring data.
    Mounted(String),
    /// Its bytes were sent.
    Uploaded,
}

/// One blob's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobStat {
    /// The blob.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// What was done.
    pub action: BlobAction,
}

/// The result of [`Client::push_image`].
#[derive(Clone, Debug)]
pub struct PushReport {
    /// Digest of the pushed manifest.
    pub manifest_digest: Digest,
    /// One entry per distinct blob, in the order given.
    pub blobs: Vec<BlobStat>,
}

impl PushReport {
    /// How many blobs had this action (`Mounted` counts any source).
    pub fn count(&self, action: &BlobAction) -> usize {
        self.blobs
            .iter()
            .filter(|b| match (action, &b.action) {
                (BlobAction::Mounted(_), BlobAction::Mounted(_)) => true,
                (a, b) => a == b,
            })
            .count()
    }
}

impl Client {
    /// Push an image: blobs first (in parallel, existing ones skipped by
    /// HEAD, mounts tried from `options.mount_from`), the manifest last so the
    /// tag never points at missing content.
    pub fn push_image(
        &self,
        reference: &Reference,
        manifest_media_type: &MediaType,
        manifest: &[u8],
        blobs: &[PushBlob],
        options: &PushOptions,
    ) -> Result<PushReport> {
        let mut unique: Vec<&PushBlob> = Vec::new();
        for b in blobs {
            if !unique
                .iter()
                .any(|u| u.descriptor.digest() == b.descriptor.digest())
            {
                unique.push(b);
            }
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results: Mutex<Vec<Option<Result<BlobStat>>>> =
            Mutex::new(unique.iter().map(|_| None).collect());
        let workers = options.parallelism.clamp(1, unique.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(blob) = unique.get(i) else { break };
                        let outcome = self.push_one(reference, blob, options);
                        if outcome.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        let mut r = results.lock().unwrap_or_else(|p| p.into_inner());
                        r[i] = Some(outcome);
                    }
                });
            }
        });
        let mut stats = Vec::with_capacity(unique.len());
        for outcome in results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .flatten()
        {
            stats.push(outcome?);
        }
        let manifest_digest = self.push_manifest(reference, manifest_media_type, manifest)?;
        Ok(PushReport {
            manifest_digest,
            blobs: stats,
        })
    }

    fn push_one(
        &self,
        repo: &Reference,
        blob: &PushBlob,
        options: &PushOptions,
    ) -> Result<BlobStat> {
        let d = &blob.descriptor;
        let digest = Digest::try_from(d.digest())?;
        let stat = |action| BlobStat {
            digest: digest.clone(),
            size: d.size(),
            action,
        };
        if self.blob_exists(repo, &digest)? {
            return Ok(stat(BlobAction::Skipped));
        }
        for from in options
            .mount_from
            .iter()
            .filter(|f| f.as_str() != repo.repository())
        {
            if self.mount_blob(repo, from, &digest)? {
                return Ok(stat(BlobAction::Mounted(from.clone())));
            }
        }
        // A chunk upload cut off mid-way is not retried request by request
        // (PATCH is not idempotent), so the whole blob gets one more go.
        let mut source = blob.source.open()?;
        if let Err(e) = self.push_blob(repo, &digest, d.size(), &mut source) {
            if !e.is_transient() {
                return Err(e);
            }
            std::thread::sleep(self.config.backoff_base);
            let mut source = blob.source.open()?;
            self.push_blob(repo, &digest, d.size(), &mut source)?;
        }
        Ok(stat(BlobAction::Uploaded))
    }
}
