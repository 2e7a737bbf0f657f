//! strata-registry: a blocking client for the OCI distribution API.
//!
//! It parses image references as Docker does (Docker Hub names included),
//! resolves manifests and indexes with platform selection, streams blobs
//! with digest checks, pushes images (monolithic and chunked uploads,
//! cross-repository mounts, skipping blobs that exist), authenticates from
//! `~/.docker/config.json` (basic and bearer tokens, credential helpers) and
//! retries transient failures with backoff. Plain HTTP is used only for
//! loopback hosts and registries listed as insecure.
//!
//! It is built on `ureq` (blocking, rustls) rather than `oci-client`: the
//! latter is async-only, has no retry/backoff hook, no docker config reader,
//! and no way to resume or stream-verify into a `Write` on our terms.

mod auth;
mod client;
mod digest;
mod error;
mod manifest;
pub mod platform;
mod push;
mod reference;
mod transport;

pub use auth::{AuthSource, default_config_path};
pub use client::{Client, ClientConfig, RawManifest, Resolved};
pub use digest::{Digest, InvalidDigest};
pub use error::{Error, Result};
pub use manifest::{docker, is_image_manifest, is_index, manifest_descriptor};
/// The OCI vocabulary every strata crate speaks: oci-spec's types.
pub use oci_spec::image::{Descriptor, MediaType, Platform};
pub use push::{BlobAction, BlobSource, BlobStat, PushBlob, PushOptions, PushReport};
pub use reference::{DOCKER_HUB, DOCKER_HUB_API, Reference};
