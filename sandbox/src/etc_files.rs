//! The files bound read-only over `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::{Network, SandboxError, network};

/// Paths (inside the root, without the leading `/`) of the generated files and where their
/// content is on the host.
pub(crate) struct EtcFiles {
    pub(crate) binds: Vec<(PathBuf, &'static str)>,
}

/// Where each generated file is mounted inside the root.
pub(crate) const TARGETS: [&str; 3] = ["etc/hosts", "etc/hostname", "etc/resolv.conf"];

impl EtcFiles {
    /// Writes the three files into `dir` (mode 0644) for a sandbox named `hostname` on
    /// `net`.
    pub(crate) fn write(dir: &Path, hostname: &str, net: Network) -> Result<Self, SandboxError> {
        let hosts =
            format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        // A host without resolv.conf gives the sandbox an empty one, as Docker does.
        let resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let resolv = match net {
            Network::Private => network::resolv_conf(&resolv),
            Network::Host | Network::None => resolv,
        };
        let contents = [hosts, format!("{hostname}\n"), resolv];
        let mut binds = Vec::new();
        for (target, content) in TARGETS.iter().zip(contents) {
            let name = target.trim_start_matches("etc/");
            let path = dir.join(name);
            fs::write(&path, content).map_err(|e| SandboxError::io("write generated", &path, e))?;
            set_mode(&path, 0o644)?;
            binds.push((path, *target));
        }
        Ok(EtcFiles { binds })
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| SandboxError::io("chmod", path, e))
}
