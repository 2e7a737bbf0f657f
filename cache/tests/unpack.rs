//! Layer and ADD-archive extraction, including hostile archives built with
//! the tar crate's raw header API (which lets us write names it would refuse).

use std::fs;
use std::io::{Read as _, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use strata_cache::{
    UnpackError, extract_archive, layer_diff_id, unpack_layer, unpack_verified_layer,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// One entry of a test archive.
enum E<'a> {
    File(&'a str, &'a [u8], u32),
    Owned(&'a str, u32, u32),
    Dir(&'a str, u32),
    Symlink(&'a str, &'a str),
    Link(&'a str, &'a str),
    Fifo(&'a str),
    Char(&'a str, u32, u32),
    Xattr(&'a str, &'a str, &'a [u8]),
}

const MTIME: u64 = 1_600_000_000;

fn header(kind: tar::EntryType, name: &str, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    // Raw bytes: set_path would refuse `..` and absolute names.
    let raw = &mut h.as_old_mut().name;
    raw.fill(0);
    raw[..name.len()].copy_from_slice(name.as_bytes());
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(0);
    h
}

fn set_link(h: &mut tar::Header, target: &str) {
    let raw = &mut h.as_old_mut().linkname;
    raw.fill(0);
    raw[..target.len()].copy_from_slice(target.as_bytes());
}

fn build(entries: &[E]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use tar::EntryType as T;
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (mut h, data): (tar::Header, &[u8]) = match *e {
            E::File(name, data, mode) => {
                let mut h = header(T::Regular, name, mode);
                h.set_size(data.len() as u64);
                (h, data)
            }
            E::Owned(name, uid, gid) => {
                let mut h = header(T::Regular, name, 0o640);
                h.set_uid(uid.into());
                h.set_gid(gid.into());
                (h, b"")
            }
            E::Dir(name, mode) => (header(T::Directory, name, mode), b""),
            E::Symlink(name, target) => {
                let mut h = header(T::Symlink, name, 0o777);
                set_link(&mut h, target);
                (h, b"")
            }
            E::Link(name, target) => {
                let mut h = header(T::Link, name, 0o644);
                set_link(&mut h, target);
                (h, b"")
            }
            E::Fifo(name) => (header(T::Fifo, name, 0o600), b""),
            E::Char(name, major, minor) => {
                let mut h = header(T::Char, name, 0o666);
                h.set_device_major(major)?;
                h.set_device_minor(minor)?;
                (h, b"")
            }
            E::Xattr(name, key, value) => {
                b.append_pax_extensions([(format!("SCHILY.xattr.{key}").as_str(), value)])?;
                let mut h = header(T::Regular, name, 0o644);
                h.set_size(3);
                (h, b"abc")
            }
        };
        h.set_cksum();
        b.append(&h, data)?;
    }
    Ok(b.into_inner()?)
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes)?;
    gz.finish()
}

/// A scratch area with `dest/` to unpack into and `outside/` holding one
/// file, which no hostile archive may change or add to.
struct Arena {
    _tmp: tempfile::TempDir,
    dest: std::path::PathBuf,
    outside: std::path::PathBuf,
}

impl Arena {
    fn new() -> Result<Self, std::io::Error> {
        let tmp = tempfile::tempdir()?;
        let dest = tmp.path().join("dest");
        let outside = tmp.path().join("outside");
        fs::create_dir(&dest)?;
        fs::create_dir(&outside)?;
        fs::write(outside.join("secret"), "secret")?;
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o750))?;
        Ok(Arena {
            _tmp: tmp,
            dest,
            outside,
        })
    }

    /// Fails unless `outside/` still holds exactly its one unchanged file
    /// with its mode.
    fn assert_outside_untouched(&self) -> TestResult {
        let names: Vec<_> = fs::read_dir(&self.outside)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        assert_eq!(names, ["secret"], "something was written outside dest");
        assert_eq!(fs::read_to_string(self.outside.join("secret"))?, "secret");
        assert_eq!(fs::metadata(&self.outside)?.mode() & 0o7777, 0o750);
        // The arena's parent too.
        let parent = self.dest.parent().ok_or("dest has a parent")?;
        assert_eq!(
            fs::read_dir(parent)?.count(),
            2,
            "something was written beside dest"
        );
        Ok(())
    }
}

/// Unpacks `entries` as a layer into a fresh arena and expects a refusal
/// naming `entry`.
fn expect_refused(entries: &[E], entry: &str) -> TestResult {
    refused_in(&Arena::new()?, entries, entry)
}

/// Unpacks `entries` as a layer into `arena` and expects a refusal naming
/// `entry`, with nothing changed outside.
fn refused_in(arena: &Arena, entries: &[E], entry: &str) -> TestResult {
    let tar = build(entries)?;
    match unpack_layer(tar.as_slice(), &arena.dest) {
        Err(UnpackError::Unsafe { entry: e, reason }) => {
            assert_eq!(e, Path::new(entry), "wrong entry named ({reason})");
        }
        other => return Err(format!("{entry}: expected a refusal, got {other:?}").into()),
    }
    arena.assert_outside_untouched()
}

#[test]
fn dotdot_entries_are_refused() -> TestResult {
    expect_refused(&[E::File("../escape", b"x", 0o644)], "../escape")?;
    expect_refused(
        &[E::Dir("a/", 0o755), E::File("a/../../escape", b"x", 0o644)],
        "a/../../escape",
    )?;
    expect_refused(&[E::Dir("../", 0o777)], "../")
}

#[test]
fn writes_through_an_earlier_symlink_are_refused() -> TestResult {
    // Absolute symlink to the outside folder.
    let arena = Arena::new()?;
    let outside = arena.outside.to_string_lossy().into_owned();
    refused_in(
        &arena,
        &[
            E::Symlink("link", &outside),
            E::File("link/pwned", b"x", 0o644),
        ],
        "link/pwned",
    )?;
    // Relative symlink climbing out: dest/up -> .. is the arena.
    expect_refused(
        &[
            E::Symlink("up", ".."),
            E::File("up/outside/pwned", b"x", 0o644),
        ],
        "up/outside/pwned",
    )?;
    expect_refused(
        &[E::Symlink("up2", "../.."), E::Dir("up2/x/", 0o755)],
        "up2/x/",
    )?;
    // A symlink to / must not let root/... be written (the entry is refused
    // before anything is created through it).
    expect_refused(
        &[
            E::Symlink("root", "/"),
            E::Dir("root/tmp/strata-should-not-exist/", 0o755),
        ],
        "root/tmp/strata-should-not-exist/",
    )?;
    assert!(!Path::new("/tmp/strata-should-not-exist").exists());
    // A directory replaced by a symlink, then written into.
    let arena = Arena::new()?;
    let outside = arena.outside.to_string_lossy().into_owned();
    refused_in(
        &arena,
        &[
            E::Dir("d/", 0o755),
            E::Symlink("d", &outside),
            E::File("d/pwned", b"x", 0o644),
        ],
        "d/pwned",
    )
}

#[test]
fn hostile_hard_links_are_refused() -> TestResult {
    expect_refused(&[E::Link("hl", "../outside/secret")], "hl")?;
    expect_refused(&[E::Link("hl", "/etc/passwd")], "hl")?;
    let arena = Arena::new()?;
    let outside = arena.outside.to_string_lossy().into_owned();
    refused_in(
        &arena,
        &[E::Symlink("link", &outside), E::Link("hl", "link/secret")],
        "hl",
    )?;
    // The target was unpacked, then its parent became a symlink to a folder
    // holding a file of the same name.
    let arena = Arena::new()?;
    let outside = arena.outside.to_string_lossy().into_owned();
    refused_in(
        &arena,
        &[
            E::Dir("d/", 0o755),
            E::File("d/secret", b"mine", 0o644),
            E::Symlink("d", &outside),
            E::Link("hl", "d/secret"),
        ],
        "hl",
    )?;
    expect_refused(&[E::Dir("dir/", 0o755), E::Link("hl", "dir")], "hl")
}

#[test]
fn degenerate_whiteouts_are_refused() -> TestResult {
    expect_refused(&[E::File(".wh..", b"", 0o644)], ".wh..")?;
    expect_refused(
        &[E::Dir("a/", 0o755), E::File("a/.wh.", b"", 0o644)],
        "a/.wh.",
    )
}

#[test]
fn entries_replace_symlinks_instead_of_following_them() -> TestResult {
    let arena = Arena::new()?;
    let target = arena.outside.join("secret").to_string_lossy().into_owned();
    let outside = arena.outside.to_string_lossy().into_owned();
    let tar = build(&[
        E::Symlink("s", &target),
        E::File("s", b"replaced", 0o644),
        // A directory entry whose path is later replaced by a symlink must not
        // get its mode applied through the symlink at the end.
        E::Dir("ro/", 0o500),
        E::Symlink("ro", &outside),
    ])?;
    unpack_layer(tar.as_slice(), &arena.dest)?;
    assert_eq!(fs::read_to_string(arena.dest.join("s"))?, "replaced");
    assert!(
        fs::symlink_metadata(arena.dest.join("ro"))?
            .file_type()
            .is_symlink()
    );
    arena.assert_outside_untouched()
}

#[test]
fn absolute_paths_are_made_relative() -> TestResult {
    let arena = Arena::new()?;
    let tar = build(&[
        E::File("/abs/file", b"in", 0o644),
        E::File("./dot", b"d", 0o644),
    ])?;
    unpack_layer(tar.as_slice(), &arena.dest)?;
    assert_eq!(fs::read_to_string(arena.dest.join("abs/file"))?, "in");
    assert_eq!(fs::read_to_string(arena.dest.join("dot"))?, "d");
    arena.assert_outside_untouched()
}

#[test]
fn layer_keeps_metadata_and_writes_overlay_whiteouts() -> TestResult {
    let arena = Arena::new()?;
    let d = &arena.dest;
    let tar = build(&[
        E::Dir("./", 0o755),
        E::Dir("bin/", 0o755),
        E::File("bin/su", b"#!", 0o4755),
        E::Link("bin/su2", "bin/su"),
        E::Symlink("bin/passwd-link", "/etc/passwd"),
        E::Dir("tmp/", 0o1777),
        E::Dir("ro/", 0o555),
        E::File("ro/inside", b"ok", 0o444),
        E::Owned("home/app/.profile", 1000, 1001),
        E::Fifo("fifo"),
        E::Char("null", 1, 3),
        E::Xattr("xattr-file", "user.strata", b"v"),
        E::File(".wh.gone", b"", 0o644),
        E::Dir("opq/", 0o755),
        E::File("opq/.wh..wh..opq", b"", 0o644),
        E::File("opq/kept", b"k", 0o644),
    ])?;
    let stats = unpack_layer(gzip(&tar)?.as_slice(), d)?;
    assert_eq!(stats.whiteouts, 1);
    assert_eq!(stats.opaque_dirs, 1);
    assert_eq!(stats.hardlinks, 1);
    assert_eq!(stats.devices, 2);
    assert_eq!(stats.skipped_devices, 0, "the tests run as root");

    let su = fs::metadata(d.join("bin/su"))?;
    assert_eq!(su.mode() & 0o7777, 0o4755);
    assert_eq!(su.mtime(), MTIME as i64);
    assert_eq!(su.ino(), fs::metadata(d.join("bin/su2"))?.ino());
    assert_eq!(
        fs::read_link(d.join("bin/passwd-link"))?,
        Path::new("/etc/passwd")
    );
    assert_eq!(
        fs::symlink_metadata(d.join("bin/passwd-link"))?.mtime(),
        MTIME as i64
    );
    assert_eq!(fs::metadata(d.join("tmp"))?.mode() & 0o7777, 0o1777);
    let ro = fs::metadata(d.join("ro"))?;
    assert_eq!(ro.mode() & 0o7777, 0o555);
    assert_eq!(ro.mtime(), MTIME as i64, "directory mtimes are set last");
    assert_eq!(fs::read_to_string(d.join("ro/inside"))?, "ok");
    let profile = fs::metadata(d.join("home/app/.profile"))?;
    assert_eq!((profile.uid(), profile.gid()), (1000, 1001));
    assert_eq!(fs::metadata(d.join("home"))?.mode() & 0o7777, 0o755);
    assert!(fs::symlink_metadata(d.join("fifo"))?.file_type().is_fifo());
    let null = fs::symlink_metadata(d.join("null"))?;
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(
        rustix::fs::lgetxattr(d.join("xattr-file"), "user.strata", &mut [0u8; 8][..])?,
        1
    );

    let gone = fs::symlink_metadata(d.join("gone"))?;
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert!(!d.join(".wh.gone").exists());
    let mut buf = [0u8; 4];
    let n = rustix::fs::lgetxattr(d.join("opq"), "trusted.overlay.opaque", &mut buf[..])?;
    assert_eq!(&buf[..n], b"y");
    assert!(!d.join("opq/.wh..wh..opq").exists());
    assert_eq!(fs::read_to_string(d.join("opq/kept"))?, "k");
    arena.assert_outside_untouched()
}

#[test]
fn archive_xattrs_cannot_forge_overlay_metadata() -> TestResult {
    let arena = Arena::new()?;
    let tar = build(&[
        E::Xattr("redirected", "trusted.overlay.redirect", b"/etc"),
        E::Xattr("kept", "trusted.strata", b"v"),
    ])?;
    let stats = unpack_layer(tar.as_slice(), &arena.dest)?;
    assert_eq!(stats.skipped_xattrs, 1);
    let mut buf = [0u8; 8];
    assert!(
        rustix::fs::lgetxattr(
            arena.dest.join("redirected"),
            "trusted.overlay.redirect",
            &mut buf[..]
        )
        .is_err()
    );
    let n = rustix::fs::lgetxattr(arena.dest.join("kept"), "trusted.strata", &mut buf[..])?;
    assert_eq!(&buf[..n], b"v");
    Ok(())
}

#[test]
fn the_overlay_diff_hides_lower_files() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (lower, upper) = (tmp.path().join("lower"), tmp.path().join("upper"));
    unpack_layer(
        build(&[
            E::File("gone", b"1", 0o644),
            E::Dir("opq/", 0o755),
            E::File("opq/old", b"1", 0o644),
        ])?
        .as_slice(),
        &lower,
    )?;
    unpack_layer(
        build(&[
            E::File(".wh.gone", b"", 0o644),
            E::Dir("opq/", 0o755),
            E::File("opq/.wh..wh..opq", b"", 0o644),
            E::File("opq/new", b"2", 0o644),
        ])?
        .as_slice(),
        &upper,
    )?;
    let merged = tmp.path().join("merged");
    fs::create_dir(&merged)?;
    let opts = format!("lowerdir={}:{}", upper.display(), lower.display());
    let status = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&merged)
        .status()?;
    assert!(
        status.success(),
        "mount -t overlay failed (the tests need root)"
    );
    let seen = (
        merged.join("gone").exists(),
        merged.join("opq/old").exists(),
        merged.join("opq/new").exists(),
    );
    let umount = std::process::Command::new("umount").arg(&merged).status()?;
    assert!(umount.success());
    assert_eq!(seen, (false, false, true));
    Ok(())
}

