//! The validating admission webhook (`POST /validate`): the registry's own
//! validation, the code `pilot validate` and pilot's loader run, applied to
//! one object at `kubectl apply` time, so an invalid rule never gets into the
//! cluster (Istio's `istiod` validating webhook does the same).
//!
//! Per object, as Istio's webhook: what can be judged from the object alone
//! (types, unknown fields, field values: a negative weight, a bad duration, a
//! regex that does not compile, a field Rudder refuses) decides. Findings that
//! depend on other objects (a subset no DestinationRule defines, a host no
//! Service backs) are warnings in `pilot validate` and pilot's status
//! conditions, never reasons to refuse here: the other object may be applied
//! next. An object of a kind or version Rudder does not serve is refused too,
//! as it would have no effect.
//!
//! The refusal message is `pilot validate`'s line without the file:
//! `error: VirtualService default/bad: spec.http[0].route[0].weight: weight -3 must not be negative`.

use rudder_model::Severity;
use rudder_registry::{load::load_str, validate::validate_loaded};
use serde_json::{json, Map, Value};

use crate::admission::{field, parse, request_of, respond, uid_of, Outcome, ReviewError};
use crate::pod::kind_of;

/// Where a reviewed object "comes from" in the loader's diagnostics; dropped
/// from the refusal message.
const ORIGIN: &str = "admission";

/// Validate the object of one AdmissionReview body; returns the response
/// review and the outcome. CREATE and UPDATE are judged (the new object);
/// DELETE and CONNECT are allowed.
pub fn validate_review(body: &[u8]) -> Result<(Value, Outcome), ReviewError> {
    let doc = parse(body)?;
    let request = request_of(&doc)?;
    let uid = uid_of(request)?;
    let operation = request
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or("CREATE");
    if !matches!(operation, "CREATE" | "UPDATE") {
        return Ok((
            respond(&uid, json!({"allowed": true})),
            Outcome::Allowed(format!("operation {operation} is not validated")),
        ));
    }
    let object = match request.get("object") {
        Some(Value::Object(o)) => o,
        None | Some(Value::Null) => return Err(field("request.object", "missing")),
        Some(other) => {
            return Err(field(
                "request.object",
                format!("expected an object, got {}", kind_of(other)),
            ))
        }
    };
    let object = with_namespace(object, request.get("namespace").and_then(Value::as_str));
    let problems = problems_of(&object);
    if problems.is_empty() {
        return Ok((
            respond(&uid, json!({"allowed": true})),
            Outcome::Allowed("valid".into()),
        ));
    }
    let message = problems.join("\n");
    Ok((
        respond(
            &uid,
            json!({"allowed": false, "status": {"code": 400, "reason": "Invalid", "message": message}}),
        ),
        Outcome::Denied(message),
    ))
}

/// The object with `metadata.namespace` filled from the request when the
/// object does not carry it (the registry names objects `Kind ns/name`).
fn with_namespace(object: &Map<String, Value>, namespace: Option<&str>) -> Value {
    let mut object = Value::Object(object.clone());
    if let (Some(ns), Some(meta)) = (
        namespace.filter(|ns| !ns.is_empty()),
        object.get_mut("metadata").and_then(Value::as_object_mut),
    ) {
        meta.entry("namespace")
            .or_insert_with(|| Value::String(ns.to_string()));
    }
    object
}

/// The reasons to refuse `object`, one `pilot validate` line each (without a
/// file): its errors and, when Rudder does not serve its kind, that.
pub fn problems_of(object: &Value) -> Vec<String> {
    // JSON is YAML: the loader reads it as a one-document file.
    let text = serde_json::to_string(object).expect("a JSON value serializes");
    let report = validate_loaded(vec![load_str(&text, ORIGIN, ORIGIN)], Vec::new());
    report
        .diagnostics
        .into_iter()
        .filter(|d| matches!(d.severity, Severity::Error | Severity::Unsupported))
        .map(|mut d| {
            d.file = None;
            d.to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(operation: &str, namespace: &str, object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "networking.istio.io", "version": "v1", "kind": object["kind"]},
                "namespace": namespace,
                "operation": operation,
                "object": object,
            }
        }))
        .unwrap()
    }

    fn vs(weight: i64) -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "reviews"},
            "spec": {"hosts": ["reviews"], "http": [{"route": [
                {"destination": {"host": "reviews", "subset": "v1"}, "weight": 100 - weight},
                {"destination": {"host": "reviews", "subset": "v2"}, "weight": weight},
            ]}]}
        })
    }

    #[test]
    fn a_negative_weight_is_refused_with_pilot_validates_line() {
        let (resp, outcome) = validate_review(&review("CREATE", "bookinfo", vs(-3))).unwrap();
        assert_eq!(resp["response"]["uid"], "u1");
        assert_eq!(resp["response"]["allowed"], false);
        let message = resp["response"]["status"]["message"].as_str().unwrap();
        assert_eq!(
            message,
            "error: VirtualService bookinfo/reviews: spec.http[0].route[1].weight: weight -3 must not be negative"
        );
        assert_eq!(outcome, Outcome::Denied(message.to_string()));
    }

    #[test]
    fn references_to_objects_not_yet_applied_do_not_refuse() {
        // No DestinationRule defines the subsets and no Service backs the
        // host: warnings for pilot validate, not reasons to refuse.
        let (resp, _) = validate_review(&review("UPDATE", "bookinfo", vs(10))).unwrap();
        assert_eq!(resp["response"]["allowed"], true, "{resp}");
    }

    #[test]
    fn unknown_fields_and_unserved_versions_are_refused() {
        let mut bad = vs(10);
        bad["spec"]["http"][0]["retires"] = json!({"attempts": 3});
        let problems = problems_of(&with_namespace(bad.as_object().unwrap(), Some("default")));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("retires"), "{problems:?}");

        let mut old = vs(10);
        old["apiVersion"] = json!("networking.istio.io/v1alpha1");
        let (resp, outcome) = validate_review(&review("CREATE", "default", old)).unwrap();
        assert_eq!(resp["response"]["allowed"], false);
        assert!(
            matches!(&outcome, Outcome::Denied(m) if m.starts_with("unsupported: VirtualService default/reviews")),
            "{outcome:?}"
        );
    }

    #[test]
    fn delete_is_allowed_and_a_missing_object_is_a_bad_request() {
        let mut body: Value = serde_json::from_slice(&review("DELETE", "default", vs(-3))).unwrap();
        body["request"]["object"] = Value::Null;
        let (resp, _) = validate_review(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(resp["response"]["allowed"], true);

        body["request"]["operation"] = json!("CREATE");
        assert_eq!(
            validate_review(&serde_json::to_vec(&body).unwrap()).unwrap_err(),
            ReviewError::Field {
                field: "request.object",
                message: "missing".into()
            }
        );
    }
}
