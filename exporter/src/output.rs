//! Where an image or a filesystem goes: OCI and docker archives, a plain
//! directory, a tar of the merged filesystem.
//!
//! Files are written to a temporary name in the destination's folder and
//! renamed into place when complete, so a failed export leaves nothing
//! half-written under the destination name.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, MediaType};
use serde_json::{Value, json};
use strata_cache::ContentStore;
use strata_registry::Digest;

use crate::canonical::to_canonical_json;
use crate::error::{ExportError, io_err};
use crate::hash::HashWriter;
use crate::tar_writer::TarWriter;
use crate::walk::{Entry, Kind, Meta, merged_root_meta, walk_merged};

/// Annotation holding an image's tag in an OCI layout's index.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation holding an image's full name (containerd's).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// Writes an OCI image layout as a tar (BuildKit's `type=oci`): `oci-layout`,
/// `index.json` and every blob the manifests (or indexes) reach.
///
/// Each image gets one index entry per name, annotated with
/// `org.opencontainers.image.ref.name` (the tag) and
/// `io.containerd.image.name` (the full name), or one entry without
/// annotations when it has no name.
pub fn oci_archive(
    store: &ContentStore,
    images: &[(Descriptor, Vec<String>)],
    dest: &Path,
) -> Result<(), ExportError> {
    let mut blobs = BTreeSet::new();
    let mut manifests = Vec::new();
    for (image, names) in images {
        let digest = Digest::try_from(image.digest()).map_err(strata_registry::Error::from)?;
        reachable_blobs(store, &digest, &mut blobs)?;
        // Only what names the manifest: the store's annotations stay behind.
        let descriptor = Descriptor::new(image.media_type().clone(), image.size(), digest);
        let descriptor = serde_json::to_value(&descriptor).map_err(|e| {
            ExportError::InvalidImage(format!("descriptor of {}: {e}", image.digest()))
        })?;
        if names.is_empty() {
            manifests.push(descriptor.clone());
        }
        for name in names {
            let mut named = descriptor.clone();
            named["annotations"] = json!({
                ANNOTATION_IMAGE_NAME: name,
                ANNOTATION_REF_NAME: tag_of(name),
            });
            manifests.push(named);
        }
    }
    let index = to_canonical_json(&json!({
        "schemaVersion": 2,
        "mediaType": MediaType::ImageIndex,
        "manifests": manifests,
    }));
    let layout = to_canonical_json(&json!({ "imageLayoutVersion": "1.0.0" }));

    write_atomically(dest, |out| {
        let mut tar = TarWriter::new(out, dest, None);
        tar.append(&dir_entry("blobs"))?;
        tar.append(&dir_entry("blobs/sha256"))?;
        for digest in &blobs {
            let path = store.blob_path(digest);
            let size = store.size(digest)?;
            let mut file = store.open_blob(digest)?;
            tar.append_bytes(
                &format!("blobs/sha256/{}", digest.hex()),
                &mut file,
                size,
                &path,
            )?;
        }
        tar.append_bytes(
            "index.json",
            &mut index.as_slice(),
            index.len() as u64,
            dest,
        )?;
        tar.append_bytes(
            "oci-layout",
            &mut layout.as_slice(),
            layout.len() as u64,
            dest,
        )?;
        tar.finish()?;
        Ok(())
    })
}

