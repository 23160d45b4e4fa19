//! Schema `format`s the API server knows, and rewriting the ones it does not.
//!
//! schemars names Rust's integer widths (`uint32` for `u32`, `uint64` for
//! `u64`, `int8`, ...). OpenAPI and the API server know only `int32` and
//! `int64` for integers (and `float`/`double` for numbers); anything else
//! makes every `kubectl apply` of the CRDs print "unrecognized format".
//! [`use_known_formats`] rewrites each such integer to the narrowest known
//! format that holds its whole range, keeping the range as `minimum`/`maximum`
//! (an unsigned value gets `minimum: 0`), so nothing the spec accepts is lost
//! and nothing it rejects is admitted. [`unknown_formats`] is the check the
//! tests run over every schema in manifests/.

use serde_json::{Map, Number, Value};

/// String formats the API server validates (apiextensions-apiserver
/// `supportedVersionedFormats`; `date-time` is `datetime` after its `-`
/// normalisation).
const STRING_FORMATS: [&str; 24] = [
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
];

/// OpenAPI's integer formats.
const INTEGER_FORMATS: [&str; 2] = ["int32", "int64"];
/// OpenAPI's number formats.
const NUMBER_FORMATS: [&str; 2] = ["float", "double"];

/// The known format and the range of each integer format schemars writes:
/// `(format, known format, minimum, maximum)` (`None`: the known format's own
/// bound is the type's).
const INTEGER_REWRITES: [(&str, &str, Option<i64>, Option<i64>); 8] = [
    ("int8", "int32", Some(i8::MIN as i64), Some(i8::MAX as i64)),
    (
        "int16",
        "int32",
        Some(i16::MIN as i64),
        Some(i16::MAX as i64),
    ),
    ("uint8", "int32", Some(0), Some(u8::MAX as i64)),
    ("uint16", "int32", Some(0), Some(u16::MAX as i64)),
    // u32 does not fit int32: int64, bounded to u32's range.
    ("uint32", "int64", Some(0), Some(u32::MAX as i64)),
    // u64 beyond i64::MAX cannot be stated; the spec types never need it.
    ("uint64", "int64", Some(0), None),
    ("uint", "int64", Some(0), None),
    ("int", "int64", None, None),
];

/// Rewrites every integer format the API server does not know (see the
/// module docs), everywhere in `schema`.
pub fn use_known_formats(schema: &mut Value) {
    walk_mut(schema, &mut |node| {
        let Some(Value::String(format)) = node.get("format") else {
            return;
        };
        let Some((_, known, min, max)) = INTEGER_REWRITES.iter().find(|r| r.0 == format) else {
            return;
        };
        node.insert("format".into(), Value::String((*known).into()));
        if let Some(min) = min {
            let stricter = bound(node, "minimum").is_some_and(|m| m > *min as f64);
            if !stricter {
                node.insert("minimum".into(), Value::Number(Number::from(*min)));
            }
        }
        if let Some(max) = max {
            let stricter = bound(node, "maximum").is_some_and(|m| m < *max as f64);
            if !stricter {
                node.insert("maximum".into(), Value::Number(Number::from(*max)));
            }
        }
    });
}

fn bound(node: &Map<String, Value>, key: &str) -> Option<f64> {
    node.get(key).and_then(Value::as_f64)
}

/// Every `format` in `schema` that the API server does not know for its
/// node's `type`, one line each: `.spec.port: format "uint32" on type integer`.
pub fn unknown_formats(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(schema, "", &mut |path, node| {
        let Some(format) = node.get("format") else {
            return;
        };
        let ty = node.get("type").and_then(Value::as_str).unwrap_or("");
        let known = match (ty, format.as_str()) {
            ("integer", Some(f)) => INTEGER_FORMATS.contains(&f),
            ("number", Some(f)) => NUMBER_FORMATS.contains(&f),
            ("string", Some(f)) => STRING_FORMATS.contains(&f.replace('-', "").as_str()),
            // No type (a oneOf branch constraining its parent): any known format.
            ("", Some(f)) => {
                INTEGER_FORMATS.contains(&f)
                    || NUMBER_FORMATS.contains(&f)
                    || STRING_FORMATS.contains(&f.replace('-', "").as_str())
            }
            _ => false,
        };
        if !known {
            let ty = if ty.is_empty() { "(none)" } else { ty };
            out.push(format!("{path}: format {format} on type {ty}"));
        }
    });
    out
}

