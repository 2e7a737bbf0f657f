//! strata-exporter: turns snapshots into an OCI image.
//!
//! It will own layer tars (sorted, normalized, overlay whiteouts turned into OCI
//! `.wh.` entries), compression (gzip, zstd, none) with diffID and blob digest in
//! one streaming pass, the image config and manifest, and the outputs: the local
//! store, OCI and docker archives, a local directory, a tar, and a registry push.
