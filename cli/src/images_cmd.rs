//! `strata images`, `strata inspect`, `strata rmi` and `strata tag`: the
//! local image store (`$STRATA_ROOT/store`, an OCI image layout).

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};
use strata_cache::ImageStore;
use strata_registry::platform;

use crate::exit::Failure;

/// `strata inspect` options.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// Go-template-like format: `{{.Field}}` placeholders (`{{.Id}}`,
    /// `{{.Digest}}`, `{{.Size}}`, `{{.Config.Env}}`, `{{json .Config}}`).
    #[arg(short, long)]
    pub format: Option<String>,
    /// Image name or `sha256:` manifest digest.
    pub name: String,
}

fn open(root: &Path) -> Result<ImageStore, Failure> {
    ImageStore::open(root.join("store")).map_err(|e| Failure::Environment(e.to_string()))
}

/// The `docker inspect`-like JSON of one image.
pub fn inspect_json(store: &ImageStore, name: &str) -> Result<Value, Failure> {
    let desc = store
        .resolve(name)
        .map_err(|e| Failure::Usage(e.to_string()))?
        .ok_or_else(|| Failure::Failed(format!("no such image: {name}")))?;
    let image = store
        .layout()
        .image(&desc, &platform::host())
        .map_err(|e| Failure::Environment(e.to_string()))?;
    let config: Value = serde_json::from_slice(&image.config_bytes)
        .map_err(|e| Failure::Environment(format!("config of {name}: {e}")))?;
    let digest = image.manifest.config().digest().to_string();
    let size: u64 = image.manifest.layers().iter().map(|l| l.size()).sum();
    let tags: Vec<String> = store
        .list()
        .map_err(|e| Failure::Environment(e.to_string()))?
        .into_iter()
        .filter(|(_, d)| d.digest() == desc.digest())
        .map(|(n, _)| n)
        .collect();
    Ok(json!({
        "Id": digest,
        "Digest": desc.digest().to_string(),
        "RepoTags": tags,
        "Created": config.get("created").cloned().unwrap_or(Value::Null),
        "Architecture": config.get("architecture").cloned().unwrap_or(Value::Null),
        "Os": config.get("os").cloned().unwrap_or(Value::Null),
        "Size": size,
        "Config": config.get("config").cloned().unwrap_or_else(|| json!({})),
        "RootFS": {
            "Type": "layers",
            "Layers": config.pointer("/rootfs/diff_ids").cloned().unwrap_or_else(|| json!([])),
        },
        "History": config.get("history").cloned().unwrap_or_else(|| json!([])),
    }))
}

/// `strata inspect`.
pub fn inspect(root: &Path, args: &InspectArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let store = open(root)?;
    let v = inspect_json(&store, &args.name)?;
    let text = match &args.format {
        None => {
            serde_json::to_string_pretty(&v).map_err(|e| Failure::Environment(e.to_string()))?
        }
        Some(f) => render_format(f, &v).map_err(Failure::Usage)?,
    };
    let _ = writeln!(out, "{text}");
    Ok(())
}

/// Expands `{{.A.B}}` and `{{json .A}}` placeholders against `v`: strings
/// print bare, numbers as numbers, anything else as JSON.
pub fn render_format(format: &str, v: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = format;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("--format {format:?}: unclosed {{{{"))?;
        let expr = after[..end].trim();
        let (as_json, path) = match expr.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, expr),
        };
        let path = path
            .strip_prefix('.')
            .ok_or_else(|| format!("--format: `{expr}` is not a .Field placeholder"))?;
        let mut cur = v;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            cur = cur
                .get(part)
                .ok_or_else(|| format!("--format: no field `{part}` in `{expr}`"))?;
        }
        match cur {
            Value::String(s) if !as_json => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `strata images`: one line per tag.
pub fn images(root: &Path, out: &mut dyn Write) -> Result<(), Failure> {
    let store = open(root)?;
    let list = store
        .list()
        .map_err(|e| Failure::Environment(e.to_string()))?;
    let _ = writeln!(
        out,
        "{:<40} {:<20} {:<14} {:>12}",
        "REPOSITORY", "TAG", "IMAGE ID", "SIZE"
    );
    for (name, _) in list {
        let v = inspect_json(&store, &name)?;
        let (repo, tag) = split_tag(&name);
        let id = v["Id"].as_str().unwrap_or_default();
        let short = id.trim_start_matches("sha256:").get(..12).unwrap_or(id);
        let _ = writeln!(
            out,
            "{repo:<40} {tag:<20} {short:<14} {:>12}",
            v["Size"].as_u64().unwrap_or(0)
        );
    }
    Ok(())
}

/// `name:tag` → (`name`, `tag`); the tag is after the last `:` that is not
/// part of a registry host.
fn split_tag(name: &str) -> (&str, &str) {
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], &name[i + 1..]),
        _ => (name, ""),
    }
}

/// `strata rmi`: removes tags (the blobs stay until pruned).
pub fn rmi(root: &Path, names: &[String], out: &mut dyn Write) -> Result<(), Failure> {
    let store = open(root)?;
    for name in names {
        let removed = store
            .untag(name)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        if !removed {
            return Err(Failure::Failed(format!("no such image: {name}")));
        }
        let _ = writeln!(out, "Untagged: {name}");
    }
    Ok(())
}

/// `strata tag SRC DST`.
pub fn tag(root: &Path, src: &str, dst: &str) -> Result<(), Failure> {
    strata_registry::Reference::parse(dst)?;
    let store = open(root)?;
    let desc = store
        .resolve(src)
        .map_err(|e| Failure::Usage(e.to_string()))?
        .ok_or_else(|| Failure::Failed(format!("no such image: {src}")))?;
    store
        .tag(dst, &desc)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_placeholders() {
        let v = json!({"Id": "sha256:ab", "Size": 12, "Config": {"Env": ["A=1"], "User": "app"}});
        assert_eq!(render_format("{{.Id}}", &v), Ok("sha256:ab".to_string()));
        assert_eq!(
            render_format("size={{.Size}}", &v),
            Ok("size=12".to_string())
        );
        assert_eq!(render_format("{{.Config.User}}", &v), Ok("app".to_string()));
        assert_eq!(
            render_format("{{json .Config.Env}}", &v),
            Ok(r#"["A=1"]"#.to_string())
        );
        assert!(render_format("{{.Nope}}", &v).is_err());
        assert!(render_format("{{.Id", &v).is_err());
    }

    #[test]
    fn splits_tags() {
        assert_eq!(split_tag("demo:latest"), ("demo", "latest"));
        assert_eq!(split_tag("127.0.0.1:5000/x:1"), ("127.0.0.1:5000/x", "1"));
        assert_eq!(split_tag("127.0.0.1:5000/x"), ("127.0.0.1:5000/x", ""));
    }
}