/// Writes a docker archive (what `docker save` writes and `docker load`
/// reads): `manifest.json`, `repositories`, the config and each layer as an
/// uncompressed tar, all under `blobs/sha256/` (docker 25's names; older
/// docker and skopeo follow the paths in `manifest.json`).
///
/// Layers are uncompressed because older `docker load` and `skopeo` expect
/// the files to hash to the config's diff_ids; each is checked while it is
/// decompressed. `repo_tags` are `name:tag` (`:latest` is added when a name
/// has no tag).
pub fn docker_archive(
    store: &ContentStore,
    manifest: &Digest,
    repo_tags: &[String],
    dest: &Path,
) -> Result<(), ExportError> {
    let manifest_json = read_json(store, manifest)?;
    let config_digest = descriptor_digest(&manifest_json["config"], manifest)?;
    let layers = match manifest_json["layers"].as_array() {
        Some(layers) if manifest_json.get("manifests").is_none() => layers.clone(),
        _ => {
            return Err(bad_blob(
                manifest,
                "not an image manifest (a docker archive holds one image)",
            ));
        }
    };
    let config_json = read_json(store, &config_digest)?;
    let diff_ids: Vec<Digest> = config_json["rootfs"]["diff_ids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|d| d.as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != layers.len() {
        return Err(bad_blob(
            &config_digest,
            "rootfs.diff_ids does not match the manifest's layers",
        ));
    }

    let repo_tags: Vec<String> = repo_tags
        .iter()
        .map(|name| {
            if has_tag(name) {
                name.clone()
            } else {
                format!("{name}:latest")
            }
        })
        .collect();
    let layer_paths: Vec<String> = diff_ids
        .iter()
        .map(|d| format!("blobs/sha256/{}", d.hex()))
        .collect();
    let config_path = format!("blobs/sha256/{}", config_digest.hex());
    let docker_manifest = to_canonical_json(&json!([{
        "Config": config_path,
        "RepoTags": repo_tags,
        "Layers": layer_paths,
    }]));
    let mut repositories = serde_json::Map::new();
    if let Some(top) = diff_ids.last() {
        for name in &repo_tags {
            let (repo, tag) = split_tag(name);
            let tags = repositories
                .entry(repo.to_string())
                .or_insert_with(|| json!({}));
            tags[tag] = json!(top.hex());
        }
    }
    let repositories = to_canonical_json(&Value::Object(repositories));
    let staging_dir = parent_dir(dest);

    write_atomically(dest, |out| {
        let mut tar = TarWriter::new(out, dest, None);
        tar.append(&dir_entry("blobs"))?;
        tar.append(&dir_entry("blobs/sha256"))?;
        let config_bytes = store.read(&config_digest)?;
        tar.append_bytes(
            &config_path,
            &mut config_bytes.as_slice(),
            config_bytes.len() as u64,
            &store.blob_path(&config_digest),
        )?;
        let mut written = BTreeSet::new();
        for ((layer, diff_id), path) in layers.iter().zip(&diff_ids).zip(&layer_paths) {
            if !written.insert(diff_id.clone()) {
                continue;
            }
            let digest = descriptor_digest(layer, manifest)?;
            let media_type = layer["mediaType"].as_str().unwrap_or_default();
            let mut plain = uncompress_to_temp(store, &digest, media_type, diff_id, &staging_dir)?;
            let size = plain
                .as_file()
                .metadata()
                .map_err(io_err(plain.path()))?
                .len();
            let temp_path = plain.path().to_path_buf();
            tar.append_bytes(path, plain.as_file_mut(), size, &temp_path)?;
        }
        tar.append_bytes(
            "manifest.json",
            &mut docker_manifest.as_slice(),
            docker_manifest.len() as u64,
            dest,
        )?;
        tar.append_bytes(
            "repositories",
            &mut repositories.as_slice(),
            repositories.len() as u64,
            dest,
        )?;
        tar.finish()?;
        Ok(())
    })
}

