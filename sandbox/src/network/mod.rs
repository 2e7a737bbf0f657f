//! A step's private network ([`Network::Private`](crate::Network::Private)): a network
//! namespace of its own with `lo` and one interface whose traffic a userspace network stack
//! on the host side sends out (outbound NAT), so a step can download but cannot reach the
//! host's loopback servers or its abstract unix sockets (those belong to a network
//! namespace, and the step's is not the host's).
//!
//! The stack is slirp4netns, not pasta (passt). Both are in Debian 12; what decided it, as
//! checked on Debian 12's slirp4netns 1.2.0 and passt 0.0~git20230309:
//! - Host loopback. Both reach it by default. slirp4netns maps its gateway (10.0.2.2) to
//!   the host's 127.0.0.1, and one flag, `--disable-host-loopback`, closes that. pasta has
//!   two ways in: its default `-T auto`/`-U auto` forwards every port bound on the host to
//!   the namespace's own loopback (a step's `wget 127.0.0.1:PORT` reached a host server),
//!   and the gateway maps to the host as well; closing them takes `-T none -U none
//!   --no-map-gw`, and one forgotten flag reopens the hole.
//! - Lifetime. slirp4netns exits when the descriptor given as `--exit-fd` closes: we hold
//!   the other end, so it dies with the step or with strata, even on SIGKILL. It also keeps
//!   its credentials, so the parent-death signal we set stays in force. This pasta has no
//!   such descriptor, drops to `nobody` when started as root (which then cannot join a
//!   namespace given by path without `--runas 0`, and clears a parent-death signal).
//! - Readiness. slirp4netns writes to `--ready-fd` once the interface is configured, so the
//!   step starts only when its network works.
//!
//! Inside the namespace: `tap0` with 10.0.2.100/24, default route via 10.0.2.2, slirp's DNS
//! forwarder at 10.0.2.3 (used when the host's resolv.conf names a loopback resolver, which
//! the step could not reach). slirp4netns runs with its own sandbox and seccomp filter.

mod netns;
mod slirp;

use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::SandboxError;
use netns::NetNs;
use slirp::Slirp;

/// slirp4netns's DNS forwarder inside the namespace.
const SLIRP_DNS: &str = "10.0.2.3";

/// A step's private network, alive as long as this value: the namespace and the
/// slirp4netns process serving it. Dropping it stops the helper and waits for it to end.
pub(crate) struct PrivateNetwork {
    // Held for its drop, which stops the helper (before the namespace's descriptor closes:
    // fields drop in order).
    _helper: Slirp,
    netns: NetNs,
}

impl PrivateNetwork {
    /// Makes the namespace and starts slirp4netns on it; returns once `tap0` is configured.
    pub(crate) fn start() -> Result<Self, SandboxError> {
        let netns = NetNs::new()?;
        let helper = Slirp::start(&netns.path())?;
        Ok(PrivateNetwork {
            _helper: helper,
            netns,
        })
    }

    /// The namespace's descriptor (for `setns`).
    pub(crate) fn fd(&self) -> RawFd {
        self.netns.fd()
    }

    /// A path naming the namespace for another process (an OCI spec's namespace path).
    pub(crate) fn path(&self) -> PathBuf {
        self.netns.path()
    }

    /// The helper's process id (for tests that look for it on the host).
    #[cfg(test)]
    pub(crate) fn helper_pid(&self) -> u32 {
        self._helper.pid()
    }
}

/// The step's `/etc/resolv.conf` for a private network: the host's, with loopback name
/// servers (a local caching resolver such as 127.0.0.53) replaced by slirp's forwarder,
/// since the step's loopback is its own.
pub(crate) fn resolv_conf(host: &str) -> String {
    let mut replaced = false;
    let mut out = String::with_capacity(host.len());
    for line in host.lines() {
        let mut words = line.split_whitespace();
        let loopback = words.next() == Some("nameserver")
            && words
                .next()
                .and_then(|addr| addr.parse::<std::net::IpAddr>().ok())
                .is_some_and(|addr| addr.is_loopback());
        if loopback {
            if !replaced {
                out.push_str("nameserver ");
                out.push_str(SLIRP_DNS);
                out.push('\n');
                replaced = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_name_servers_become_slirps_forwarder_once() {
        let host = "search example.org\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n";
        assert_eq!(
            resolv_conf(host),
            "search example.org\nnameserver 10.0.2.3\noptions edns0\n"
        );
    }

    #[test]
    fn other_name_servers_stay() {
        let host = "nameserver 10.255.255.53\nnameserver 2001:db8::1\n";
        assert_eq!(resolv_conf(host), host);
    }

    #[test]
    fn the_helper_ends_with_the_network() -> Result<(), Box<dyn std::error::Error>> {
        let network = PrivateNetwork::start()?;
        let proc_dir = PathBuf::from(format!("/proc/{}", network.helper_pid()));
        assert!(
            proc_dir.exists(),
            "slirp4netns runs while the network lives"
        );
        drop(network);
        assert!(
            !proc_dir.exists(),
            "slirp4netns is gone (and reaped) once dropped"
        );
        Ok(())
    }
}
