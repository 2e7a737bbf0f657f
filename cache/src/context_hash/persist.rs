//! The on-disk form of the metadata cache: a small binary file.
//!
//! ```text
//! magic "strata-ctxhash\0\x01" (16 bytes)
//! entry count                  u64
//! entries, each:
//!   path length u32, path bytes
//!   size u64, mtime ns i128, ctime ns i128, inode u64, device u64, mode u32
//!   recorded ns i128, last seen (s) i64, blake3 digest [32]
//! blake3 of everything above   [32]
//! ```
//!
//! All integers little-endian. The trailing checksum makes any truncation or
//! corruption detectable; such a file loads as an empty cache.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Entry, Stamp, now_ns};

const MAGIC: &[u8; 16] = b"strata-ctxhash\0\x01";
/// A file larger than this is not a cache we wrote; it loads as empty.
const MAX_FILE: u64 = 256 << 20;
/// Most entries kept; about 150 bytes each with typical paths.
pub(super) const MAX_ENTRIES: usize = 250_000;
/// Entries unused for this long are dropped on save.
pub(super) const MAX_AGE_SECS: i64 = 30 * 24 * 3600;
/// "Last seen" is refreshed at most this often, so warm builds do not
/// rewrite the file only to move it.
pub(super) const SEEN_GRANULE_SECS: i64 = 24 * 3600;

/// Loads `path`; anything unexpected (missing, unreadable, bad magic,
/// truncated, checksum mismatch) yields an empty map.
pub(super) fn load(path: &Path) -> HashMap<PathBuf, Entry> {
    read_bytes(path)
        .and_then(|bytes| decode(&bytes))
        .unwrap_or_default()
}

fn read_bytes(path: &Path) -> Option<Vec<u8>> {
    let file = File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 <= MAX_FILE).then_some(bytes)
}

fn decode(bytes: &[u8]) -> Option<HashMap<PathBuf, Entry>> {
    let body_len = bytes.len().checked_sub(32)?;
    let (body, sum) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let mut r = Reader(body);
    if r.take(16)? != MAGIC {
        return None;
    }
    let count = r.u64()?;
    let mut map = HashMap::new();
    for _ in 0..count {
        let len = r.u32()? as usize;
        let path = PathBuf::from(OsString::from_vec(r.take(len)?.to_vec()));
        let stamp = Stamp {
            size: r.u64()?,
            mtime_ns: r.i128()?,
            ctime_ns: r.i128()?,
            ino: r.u64()?,
            dev: r.u64()?,
            mode: r.u32()?,
        };
        let recorded_ns = r.i128()?;
        let last_seen = r.u64()? as i64;
        let digest = r.take(32)?.try_into().ok()?;
        map.insert(
            path,
            Entry {
                stamp,
                digest,
                recorded_ns,
                last_seen,
            },
        );
    }
    r.0.is_empty().then_some(map)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i128(&mut self) -> Option<i128> {
        Some(i128::from_le_bytes(self.take(16)?.try_into().ok()?))
    }
}

/// Writes `entries` to `path` atomically: a temp file in the same directory,
/// fsynced, renamed over `path`, then the directory fsynced. Racy entries
/// (never trusted as they are) and stale ones are left out.
pub(super) fn save(
    path: &Path,
    entries: HashMap<PathBuf, Entry>,
    racy_window: Duration,
) -> io::Result<()> {
    let now_s = (now_ns() / 1_000_000_000) as i64;
    let mut kept: Vec<(PathBuf, Entry)> = entries
        .into_iter()
        .filter(|(_, e)| {
            now_s - e.last_seen <= MAX_AGE_SECS && e.stamp.trusted_at(e.recorded_ns, racy_window)
        })
        .collect();
    if kept.len() > MAX_ENTRIES {
        kept.sort_by_key(|(_, e)| std::cmp::Reverse(e.last_seen));
        kept.truncate(MAX_ENTRIES);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    write_entries(tmp.as_file(), &kept)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

/// The body and trailing checksum.
fn write_entries(file: &File, kept: &[(PathBuf, Entry)]) -> io::Result<()> {
    let mut out = HashingWriter {
        inner: BufWriter::new(file),
        hasher: blake3::Hasher::new(),
    };
    out.write_all(MAGIC)?;
    out.write_all(&(kept.len() as u64).to_le_bytes())?;
    for (p, e) in kept {
        let p = p.as_os_str().as_bytes();
        let len = u32::try_from(p.len()).map_err(|_| io::Error::other("path too long"))?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(p)?;
        out.write_all(&e.stamp.size.to_le_bytes())?;
        out.write_all(&e.stamp.mtime_ns.to_le_bytes())?;
        out.write_all(&e.stamp.ctime_ns.to_le_bytes())?;
        out.write_all(&e.stamp.ino.to_le_bytes())?;
        out.write_all(&e.stamp.dev.to_le_bytes())?;
        out.write_all(&e.stamp.mode.to_le_bytes())?;
        out.write_all(&e.recorded_ns.to_le_bytes())?;
        out.write_all(&(e.last_seen as u64).to_le_bytes())?;
        out.write_all(&e.digest)?;
    }
    let sum = out.hasher.finalize();
    let mut inner = out.inner;
    inner.write_all(sum.as_bytes())?;
    inner.flush()
}

/// Writes through to `inner` and hashes what it wrote (the checksum).
struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(last_seen: i64, recorded_ns: i128) -> Entry {
        Entry {
            stamp: Stamp {
                size: 3,
                mtime_ns: 1_000,
                ctime_ns: 2_000,
                ino: 42,
                dev: 7,
                mode: 0o100644,
            },
            digest: [9; 32],
            recorded_ns,
            last_seen,
        }
    }

    #[test]
    fn round_trip_drops_stale_and_racy_entries() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("sub/cache.bin");
        let now_s = (now_ns() / 1_000_000_000) as i64;
        let recorded = now_ns();
        let mut map = HashMap::new();
        map.insert(PathBuf::from("/ctx/fresh"), entry(now_s, recorded));
        map.insert(
            PathBuf::from("/ctx/old"),
            entry(now_s - MAX_AGE_SECS - 10, recorded),
        );
        // Recorded before its own ctime: racy, never trusted, not kept.
        map.insert(PathBuf::from("/ctx/racy"), entry(now_s, 1_500));
        save(&file, map, Duration::ZERO)?;
        let back = load(&file);
        assert_eq!(back.len(), 1);
        let fresh = back.get(Path::new("/ctx/fresh")).ok_or("entry lost")?;
        assert_eq!(fresh.stamp, entry(0, 0).stamp);
        assert_eq!(
            (fresh.digest, fresh.recorded_ns, fresh.last_seen),
            ([9; 32], recorded, now_s)
        );
        Ok(())
    }

    #[test]
    fn keeps_the_most_recently_used_when_over_the_cap() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("cache.bin");
        let now_s = (now_ns() / 1_000_000_000) as i64;
        let map: HashMap<PathBuf, Entry> = (0..MAX_ENTRIES + 5)
            .map(|i| {
                (
                    PathBuf::from(format!("/f{i}")),
                    entry(now_s - i as i64, now_ns()),
                )
            })
            .collect();
        save(&file, map, Duration::ZERO)?;
        let back = load(&file);
        assert_eq!(back.len(), MAX_ENTRIES);
        assert!(back.contains_key(Path::new("/f0")));
        assert!(!back.contains_key(Path::new(&format!("/f{MAX_ENTRIES}"))));
        Ok(())
    }
}
