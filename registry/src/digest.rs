//! `sha256:<hex>` digests and a writer that verifies one while streaming.

use std::cmp::Ordering;
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use oci_spec::image::DigestAlgorithm;
use sha2::{Digest as _, Sha256};

/// A sha256 content digest, `sha256:<64 lowercase hex>`: oci-spec's
/// `Digest` held to one algorithm. oci-spec's type also accepts sha384,
/// sha512 and any registered `algo:encoded` pair and has no order; blobs are
/// laid out as `blobs/sha256/<hex>` and every digest we verify is a sha256,
/// so a digest of any other algorithm is refused where it is parsed. Boxed:
/// oci-spec's digest is five words, and errors carry digests.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Digest(Box<oci_spec::image::Digest>);

/// A string (or oci-spec digest) that is not `sha256:<64 lowercase hex>`.
#[derive(Debug, thiserror::Error)]
#[error("invalid digest {digest:?}: {reason}")]
pub struct InvalidDigest {
    /// The text as given.
    pub digest: String,
    /// Why it is invalid.
    pub reason: String,
}

impl Digest {
    /// Parse `sha256:<64 lowercase hex>`.
    pub fn parse(s: &str) -> Result<Self, InvalidDigest> {
        let bad = |reason: &str| InvalidDigest {
            digest: s.to_string(),
            reason: reason.to_string(),
        };
        let (algo, hex) = s
            .split_once(':')
            .ok_or_else(|| bad("expected algorithm:hex"))?;
        if algo != "sha256" {
            return Err(bad("only sha256 is supported"));
        }
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("sha256 needs 64 lowercase hex characters"));
        }
        oci_spec::image::Digest::from_str(s)
            .map(|d| Digest(Box::new(d)))
            .map_err(|e| bad(&e.to_string()))
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self::from_sha256(Sha256::digest(data).into())
    }

    /// The digest whose sha256 is `hash`.
    pub fn from_sha256(hash: [u8; 32]) -> Self {
        let text = format!("sha256:{}", hex::encode(hash));
        // 64 lowercase hex digits after `sha256:` always parse.
        Digest(Box::new(
            oci_spec::image::Digest::from_str(&text).expect("a sha256 digest parses"),
        ))
    }

    /// The full `sha256:…` text.
    pub fn as_str(&self) -> &str {
        AsRef::<str>::as_ref(&*self.0)
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        self.0.digest()
    }

    /// The oci-spec digest, for descriptors.
    pub fn as_oci(&self) -> &oci_spec::image::Digest {
        &self.0
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = InvalidDigest;

    /// Accepts an oci-spec digest only if it is a sha256 (whose hex oci-spec
    /// has already checked).
    fn try_from(d: &oci_spec::image::Digest) -> Result<Self, InvalidDigest> {
        if *d.algorithm() == DigestAlgorithm::Sha256 {
            Ok(Digest(Box::new(d.clone())))
        } else {
            Err(InvalidDigest {
                digest: d.to_string(),
                reason: "only sha256 is supported".to_string(),
            })
        }
    }
}

impl From<Digest> for oci_spec::image::Digest {
    fn from(d: Digest) -> Self {
        *d.0
    }
}

impl PartialOrd for Digest {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Digest {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.as_str())
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;
    fn from_str(s: &str) -> Result<Self, InvalidDigest> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Hashes and counts everything passed through it to an inner writer.
pub(crate) struct HashingWriter<'a> {
    inner: &'a mut dyn Write,
    hasher: Sha256,
    written: u64,
}

impl<'a> HashingWriter<'a> {
    pub(crate) fn new(inner: &'a mut dyn Write) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// The digest and length of everything written.
    pub(crate) fn finish(self) -> (Digest, u64) {
        (
            Digest::from_sha256(self.hasher.finalize().into()),
            self.written,
        )
    }
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// An incremental sha256 for uploads.
pub(crate) struct Hasher(Sha256);

impl Hasher {
    pub(crate) fn new() -> Self {
        Hasher(Sha256::new())
    }
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub(crate) fn finish(self) -> Digest {
        Digest::from_sha256(self.0.finalize().into())
    }
}
