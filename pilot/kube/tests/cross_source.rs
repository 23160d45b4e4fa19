//! The same objects through the directory source and through the
//! Kubernetes source (the fake API server serving them as JSON) give every
//! proxy identical xDS (canonical proto3 JSON, Settled details "Identical xDS").

mod support;

use std::{path::Path, sync::Arc, time::Duration};

use rudder_kube::{KubeOptions, KubeSource};
use rudder_model::{node::NodeMetadata, NodeId, Snapshot};
use rudder_registry::{directory::DirectorySource, Registry, RegistryOptions};
use serde_json::Value;
use support::{fake_api::FakeApi, registry_testdata};

/// Every YAML document of the scenario: bookinfo plus one variant rule.
fn scenario(variant: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for dir in ["bookinfo/platform", "bookinfo/rules"] {
        let mut entries: Vec<_> = std::fs::read_dir(registry_testdata(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            files.push((
                format!("{dir}/{}", p.file_name().unwrap().to_string_lossy()),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
    let v = format!("variants/{variant}");
    files.push((
        format!("bookinfo/rules/{variant}"),
        std::fs::read_to_string(registry_testdata(&v)).unwrap(),
    ));
    files
}

async fn via_directory(files: &[(String, String)]) -> Arc<Snapshot> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let (registry, _rx) = Registry::new(RegistryOptions::default());
    let _source = DirectorySource::spawn(dir.path().to_path_buf(), registry.handle()).unwrap();
    registry.handle().flush().await.unwrap()
}

/// What the API server would return: the object at its storage version.
fn as_stored(mut o: Value) -> Value {
    let av = o["apiVersion"].as_str().unwrap_or("").to_string();
    for group in ["networking.istio.io", "security.istio.io"] {
        if av.starts_with(&format!("{group}/")) {
            o["apiVersion"] = Value::String(format!("{group}/v1"));
        }
    }
    o
}

async fn via_kubernetes(files: &[(String, String)]) -> (Arc<Snapshot>, Vec<Value>) {
    let api = FakeApi::start().await;
    let mut objects = Vec::new();
    for (_, text) in files {
        for doc in serde_saphyr::from_str_multiple::<Value, Vec<Value>>(text).unwrap() {
            if doc.is_object() {
                api.put(as_stored(doc.clone()));
                objects.push(doc);
            }
        }
    }
    let (registry, _rx) = Registry::new(RegistryOptions::default());
    let source = KubeSource::spawn(api.client(), &KubeOptions::default(), registry.handle());
    tokio::time::timeout(Duration::from_secs(30), source.wait_synced())
        .await
        .expect("synced");
    (registry.handle().flush().await.unwrap(), objects)
}

fn xds(snapshot: &Arc<Snapshot>, pod: &Value) -> Value {
    let ip = pod["status"]["podIP"].as_str().unwrap().parse().unwrap();
    let id = NodeId::sidecar(
        ip,
        pod["metadata"]["name"].as_str().unwrap(),
        pod["metadata"]["namespace"].as_str().unwrap(),
    );
    let proxy = rudder_xds::resolve_proxy(snapshot, id, &NodeMetadata::default());
    rudder_xds::to_json(&rudder_xds::Generator::new(snapshot.clone()).generate(&proxy))
}

async fn identical_for(variant: &str, expect_in_rds: &str) {
    let files = scenario(variant);
    let dir = via_directory(&files).await;
    let (kube, objects) = via_kubernetes(&files).await;
    assert!(
        dir.diagnostics
            .iter()
            .all(|d| d.severity != rudder_model::Severity::Error),
        "{:?}",
        dir.diagnostics
    );
    let pods: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Pod").collect();
    assert!(pods.len() >= 6, "bookinfo pods");
    for pod in pods {
        let (a, b) = (xds(&dir, pod), xds(&kube, pod));
        assert!(
            a["cds"].as_object().is_some_and(|c| c.len() > 4),
            "non-trivial xDS for {}",
            pod["metadata"]["name"]
        );
        pretty_assertions::assert_eq!(
            a,
            b,
            "xDS for {} differs between sources ({variant})",
            pod["metadata"]["name"]
        );
    }
    let productpage = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "productpage-v1")
        .unwrap();
    let rds = xds(&kube, productpage)["rds"].to_string();
    assert!(
        rds.contains(expect_in_rds),
        "the variant rule is in productpage's routes ({expect_in_rds})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_rule_99_1_is_identical_from_both_sources() {
    identical_for(
        "reviews-99-1-route-rule.yaml",
        "outbound|9080|v2|reviews.default.svc.cluster.local",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jason_virtual_service_is_identical_from_both_sources() {
    identical_for("reviews-jason-v2.yaml", "end-user").await;
}

/// A RequestAuthentication (v1beta1, stored as v1) and an
/// AuthorizationPolicy on request principals and claims through both
/// sources: productpage's inbound chains verify JWTs and authorize on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_authentication_is_identical_from_both_sources() {
    identical_for("productpage-jwt.yaml", "reviews").await;
    let (kube, objects) = via_kubernetes(&scenario("productpage-jwt.yaml")).await;
    assert_eq!(kube.security.request_authentications.len(), 1);
    let pod = |name: &str| {
        objects
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap()
    };
    let lds = |p: &Value| xds(&kube, p)["lds"].to_string();
    let productpage = lds(pod("productpage-v1"));
    assert!(productpage.contains("envoy.filters.http.jwt_authn"));
    assert!(productpage.contains("\"issuer\":\"https://issuer.example\""));
    assert!(productpage.contains("groups"), "the claims condition");
    assert!(!lds(pod("reviews-v1")).contains("jwt_authn"), "selector");
}

/// A Sidecar through both sources: productpage is scoped to reviews alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_scoping_is_identical_from_both_sources() {
    identical_for("productpage-sidecar.yaml", "end-user").await;
    let (kube, objects) = via_kubernetes(&scenario("productpage-sidecar.yaml")).await;
    let pod = |name: &str| {
        objects
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap()
    };
    let outbound = |pod: &Value| -> Vec<String> {
        xds(&kube, pod)["cds"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("outbound|"))
            .cloned()
            .collect()
    };
    let scoped = outbound(pod("productpage-v1"));
    assert!(
        !scoped.is_empty()
            && scoped
                .iter()
                .all(|c| c.ends_with("|reviews.default.svc.cluster.local")),
        "{scoped:?}"
    );
    assert!(
        outbound(pod("reviews-v1"))
            .iter()
            .any(|c| c.contains("ratings")),
        "the Sidecar selects productpage only"
    );
}

#[test]
fn scenario_files_exist() {
    assert!(Path::new(&registry_testdata("bookinfo/platform/pods.yaml")).is_file());
}
