//! Entitlements, as BuildKit's: what a build may do beyond the sandbox only when the
//! person running it says so (`--allow`), never because a Dockerfile asks.

use std::fmt;
use std::str::FromStr;

/// One thing a build may be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entitlement {
    /// `network.host`: RUN in the host's network namespace.
    NetworkHost,
    /// `security.insecure`: RUN without the seccomp filter and with every capability.
    SecurityInsecure,
}

impl Entitlement {
    /// The name `--allow` takes.
    pub fn name(self) -> &'static str {
        match self {
            Entitlement::NetworkHost => "network.host",
            Entitlement::SecurityInsecure => "security.insecure",
        }
    }
}

impl fmt::Display for Entitlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name `--allow` does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown entitlement {0:?}: expected network.host or security.insecure")]
pub struct UnknownEntitlement(pub String);

impl FromStr for Entitlement {
    type Err = UnknownEntitlement;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "network.host" => Ok(Entitlement::NetworkHost),
            "security.insecure" => Ok(Entitlement::SecurityInsecure),
            other => Err(UnknownEntitlement(other.to_string())),
        }
    }
}

/// The entitlements a build was given (none by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entitlements(Vec<Entitlement>);

impl Entitlements {
    /// Allows `entitlements`.
    pub fn new(entitlements: impl IntoIterator<Item = Entitlement>) -> Self {
        Entitlements(entitlements.into_iter().collect())
    }

    /// Whether `entitlement` was given.
    pub fn allows(&self, entitlement: Entitlement) -> bool {
        self.0.contains(&entitlement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for e in [Entitlement::NetworkHost, Entitlement::SecurityInsecure] {
            assert_eq!(e.name().parse::<Entitlement>().ok(), Some(e));
        }
        assert!("network.none".parse::<Entitlement>().is_err());
        let given = Entitlements::new([Entitlement::NetworkHost]);
        assert!(given.allows(Entitlement::NetworkHost));
        assert!(!given.allows(Entitlement::SecurityInsecure));
        assert!(!Entitlements::default().allows(Entitlement::NetworkHost));
    }
}
