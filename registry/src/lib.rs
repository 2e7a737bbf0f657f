//! strata-registry: the OCI distribution client.
//!
//! It will own image references (Docker Hub style names included), manifest and
//! index resolution with platform selection, digest-verified blob pulls, pushes
//! (monolithic and chunked, cross-repository mounts, skipping existing blobs),
//! authentication from `~/.docker/config.json`, and retries with backoff.
