//! Snapshot → layer blob: tar, diff_id and compressed digest in one pass.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::MediaType;
use rayon::prelude::*;
use strata_cache::{BlobWriter, ContentStore};
use strata_registry::Digest;

use crate::error::{ExportError, io_err};
use crate::hash::HashWriter;
use crate::pgzip::ParallelGzip;
use crate::tar_writer::TarWriter;
use crate::walk::walk_layer;

/// Default gzip level (zlib's default, what Docker and BuildKit use).
pub const DEFAULT_GZIP_LEVEL: i32 = 6;
/// Default zstd level (zstd's default, what BuildKit uses).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// A compression algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionKind {
    /// gzip (the default: every runtime reads it).
    #[default]
    Gzip,
    /// zstd.
    Zstd,
    /// A plain tar.
    Uncompressed,
}

/// How layers are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Compression {
    /// The algorithm.
    pub kind: CompressionKind,
    /// gzip 0–9 or zstd 1–22; `None` for the defaults
    /// ([`DEFAULT_GZIP_LEVEL`], [`DEFAULT_ZSTD_LEVEL`]).
    pub level: Option<i32>,
}

impl Compression {
    /// Checks the level against the algorithm's range, so that a bad
    /// `--compression-level` is refused before anything is built.
    pub fn check(&self) -> Result<(), ExportError> {
        match self.kind {
            CompressionKind::Gzip => self.gzip_level().map(drop),
            CompressionKind::Zstd => self.zstd_level().map(drop),
            CompressionKind::Uncompressed => Ok(()),
        }
    }

    fn gzip_level(&self) -> Result<u32, ExportError> {
        let level = self.level.unwrap_or(DEFAULT_GZIP_LEVEL);
        u32::try_from(level)
            .ok()
            .filter(|l| *l <= 9)
            .ok_or(ExportError::BadLevel {
                algorithm: "gzip",
                level,
                range: "0-9",
            })
    }

    fn zstd_level(&self) -> Result<i32, ExportError> {
        let level = self.level.unwrap_or(DEFAULT_ZSTD_LEVEL);
        if (1..=22).contains(&level) {
            Ok(level)
        } else {
            Err(ExportError::BadLevel {
                algorithm: "zstd",
                level,
                range: "1-22",
            })
        }
    }

    /// The OCI media type of layers compressed this way.
    pub fn media_type(&self) -> MediaType {
        match self.kind {
            CompressionKind::Gzip => MediaType::ImageLayerGzip,
            CompressionKind::Zstd => MediaType::ImageLayerZstd,
            CompressionKind::Uncompressed => MediaType::ImageLayer,
        }
    }
}

/// A layer in the content store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// Digest of the blob as stored (compressed).
    pub digest: Digest,
    /// Digest of the uncompressed tar (the image config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Size of the stored blob in bytes.
    pub size: u64,
    /// The blob's media type.
    pub media_type: MediaType,
}

/// Archives the snapshot `dir` as one layer blob in `store`.
///
/// Entries are sorted, overlay whiteouts become `.wh.` files and opaque
/// directories get a `.wh..wh..opq` entry. With `source_date_epoch`, later
/// modification times are clamped to it so rebuilds give identical blobs.
pub fn write_layer(
    dir: &Path,
    compression: Compression,
    store: &ContentStore,
    source_date_epoch: Option<i64>,
) -> Result<LayerBlob, ExportError> {
    let encoder = Encoder::new(store.writer()?, compression)?;
    // Large chunks keep hashing and compression efficient.
    let hashed = BufWriter::with_capacity(1 << 20, HashWriter::new(encoder));
    let mut tar = TarWriter::new(hashed, dir, source_date_epoch);
    walk_layer(dir, &mut |entry| tar.append(&entry))?;
    let hashed = tar.finish()?;
    let hashed = hashed
        .into_inner()
        .map_err(|e| io_err(dir)(e.into_error()))?;
    let (encoder, diff_id, _) = hashed.finish();
    let blob = encoder.finish().map_err(io_err(dir))?;
    let size = blob.size();
    let digest = blob.commit(None)?;
    Ok(LayerBlob {
        digest,
        diff_id,
        size,
        media_type: compression.media_type(),
    })
}

/// [`write_layer`] for each of `dirs`, in parallel; the result keeps their order.
pub fn write_layers(
    dirs: &[PathBuf],
    compression: Compression,
    store: &ContentStore,
    source_date_epoch: Option<i64>,
) -> Result<Vec<LayerBlob>, ExportError> {
    dirs.par_iter()
        .map(|dir| write_layer(dir, compression, store, source_date_epoch))
        .collect()
}

/// A zstd encoder using `workers` threads. zstd's output depends on its job
/// size, not on the number of workers (a unit test checks this), so the
/// blob stays the same from machine to machine; at least one worker is
/// always used because single-threaded mode frames the output differently.
fn zstd_encoder<W: Write>(
    out: W,
    level: i32,
    workers: u32,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut encoder = zstd::stream::write::Encoder::new(out, level)?;
    encoder.multithread(workers.max(1))?;
    Ok(encoder)
}

/// The compressor in front of the blob writer.
enum Encoder {
    Gzip(ParallelGzip<BlobWriter>),
    Zstd(zstd::stream::write::Encoder<'static, BlobWriter>),
    Plain(BlobWriter),
}

impl Encoder {
    fn new(blob: BlobWriter, compression: Compression) -> Result<Self, ExportError> {
        Ok(match compression.kind {
            CompressionKind::Gzip => {
                let level = compression.gzip_level()?;
                Encoder::Gzip(ParallelGzip::new(blob, flate2::Compression::new(level)))
            }
            CompressionKind::Zstd => {
                let level = compression.zstd_level()?;
                let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
                let workers = u32::try_from(workers).unwrap_or(1);
                let encoder =
                    zstd_encoder(blob, level, workers).map_err(io_err(Path::new("zstd")))?;
                Encoder::Zstd(encoder)
            }
            CompressionKind::Uncompressed => Encoder::Plain(blob),
        })
    }

    fn finish(self) -> io::Result<BlobWriter> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Plain(b) => Ok(b),
        }
    }
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Plain(b) => b.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Plain(b) => b.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zstd_bytes(data: &[u8], workers: u32) -> io::Result<Vec<u8>> {
        let mut encoder = zstd_encoder(Vec::new(), DEFAULT_ZSTD_LEVEL, workers)?;
        // Uneven writes, as the tar writer's buffer gives them.
        for chunk in data.chunks(300_007) {
            encoder.write_all(chunk)?;
        }
        encoder.finish()
    }

    #[test]
    fn zstd_output_does_not_depend_on_the_worker_count() -> io::Result<()> {
        // 40 MB of compressible, non-repeating text: several zstd jobs.
        let mut data = Vec::new();
        let mut x: u64 = 1;
        while data.len() < 40 << 20 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            data.extend_from_slice(format!("line {} value {}\n", x >> 50, x % 1000).as_bytes());
        }
        let one = zstd_bytes(&data, 1)?;
        assert_eq!(zstd::stream::decode_all(one.as_slice())?, data);
        for workers in [2, 3, 8] {
            assert!(
                zstd_bytes(&data, workers)? == one,
                "{workers} workers differ"
            );
        }
        Ok(())
    }
}