/// Child schemas of a schema node, with the path suffix each is reported under.
fn children(node: &Map<String, Value>) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    if let Some(Value::Object(props)) = node.get("properties") {
        out.extend(props.iter().map(|(k, v)| (format!(".{k}"), v)));
    }
    if let Some(a @ Value::Object(_)) = node.get("additionalProperties") {
        out.push((".*".into(), a));
    }
    if let Some(items) = node.get("items") {
        out.push(("[]".into(), items));
    }
    if let Some(n @ Value::Object(_)) = node.get("not") {
        out.push((".not".into(), n));
    }
    for j in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(branches)) = node.get(j) {
            out.extend(
                branches
                    .iter()
                    .enumerate()
                    .map(|(i, b)| (format!(".{j}[{i}]"), b)),
            );
        }
    }
    out
}

/// Visits every schema node (not `default`s or `enum` values, which are data).
fn walk(v: &Value, path: &str, f: &mut impl FnMut(&str, &Map<String, Value>)) {
    let Value::Object(node) = v else { return };
    f(path, node);
    for (suffix, child) in children(node) {
        walk(child, &format!("{path}{suffix}"), f);
    }
}

fn walk_mut(v: &mut Value, f: &mut impl FnMut(&mut Map<String, Value>)) {
    let Value::Object(node) = v else { return };
    f(node);
    for (key, child) in node.iter_mut() {
        match (key.as_str(), child) {
            ("properties", Value::Object(props)) => props.values_mut().for_each(|p| walk_mut(p, f)),
            ("additionalProperties" | "items" | "not", c @ Value::Object(_)) => walk_mut(c, f),
            ("oneOf" | "anyOf" | "allOf", Value::Array(branches)) => {
                branches.iter_mut().for_each(|b| walk_mut(b, f))
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unsigned_integers_become_known_formats_keeping_their_range() {
        let mut s = json!({"type": "object", "properties": {
            "port": {"type": "integer", "format": "uint32", "minimum": 0.0, "nullable": true},
            "ring": {"type": "array", "items": {"type": "integer", "format": "uint64", "minimum": 0.0}},
            "small": {"type": "integer", "format": "uint16", "minimum": 1},
            "tiny": {"type": "integer", "format": "int8"},
            "ok": {"type": "integer", "format": "int32"}
        }});
        assert_eq!(unknown_formats(&s).len(), 4, "{:?}", unknown_formats(&s));
        use_known_formats(&mut s);
        assert_eq!(unknown_formats(&s), Vec::<String>::new());
        let p = &s["properties"];
        assert_eq!(
            p["port"],
            json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295u64, "nullable": true})
        );
        assert_eq!(
            p["ring"]["items"],
            json!({"type": "integer", "format": "int64", "minimum": 0})
        );
        assert_eq!(
            p["small"],
            json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535}),
            "a stricter bound stays"
        );
        assert_eq!(
            p["tiny"],
            json!({"type": "integer", "format": "int32", "minimum": -128, "maximum": 127})
        );
        assert_eq!(p["ok"], json!({"type": "integer", "format": "int32"}));
    }

    #[test]
    fn the_check_names_path_format_and_type() {
        let s = json!({"type": "object", "properties": {
            "a": {"type": "string", "format": "date-time"},
            "b": {"type": "number", "format": "double"},
            "c": {"type": "array", "items": {"type": "integer", "format": "uint32"}},
            "d": {"type": "string", "format": "int32"},
            "e": {"type": "object", "oneOf": [{"format": "ipv4"}, {"format": "uint32"}]},
            "format": {"type": "string", "default": "uint32"}
        }});
        assert_eq!(
            unknown_formats(&s),
            vec![
                ".c[]: format \"uint32\" on type integer".to_string(),
                ".d: format \"int32\" on type string".to_string(),
                ".e.oneOf[1]: format \"uint32\" on type (none)".to_string(),
            ]
        );
    }
}