#[test]
fn add_extracts_tar_archives_and_leaves_other_files() -> TestResult {
    let arena = Arena::new()?;
    let d = &arena.dest;
    fs::write(d.join("existing"), "kept")?;
    let tar = build(&[
        E::Dir("./", 0o700),
        E::File("app/run", b"#!/bin/sh", 0o755),
        E::File("app/.wh.marker", b"", 0o644),
        E::Owned("app/owned", 1000, 1000),
    ])?;
    assert!(extract_archive(gzip(&tar)?.as_slice(), d, None, u64::MAX)?);
    assert_eq!(fs::read_to_string(d.join("existing"))?, "kept");
    assert_eq!(
        fs::metadata(d)?.mode() & 0o777,
        0o755,
        "ADD leaves dest's mode"
    );
    assert!(
        d.join("app/.wh.marker").is_file(),
        "whiteout names are plain files for ADD"
    );
    let owned = fs::metadata(d.join("app/owned"))?;
    assert_eq!((owned.uid(), owned.gid()), (1000, 1000));

    let chowned = arena.dest.join("chowned");
    assert!(extract_archive(
        zstd::encode_all(tar.as_slice(), 1)?.as_slice(),
        &chowned,
        Some((7, 8)),
        u64::MAX,
    )?);
    let run = fs::metadata(chowned.join("app/run"))?;
    assert_eq!((run.uid(), run.gid(), run.mode() & 0o777), (7, 8, 0o755));

    // Not a tar: nothing is written, not even the destination folder.
    let not_tar = arena.dest.join("not-tar");
    assert!(!extract_archive(
        &b"just some text, longer than nothing"[..],
        &not_tar,
        None,
        u64::MAX,
    )?);
    assert!(!extract_archive(
        gzip(b"compressed text")?.as_slice(),
        &not_tar,
        None,
        u64::MAX,
    )?);
    assert!(
        !extract_archive(&[0u8; 1024][..], &not_tar, None, u64::MAX)?,
        "an empty tar is no archive"
    );
    let mut corrupt = tar.clone();
    corrupt[0] ^= 1; // breaks the first header's checksum
    assert!(!extract_archive(
        corrupt.as_slice(),
        &not_tar,
        None,
        u64::MAX
    )?);
    assert!(!not_tar.exists());

    arena.assert_outside_untouched()
}

