//! Forged base layers: an OCI layout whose layer is busybox plus
//! `/POISONED` while its config claims busybox's real diffID must be refused
//! whichever of the two images a root sees first, and must never leak into
//! builds of the genuine busybox; `strata doctor --deep` finds a base layer
//! snapshot changed after it was unpacked, and `--repair` removes it.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::{Env, R, Res};

const DOCKERFILE: &str = "FROM busybox\nRUN echo built > /built\n";

/// A harness [`Env`] (whose `base` is the genuine busybox) with a forged
/// busybox layout beside it and a context building [`DOCKERFILE`].
struct Forged {
    env: Env,
    ctx: PathBuf,
    /// `--build-context` value for the forged busybox.
    forged: String,
    forgery: Forgery,
}

/// What the forged layout claims and what it holds.
struct Forgery {
    /// The forged layer's blob digest.
    blob: String,
    /// busybox's diffID, which the forged config claims.
    claimed: String,
    /// The sha256 of the forged layer's tar.
    actual: String,
}

impl Forged {
    fn new() -> Res<Forged> {
        let env = Env::new()?;
        let forged_dir = env.path("forged");
        strata_fixtures::busybox_image(&forged_dir)?;
        let forgery = forge(&forged_dir)?;
        let ctx = env.context("ctx", DOCKERFILE)?;
        Ok(Forged {
            forged: format!("busybox=oci-layout://{}:latest", forged_dir.display()),
            forgery,
            ctx,
            env,
        })
    }

    /// Builds from the genuine busybox (with `--no-cache`), exports the
    /// result's filesystem and checks that the forged layer left no trace.
    fn genuine_build_is_clean(&self, name: &str) -> R {
        let out_dir = self.env.path(name);
        let dest = format!("type=local,dest={}", out_dir.display());
        self.env.build(&self.ctx, &["--no-cache", "-o", &dest])?;
        assert!(out_dir.join("bin/busybox").is_file(), "no busybox exported");
        assert_eq!(fs::read_to_string(out_dir.join("built"))?, "built\n");
        assert!(
            !out_dir.join("POISONED").exists(),
            "the genuine busybox build sees the forged layer's /POISONED"
        );
        Ok(())
    }

    /// The forged build fails, on one line naming the layer and both digests.
    fn forged_build_is_refused(&self) -> R {
        let out = self
            .env
            .build_command_from(&self.forged, &self.ctx, &[])?
            .output()?;
        let err = &out.stderr;
        assert_ne!(out.code, Some(0), "the forged layer was accepted");
        let f = &self.forgery;
        assert!(
            err.lines()
                .any(|l| l.contains(&f.blob) && l.contains(&f.claimed) && l.contains(&f.actual)),
            "no line names layer {}, claimed diffID {} and actual {}:\n{err}",
            f.blob,
            f.claimed,
            f.actual
        );
        Ok(())
    }

    /// The base layer snapshot folders of the root.
    fn base_snapshots(&self) -> Res<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.env.root().join("snapshots"))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("l-") && path.is_dir() {
                out.push(path);
            }
        }
        Ok(out)
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn blob_path(layout: &Path, digest: &str) -> Res<PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or("not a sha256 digest")?;
    Ok(layout.join("blobs/sha256").join(hex))
}

fn read_json(path: &Path) -> Res<Value> {
    Ok(serde_json::from_slice(&fs::read(path)?)?)
}

/// Stores `bytes` in the layout; returns their digest.
fn put(layout: &Path, bytes: &[u8]) -> Res<String> {
    let digest = sha256(bytes);
    fs::write(blob_path(layout, &digest)?, bytes)?;
    Ok(digest)
}

