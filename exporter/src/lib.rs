//! strata-exporter: turns snapshots into an OCI image.
//!
//! [`export`] takes a solved build to the local store, its `-o` outputs and
//! its registry pushes; [`load`] imports an image archive back.
//!
//! [`write_layer`] archives a snapshot (overlayfs diff format) as a sorted,
//! normalized tar with overlay whiteouts turned into OCI `.wh.` entries,
//! compressed with gzip, zstd or nothing, diff_id and blob digest computed in
//! the same streaming pass. [`write_image`] writes the image config and
//! manifest as canonical JSON. [`oci_archive`], [`docker_archive`],
//! [`local_dir`] and [`tar_stream`] write OCI and docker archives, a plain
//! directory or a tar of the merged filesystem.

mod canonical;
mod error;
mod export;
mod hash;
mod import;
mod layer;
mod manifest;
mod output;
mod pgzip;
mod tar_writer;
mod timefmt;
mod walk;

pub use error::ExportError;
pub use export::{
    ExportEvent, ExportRequest, Exported, Output, OutputError, check_request, describe_push,
    export, push,
};
pub use import::{ImportError, load};
pub use layer::{Compression, CompressionKind, LayerBlob, write_layer, write_layers};
pub use manifest::{History, ImageInput, ImageRef, MediaTypes, write_image};
pub use output::{docker_archive, local_dir, oci_archive, tar_stream};
pub use timefmt::parse_rfc3339;