#[test]
fn add_follows_symlinks_only_inside_the_destination() -> TestResult {
    let arena = Arena::new()?;
    let d = &arena.dest;
    // A merged-/usr base image.
    fs::create_dir_all(d.join("usr/lib"))?;
    std::os::unix::fs::symlink("usr/lib", d.join("lib"))?;
    std::os::unix::fs::symlink("/usr/lib", d.join("lib-abs"))?;
    let outside = arena.outside.to_string_lossy().into_owned();
    let tar = build(&[
        E::File("lib/from-archive", b"1", 0o644),
        E::File("lib-abs/absolute", b"2", 0o644),
        E::Link("lib/linked", "lib/from-archive"),
        // Hostile: each resolves as if the destination were `/`.
        E::Symlink("up", "../../.."),
        E::File("up/outside/pwned", b"x", 0o644),
        E::Symlink("out", &outside),
        E::File("out/pwned", b"x", 0o644),
    ])?;
    assert!(extract_archive(tar.as_slice(), d, None, u64::MAX)?);
    assert_eq!(fs::read_to_string(d.join("usr/lib/from-archive"))?, "1");
    assert_eq!(fs::read_to_string(d.join("usr/lib/absolute"))?, "2");
    assert_eq!(
        fs::metadata(d.join("usr/lib/linked"))?.ino(),
        fs::metadata(d.join("usr/lib/from-archive"))?.ino()
    );
    assert_eq!(fs::read_to_string(d.join("outside/pwned"))?, "x");
    // `out` -> <outside> resolves to <dest>/<outside's absolute path>.
    assert!(
        d.join(outside.trim_start_matches('/'))
            .join("pwned")
            .is_file()
    );
    arena.assert_outside_untouched()
}

