//! The webhook over real HTTPS on loopback: AdmissionReview in, JSON patch out;
//! the patch applied to the original pod gives the golden pod; bad requests get
//! HTTP 400 with a clear message; the serving certificate is reloaded when its
//! files are replaced.

mod common;

use std::path::Path;

use base64::Engine;
use common::{install, pki, request, start};
use hyper::{Method, StatusCode};
use pretty_assertions::assert_eq;
use rudder_injector::Values;
use serde_json::{json, Value};

fn golden_docs(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/inject")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn review(uid: &str, kind: Value, namespace: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": kind,
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": object,
            "dryRun": false,
        }
    }))
    .unwrap()
}

fn pod_kind() -> Value {
    json!({"group": "", "version": "v1", "kind": "Pod"})
}

fn decode_patch(response: &Value) -> json_patch::Patch {
    assert_eq!(response["patchType"], "JSONPatch");
    let b64 = response["patch"].as_str().expect("patch is a string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("patch is base64");
    serde_json::from_slice(&bytes).expect("patch is a JSON Patch")
}

#[tokio::test]
async fn patch_applied_to_the_original_gives_the_golden_pod() {
    let p = pki("golden");
    let hook = start(&p, Values::default(), false).await;
    for (i, case) in ["plain-pod", "multi-container", "probes", "excluded-ports"]
        .iter()
        .enumerate()
    {
        let original = golden_docs(&format!("{case}.yaml")).remove(0);
        let golden = golden_docs(&format!("{case}.yaml.injected")).remove(0);
        let ns = original["metadata"]["namespace"]
            .as_str()
            .unwrap()
            .to_string();
        let uid = format!("uid-{i}");
        // HTTP/1.1 and HTTP/2 alternately: the API server may use either.
        let reply = request(
            hook.addr,
            &[&p.ca_pem],
            Method::POST,
            "/inject",
            review(&uid, pod_kind(), &ns, original.clone()),
            i % 2 == 1,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{case}: {}", reply.text());
        assert_eq!(
            reply.alpn.as_deref(),
            Some(if i % 2 == 1 {
                &b"h2"[..]
            } else {
                &b"http/1.1"[..]
            })
        );
        let review = reply.json();
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(review["kind"], "AdmissionReview");
        let response = &review["response"];
        assert_eq!(response["uid"], uid.as_str(), "{case}: uid must be echoed");
        assert_eq!(response["allowed"], true);
        let patch = decode_patch(response);
        let mut patched = original.clone();
        json_patch::patch(&mut patched, &patch)
            .unwrap_or_else(|e| panic!("{case}: patch does not apply: {e}"));
        assert_eq!(
            patched, golden,
            "{case}: patched pod differs from {case}.yaml.injected"
        );
    }
}

#[tokio::test]
async fn skipped_pods_and_other_kinds_are_allowed_without_patch() {
    let p = pki("skip");
    let hook = start(&p, Values::default(), false).await;
    let opted_out = golden_docs("opt-out.yaml").remove(0);
    let host_net = golden_docs("hostnetwork.yaml").remove(0);
    let already = golden_docs("already-injected.yaml").remove(0);
    let plain = golden_docs("plain-pod.yaml").remove(0);
    let deployment = golden_docs("deployment.yaml").remove(0);
    let cases = [
        ("opt-out", review("a", pod_kind(), "default", opted_out)),
        ("hostNetwork", review("b", pod_kind(), "default", host_net)),
        (
            "already injected",
            review("c", pod_kind(), "default", already),
        ),
        // The request's namespace decides, even when the pod's metadata has none.
        ("kube-system", review("d", pod_kind(), "kube-system", plain)),
        (
            "Deployment",
            review(
                "e",
                json!({"group": "apps", "version": "v1", "kind": "Deployment"}),
                "bookinfo",
                deployment,
            ),
        ),
        (
            "Service",
            review(
                "f",
                json!({"group": "", "version": "v1", "kind": "Service"}),
                "default",
                json!("not even an object"),
            ),
        ),
    ];
    for (name, body) in cases {
        let reply = request(
            hook.addr,
            &[&p.ca_pem],
            Method::POST,
            "/inject",
            body,
            false,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{name}: {}", reply.text());
        let r = &reply.json()["response"];
        assert_eq!(r["allowed"], true, "{name}");
        assert!(
            r.get("patch").is_none() && r.get("patchType").is_none(),
            "{name}: unexpected patch {r}"
        );
    }
}

#[tokio::test]
async fn native_sidecars_patch_puts_the_proxy_among_init_containers() {
    let p = pki("native");
    let hook = start(&p, Values::default(), true).await;
    let original = golden_docs("plain-pod.yaml").remove(0);
    let reply = request(
        hook.addr,
        &[&p.ca_pem],
        Method::POST,
        "/inject",
        review("n", pod_kind(), "default", original.clone()),
        false,
    )
    .await;
    let mut patched = original;
    json_patch::patch(&mut patched, &decode_patch(&reply.json()["response"])).unwrap();
    let inits: Vec<&str> = patched["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(inits, ["rudder-init", "rudder-proxy"]);
    assert_eq!(
        patched["spec"]["initContainers"][1]["restartPolicy"],
        "Always"
    );
    let containers: Vec<&str> = patched["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(containers, ["hello"]);
}

#[tokio::test]
async fn malformed_requests_get_400_with_a_clear_message() {
    let p = pki("bad");
    let hook = start(&p, Values::default(), false).await;
    let big = {
        let mut v = review(
            "big",
            pod_kind(),
            "default",
            json!({"spec": {"containers": []}}),
        );
        v.truncate(v.len() - 2);
        let mut s = String::from_utf8(v).unwrap();
        s.push_str(&format!(
            ",\"padding\":\"{}\"}}}}",
            "x".repeat(4 * 1024 * 1024)
        ));
        s.into_bytes()
    };
    let no_request = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec();
    let v1beta1 = br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}"#.to_vec();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "bad JSON",
            b"{\"apiVersion\": ".to_vec(),
            "request body is not valid JSON",
        ),
        (
            "not an object",
            b"[1,2,3]".to_vec(),
            "not an AdmissionReview: expected a JSON object, got a list",
        ),
        (
            "not a review",
            br#"{"apiVersion":"v1","kind":"Pod"}"#.to_vec(),
            "not an AdmissionReview: kind is \"Pod\", expected AdmissionReview",
        ),
        (
            "old apiVersion",
            v1beta1,
            "apiVersion is \"admission.k8s.io/v1beta1\", expected admission.k8s.io/v1",
        ),
        (
            "no request",
            no_request,
            "AdmissionReview field request: missing",
        ),
        (
            "no uid",
            review("", pod_kind(), "default", json!({})),
            "AdmissionReview field request.uid: missing or not a string",
        ),
        (
            "oversized",
            big,
            "request body is larger than 3145728 bytes",
        ),
        (
            "pod not an object",
            review("s", pod_kind(), "default", json!("a string")),
            "AdmissionReview field request.object: expected a Pod object, got a string",
        ),
        (
            "pod missing",
            review("m", pod_kind(), "default", Value::Null),
            "AdmissionReview field request.object: missing",
        ),
    ];
    for (name, body, message) in cases {
        let reply = request(
            hook.addr,
            &[&p.ca_pem],
            Method::POST,
            "/inject",
            body,
            false,
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            reply.text()
        );
        assert!(
            reply.text().contains(message),
            "{name}: got {:?}, want {message:?}",
            reply.text()
        );
    }
    // The server survived all of that.
    let health = request(
        hook.addr,
        &[&p.ca_pem],
        Method::GET,
        "/healthz",
        vec![],
        false,
    )
    .await;
    assert_eq!(
        (health.status, health.text().as_str()),
        (StatusCode::OK, "ok\n")
    );
    let get = request(
        hook.addr,
        &[&p.ca_pem],
        Method::GET,
        "/inject",
        vec![],
        false,
    )
    .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    let other = request(
        hook.addr,
        &[&p.ca_pem],
        Method::POST,
        "/mutate",
        vec![],
        false,
    )
    .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_pod_with_an_impossible_annotation_is_denied_naming_it() {
    let p = pki("deny");
    let hook = start(&p, Values::default(), false).await;
    let pod = json!({
        "metadata": {"name": "x", "annotations": {"traffic.sidecar.istio.io/excludeOutboundPorts": "mysql"}},
        "spec": {"containers": [{"name": "app", "image": "app"}]},
    });
    let reply = request(
        hook.addr,
        &[&p.ca_pem],
        Method::POST,
        "/inject",
        review("d", pod_kind(), "default", pod),
        false,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let r = &reply.json()["response"];
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 400);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("traffic.sidecar.istio.io/excludeOutboundPorts")
            && msg.contains("\"mysql\" is not a port"),
        "{msg}"
    );
}

/// The validating webhook as the API server calls it: an invalid
/// VirtualService is refused with the line `pilot validate` prints for the
/// same file (without the file), a valid one is allowed, over h2 and HTTP/1.1.
#[tokio::test]
async fn validate_refuses_an_invalid_rule_with_pilot_validates_message() {
    let p = pki("validate");
    let hook = start(&p, Values::default(), false).await;
    let rule = |weight: i64| {
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "bookinfo"},
            "spec": {"hosts": ["reviews"], "http": [{
                "timeout": "5x",
                "route": [{"destination": {"host": "reviews"}, "weight": weight}],
            }]},
        })
    };
    let vs_kind =
        json!({"group": "networking.istio.io", "version": "v1", "kind": "VirtualService"});

    // What `pilot validate` says about the same object in a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reviews.yaml");
    std::fs::write(&file, serde_json::to_string(&rule(-1)).unwrap()).unwrap();
    let report = rudder_registry::validate::validate_paths(std::slice::from_ref(&file));
    let prefix = format!("{}:1: ", file.display());
    let want: Vec<String> = report
        .lines()
        .iter()
        .filter(|l| l.starts_with("error: "))
        .map(|l| l.replacen(&prefix, "", 1))
        .collect();
    assert_eq!(
        want.len(),
        2,
        "a bad timeout and a negative weight: {want:?}"
    );

    for h2 in [true, false] {
        let reply = request(
            hook.addr,
            &[&p.ca_pem],
            Method::POST,
            "/validate",
            review("v", vs_kind.clone(), "bookinfo", rule(-1)),
            h2,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        let r = &reply.json()["response"];
        assert_eq!(
            (r["uid"].as_str(), &r["allowed"]),
            (Some("v"), &json!(false))
        );
        assert_eq!(r["status"]["message"], want.join("\n"));
    }

    let mut good = rule(100);
    good["spec"]["http"][0]["timeout"] = json!("5s");
    let reply = request(
        hook.addr,
        &[&p.ca_pem],
        Method::POST,
        "/validate",
        review("ok", vs_kind, "bookinfo", good),
        true,
    )
    .await;
    assert_eq!(reply.json()["response"]["allowed"], true);

    let reply = request(
        hook.addr,
        &[&p.ca_pem],
        Method::GET,
        "/validate",
        vec![],
        true,
    )
    .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn replaced_certificate_files_are_served_on_the_next_connection() {
    let first = pki("first");
    let second = pki("second");
    let hook = start(&first, Values::default(), false).await;
    let cas = [first.ca_pem.as_str(), second.ca_pem.as_str()];
    let before = request(hook.addr, &cas, Method::GET, "/healthz", vec![], false).await;
    assert_eq!(before.peer_cert, first.cert_der);

    install(hook.dir.path(), &second);
    let after = request(hook.addr, &cas, Method::GET, "/healthz", vec![], false).await;
    assert_eq!(after.status, StatusCode::OK);
    assert_eq!(
        after.peer_cert, second.cert_der,
        "the new certificate must be served after the files changed"
    );

    // A broken replacement (key of another pair) keeps the last good one.
    std::fs::write(hook.dir.path().join("tls.key"), &first.key_pem).unwrap();
    let broken = request(hook.addr, &cas, Method::GET, "/healthz", vec![], false).await;
    assert_eq!(broken.peer_cert, second.cert_der);
}
