//! Snapshot fixtures shared by the integration tests (we run as root).
#![allow(dead_code)]

use std::fs::{self, File};
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

use nix::sys::stat::{Mode, SFlag, makedev, mknod};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn write(path: &Path, content: &str, mode: u32) -> std::io::Result<()> {
    fs::write(path, content)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

pub fn mkdir(path: &Path, mode: u32) -> std::io::Result<()> {
    fs::create_dir(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// An overlayfs whiteout: a character device 0:0.
pub fn whiteout(path: &Path) -> Result<(), nix::Error> {
    mknod(path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
}

pub fn char_device(path: &Path, major: u64, minor: u64) -> Result<(), nix::Error> {
    mknod(
        path,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        makedev(major, minor),
    )?;
    // mknod applies the umask.
    fs::set_permissions(path, fs::Permissions::from_mode(0o666)).map_err(|_| nix::Error::EPERM)
}

pub fn opaque(dir: &Path) -> std::io::Result<()> {
    xattr::set(dir, "trusted.overlay.opaque", b"y")
}

pub fn set_mtime(path: &Path, secs: u64) -> std::io::Result<()> {
    File::open(path)?.set_times(
        fs::FileTimes::new().set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
    )
}

/// The long name used by [`rich_layer`] (over ustar's 100 bytes).
pub fn long_name() -> String {
    "n".repeat(150)
}

/// A layer with every kind of entry: owners, setuid and sticky modes,
/// xattrs, a symlink, a hard link, a device, a fifo, a socket (not
/// archivable), a whiteout, an opaque directory and a long name.
pub fn rich_layer(root: &Path) -> Result<(), Box<dyn std::error::Error>> {
    mkdir(&root.join("a"), 0o755)?;
    write(&root.join("a/f"), "hello", 0o640)?;
    lchown(root.join("a/f"), Some(1000), Some(1001))?;
    xattr::set(root.join("a/f"), "user.note", b"hi")?;
    xattr::set(root.join("a/f"), "trusted.overlay.origin", b"dropped")?;
    fs::hard_link(root.join("a/f"), root.join("a/hard"))?;
    symlink("f", root.join("a/link"))?;
    write(&root.join("a/suid"), "#!/bin/sh\n", 0o4755)?;
    mkdir(&root.join("b"), 0o1777)?;
    mkdir(&root.join("dev"), 0o755)?;
    char_device(&root.join("dev/null"), 1, 3)?;
    nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o644))?;
    whiteout(&root.join("gone"))?;
    mkdir(&root.join("op"), 0o750)?;
    opaque(&root.join("op"))?;
    write(&root.join("op/new"), "n", 0o644)?;
    std::os::unix::net::UnixListener::bind(root.join("sock"))?;
    mkdir(&root.join("long"), 0o755)?;
    write(&root.join("long").join(long_name()), "long", 0o644)?;
    Ok(())
}

/// Two layers: the lower has `keep`, `del` and `dir/{old,sub/x}`; the upper
/// deletes `del` (whiteout), makes `dir` opaque with `dir/new`, and adds `top`.
pub fn two_layers(lower: &Path, upper: &Path) -> Result<(), Box<dyn std::error::Error>> {
    write(&lower.join("keep"), "keep", 0o644)?;
    write(&lower.join("del"), "del", 0o644)?;
    mkdir(&lower.join("dir"), 0o755)?;
    write(&lower.join("dir/old"), "old", 0o644)?;
    mkdir(&lower.join("dir/sub"), 0o755)?;
    write(&lower.join("dir/sub/x"), "x", 0o644)?;
    mkdir(&lower.join("shared"), 0o755)?;
    write(&lower.join("shared/low"), "low", 0o644)?;

    whiteout(&upper.join("del"))?;
    mkdir(&upper.join("dir"), 0o700)?;
    opaque(&upper.join("dir"))?;
    write(&upper.join("dir/new"), "new", 0o600)?;
    write(&upper.join("top"), "top", 0o755)?;
    lchown(upper.join("top"), Some(7), Some(8))?;
    mkdir(&upper.join("shared"), 0o755)?;
    write(&upper.join("shared/high"), "high", 0o644)?;
    symlink("../keep", upper.join("shared/to-keep"))?;
    fs::hard_link(upper.join("top"), upper.join("shared/top-link"))?;
    Ok(())
}