#[test]
fn names_that_are_not_utf8_are_kept_byte_for_byte() -> TestResult {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let arena = Arena::new()?;
    let mut b = tar::Builder::new(Vec::new());
    for name in [&b"caf\xe9"[..], b".wh.gon\xe9"] {
        let mut h = header(tar::EntryType::Regular, "", 0o644);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b""[..])?;
    }
    unpack_layer(b.into_inner()?.as_slice(), &arena.dest)?;
    assert!(arena.dest.join(OsStr::from_bytes(b"caf\xe9")).is_file());
    let whiteout = fs::symlink_metadata(arena.dest.join(OsStr::from_bytes(b"gon\xe9")))?;
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(fs::read_dir(&arena.dest)?.count(), 2);
    Ok(())
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[test]
fn verified_unpack_accepts_the_right_diff_id() -> TestResult {
    let tar = build(&[
        E::Dir("etc/", 0o755),
        E::File("etc/hostname", b"box\n", 0o644),
    ])?;
    let arena = Arena::new()?;
    let stats =
        unpack_verified_layer(gzip(&tar)?.as_slice(), &arena.dest, &sha256(&tar), u64::MAX)?;
    assert_eq!(stats.files, 1);
    assert_eq!(fs::read(arena.dest.join("etc/hostname"))?, b"box\n");
    assert_eq!(layer_diff_id(gzip(&tar)?.as_slice())?, sha256(&tar));
    Ok(())
}