/// Copies the filesystem that `layer_dirs` (snapshots, bottom first) show
/// into `dest`: whiteouts and opaque directories applied, modes, owners,
/// times, xattrs, symlinks and hard links kept (BuildKit's `type=local`).
///
/// The tree is built in a temporary folder and renamed into place. When
/// `dest` already exists its other content is kept: each exported entry
/// replaces the one of the same name, directories are merged.
pub fn local_dir(layer_dirs: &[PathBuf], dest: &Path) -> Result<(), ExportError> {
    let exists = dest.exists();
    let staging_parent = if exists {
        dest.to_path_buf()
    } else {
        parent_dir(dest)
    };
    if !exists {
        fs::create_dir_all(&staging_parent).map_err(io_err(&staging_parent))?;
    }
    let staging = tempfile::Builder::new()
        .prefix(".strata-export-")
        .tempdir_in(&staging_parent)
        .map_err(io_err(&staging_parent))?;
    let root = staging.path().to_path_buf();

    let mut dirs = Vec::new();
    walk_merged(layer_dirs, &mut |entry| {
        materialize(&root, &entry, &mut dirs)
    })?;
    // Directory times last, deepest first: creating children changes them.
    for (path, meta) in dirs.iter().rev() {
        apply_meta(path, meta, false)?;
    }

    if exists {
        merge_into(&root, dest)?;
        Ok(())
    } else {
        match merged_root_meta(layer_dirs)? {
            Some(meta) => apply_meta(&root, &meta, false)?,
            None => fs::set_permissions(&root, fs::Permissions::from_mode(0o755))
                .map_err(io_err(&root))?,
        }
        let root = staging.keep();
        fs::rename(&root, dest).map_err(io_err(dest))
    }
}

/// Writes the filesystem that `layer_dirs` show as one tar file at `dest`
/// (BuildKit's `type=tar`).
pub fn tar_stream(layer_dirs: &[PathBuf], dest: &Path) -> Result<(), ExportError> {
    write_atomically(dest, |out| merged_tar(layer_dirs, out, dest))
}

/// Writes the filesystem that `layer_dirs` show as a tar stream to `out`
/// (`out_name` names it in errors), e.g. to stdout for `-o -`.
pub fn merged_tar(
    layer_dirs: &[PathBuf],
    out: impl Write,
    out_name: &Path,
) -> Result<(), ExportError> {
    let mut tar = TarWriter::new(out, out_name, None);
    walk_merged(layer_dirs, &mut |entry| tar.append(&entry))?;
    tar.finish()?;
    Ok(())
}

/// Creates `entry` under `root`; directories are queued for their metadata.
fn materialize(
    root: &Path,
    entry: &Entry,
    dirs: &mut Vec<(PathBuf, Meta)>,
) -> Result<(), ExportError> {
    use std::os::unix::ffi::OsStrExt;
    let rel = std::ffi::OsStr::from_bytes(&entry.path);
    let path = root.join(rel);
    match &entry.kind {
        Kind::Dir => {
            fs::create_dir(&path).map_err(io_err(&path))?;
            dirs.push((path, entry.meta.clone()));
            return Ok(());
        }
        Kind::File {
            source: Some(source),
            ..
        } => {
            fs::copy(source, &path).map_err(io_err(source))?;
        }
        Kind::File { source: None, .. } => {
            File::create(&path).map_err(io_err(&path))?;
        }
        Kind::Symlink(target) => {
            symlink(std::ffi::OsStr::from_bytes(target), &path).map_err(io_err(&path))?;
        }
        Kind::HardLink(target) => {
            let target = root.join(std::ffi::OsStr::from_bytes(target));
            return fs::hard_link(&target, &path).map_err(io_err(&path));
        }
        Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
            let kind = if matches!(entry.kind, Kind::CharDevice { .. }) {
                nix::sys::stat::SFlag::S_IFCHR
            } else {
                nix::sys::stat::SFlag::S_IFBLK
            };
            nix::sys::stat::mknod(
                &path,
                kind,
                nix::sys::stat::Mode::empty(),
                nix::sys::stat::makedev(*major, *minor),
            )
            .map_err(|e| io_err(&path)(e.into()))?;
        }
        Kind::Fifo => {
            nix::unistd::mkfifo(&path, nix::sys::stat::Mode::empty())
                .map_err(|e| io_err(&path)(e.into()))?;
        }
    }
    apply_meta(&path, &entry.meta, matches!(entry.kind, Kind::Symlink(_)))
}

