//! gzip on every core: the stream is cut into fixed 4 MiB chunks, each
//! compressed as an independent gzip member in parallel, and the members are
//! written in order. A multi-member stream is valid gzip (RFC 1952) and is
//! read by every OCI client (Go's gzip reader reads all members); chunk
//! boundaries never depend on how the caller writes, so the output is as
//! deterministic as plain gzip, and a layer under 4 MiB is byte for byte
//! what a single gzip stream would be.

use std::io::{self, Write};

use rayon::prelude::*;

/// Bytes per gzip member.
const CHUNK: usize = 4 << 20;
/// Chunks compressed at once (bounds memory to `BATCH * CHUNK` twice over).
const BATCH: usize = 8;

/// A gzip writer compressing in parallel.
pub(crate) struct ParallelGzip<W: Write> {
    out: W,
    level: flate2::Compression,
    full: Vec<Vec<u8>>,
    current: Vec<u8>,
    wrote_member: bool,
}

impl<W: Write> ParallelGzip<W> {
    pub(crate) fn new(out: W, level: flate2::Compression) -> Self {
        ParallelGzip {
            out,
            level,
            full: Vec::new(),
            current: Vec::new(),
            wrote_member: false,
        }
    }

    fn compress_full(&mut self) -> io::Result<()> {
        let level = self.level;
        let members: Vec<Vec<u8>> = self
            .full
            .par_iter()
            .map(|chunk| member(chunk, level))
            .collect::<io::Result<_>>()?;
        for m in members {
            self.out.write_all(&m)?;
            self.wrote_member = true;
        }
        self.full.clear();
        Ok(())
    }

    /// Writes what is left (an empty stream still gets one member) and
    /// returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if !self.current.is_empty() || (!self.wrote_member && self.full.is_empty()) {
            let last = std::mem::take(&mut self.current);
            self.full.push(last);
        }
        self.compress_full()?;
        Ok(self.out)
    }
}

/// One complete gzip member (no name, mtime 0: deterministic).
fn member(data: &[u8], level: flate2::Compression) -> io::Result<Vec<u8>> {
    let mut gz = flate2::GzBuilder::new().write(Vec::with_capacity(data.len() / 2 + 64), level);
    gz.write_all(data)?;
    gz.finish()
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.current.len();
        let n = room.min(buf.len());
        if self.current.capacity() == 0 {
            self.current.reserve_exact(CHUNK);
        }
        self.current.extend_from_slice(&buf[..n]);
        if self.current.len() == CHUNK {
            let chunk = std::mem::take(&mut self.current);
            self.full.push(chunk);
            if self.full.len() == BATCH {
                self.compress_full()?;
            }
        }
        Ok(n)
    }

    /// Flushes the inner writer only: cutting a member here would make the
    /// output depend on when callers flush.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn data(len: usize) -> Vec<u8> {
        let mut x: u32 = 1;
        (0..len)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                if i % 3 == 0 {
                    (x >> 24) as u8
                } else {
                    b'a' + (i % 7) as u8
                }
            })
            .collect()
    }

    fn compress(input: &[u8], write_size: usize) -> io::Result<Vec<u8>> {
        let mut gz = ParallelGzip::new(Vec::new(), flate2::Compression::new(6));
        for piece in input.chunks(write_size.max(1)) {
            gz.write_all(piece)?;
        }
        gz.finish()
    }

    #[test]
    fn round_trips_and_is_deterministic_whatever_the_write_sizes() -> io::Result<()> {
        for len in [0, 10, CHUNK - 1, CHUNK, CHUNK * 3 + 17, CHUNK * (BATCH + 2)] {
            let input = data(len);
            let a = compress(&input, 64 * 1024)?;
            let b = compress(&input, 1_000_003)?;
            assert_eq!(a, b, "output depends on write sizes (len {len})");
            let mut back = Vec::new();
            flate2::read::MultiGzDecoder::new(&a[..]).read_to_end(&mut back)?;
            assert_eq!(back, input, "round trip failed (len {len})");
        }
        Ok(())
    }

    #[test]
    fn a_small_stream_is_plain_gzip() -> io::Result<()> {
        let input = data(100_000);
        let mut plain = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(6));
        plain.write_all(&input)?;
        assert_eq!(compress(&input, 4096)?, plain.finish()?);
        Ok(())
    }
}
