//! Pulling an image from a registry into the local store: the manifest for
//! one platform, its config and its layers (in parallel), each blob
//! verified against its digest before it becomes visible in the content
//! store, then the image tagged under the name it was asked for so later
//! builds find it offline.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use strata_cache::{ImageStore, ImageStoreError, StoreError};
use strata_registry::{Client, Descriptor, Digest, Platform, Reference, manifest_descriptor};

/// Layer downloads at the same time.
const PARALLEL_BLOBS: usize = 4;

/// A pull that failed; every message names the reference or blob.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The registry refused, could not be reached or sent bad content.
    #[error("{0}")]
    Registry(#[from] strata_registry::Error),
    /// A blob could not be written to (or read from) the content store.
    #[error("blob {digest} of {reference}: {source}")]
    Store {
        /// The image being pulled.
        reference: String,
        /// The blob.
        digest: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The image could not be tagged in the local store.
    #[error("tagging {reference} in the local store: {source}")]
    Tag {
        /// The name.
        reference: String,
        /// The store's error.
        #[source]
        source: ImageStoreError,
    },
}

impl PullError {
    /// Whether the failure is the environment's (registry unreachable,
    /// credentials refused or missing) rather than the image's.
    pub fn is_environment(&self) -> bool {
        match self {
            PullError::Registry(e) => {
                e.is_transient()
                    || matches!(
                        e,
                        strata_registry::Error::Unauthorized { .. }
                            | strata_registry::Error::NoCredentials { .. }
                            | strata_registry::Error::Credentials { .. }
                    )
            }
            PullError::Store { .. } | PullError::Tag { .. } => true,
        }
    }
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image manifest's descriptor, as tagged in the store.
    pub manifest: Descriptor,
    /// The normalized name it was tagged under.
    pub name: String,
    /// Blobs downloaded (config and layers; the rest were already local).
    pub fetched: usize,
    /// Bytes downloaded.
    pub bytes: u64,
}

/// Progress lines (`pulling sha256:abcd… 1.2 MB`).
pub type PullProgress<'a> = &'a (dyn Fn(&str) + Sync);

/// Pulls `name` for `platform` into `store` and tags it as `name`.
pub fn pull(
    store: &ImageStore,
    client: &Client,
    name: &str,
    platform: &Platform,
    progress: PullProgress<'_>,
) -> Result<Pulled, PullError> {
    let reference = Reference::parse(name)?;
    let resolved = client.resolve(&reference, platform)?;
    let content = store.content();
    let store_err = |digest: &str| {
        let digest = digest.to_string();
        move |source| PullError::Store {
            reference: name.to_string(),
            digest,
            source,
        }
    };
    let mut blobs: Vec<&Descriptor> = vec![&resolved.config];
    blobs.extend(resolved.layers.iter());
    // The client checked that every blob digest is a sha256.
    let missing: Vec<&Descriptor> = blobs
        .into_iter()
        .filter(|d| !Digest::try_from(d.digest()).is_ok_and(|d| content.has(&d)))
        .collect();
    fetch_all(store, client, &reference, &missing, name, progress)?;
    let digest = content
        .put(&resolved.manifest_bytes)
        .map_err(store_err(resolved.manifest_digest.as_str()))?;
    let manifest = manifest_descriptor(&resolved.manifest_bytes, &digest)?;
    let tagged = store
        .tag(name, &manifest)
        .map_err(|source| PullError::Tag {
            reference: name.to_string(),
            source,
        })?;
    Ok(Pulled {
        manifest,
        name: tagged,
        fetched: missing.len(),
        bytes: missing.iter().map(|d| d.size()).sum(),
    })
}

/// Downloads `blobs` into the content store, a few at a time.
fn fetch_all(
    store: &ImageStore,
    client: &Client,
    reference: &Reference,
    blobs: &[&Descriptor],
    name: &str,
    progress: PullProgress<'_>,
) -> Result<(), PullError> {
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<PullError>> = Mutex::new(None);
    let workers = PARALLEL_BLOBS.min(blobs.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    if first_error.lock().map_or(true, |e| e.is_some()) {
                        break;
                    }
                    let Some(blob) = blobs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    match fetch_one(store, client, reference, blob, name) {
                        Ok(()) => progress(&format!(
                            "pulling {} {}",
                            short(blob.digest().as_ref()),
                            human_size(blob.size())
                        )),
                        Err(e) => {
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert(e);
                            }
                        }
                    }
                }
            });
        }
    });
    match first_error.into_inner() {
        Ok(Some(e)) => Err(e),
        Ok(None) => Ok(()),
        Err(poisoned) => poisoned.into_inner().map_or(Ok(()), Err),
    }
}

/// One blob: streamed into a store writer, committed only if its digest
/// matches (the client checks size and digest too; the store re-checks).
fn fetch_one(
    store: &ImageStore,
    client: &Client,
    reference: &Reference,
    blob: &Descriptor,
    name: &str,
) -> Result<(), PullError> {
    let digest = Digest::try_from(blob.digest()).map_err(strata_registry::Error::from)?;
    let err = |source| PullError::Store {
        reference: name.to_string(),
        digest: digest.to_string(),
        source,
    };
    let mut writer = store.content().writer().map_err(err)?;
    // On error the writer is dropped and its temporary file removed.
    client.fetch_blob(reference, blob, &mut writer)?;
    writer.commit(Some(&digest)).map_err(err)?;
    Ok(())
}

/// `sha256:0123456789ab…`.
fn short(digest: &str) -> String {
    match digest.get(..19) {
        Some(s) => format!("{s}…"),
        None => digest.to_string(),
    }
}

/// `1.2 MB`, `340 kB`, `12 B` (decimal units, as docker prints them).
pub fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.0} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(12), "12 B");
        assert_eq!(human_size(340_000), "340 kB");
        assert_eq!(human_size(1_234_567), "1.2 MB");
    }
}