/// Owner (when the process may set it), then mode (chown clears setuid),
/// xattrs and times.
fn apply_meta(path: &Path, meta: &Meta, is_symlink: bool) -> Result<(), ExportError> {
    let id = |v: u64| {
        u32::try_from(v).map_err(|_| ExportError::Unarchivable {
            path: path.to_path_buf(),
            reason: "owner id does not fit in 32 bits",
        })
    };
    match lchown(path, Some(id(meta.uid)?), Some(id(meta.gid)?)) {
        // Without root the files stay ours, as with `tar -x`.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
        other => other.map_err(io_err(path))?,
    }
    if !is_symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode)).map_err(io_err(path))?;
    }
    for (name, value) in &meta.xattrs {
        use std::os::unix::ffi::OsStrExt;
        xattr::set(path, std::ffi::OsStr::from_bytes(name), value).map_err(io_err(path))?;
    }
    let time = nix::sys::time::TimeSpec::new(meta.mtime, 0);
    nix::sys::stat::utimensat(
        None,
        path,
        &time,
        &time,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| io_err(path)(e.into()))
}

/// Moves everything under `from` into `to`, replacing entries of the same
/// name and merging directories; `from` is removed.
fn merge_into(from: &Path, to: &Path) -> Result<(), ExportError> {
    for entry in fs::read_dir(from).map_err(io_err(from))? {
        let entry = entry.map_err(io_err(from))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let source_is_dir = entry.file_type().map_err(io_err(&source))?.is_dir();
        match fs::symlink_metadata(&target) {
            Ok(md) if md.is_dir() && source_is_dir => {
                merge_into(&source, &target)?;
                continue;
            }
            Ok(md) if md.is_dir() => fs::remove_dir_all(&target).map_err(io_err(&target))?,
            Ok(_) if source_is_dir => fs::remove_file(&target).map_err(io_err(&target))?,
            Ok(_) => {} // rename replaces a non-directory atomically
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&target)(e)),
        }
        fs::rename(&source, &target).map_err(io_err(&target))?;
    }
    fs::remove_dir(from).map_err(io_err(from))
}

/// Writes `dest` through a temporary file in its folder, renamed when done.
fn write_atomically(
    dest: &Path,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let dir = parent_dir(dest);
    let temp = tempfile::Builder::new()
        .prefix(".strata-")
        .tempfile_in(&dir)
        .map_err(io_err(&dir))?;
    {
        let mut out = BufWriter::with_capacity(1 << 20, temp.as_file());
        write(&mut out)?;
        out.flush().map_err(io_err(temp.path()))?;
    }
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o644))
        .map_err(io_err(temp.path()))?;
    temp.as_file().sync_all().map_err(io_err(temp.path()))?;
    temp.persist(dest).map_err(|e| io_err(dest)(e.error))?;
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn dir_entry(path: &str) -> Entry {
    Entry {
        path: path.as_bytes().to_vec(),
        kind: Kind::Dir,
        meta: Meta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        },
    }
}

fn bad_blob(digest: &Digest, reason: &str) -> ExportError {
    ExportError::BadBlob {
        digest: digest.clone(),
        reason: reason.to_string(),
    }
}

fn read_json(store: &ContentStore, digest: &Digest) -> Result<Value, ExportError> {
    let bytes = store.read(digest)?;
    serde_json::from_slice(&bytes).map_err(|e| bad_blob(digest, &format!("not JSON: {e}")))
}

/// The digest a descriptor (inside the blob `parent`) points to.
fn descriptor_digest(descriptor: &Value, parent: &Digest) -> Result<Digest, ExportError> {
    descriptor["digest"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| bad_blob(parent, "a descriptor has no valid digest"))
}

