//! `RUN --mount=type=...,key=value,...` into a [`Mount`].

use crate::error::ParseError;
use crate::instruction::{Mount, MountType, Sharing};
use crate::span::Span;

/// Splits a CSV field list the way BuildKit reads it: commas separate
/// fields, and a double-quoted stretch may hold commas.
fn fields(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn bool_value(key: &str, value: Option<&str>, span: Span) -> Result<bool, ParseError> {
    match value {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(ParseError::new(
            format!("invalid --mount option {key}={v}: expected true or false"),
            span,
        )),
    }
}

fn number(key: &str, value: &str, radix: u32, span: Span) -> Result<u32, ParseError> {
    u32::from_str_radix(value, radix).map_err(|_| {
        ParseError::new(
            format!("invalid --mount option {key}={value}: not a number"),
            span,
        )
    })
}

/// Parses one `--mount` value. Values containing `$` are kept for later
/// expansion, except where a number is required.
pub(crate) fn parse_mount(text: &str, span: Span) -> Result<Mount, ParseError> {
    let mut mount = Mount {
        kind: MountType::Bind,
        target: None,
        source: None,
        from: None,
        readonly: false,
        id: None,
        sharing: Sharing::Shared,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        env: None,
        size: None,
        span,
    };
    let mut readonly: Option<bool> = None;
    let fields = fields(text);
    // The type decides the defaults, so read it first wherever it stands.
    for field in &fields {
        if let Some(t) = field.trim().strip_prefix("type=") {
            mount.kind = match t.to_ascii_lowercase().as_str() {
                "bind" => MountType::Bind,
                "cache" => MountType::Cache,
                "tmpfs" => MountType::Tmpfs,
                "secret" => MountType::Secret,
                "ssh" => MountType::Ssh,
                other => {
                    return Err(
                        ParseError::new(format!("unsupported mount type {other:?}"), span)
                            .with_hint("use type=bind, cache, tmpfs, secret or ssh"),
                    );
                }
            };
        }
    }
    for field in &fields {
        let field = field.trim();
        if field.is_empty() {
            continue;
        }
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let need = |v: Option<&str>| {
            v.map(str::to_string).ok_or_else(|| {
                ParseError::new(
                    format!("invalid --mount option {key}: it needs a value"),
                    span,
                )
            })
        };
        match key.as_str() {
            "type" => {}
            "target" | "dst" | "destination" => mount.target = Some(need(value)?),
            "source" | "src" => mount.source = Some(need(value)?),
            "from" => mount.from = Some(need(value)?),
            "id" => mount.id = Some(need(value)?),
            "ro" | "readonly" => readonly = Some(bool_value(&key, value, span)?),
            "rw" | "readwrite" => readonly = Some(!bool_value(&key, value, span)?),
            "required" => mount.required = bool_value(&key, value, span)?,
            "env" => mount.env = Some(need(value)?),
            "size" => mount.size = Some(need(value)?),
            "mode" => mount.mode = Some(number(&key, &need(value)?, 8, span)?),
            "uid" => mount.uid = Some(number(&key, &need(value)?, 10, span)?),
            "gid" => mount.gid = Some(number(&key, &need(value)?, 10, span)?),
            "sharing" => {
                mount.sharing = match need(value)?.as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    other => {
                        return Err(ParseError::new(
                            format!("unsupported sharing value {other:?}"),
                            span,
                        )
                        .with_hint("use sharing=shared, private or locked"));
                    }
                }
            }
            _ => {
                return Err(ParseError::new(format!("unexpected key {key:?} in --mount"), span)
                    .with_hint("known keys: type, target, source, from, ro, rw, id, sharing, mode, uid, gid, required, env, size"));
            }
        }
    }
    // Bind mounts are read-only unless `rw` is given; the rest are writable.
    mount.readonly = readonly.unwrap_or(mount.kind == MountType::Bind);
    if mount.kind == MountType::Secret && mount.target.is_none() && mount.env.is_none() {
        // BuildKit mounts the secret at /run/secrets/<id>.
        let id = mount.id.clone().or_else(|| mount.source.clone());
        match id {
            Some(id) => mount.target = Some(format!("/run/secrets/{id}")),
            None => {
                return Err(ParseError::new(
                    "invalid --mount: a secret needs an id or a target",
                    span,
                )
                .with_hint("add id=NAME"));
            }
        }
    }
    Ok(mount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_commas_stay_in_one_field() {
        assert_eq!(
            fields(r#"a="b,c",d"#),
            vec!["a=b,c".to_string(), "d".to_string()]
        );
    }
}
