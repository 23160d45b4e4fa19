//! Hostile AdmissionReviews for both webhooks (`/inject` and `/validate`):
//! arbitrary JSON shaped like a review (keys from the review, pod and rule
//! schemas) and real reviews with random edits never panic the handlers; a
//! well-formed answer always echoes the uid and says allowed or not, and a
//! refusal carries a message.

use proptest::{prop_assert, prop_assert_eq, strategy::Strategy, test_runner::TestCaseError};
use rudder_injector::{review, validate_review, ReviewContext, Values};
use rudder_test_support::hostile::{check, json, mutated};
use serde_json::{json, Value};

const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "request",
    "uid",
    "object",
    "oldObject",
    "operation",
    "namespace",
    "group",
    "version",
    "resource",
    "metadata",
    "name",
    "labels",
    "annotations",
    "spec",
    "containers",
    "initContainers",
    "image",
    "ports",
    "containerPort",
    "readinessProbe",
    "livenessProbe",
    "httpGet",
    "tcpSocket",
    "grpc",
    "port",
    "path",
    "securityContext",
    "hostNetwork",
    "volumes",
    "sidecar.istio.io/inject",
    "traffic.sidecar.istio.io/excludeOutboundPorts",
    "hosts",
    "http",
    "route",
    "destination",
    "host",
    "weight",
    "timeout",
    "dryRun",
];

fn judge(body: &[u8]) -> Result<(), TestCaseError> {
    let values = Values::default();
    let ctx = ReviewContext {
        values: &values,
        native_sidecars: false,
    };
    for answer in [review(body, &ctx), validate_review(body)] {
        let Ok((resp, _)) = answer else {
            // A malformed review: HTTP 400 with the error's message.
            continue;
        };
        let r = &resp["response"];
        prop_assert!(r["uid"].as_str().is_some_and(|u| !u.is_empty()), "{resp}");
        prop_assert!(r["allowed"].is_boolean(), "{resp}");
        if r["allowed"] == false {
            prop_assert!(
                r["status"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "a refusal without a message: {resp}"
            );
        }
        prop_assert_eq!(&resp["kind"], "AdmissionReview");
    }
    Ok(())
}

fn envelope(request: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

#[test]
fn arbitrary_reviews_never_panic_either_webhook() {
    let reviews = (json(KEYS, 6), "[a-z0-9-]{1,12}").prop_map(|(mut request, uid)| {
        if let Some(r) = request.as_object_mut() {
            r.insert("uid".into(), Value::String(uid));
        }
        serde_json::to_vec(&envelope(request)).unwrap()
    });
    check("injector: arbitrary reviews", 1500, reviews, |body| {
        judge(&body)
    });
}

#[test]
fn edited_real_reviews_never_panic_either_webhook() {
    let pod = json!({
        "metadata": {"name": "web", "labels": {"app": "web"},
                     "annotations": {"traffic.sidecar.istio.io/excludeOutboundPorts": "5432"}},
        "spec": {"containers": [{"name": "app", "image": "web:1", "ports": [{"containerPort": 8080}],
                  "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}}]},
    });
    let rule = json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {"hosts": ["reviews"], "http": [{"timeout": "5s",
                 "route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 100}]}]},
    });
    let corpus = [
        ("", "Pod", pod, "CREATE"),
        ("networking.istio.io", "VirtualService", rule, "UPDATE"),
    ]
    .into_iter()
    .map(|(group, kind, object, op)| {
        serde_json::to_string_pretty(&envelope(json!({
            "uid": "u", "kind": {"group": group, "version": "v1", "kind": kind},
            "namespace": "default", "operation": op, "object": object,
        })))
        .unwrap()
    })
    .collect();
    check("injector: edited reviews", 1500, mutated(corpus), |text| {
        judge(text.as_bytes())
    });
}
