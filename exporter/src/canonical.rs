//! Canonical JSON: object keys sorted bytewise, no insignificant whitespace,
//! so equal documents always hash to the same digest (whatever serde_json
//! features other crates turn on).

use serde_json::Value;

/// The canonical serialization of `value`.
pub(crate) fn to_canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        // Scalars have one serialization already.
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(Value::String(s.to_string()).to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_at_every_depth_and_adds_no_spaces() -> Result<(), serde_json::Error> {
        let value: Value =
            serde_json::from_str(r#"{ "b": [ {"z": 1, "a": "x\"y"} ], "a": null, "B": true }"#)?;
        assert_eq!(
            String::from_utf8_lossy(&to_canonical_json(&value)),
            r#"{"B":true,"a":null,"b":[{"a":"x\"y","z":1}]}"#
        );
        Ok(())
    }
}
