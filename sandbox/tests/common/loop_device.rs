//! A loop device over a 1 MiB file of zeros: the host block device the device probes aim at.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An attached loop device, detached on drop (also when the test fails).
pub struct LoopDevice {
    /// `/dev/loopN`.
    pub device: PathBuf,
    /// The backing file.
    pub file: PathBuf,
    pub major: u64,
    pub minor: u64,
}

const SIZE: usize = 1 << 20;

impl LoopDevice {
    /// Attaches a new loop device to a file of zeros in `dir`.
    pub fn attach(dir: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        let file = dir.join("backing.img");
        fs::write(&file, vec![0u8; SIZE])?;
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file)
            .output()
            .map_err(|e| format!("losetup (util-linux mount package): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "losetup --find --show {}: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let device = PathBuf::from(String::from_utf8(out.stdout)?.trim());
        let rdev = fs::metadata(&device)?.rdev();
        // glibc's encoding of a dev_t (gnu_dev_major / gnu_dev_minor).
        let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
        let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
        Ok(LoopDevice {
            device,
            file,
            major,
            minor,
        })
    }

    /// Whether the backing file still holds only zeros, after flushing the device's writes.
    pub fn still_zeros(&self) -> Result<bool, Box<dyn std::error::Error>> {
        let status = Command::new("blockdev")
            .arg("--flushbufs")
            .arg(&self.device)
            .status()?;
        if !status.success() {
            return Err(format!("blockdev --flushbufs {} failed", self.device.display()).into());
        }
        let data = fs::read(&self.file)?;
        Ok(data.len() == SIZE && data.iter().all(|b| *b == 0))
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}
