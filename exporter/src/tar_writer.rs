//! Writes [`Entry`]s as a POSIX (ustar + PAX) tar stream.
//!
//! Headers are ustar; whatever does not fit (names or link targets over 100
//! bytes, large ids, sizes or times, extended attributes) goes into a PAX
//! extended header before the entry. User and group names stay empty and
//! nothing depends on the machine, so equal entries give equal bytes.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{ExportError, io_err};
use crate::walk::{Entry, Kind};

const BLOCK: usize = 512;

/// A tar stream being written to `out`.
pub(crate) struct TarWriter<W: Write> {
    out: W,
    /// What `out` is, for error messages.
    out_name: PathBuf,
    /// SOURCE_DATE_EPOCH: later modification times are clamped to it.
    clamp: Option<i64>,
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(out: W, out_name: &Path, clamp: Option<i64>) -> Self {
        TarWriter {
            out,
            out_name: out_name.to_path_buf(),
            clamp,
        }
    }

    /// Appends one entry (and, for a regular file, its content).
    pub(crate) fn append(&mut self, entry: &Entry) -> Result<(), ExportError> {
        let mut path = entry.path.clone();
        if entry.kind == Kind::Dir {
            path.push(b'/');
        }
        let mtime = match self.clamp {
            Some(epoch) if entry.meta.mtime > epoch => epoch,
            _ => entry.meta.mtime,
        };
        let (type_flag, size, link, device) = match &entry.kind {
            Kind::File { size, .. } => (b'0', *size, None, None),
            Kind::HardLink(target) => (b'1', 0, Some(target), None),
            Kind::Symlink(target) => (b'2', 0, Some(target), None),
            Kind::CharDevice { major, minor } => (b'3', 0, None, Some((*major, *minor))),
            Kind::BlockDevice { major, minor } => (b'4', 0, None, Some((*major, *minor))),
            Kind::Dir => (b'5', 0, None, None),
            Kind::Fifo => (b'6', 0, None, None),
        };

        let mut header = [0u8; BLOCK];
        let mut pax = Pax::default();
        put_bytes(&mut header[0..100], &path, || pax.add(b"path", &path));
        put_octal(&mut header[100..108], u64::from(entry.meta.mode));
        put_octal_or(&mut header[108..116], entry.meta.uid, &mut pax, b"uid");
        put_octal_or(&mut header[116..124], entry.meta.gid, &mut pax, b"gid");
        put_octal_or(&mut header[124..136], size, &mut pax, b"size");
        match u64::try_from(mtime) {
            Ok(t) => put_octal_or(&mut header[136..148], t, &mut pax, b"mtime"),
            Err(_) => pax.add(b"mtime", mtime.to_string().as_bytes()),
        }
        header[156] = type_flag;
        if let Some(link) = link {
            put_bytes(&mut header[157..257], link, || pax.add(b"linkpath", link));
        }
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        if let Some((major, minor)) = device {
            let fits =
                put_octal(&mut header[329..337], major) && put_octal(&mut header[337..345], minor);
            if !fits {
                return Err(ExportError::Unarchivable {
                    path: self.entry_name(entry),
                    reason: "device number too large for a tar header",
                });
            }
        }
        for (name, value) in &entry.meta.xattrs {
            pax.add(&[b"SCHILY.xattr.".as_slice(), name].concat(), value);
        }

        if !pax.0.is_empty() {
            self.write_pax(&path, &pax.0)?;
        }
        finish_checksum(&mut header);
        self.write(&header)?;

        if let Kind::File {
            source: Some(source),
            size,
        } = &entry.kind
        {
            self.copy_file(source, *size)?;
        }
        Ok(())
    }

    /// Ends the archive and returns the output.
    pub(crate) fn finish(mut self) -> Result<W, ExportError> {
        self.write(&[0u8; 2 * BLOCK])?;
        self.out.flush().map_err(io_err(&self.out_name))?;
        Ok(self.out)
    }

    /// A regular file `name` holding the `size` bytes `reader` yields
    /// (`source` names the reader in errors); used for archives of blobs.
    pub(crate) fn append_bytes(
        &mut self,
        name: &str,
        reader: &mut dyn Read,
        size: u64,
        source: &Path,
    ) -> Result<(), ExportError> {
        let mut header = [0u8; BLOCK];
        let mut pax = Pax::default();
        put_bytes(&mut header[0..100], name.as_bytes(), || {
            pax.add(b"path", name.as_bytes())
        });
        put_octal(&mut header[100..108], 0o644);
        put_octal(&mut header[108..116], 0);
        put_octal(&mut header[116..124], 0);
        put_octal_or(&mut header[124..136], size, &mut pax, b"size");
        put_octal(&mut header[136..148], 0);
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        if !pax.0.is_empty() {
            self.write_pax(name.as_bytes(), &pax.0)?;
        }
        finish_checksum(&mut header);
        self.write(&header)?;
        self.copy_reader(reader, size, source)
    }

