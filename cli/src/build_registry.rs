//! What `strata build` does after the export: `--push` the tags and write
//! `--metadata-file`.

use std::io::Write;

use strata_cache::ImageStore;
use strata_exporter::ImageRef;

use crate::build::{BuildArgs, EXIT_ENVIRONMENT, EXIT_USAGE};
use crate::progress::PlainRenderer;
use crate::registry_cmd;

type Failure = (u8, String);

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
        let client = registry_cmd::client(&args.registry);
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
