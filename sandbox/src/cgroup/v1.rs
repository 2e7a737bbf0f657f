//! The cgroup v1 `devices` controller: deny everything, then allow the list.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

use super::ALLOWED_DEVICES;
use crate::SandboxError;

/// Writes the allow-list to the fresh cgroup `dir` (one rule per write, as the kernel reads
/// them). The files must exist: a directory that is not a devices cgroup is an error.
pub(super) fn apply(dir: &Path) -> Result<(), SandboxError> {
    let deny = dir.join("devices.deny");
    write(&deny, "a").map_err(|e| SandboxError::cgroup("write a to", &deny, e))?;
    let allow = dir.join("devices.allow");
    for device in ALLOWED_DEVICES {
        write(&allow, &rule(device.major, device.minor))
            .map_err(|e| SandboxError::cgroup("write a rule to", &allow, e))?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(text.as_bytes())
}

/// `c MAJOR:MINOR rwm`, `*` for any minor.
fn rule(major: u32, minor: Option<u32>) -> String {
    match minor {
        Some(minor) => format!("c {major}:{minor} rwm"),
        None => format!("c {major}:* rwm"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_like_devices_allow() {
        assert_eq!(rule(1, Some(3)), "c 1:3 rwm");
        assert_eq!(rule(136, None), "c 136:* rwm");
    }
}
