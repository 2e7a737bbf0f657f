//! Layer compression, recognised by magic bytes rather than by media type,
//! because archives given to `ADD` carry no media type and registries
//! sometimes mislabel layers.

use std::io::{self, Cursor, Read};

/// A compression format a layer or an `ADD` archive may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (RFC 1952), possibly several members.
    Gzip,
    /// Zstandard, possibly several frames.
    Zstd,
    /// bzip2, possibly several streams.
    Bzip2,
    /// xz, possibly several streams.
    Xz,
}

/// The longest magic number we look for (xz).
const MAGIC_LEN: usize = 6;

impl Compression {
    /// The format whose magic number starts `head`; `None` when no known
    /// magic matches.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }
}

/// Wraps `reader` in the decompressor its first bytes call for (gzip, zstd,
/// bzip2, xz), or returns it unchanged when they match no known magic.
pub fn decompress<'a>(reader: impl Read + Send + 'a) -> io::Result<Box<dyn Read + Send + 'a>> {
    let (format, reader) = sniff(reader)?;
    Ok(match format {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(reader)),
    })
}

/// Reads the first bytes of `reader` and hands back the format they show
/// with a reader that still yields every byte.
pub fn sniff<R: Read>(mut reader: R) -> io::Result<(Compression, impl Read)> {
    let mut head = [0u8; MAGIC_LEN];
    let mut len = 0;
    while len < MAGIC_LEN {
        match reader.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let format = Compression::detect(&head[..len]);
    Ok((format, Cursor::new(head).take(len as u64).chain(reader)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(format: Compression, packed: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
        assert_eq!(Compression::detect(&packed), format);
        let mut out = Vec::new();
        decompress(packed.as_slice())?.read_to_end(&mut out)?;
        assert_eq!(out, b"layer bytes, layer bytes, layer bytes");
        Ok(())
    }

    const PLAIN: &[u8] = b"layer bytes, layer bytes, layer bytes";

    #[test]
    fn every_format_decompresses() -> Result<(), Box<dyn std::error::Error>> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(PLAIN)?;
        roundtrip(Compression::Gzip, gz.finish()?)?;

        roundtrip(Compression::Zstd, zstd::encode_all(PLAIN, 3)?)?;

        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(PLAIN)?;
        roundtrip(Compression::Bzip2, bz.finish()?)?;

        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(PLAIN)?;
        roundtrip(Compression::Xz, xz.finish()?)?;

        roundtrip(Compression::None, PLAIN.to_vec())
    }

    #[test]
    fn short_and_empty_inputs_pass_through() -> Result<(), Box<dyn std::error::Error>> {
        for input in [&b""[..], b"a", b"\x1f"] {
            let mut out = Vec::new();
            decompress(input)?.read_to_end(&mut out)?;
            assert_eq!(out, input);
        }
        Ok(())
    }

    #[test]
    fn concatenated_gzip_members_are_all_read() -> Result<(), Box<dyn std::error::Error>> {
        let mut packed = Vec::new();
        for part in [&b"first "[..], b"second"] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(part)?;
            packed.extend(gz.finish()?);
        }
        let mut out = String::new();
        decompress(packed.as_slice())?.read_to_string(&mut out)?;
        assert_eq!(out, "first second");
        Ok(())
    }
}
