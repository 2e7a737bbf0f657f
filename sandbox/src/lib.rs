//! strata-sandbox: runs one process in an isolated root filesystem.
//!
//! It will own the process spec (argv, env, user, cwd, mounts, network mode),
//! the builtin runtime (mount, pid, ipc, uts and net namespaces, an overlay root,
//! a minimal /dev, /proc, /sys, pivot_root, Docker's default capabilities) and an
//! OCI runtime backend that writes a bundle and runs `runc` or `crun`.
