//! The content store: OCI blobs under `blobs/sha256/<hex>`, addressed by
//! their sha256 digest.
//!
//! A blob is written to a temporary file beside the blobs, fsynced, and only
//! then renamed into place, so a crash never leaves a partial blob under a
//! digest name. A blob whose content does not hash to the expected digest is
//! refused before it is renamed.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
pub(crate) use strata_registry::Digest;

/// Errors of the content store; each names the blob or path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Content did not hash to the digest it was announced with.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What the content should hash to.
        expected: Digest,
        /// What it hashed to.
        actual: Digest,
    },
    /// The blob is not in the store.
    #[error("blob {0} is not in the store")]
    Missing(Digest),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Blobs under `<root>/blobs/sha256/`. `root` is also an OCI image layout's
/// root, so the local image store and the content store share one folder.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for dir in [root.join("blobs/sha256"), root.join("ingest")] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(ContentStore { root })
    }

    /// The store's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// True when the blob is present.
    pub fn has(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The blob's size in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64, StoreError> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::Missing(digest.clone()))
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::Missing(digest.clone())
            } else {
                io_err(&path)(e)
            }
        })
    }

    /// Reads a whole blob, checking its digest.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let mut bytes = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(io_err(&path))?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Stores `bytes`; returns their digest.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if self.has(&digest) {
            return Ok(digest);
        }
        let mut w = self.writer()?;
        w.write_all(bytes).map_err(io_err(&self.root))?;
        w.commit(Some(&digest))
    }

    /// A writer for a new blob; nothing is visible until [`BlobWriter::commit`].
    pub fn writer(&self) -> Result<BlobWriter, StoreError> {
        let dir = self.root.join("ingest");
        let file = tempfile::NamedTempFile::new_in(&dir).map_err(io_err(&dir))?;
        Ok(BlobWriter {
            store: self.clone(),
            file,
            hasher: Sha256::new(),
            size: 0,
        })
    }
}

/// Streams a blob into the store while hashing it.
pub struct BlobWriter {
    store: ContentStore,
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    size: u64,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Makes the blob durable and visible under its digest. With `expected`,
    /// content hashing to anything else is discarded and refused.
    pub fn commit(self, expected: Option<&Digest>) -> Result<Digest, StoreError> {
        let BlobWriter {
            store,
            file,
            hasher,
            ..
        } = self;
        let digest = Digest::from_sha256(hasher.finalize().into());
        if let Some(expected) = expected
            && expected != &digest
        {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            });
        }
        let dest = store.blob_path(&digest);
        if dest.is_file() {
            return Ok(digest);
        }
        file.as_file().sync_all().map_err(io_err(file.path()))?;
        file.persist(&dest).map_err(|e| io_err(&dest)(e.error))?;
        let dir = dest.parent().unwrap_or(&dest);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
        crate::test_stop::point("blob-written");
        Ok(digest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_read_and_refuse_wrong_digest() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = ContentStore::open(dir.path())?;
        let d = store.put(b"hello")?;
        assert_eq!(
            d.as_str(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(store.read(&d)?, b"hello");
        assert_eq!(store.size(&d)?, 5);

        let mut w = store.writer()?;
        w.write_all(b"other")?;
        let err = w.commit(Some(&d));
        assert!(matches!(err, Err(StoreError::DigestMismatch { .. })));
        assert!(!store.has(&Digest::of(b"other")));
        // Nothing is left behind in ingest.
        assert_eq!(fs::read_dir(dir.path().join("ingest"))?.count(), 0);
        Ok(())
    }

    #[test]
    fn parses_digests() {
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!(Digest::of(b"").as_str().parse::<Digest>().is_ok());
        assert!(
            "sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824"
                .parse::<Digest>()
                .is_err()
        );
    }
}
