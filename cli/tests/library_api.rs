//! The build as a library: `strata_solver::solve` then
//! `strata_exporter::export`, without the binary, give the image that
//! `strata build` gives on the same fixture.

use std::path::{Path, PathBuf};
use std::process::Command;

use strata_exporter::{Compression, CompressionKind, ExportRequest, export};
use strata_registry::{Client, ClientConfig};
use strata_solver::NetworkMode;
use strata_solver::dockerfile::{BuildArgs, parse_build_context};
use strata_solver::{BuildRequest, ChannelSink, RuntimeChoice, solve};

type R = Result<(), Box<dyn std::error::Error>>;

/// A fixed SOURCE_DATE_EPOCH: both builds stamp the same times.
const EPOCH: i64 = 1_700_000_000;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/dockerfiles/run-output")
}

#[test]
fn solve_and_export_give_the_image_strata_build_gives() -> R {
    let dir = tempfile::tempdir()?;
    let base = strata_fixtures::busybox_build_context(dir.path())?;
    let context = fixture();

    let meta = dir.path().join("cli.json");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .env("STRATA_ROOT", dir.path().join("cli-root"))
        .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
        .args(["build", "--progress=plain", "--build-context", &base])
        .arg("--metadata-file")
        .arg(&meta)
        .arg(&context)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_cli: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta)?)?;

    let root = dir.path().join("lib-root");
    let solved = solve(
        BuildRequest {
            dockerfile: std::fs::read(context.join("Dockerfile"))?,
            dockerfile_name: "Dockerfile".into(),
            dockerfile_path: None,
            context: context.clone(),
            build_args: BuildArgs::default(),
            target: None,
            platform: None,
            build_contexts: vec![parse_build_context(&base)?],
            network: NetworkMode::Default,
            runtime: RuntimeChoice::Builtin,
            no_cache: false,
            no_cache_filter: Vec::new(),
            registry: Client::new(ClientConfig::default()),
            pull: false,
            root: root.clone(),
            explain: false,
            decompression_limit: strata_solver::DEFAULT_DECOMPRESSION_LIMIT,
        },
        &ChannelSink::discard(),
    )?;
    let exported = export(
        &solved,
        ExportRequest {
            tags: vec!["library:1".into()],
            outputs: Vec::new(),
            push: false,
            compression: Compression {
                kind: CompressionKind::Gzip,
                level: None,
            },
            epoch: Some(EPOCH),
            root,
            registry: Client::new(ClientConfig::default()),
            iidfile: None,
            metadata_file: None,
            progress: &mut |_| {},
        },
    )?;
    assert_eq!(
        Some(exported.image.manifest_digest.as_str()),
        by_cli["containerimage.digest"].as_str()
    );
    assert_eq!(
        Some(exported.image.config_digest.as_str()),
        by_cli["containerimage.config.digest"].as_str()
    );
    assert_eq!(exported.names, vec!["library:1".to_string()]);
    Ok(())
}