/// Turns the busybox layout at `layout` into a forgery: its layer becomes
/// busybox's tar plus a `/POISONED` file, while the
/// config, untouched, still claims busybox's diffID.
fn forge(layout: &Path) -> Res<Forgery> {
    let index_path = layout.join("index.json");
    let mut index = read_json(&index_path)?;
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .ok_or("no manifest")?
        .to_string();
    let mut manifest = read_json(&blob_path(layout, &manifest_digest)?)?;
    let layer_digest = manifest["layers"][0]["digest"]
        .as_str()
        .ok_or("no layer")?
        .to_string();
    let config = read_json(&blob_path(
        layout,
        manifest["config"]["digest"].as_str().ok_or("no config")?,
    )?)?;
    let claimed = config["rootfs"]["diff_ids"][0]
        .as_str()
        .ok_or("no diffID")?
        .to_string();

    let mut tar = Vec::new();
    strata_cache::decompress(fs::File::open(blob_path(layout, &layer_digest)?)?)?
        .read_to_end(&mut tar)?;
    assert_eq!(sha256(&tar), claimed, "the fixture's own diffID is wrong");
    // Drop the end-of-archive blocks, append the poison, end it again.
    let end = tar.len().checked_sub(1024).ok_or("short tar")?;
    assert!(
        tar[end..].iter().all(|&b| b == 0),
        "no end-of-archive blocks"
    );
    tar.truncate(end);
    let mut builder = tar::Builder::new(tar);
    let mut header = tar::Header::new_ustar();
    header.set_path("POISONED")?;
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(7);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    builder.append(&header, &b"poison\n"[..])?;
    let forged = builder.into_inner()?;
    let actual = sha256(&forged);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&forged)?;
    let gzip = gz.finish()?;
    let blob = put(layout, &gzip)?;

    manifest["layers"][0] = json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": blob,
        "size": gzip.len(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest)?;
    let new_manifest = put(layout, &manifest_bytes)?;
    index["manifests"][0]["digest"] = json!(new_manifest);
    index["manifests"][0]["size"] = json!(manifest_bytes.len());
    fs::write(&index_path, serde_json::to_vec(&index)?)?;
    Ok(Forgery {
        blob,
        claimed,
        actual,
    })
}

#[test]
fn forged_layer_is_refused_and_genuine_builds_stay_clean() -> R {
    let f = Forged::new()?;
    f.forged_build_is_refused()?;
    // Nothing was recorded for it, nothing left behind.
    let snapshots: Vec<String> = fs::read_dir(f.env.root().join("snapshots"))?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, std::io::Error>>()?;
    assert!(snapshots.is_empty(), "{snapshots:?}");
    f.genuine_build_is_clean("first")?;
    // Refused again now that the genuine layer's snapshot exists.
    f.forged_build_is_refused()?;
    f.genuine_build_is_clean("second")?;
    let doctor = f.env.doctor("root", &["--deep"])?;
    assert_eq!(doctor.code, Some(0), "{}", doctor.stdout);
    Ok(())
}

#[test]
fn forged_layer_is_refused_after_the_genuine_one() -> R {
    let f = Forged::new()?;
    f.genuine_build_is_clean("first")?;
    f.forged_build_is_refused()?;
    f.genuine_build_is_clean("second")?;
    Ok(())
}

#[test]
fn doctor_deep_finds_and_repairs_a_changed_base_snapshot() -> R {
    let f = Forged::new()?;
    f.genuine_build_is_clean("first")?;
    let doctor = f.env.doctor("root", &["--deep"])?;
    assert_eq!(doctor.code, Some(0), "{}", doctor.stdout);
    assert!(doctor.stdout.contains("ok: no inconsistency"));

    let bases = f.base_snapshots()?;
    assert_eq!(bases.len(), 1, "{bases:?}");
    let name = bases[0]
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("name")?
        .to_string();
    fs::write(bases[0].join("POISONED"), "poison\n")?;

    let doctor = f.env.doctor("root", &["--deep"])?;
    let report = &doctor.stdout;
    assert_eq!(doctor.code, Some(1), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("problem: ") && l.contains(&name)),
        "no problem names {name}:\n{report}"
    );

    let repair = f.env.doctor("root", &["--deep", "--repair"])?;
    let report = &repair.stdout;
    assert_eq!(repair.code, Some(0), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("repaired: ") && l.contains(&name)),
        "repair did not remove {name}:\n{report}"
    );
    let doctor = f.env.doctor("root", &["--deep"])?;
    assert_eq!(doctor.code, Some(0), "{}", doctor.stdout);
    f.genuine_build_is_clean("after-repair")?;
    Ok(())
}
