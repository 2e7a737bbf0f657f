//! The build as a library: `strata_solver::solve` then
//! `strata_exporter::export`, without the binary, give the image that
//! `strata build` gives on the same fixture.

use strata_exporter::{Compression, CompressionKind, ExportRequest, export};
use strata_registry::{Client, ClientConfig};
use strata_solver::NetworkMode;
use strata_solver::dockerfile::{BuildArgs, parse_build_context};
use strata_solver::{BuildRequest, ChannelSink, RuntimeChoice, solve};

use crate::common::{Env, R, fixtures};

/// A fixed SOURCE_DATE_EPOCH: both builds stamp the same times.
const EPOCH: i64 = 1_700_000_000;

#[test]
fn solve_and_export_give_the_image_strata_build_gives() -> R {
    let env = Env::new()?;
    let context = fixtures().join("run-output");

    let meta = env.path("cli.json");
    let meta_arg = meta.to_str().ok_or("non-UTF-8 path")?;
    env.build_command(&context, &["--metadata-file", meta_arg])?
        .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
        .ok()?;
    let by_cli: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta)?)?;

    let root = env.path("lib-root");
    let solved = solve(
        BuildRequest {
            dockerfile: std::fs::read(context.join("Dockerfile"))?,
            dockerfile_name: "Dockerfile".into(),
            dockerfile_path: None,
            context: context.clone(),
            build_args: BuildArgs::default(),
            target: None,
            platform: None,
            build_contexts: vec![parse_build_context(&env.base)?],
            network: NetworkMode::Default,
            entitlements: Default::default(),
            runtime: RuntimeChoice::Builtin,
            no_cache: false,
            no_cache_filter: Vec::new(),
            registry: Client::new(ClientConfig::default()),
            pull: false,
            root: root.clone(),
            explain: false,
            decompression_limit: strata_solver::DEFAULT_DECOMPRESSION_LIMIT,
            secrets: Default::default(),
            limits: strata_solver::Limits::default(),
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
