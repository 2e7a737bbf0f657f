//! What vertices do to filesystems: the executor of real builds
//! ([`executor::StackExecutor`]), COPY/ADD ([`copy`]), COPY heredoc files
//! ([`inline`]), RUN mounts ([`run_mounts`], with the ssh agent proxy in
//! [`ssh_proxy`]) and user and group lookups ([`user`]); the read-only views
//! they read through are the sandbox's.

pub mod context;
pub mod copy;
pub mod executor;
pub(crate) mod inline;
pub mod run_mounts;
mod ssh_proxy;
pub mod user;

pub use executor::{BaseLayers, Layer, Stack, StackExecutor};
pub use run_mounts::{BuildSecrets, MountError};
