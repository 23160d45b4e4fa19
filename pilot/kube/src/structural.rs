//! Making derived schemas structural, and checking that they are.
//!
//! The API server accepts a CRD only if its schema is *structural*: every
//! node says its `type`; `oneOf`/`anyOf`/`allOf`/`not` only constrain (no
//! types, descriptions, defaults or nullability inside them); no `$ref`, no
//! `patternProperties`; `properties` and `additionalProperties` never
//! together. kube's derive already inlines references and hoists `oneOf`
//! variants; what it leaves is a map with non-string keys (schemars writes
//! `patternProperties` for `BTreeMap<u32, _>`, e.g. PeerAuthentication's
//! `portLevelMtls`), which [`make_structural`] turns into
//! `additionalProperties` (keys are strings on the wire anyway; the registry
//! still checks they are port numbers). [`structural_problems`] is the
//! check the tests run over every generated CRD, since no API server is
//! reachable here to reject a bad one.

use serde_json::{Map, Value};

/// Rewrites what the API server would reject (see the module docs).
pub fn make_structural(schema: &mut Value) {
    rewrite(schema, false);
}

fn rewrite(schema: &mut Value, in_junctor: bool) {
    let Value::Object(node) = schema else { return };
    // A free-form field (`serde_json::Value`, schema `{}`): any JSON value,
    // which Kubernetes spells `x-kubernetes-preserve-unknown-fields`.
    let untyped = !node.contains_key("type")
        && !node.contains_key("properties")
        && !JUNCTORS.iter().any(|j| node.contains_key(*j));
    if untyped && !in_junctor {
        node.insert(
            "x-kubernetes-preserve-unknown-fields".into(),
            Value::Bool(true),
        );
    }
    if let Some(Value::Object(patterns)) = node.remove("patternProperties") {
        if node.get("additionalProperties") == Some(&Value::Bool(false))
            || !node.contains_key("additionalProperties")
        {
            // One value schema for every key; several patterns would need one
            // schema that admits all of them.
            let values: Vec<Value> = patterns.into_iter().map(|(_, v)| v).collect();
            let value = if values.len() == 1 {
                values.into_iter().next().unwrap_or_default()
            } else {
                preserve_unknown()
            };
            node.insert("additionalProperties".into(), value);
        }
    }
    for (key, child) in node.iter_mut() {
        let junctor = in_junctor || JUNCTORS.contains(&key.as_str());
        match (key.as_str(), child) {
            ("properties", Value::Object(props)) => {
                props.values_mut().for_each(|p| rewrite(p, junctor))
            }
            ("additionalProperties" | "items" | "not", c @ Value::Object(_)) => rewrite(c, junctor),
            ("oneOf" | "anyOf" | "allOf", Value::Array(branches)) => {
                branches.iter_mut().for_each(|b| rewrite(b, true))
            }
            _ => {}
        }
    }
}

fn preserve_unknown() -> Value {
    let mut m = Map::new();
    m.insert("type".into(), Value::String("object".into()));
    m.insert(
        "x-kubernetes-preserve-unknown-fields".into(),
        Value::Bool(true),
    );
    Value::Object(m)
}

/// Everything non-structural in `schema`, one line each with its JSON path
/// (empty when the API server would accept it).
pub fn structural_problems(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, "", false, &mut out);
    out
}

const JUNCTORS: [&str; 4] = ["oneOf", "anyOf", "allOf", "not"];
const FORBIDDEN: [&str; 5] = [
    "$ref",
    "patternProperties",
    "definitions",
    "$defs",
    "dependencies",
];
/// Not allowed inside a junctor (value validations only).
const NOT_IN_JUNCTOR: [&str; 5] = [
    "type",
    "description",
    "default",
    "nullable",
    "additionalProperties",
];

fn check(v: &Value, path: &str, in_junctor: bool, out: &mut Vec<String>) {
    let Value::Object(node) = v else {
        out.push(format!("{path}: not a schema object"));
        return;
    };
    for f in FORBIDDEN {
        if node.contains_key(f) {
            out.push(format!("{path}: `{f}` is not allowed"));
        }
    }
    let free_form = node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if in_junctor {
        for f in NOT_IN_JUNCTOR {
            if node.contains_key(f) {
                out.push(format!("{path}: `{f}` inside oneOf/anyOf/allOf/not"));
            }
        }
    } else if !free_form && !node.contains_key("type") {
        out.push(format!("{path}: no `type`"));
    }
    let additional_schema = matches!(
        node.get("additionalProperties"),
        Some(Value::Object(_)) | Some(Value::Bool(true))
    );
    if node.contains_key("properties") && additional_schema {
        out.push(format!(
            "{path}: `properties` and `additionalProperties` together"
        ));
    }
    if let Some(Value::Object(props)) = node.get("properties") {
        for (k, p) in props {
            check(p, &format!("{path}.{k}"), in_junctor, out);
        }
    }
    if let Some(a @ Value::Object(_)) = node.get("additionalProperties") {
        check(a, &format!("{path}.*"), in_junctor, out);
    }
    if let Some(items) = node.get("items") {
        check(items, &format!("{path}[]"), in_junctor, out);
    }
    for j in JUNCTORS {
        match node.get(j) {
            Some(Value::Array(branches)) => {
                for (i, b) in branches.iter().enumerate() {
                    check(b, &format!("{path}.{j}[{i}]"), true, out);
                }
            }
            Some(b @ Value::Object(_)) => check(b, &format!("{path}.{j}"), true, out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pattern_properties_become_additional_properties() {
        let mut s = json!({"type": "object", "properties": {"ports": {"type": "object", "additionalProperties": false,
            "patternProperties": {"^\\d+$": {"type": "object", "properties": {"mode": {"type": "string"}}}}}}});
        assert_eq!(
            structural_problems(&s).len(),
            1,
            "{:?}",
            structural_problems(&s)
        );
        make_structural(&mut s);
        assert_eq!(structural_problems(&s), Vec::<String>::new());
        assert_eq!(
            s["properties"]["ports"]["additionalProperties"]["properties"]["mode"]["type"],
            "string"
        );
    }

    #[test]
    fn free_form_fields_preserve_unknown_fields() {
        let mut s = json!({"type": "object", "properties": {"targetRef": {"description": "any"}, "refs": {"type": "array", "items": {}},
            "m": {"type": "object", "oneOf": [{"required": ["a"]}], "properties": {"a": {"type": "string"}}}}});
        make_structural(&mut s);
        assert_eq!(structural_problems(&s), Vec::<String>::new());
        assert_eq!(
            s["properties"]["targetRef"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        assert_eq!(
            s["properties"]["refs"]["items"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        assert!(s["properties"]["m"]["oneOf"][0]
            .get("x-kubernetes-preserve-unknown-fields")
            .is_none());
    }

    #[test]
    fn the_checker_finds_what_the_api_server_rejects() {
        let s = json!({"type": "object", "properties": {
            "a": {"description": "untyped"},
            "b": {"type": "object", "oneOf": [{"type": "object", "required": ["x"]}]},
            "c": {"$ref": "#/definitions/x", "type": "object"},
            "d": {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": {"type": "string"}},
            "e": {"x-kubernetes-preserve-unknown-fields": true}
        }});
        let p = structural_problems(&s);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(
            p.iter().any(|l| l.starts_with(".a:"))
                && p.iter().any(|l| l.starts_with(".b.oneOf[0]:"))
        );
    }
}
