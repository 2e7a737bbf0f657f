//! A writer that hashes (sha256) and counts what passes through it.

use std::io::{self, Write};

use sha2::{Digest as _, Sha256};
use strata_registry::Digest;

/// Passes bytes to `inner`, hashing them on the way.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// The inner writer, the digest and the byte count of what was written.
    pub(crate) fn finish(self) -> (W, Digest, u64) {
        let digest = Digest::from_sha256(self.hasher.finalize().into());
        (self.inner, digest, self.size)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
