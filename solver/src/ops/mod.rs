//! What vertices do to filesystems: the executor of real builds
//! ([`executor::StackExecutor`]), COPY/ADD ([`copy`]), user and group lookups
//! ([`user`]) and read-only merged views of layer stacks ([`view`]).

pub mod context;
pub mod copy;
pub mod executor;
pub mod user;
pub mod view;

pub use executor::{BaseLayers, Layer, Stack, StackExecutor};
