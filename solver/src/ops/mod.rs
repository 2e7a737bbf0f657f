//! What vertices do to filesystems: the executor of real builds
//! ([`executor::StackExecutor`]), COPY/ADD ([`copy`]) and user and group
//! lookups ([`user`]); the read-only views they read through are the
//! sandbox's.

pub mod context;
pub mod copy;
pub mod executor;
pub mod user;

pub use executor::{BaseLayers, Layer, Stack, StackExecutor};
