//! Forged base layers: an OCI layout whose layer is busybox plus
//! `/POISONED` while its config claims busybox's real diffID must be refused
//! whichever of the two images a root sees first, and must never leak into
//! builds of the genuine busybox; `strata doctor --deep` finds a base layer
//! snapshot changed after it was unpacked, and `--repair` removes it.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

type R = Result<(), Box<dyn std::error::Error>>;
type Res<T> = Result<T, Box<dyn std::error::Error>>;

const DOCKERFILE: &str = "FROM busybox\nRUN echo built > /built\n";

struct Env {
    dir: tempfile::TempDir,
    /// `--build-context` value for the genuine busybox.
    genuine: String,
    /// `--build-context` value for the forged one.
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

impl Env {
    fn new() -> Res<Env> {
        let dir = tempfile::tempdir()?;
        let genuine = strata_fixtures::busybox_build_context(dir.path())?;
        let forged_dir = dir.path().join("forged");
        strata_fixtures::busybox_image(&forged_dir)?;
        let forgery = forge(&forged_dir)?;
        let ctx = dir.path().join("ctx");
        fs::create_dir_all(&ctx)?;
        fs::write(ctx.join("Dockerfile"), DOCKERFILE)?;
        Ok(Env {
            forged: format!("busybox=oci-layout://{}:latest", forged_dir.display()),
            genuine,
            forgery,
            dir,
        })
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn strata(&self, args: &[&str]) -> Result<Output, std::io::Error> {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .env("STRATA_ROOT", self.root())
            .args(args)
            .output()
    }

    /// `strata build` of the test Dockerfile with `base` as busybox.
    fn build(&self, base: &str, extra: &[&str]) -> Res<Output> {
        let ctx = self.dir.path().join("ctx");
        let mut args = vec!["build", "--progress=plain", "--build-context", base];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().ok_or("non-UTF-8 path")?);
        Ok(self.strata(&args)?)
    }

    /// Builds from the genuine busybox (with `--no-cache`), exports the
    /// result's filesystem and checks that the forged layer left no trace.
    fn genuine_build_is_clean(&self, name: &str) -> R {
        let out_dir = self.dir.path().join(name);
        let dest = format!("type=local,dest={}", out_dir.display());
        let out = self.build(&self.genuine, &["--no-cache", "-o", &dest])?;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
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
        let out = self.build(&self.forged, &[])?;
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "the forged layer was accepted");
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

    /// `strata doctor --deep` (plus `extra`).
    fn doctor(&self, extra: &[&str]) -> Res<Output> {
        let mut args = vec!["doctor", "--deep"];
        args.extend_from_slice(extra);
        Ok(self.strata(&args)?)
    }

    /// The base layer snapshot folders of the root.
    fn base_snapshots(&self) -> Res<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.root().join("snapshots"))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("l-") && path.is_dir() {
                out.push(path);
            }
        }
        Ok(out)
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    let env = Env::new()?;
    env.forged_build_is_refused()?;
    // Nothing was recorded for it, nothing left behind.
    let snapshots: Vec<String> = fs::read_dir(env.root().join("snapshots"))?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, std::io::Error>>()?;
    assert!(snapshots.is_empty(), "{snapshots:?}");
    env.genuine_build_is_clean("first")?;
    // Refused again now that the genuine layer's snapshot exists.
    env.forged_build_is_refused()?;
    env.genuine_build_is_clean("second")?;
    let doctor = env.doctor(&[])?;
    assert_eq!(doctor.status.code(), Some(0), "{}", stdout(&doctor));
    Ok(())
}

#[test]
fn forged_layer_is_refused_after_the_genuine_one() -> R {
    let env = Env::new()?;
    env.genuine_build_is_clean("first")?;
    env.forged_build_is_refused()?;
    env.genuine_build_is_clean("second")?;
    Ok(())
}

#[test]
fn doctor_deep_finds_and_repairs_a_changed_base_snapshot() -> R {
    let env = Env::new()?;
    env.genuine_build_is_clean("first")?;
    let doctor = env.doctor(&[])?;
    assert_eq!(doctor.status.code(), Some(0), "{}", stdout(&doctor));
    assert!(stdout(&doctor).contains("ok: no inconsistency"));

    let bases = env.base_snapshots()?;
    assert_eq!(bases.len(), 1, "{bases:?}");
    let name = bases[0]
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("name")?
        .to_string();
    fs::write(bases[0].join("POISONED"), "poison\n")?;

    let doctor = env.doctor(&[])?;
    let report = stdout(&doctor);
    assert_eq!(doctor.status.code(), Some(1), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("problem: ") && l.contains(&name)),
        "no problem names {name}:\n{report}"
    );

    let repair = env.doctor(&["--repair"])?;
    let report = stdout(&repair);
    assert_eq!(repair.status.code(), Some(0), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("repaired: ") && l.contains(&name)),
        "repair did not remove {name}:\n{report}"
    );
    let doctor = env.doctor(&[])?;
    assert_eq!(doctor.status.code(), Some(0), "{}", stdout(&doctor));
    env.genuine_build_is_clean("after-repair")?;
    Ok(())
}
