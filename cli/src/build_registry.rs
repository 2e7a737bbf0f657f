//! What `strata build` does with registries: pull base images that are not
//! local (`--pull`, `--platform`, `--insecure-registry`), then `--push` the
//! tags and write `--metadata-file`.

use std::io::Write;

use strata_cache::{ImageStore, PlatformSelector};
use strata_exporter::ImageRef;
use strata_solver::args::Platform as SolverPlatform;
use strata_solver::images::RegistryPull;

use crate::build::{BuildArgs, EXIT_ENVIRONMENT, EXIT_USAGE};
use crate::progress::PlainRenderer;
use crate::registry_cmd;

type Failure = (u8, String);

/// `--platform` for index selection and the image config (default: the host's).
pub fn selector(args: &BuildArgs) -> Result<PlatformSelector, Failure> {
    match &args.platform {
        None => Ok(PlatformSelector::host()),
        Some(p) => PlatformSelector::parse(p).ok_or_else(|| {
            (
                EXIT_USAGE,
                format!("--platform={p}: expected os/arch[/variant]"),
            )
        }),
    }
}

/// `--platform` for TARGETPLATFORM and friends (`None`: the host's).
pub fn target_platform(args: &BuildArgs) -> Result<Option<SolverPlatform>, Failure> {
    args.platform
        .as_deref()
        .map(SolverPlatform::parse)
        .transpose()
        .map_err(|e| (EXIT_USAGE, format!("--platform: {e}")))
}

/// The platform base images are chosen for and how missing ones are pulled.
pub fn base_images(args: &BuildArgs) -> Result<(PlatformSelector, RegistryPull), Failure> {
    let platform = registry_cmd::platform(args.platform.as_deref())?;
    let selector = selector(args)?;
    let quiet = args.quiet;
    let pull = RegistryPull {
        client: registry_cmd::client(&args.registry)?,
        platform,
        always: args.pull,
        progress: Box::new(move |line| {
            if !quiet {
                eprintln!("{line}");
            }
        }),
    };
    Ok((selector, pull))
}

/// `--push` every tag, then `--metadata-file`.
pub fn after_export<W: Write>(
    args: &BuildArgs,
    store: &ImageStore,
    image: &ImageRef,
    renderer: &mut PlainRenderer<W>,
) -> Result<(), Failure> {
    if args.push {
        if args.tags.is_empty() {
            return Err((EXIT_USAGE, "--push needs at least one -t name".to_string()));
        }
        let step = renderer.begin("pushing", args.quiet);
        let client = registry_cmd::client(&args.registry)?;
        for name in &args.tags {
            let report = registry_cmd::push_image(store, &client, name)?;
            step.line(renderer, &registry_cmd::describe_push(name, &report));
        }
        step.done(renderer);
    }
    if let Some(path) = &args.metadata_file {
        let meta = serde_json::json!({
            "containerimage.digest": image.manifest_digest.as_str(),
            "containerimage.config.digest": image.config_digest.as_str(),
            "image.name": args.tags.join(","),
        });
        let text = serde_json::to_string_pretty(&meta)
            .map_err(|e| (EXIT_ENVIRONMENT, format!("metadata: {e}")))?;
        std::fs::write(path, text + "\n").map_err(|e| {
            (
                EXIT_ENVIRONMENT,
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
    }
    Ok(())
}
