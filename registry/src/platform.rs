//! Target platforms are oci-spec's [`Platform`]; this module adds what
//! oci-spec lacks: the host's platform, parsing `--platform` text
//! (`linux/arm64/v8`, with common aliases), matching an index entry, and the
//! `os/arch[/variant]` text form.

use std::fmt;

use oci_spec::image::{Arch, Os, Platform};

use crate::error::{Error, Result};

/// The platform this process runs on (Linux: containers are Linux), with
/// the variant 32-bit arm needs.
pub fn host() -> Platform {
    let arch = Arch::default();
    let variant = (arch == Arch::ARM).then_some("v7");
    new(Os::Linux, arch, variant)
}

/// Parse `os/arch` or `os/arch/variant`, lowercased; common aliases are
/// normalized (`x86_64` → `amd64`, `aarch64` → `arm64`, `i386` → `386`).
pub fn parse(s: &str) -> Result<Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    let bad = || Error::InvalidPlatform {
        platform: s.to_string(),
    };
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let (os, arch, variant) = match parts.as_slice() {
        [os, arch] => (*os, *arch, None),
        [os, arch, variant] => (*os, *arch, Some(*variant)),
        _ => return Err(bad()),
    };
    let arch = match arch.to_ascii_lowercase().as_str() {
        "x86_64" | "x86-64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        "i386" => Arch::i386,
        a => Arch::from(a),
    };
    let variant = variant.map(str::to_ascii_lowercase);
    Ok(new(
        Os::from(os.to_ascii_lowercase().as_str()),
        arch,
        variant.as_deref(),
    ))
}

fn new(os: Os, arch: Arch, variant: Option<&str>) -> Platform {
    let mut p = Platform::default();
    p.set_os(os).set_architecture(arch);
    p.set_variant(variant.map(str::to_string));
    p
}

/// The variant an architecture has when none is written.
fn default_variant(arch: &Arch) -> Option<&'static str> {
    match arch {
        Arch::ARM64 => Some("v8"),
        Arch::ARM => Some("v7"),
        _ => None,
    }
}

fn effective_variant(p: &Platform) -> Option<&str> {
    p.variant()
        .as_deref()
        .or_else(|| default_variant(p.architecture()))
}

/// Whether an index entry for `candidate` can run as `wanted`: same OS and
/// architecture, and the same variant once an omitted one is read as the
/// architecture's default (arm64 images often leave out their only variant, v8).
pub fn matches(wanted: &Platform, candidate: &Platform) -> bool {
    wanted.os() == candidate.os()
        && wanted.architecture() == candidate.architecture()
        && effective_variant(wanted) == effective_variant(candidate)
}

/// `os/arch[/variant]`, as `--platform` takes it and BuildKit prints it.
pub fn display(p: &Platform) -> impl fmt::Display + '_ {
    Shown(p)
}

struct Shown<'a>(&'a Platform);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.os(), self.0.architecture())?;
        if let Some(v) = self.0.variant() {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}