    fn entry_name(&self, entry: &Entry) -> PathBuf {
        self.out_name
            .join(String::from_utf8_lossy(&entry.path).as_ref())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        self.out.write_all(bytes).map_err(io_err(&self.out_name))
    }

    fn write_pax(&mut self, path: &[u8], records: &[u8]) -> Result<(), ExportError> {
        let mut header = [0u8; BLOCK];
        let name = [b"PaxHeaders/".as_slice(), path].concat();
        let len = name.len().min(100);
        header[..len].copy_from_slice(&name[..len]);
        put_octal(&mut header[100..108], 0o644);
        put_octal(&mut header[108..116], 0);
        put_octal(&mut header[116..124], 0);
        put_octal(&mut header[124..136], records.len() as u64);
        put_octal(&mut header[136..148], 0);
        header[156] = b'x';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        finish_checksum(&mut header);
        self.write(&header)?;
        self.write(records)?;
        self.pad(records.len() as u64)
    }

    fn copy_file(&mut self, source: &Path, size: u64) -> Result<(), ExportError> {
        let mut file = File::open(source).map_err(io_err(source))?;
        self.copy_reader(&mut file, size, source)
    }

    /// Copies exactly `size` bytes of `reader` (named `source`) and pads.
    fn copy_reader(
        &mut self,
        reader: &mut dyn Read,
        size: u64,
        source: &Path,
    ) -> Result<(), ExportError> {
        let copied = io::copy(&mut reader.take(size), &mut self.out).map_err(io_err(source))?;
        let mut extra = [0u8; 1];
        let grew = reader.read(&mut extra).map_err(io_err(source))? > 0;
        if copied != size || grew {
            return Err(ExportError::FileChanged {
                path: source.to_path_buf(),
                expected: size,
            });
        }
        self.pad(size)
    }

    fn pad(&mut self, len: u64) -> Result<(), ExportError> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.write(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }
}

/// PAX extended header records, in the order added.
#[derive(Default)]
struct Pax(Vec<u8>);

impl Pax {
    /// Adds `"<len> key=value\n"`, where len counts the whole record.
    fn add(&mut self, key: &[u8], value: &[u8]) {
        let base = key.len() + value.len() + 3;
        let mut len = base + 1;
        while base + len.to_string().len() != len {
            len = base + len.to_string().len();
        }
        self.0.extend_from_slice(len.to_string().as_bytes());
        self.0.push(b' ');
        self.0.extend_from_slice(key);
        self.0.push(b'=');
        self.0.extend_from_slice(value);
        self.0.push(b'\n');
    }
}

/// Copies `bytes` into `field`, or calls `too_long` when they do not fit.
fn put_bytes(field: &mut [u8], bytes: &[u8], too_long: impl FnOnce()) {
    if bytes.len() <= field.len() {
        field[..bytes.len()].copy_from_slice(bytes);
    } else {
        field.copy_from_slice(&bytes[..field.len()]);
        too_long();
    }
}

/// Writes `value` as zero-padded octal and a NUL; false when it does not fit.
fn put_octal(field: &mut [u8], value: u64) -> bool {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    if text.len() > digits {
        return false;
    }
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
    true
}

/// Like [`put_octal`], moving a value that does not fit to a PAX record.
fn put_octal_or(field: &mut [u8], value: u64, pax: &mut Pax, key: &[u8]) {
    if !put_octal(field, value) {
        put_octal(field, 0);
        pax.add(key, value.to_string().as_bytes());
    }
}

fn finish_checksum(header: &mut [u8; BLOCK]) {
    header[148..156].copy_from_slice(b"        ");
    let sum: u64 = header.iter().map(|&b| u64::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut pax = Pax::default();
        pax.add(b"path", b"x");
        assert_eq!(pax.0, b"9 path=x\n");
        let mut pax = Pax::default();
        pax.add(b"path", &[b'a'; 93]);
        // 4 + 93 + 3 = 100 bytes plus the length's own three digits.
        assert!(pax.0.starts_with(b"103 path="));
        assert_eq!(pax.0.len(), 103);
    }

    #[test]
    fn octal_fields_refuse_what_does_not_fit() {
        let mut field = [0u8; 8];
        assert!(put_octal(&mut field, 0o7777777));
        assert_eq!(&field, b"7777777\0");
        assert!(!put_octal(&mut field, 0o10000000));
    }
}
