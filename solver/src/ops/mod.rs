//! What vertices do to filesystems: the executor of real builds
//! ([`executor::StackExecutor`]), COPY/ADD ([`copy`]), COPY heredoc files
//! ([`inline`]) and user and group lookups ([`user`]); the read-only views
//! they read through are the sandbox's.

pub mod context;
pub mod copy;
pub mod executor;
pub(crate) mod inline;
pub mod user;

pub use executor::{BaseLayers, Layer, Stack, StackExecutor};