#[test]
fn verified_unpack_refuses_another_diff_id() -> TestResult {
    let genuine = build(&[E::File("a", b"genuine", 0o644)])?;
    let forged = build(&[
        E::File("a", b"genuine", 0o644),
        E::File("POISONED", b"x", 0o644),
    ])?;
    let arena = Arena::new()?;
    match unpack_verified_layer(
        gzip(&forged)?.as_slice(),
        &arena.dest,
        &sha256(&genuine),
        u64::MAX,
    ) {
        Err(UnpackError::DiffIdMismatch { claimed, actual }) => {
            assert_eq!(claimed, sha256(&genuine));
            assert_eq!(actual, sha256(&forged));
        }
        other => panic!("forged layer accepted: {other:?}"),
    }
    arena.assert_outside_untouched()
}

#[test]
fn verified_unpack_hashes_what_follows_the_end_of_the_archive() -> TestResult {
    // tar readers stop at the end-of-archive blocks; the diffID covers the
    // whole stream, so bytes after them change it.
    let mut stream = build(&[E::File("a", b"content", 0o644)])?;
    let tar_only = sha256(&stream);
    stream.extend_from_slice(&[0u8; 4096]);
    stream.extend_from_slice(b"trailing bytes after the end-of-archive blocks");
    let whole = sha256(&stream);
    assert_ne!(tar_only, whole);

    let arena = Arena::new()?;
    match unpack_verified_layer(stream.as_slice(), &arena.dest, &tar_only, u64::MAX) {
        Err(UnpackError::DiffIdMismatch { actual, .. }) => assert_eq!(actual, whole),
        other => panic!("trailing data was not hashed: {other:?}"),
    }
    let arena = Arena::new()?;
    unpack_verified_layer(gzip(&stream)?.as_slice(), &arena.dest, &whole, u64::MAX)?;
    assert_eq!(fs::read(arena.dest.join("a"))?, b"content");
    assert_eq!(layer_diff_id(stream.as_slice())?, whole);
    Ok(())
}

