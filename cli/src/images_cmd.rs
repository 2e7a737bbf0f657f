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

/// The compressed size of an image's layers, as `inspect` shows it.
pub fn image_size(root: &Path, name: &str) -> Result<u64, Failure> {
    let v = inspect_json(&open(root)?, name)?;
    Ok(v.get("Size").and_then(Value::as_u64).unwrap_or(0))
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

/// `strata images` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ImagesArgs {
    /// Show the manifest digests.
    #[arg(long)]
    pub digests: bool,
    /// One line per image from a template: `{{.Repository}}`, `{{.Tag}}`,
    /// `{{.ID}}`, `{{.Digest}}`, `{{.CreatedAt}}`, `{{.CreatedSince}}`, `{{.Size}}`.
    #[arg(long)]
    pub format: Option<String>,
}

/// `strata images`: one line per tag, as `docker images` prints them.
pub fn images(root: &Path, args: &ImagesArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let store = open(root)?;
    let list = store
        .list()
        .map_err(|e| Failure::Environment(e.to_string()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut rows = Vec::new();
    for (name, _) in list {
        let v = inspect_json(&store, &name)?;
        let (repo, tag) = split_tag(&name);
        let id = v["Id"].as_str().unwrap_or_default();
        let created = v["Created"].as_str().unwrap_or_default();
        let ago = strata_exporter::parse_rfc3339(created)
            .map_or_else(|| "N/A".to_string(), |t| format!("{} ago", since(now - t)));
        let tag = if tag.is_empty() { "<none>" } else { tag };
        let short = id.trim_start_matches("sha256:").get(..12).unwrap_or(id);
        let digest = v["Digest"].clone();
        rows.push(json!({
            "Repository": repo,
            "Tag": tag,
            "ID": short,
            "Digest": digest,
            "CreatedAt": created,
            "CreatedSince": ago,
            "Size": crate::cache_cmd::human(v["Size"].as_u64().unwrap_or(0)),
        }));
    }
    if let Some(format) = &args.format {
        for row in &rows {
            let line = render_format(format, row).map_err(Failure::Usage)?;
            let _ = writeln!(out, "{line}");
        }
        return Ok(());
    }
    let mut columns = vec!["Repository", "Tag"];
    if args.digests {
        columns.push("Digest");
    }
    columns.extend(["ID", "CreatedSince", "Size"]);
    let cell = |row: &Value, c: &str| row[c].as_str().unwrap_or_default().to_string();
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| {
            rows.iter()
                .map(|r| cell(r, c).chars().count())
                .chain([header(c).len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("   ").trim_end());
    };
    line(columns.iter().map(|c| header(c).to_string()).collect());
    for row in &rows {
        line(columns.iter().map(|c| cell(row, c)).collect());
    }
    Ok(())
}

/// A column's heading, as docker names it.
fn header(field: &str) -> &'static str {
    match field {
        "Repository" => "REPOSITORY",
        "Tag" => "TAG",
        "Digest" => "DIGEST",
        "ID" => "IMAGE ID",
        "CreatedSince" => "CREATED",
        _ => "SIZE",
    }
}

/// A past duration in seconds as docker words it (`2 hours`, `About a minute`).
fn since(secs: i64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    match secs {
        s if s < 1 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".to_string(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".to_string(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{d} days"),
        _ if h < 24 * 30 * 3 => format!("{} weeks", d / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", d / 30),
        _ => format!("{} years", d / 365),
    }
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
    fn durations_read_as_docker_words_them() {
        assert_eq!(since(0), "Less than a second");
        assert_eq!(since(45), "45 seconds");
        assert_eq!(since(90), "About a minute");
        assert_eq!(since(7200 + 5), "2 hours");
        assert_eq!(since(3 * 86_400), "3 days");
        assert_eq!(since(400 * 86_400), "13 months");
    }

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