/// Adds `manifest` and every blob it reaches (through indexes too) to `blobs`.
fn reachable_blobs(
    store: &ContentStore,
    manifest: &Digest,
    blobs: &mut BTreeSet<Digest>,
) -> Result<(), ExportError> {
    let json = read_json(store, manifest)?;
    blobs.insert(manifest.clone());
    let media_type = json["mediaType"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map(MediaType::from);
    if let Some(children) = json["manifests"].as_array() {
        if media_type.is_some_and(|m| !strata_registry::is_index(&m)) {
            return Err(bad_blob(manifest, "has manifests but is not an index"));
        }
        for child in children {
            reachable_blobs(store, &descriptor_digest(child, manifest)?, blobs)?;
        }
        return Ok(());
    }
    let config = descriptor_digest(&json["config"], manifest)?;
    let layers = json["layers"].as_array().cloned().unwrap_or_default();
    let mut wanted = vec![config];
    for layer in &layers {
        wanted.push(descriptor_digest(layer, manifest)?);
    }
    for digest in wanted {
        if !store.has(&digest) {
            return Err(strata_cache::StoreError::Missing(digest).into());
        }
        blobs.insert(digest);
    }
    Ok(())
}

/// The uncompressed content of a layer blob in a temporary file in `dir`,
/// checked against `diff_id`.
fn uncompress_to_temp(
    store: &ContentStore,
    digest: &Digest,
    media_type: &str,
    diff_id: &Digest,
    dir: &Path,
) -> Result<tempfile::NamedTempFile, ExportError> {
    let blob_path = store.blob_path(digest);
    let blob = io::BufReader::new(store.open_blob(digest)?);
    let mut reader: Box<dyn Read> = if media_type.ends_with("gzip") {
        Box::new(flate2::read::MultiGzDecoder::new(blob))
    } else if media_type.ends_with("zstd") {
        Box::new(zstd::stream::read::Decoder::with_buffer(blob).map_err(io_err(&blob_path))?)
    } else {
        Box::new(blob)
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".strata-layer-")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    let temp_path = temp.path().to_path_buf();
    let mut hashed = HashWriter::new(BufWriter::new(temp.as_file_mut()));
    io::copy(&mut reader, &mut hashed).map_err(io_err(&blob_path))?;
    let (out, actual, _) = hashed.finish();
    out.into_inner()
        .map_err(|e| io_err(&temp_path)(e.into_error()))?;
    if &actual != diff_id {
        return Err(ExportError::DiffIdMismatch {
            digest: digest.clone(),
            expected: diff_id.clone(),
            actual,
        });
    }
    use std::io::Seek;
    temp.as_file_mut()
        .seek(io::SeekFrom::Start(0))
        .map_err(io_err(&temp_path))?;
    Ok(temp)
}

/// The tag part of an image name (`latest` when it has none).
fn tag_of(name: &str) -> &str {
    split_tag(name).1
}

fn has_tag(name: &str) -> bool {
    let without_digest = name.split('@').next().unwrap_or(name);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.contains(':')
}

/// `(repository, tag)` of `name[:tag][@digest]`.
fn split_tag(name: &str) -> (&str, &str) {
    let without_digest = name.split('@').next().unwrap_or(name);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].rfind(':') {
        Some(i) => (
            &without_digest[..last_slash + i],
            &without_digest[last_slash + i + 1..],
        ),
        None => (without_digest, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_names_into_repository_and_tag() {
        assert_eq!(split_tag("alpine"), ("alpine", "latest"));
        assert_eq!(split_tag("alpine:3.20"), ("alpine", "3.20"));
        assert_eq!(
            split_tag("localhost:5000/team/app:v1@sha256:abc"),
            ("localhost:5000/team/app", "v1")
        );
        assert_eq!(
            split_tag("localhost:5000/app"),
            ("localhost:5000/app", "latest")
        );
        assert!(!has_tag("localhost:5000/app"));
        assert!(has_tag("docker.io/library/app:1"));
    }
}