/// A gzip bomb: a tar holding `size` zero bytes as one file, gzipped as it
/// is written (about a thousandth of `size`).
fn bomb(size: u64) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    let mut h = header(tar::EntryType::Regular, "zeros", 0o644);
    h.set_size(size);
    h.set_cksum();
    b.append(&h, std::io::repeat(0).take(size))?;
    Ok(b.into_inner()?.finish()?)
}

#[test]
fn a_gzip_bomb_stops_at_the_decompression_limit() -> TestResult {
    let gz = bomb(100 << 20)?;
    assert!(gz.len() < 1 << 20, "the bomb is {} bytes", gz.len());
    let limit = 10 << 20;
    let arena = Arena::new()?;
    match extract_archive(gz.as_slice(), &arena.dest, None, limit) {
        Err(UnpackError::TooLarge { limit: l }) => assert_eq!(l, limit),
        other => panic!("ADD bomb not stopped: {other:?}"),
    }
    let written = fs::metadata(arena.dest.join("zeros")).map_or(0, |m| m.len());
    assert!(written <= limit, "{written} bytes written");
    let arena = Arena::new()?;
    match unpack_verified_layer(gz.as_slice(), &arena.dest, "sha256:unused", limit) {
        Err(UnpackError::TooLarge { limit: l }) => assert_eq!(l, limit),
        other => panic!("layer bomb not stopped: {other:?}"),
    }
    arena.assert_outside_untouched()
}

#[test]
fn the_decompression_limit_is_inclusive() -> TestResult {
    let tar = build(&[E::File("a", b"content", 0o644)])?;
    let exact = tar.len() as u64;
    let arena = Arena::new()?;
    unpack_verified_layer(gzip(&tar)?.as_slice(), &arena.dest, &sha256(&tar), exact)?;
    let arena = Arena::new()?;
    assert!(extract_archive(
        gzip(&tar)?.as_slice(),
        &arena.dest,
        None,
        exact
    )?);
    let arena = Arena::new()?;
    match unpack_verified_layer(tar.as_slice(), &arena.dest, &sha256(&tar), exact - 1) {
        Err(UnpackError::TooLarge { .. }) => Ok(()),
        other => panic!("one byte over the limit accepted: {other:?}"),
    }
}
