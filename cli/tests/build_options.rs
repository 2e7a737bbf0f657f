//! `strata build` options seen in what they change: `--network` in the
//! interfaces a RUN step sees (the private default, none, and host with its
//! entitlement; `network` has the reachability checks), `--compression` and `--compression-level` in
//! the layers' media types and bytes, checked with gzip, zstd and tar.

use std::collections::BTreeSet;
use std::fs;

use serde_json::Value;

use crate::common::{Env, R, Res, tool};

/// Interface names in a /proc/net/dev listing.
fn interfaces(net_dev: &str) -> BTreeSet<String> {
    net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .collect()
}

#[test]
fn network_none_has_only_loopback_default_is_private_and_host_sees_the_hosts_interfaces() -> R {
    let env = Env::new()?;
    let host = interfaces(&fs::read_to_string("/proc/net/dev")?);
    assert!(
        host.iter().any(|i| i != "lo" && i != "tap0"),
        "this machine has no interface but lo ({host:?}): the test cannot tell host from none"
    );
    let ctx = env.context("net", "FROM busybox\nRUN cat /proc/net/dev > /net.txt\n")?;
    let seen = |flags: &[&str]| -> Res<BTreeSet<String>> {
        let dest = env.path(&format!("out-{}", flags.join("_")));
        let out = format!("type=local,dest={}", dest.display());
        let mut args = vec!["--no-cache", "-o", &out];
        args.extend_from_slice(flags);
        env.build(&ctx, &args)?;
        Ok(interfaces(&fs::read_to_string(dest.join("net.txt"))?))
    };
    assert_eq!(
        seen(&["--network=none"])?,
        BTreeSet::from(["lo".to_string()])
    );
    assert_eq!(seen(&["--network=host", "--allow", "network.host"])?, host);
    assert_eq!(
        seen(&["--network=default"])?,
        BTreeSet::from(["lo".to_string(), "tap0".to_string()]),
        "RUN's default network is its own: lo and slirp4netns's tap0"
    );
    assert_eq!(
        seen(&[])?,
        BTreeSet::from(["lo".to_string(), "tap0".to_string()])
    );
    Ok(())
}

/// The new layer (the last) of image `name`: its media type and blob path,
/// and the diff ID the config gives it.
fn last_layer(env: &Env, name: &str) -> Res<(String, std::path::PathBuf, String)> {
    let manifest = env.manifest(name)?;
    let layers = manifest["layers"].as_array().ok_or("no layers")?;
    let layer = layers.last().ok_or("no layer")?;
    let media_type = layer["mediaType"].as_str().ok_or("no media type")?;
    let digest = layer["digest"].as_str().ok_or("no digest")?;
    let config = env.config(name)?;
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or("no diff_ids")?;
    let diff_id = diff_ids
        .last()
        .and_then(Value::as_str)
        .ok_or("no diff_id")?;
    Ok((
        media_type.to_string(),
        env.blob(digest),
        diff_id.to_string(),
    ))
}

/// Decompresses `blob` with `program` (`zstd`, `gzip`, or `cat` for none)
/// into a tar file; returns its path.
fn decompress(
    env: &Env,
    blob: &std::path::Path,
    program: &str,
    into: &str,
) -> Res<std::path::PathBuf> {
    let out = tool(
        program,
        &[
            if program == "cat" { "--" } else { "-dc" },
            &blob.to_string_lossy(),
        ],
    )?;
    let tar = env.path(into);
    fs::write(&tar, out.stdout)?;
    Ok(tar)
}

fn sha256(path: &std::path::Path) -> Res<String> {
    use sha2::Digest as _;
    Ok(format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(fs::read(path)?))
    ))
}

#[test]
fn compression_and_level_set_the_layer_media_type_and_bytes() -> R {
    let env = Env::new()?;
    // A copy of the busybox binary: zstd -19 packs it clearly smaller than -1.
    let ctx = env.context("compressed", "FROM busybox\nRUN cp /bin/busybox /copy\n")?;
    let cases = [
        (
            "gzip",
            None,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "gzip",
        ),
        (
            "zstd",
            Some("1"),
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "zstd",
        ),
        (
            "zstd",
            Some("19"),
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "zstd",
        ),
        (
            "uncompressed",
            None,
            "application/vnd.oci.image.layer.v1.tar",
            "cat",
        ),
    ];
    let mut sizes = Vec::new();
    let mut diff_ids = BTreeSet::new();
    for (i, (kind, level, media_type, program)) in cases.iter().enumerate() {
        let name = format!("c{i}");
        let compression = format!("--compression={kind}");
        let mut args = vec!["-t", name.as_str(), compression.as_str()];
        if let Some(level) = level {
            args.extend(["--compression-level", level]);
        }
        env.build(&ctx, &args)?;
        let (got, blob, diff_id) = last_layer(&env, &format!("{name}:latest"))?;
        assert_eq!(&got, media_type, "{kind} {level:?}");
        let tar = decompress(&env, &blob, program, &format!("layer-{i}.tar"))?;
        assert_eq!(sha256(&tar)?, diff_id, "{kind} {level:?}: the diff ID");
        let listing = String::from_utf8(tool("tar", &["-tf", &tar.to_string_lossy()])?.stdout)?;
        assert!(
            listing
                .lines()
                .any(|l| l.trim_start_matches("./") == "copy"),
            "{kind}: {listing}"
        );
        sizes.push(fs::metadata(&blob)?.len());
        diff_ids.insert(diff_id);
    }
    assert_eq!(diff_ids.len(), 1, "one content, one diff ID: {diff_ids:?}");
    // zstd -19 packs smaller than -1; every compression beats none.
    assert!(sizes[2] < sizes[1], "{sizes:?}");
    assert!(
        sizes[..3].iter().all(|s| *s < sizes[3] * 7 / 10),
        "{sizes:?}"
    );
    Ok(())
}
