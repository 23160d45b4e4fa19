//! Contour's HTTPProxy and Emissary's Mapping on a cluster (issue 16,
//! item 6): watched from the API server (an HTTPProxy's class annotations
//! kept through trimming) and served at the ingress gateway; one of another
//! class is left alone with a warning.

mod support;

use std::time::Duration;

use rudder_kube::{KubeOptions, KubeRuntime};
use rudder_registry::{Registry, RegistryOptions};
use serde_json::{json, Value};
use support::{fake_api::FakeApi, namespace, service};

fn httpproxy(name: &str, annotations: Value) -> Value {
    json!({"apiVersion": "projectcontour.io/v1", "kind": "HTTPProxy",
           "metadata": {"name": name, "namespace": "default", "annotations": annotations},
           "spec": {"virtualhost": {"fqdn": format!("{name}.example.com")},
                    "routes": [{"services": [{"name": "reviews", "port": 9080}]}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httpproxies_and_mappings_are_watched_and_served() {
    let api = FakeApi::start().await;
    api.put(namespace("default"));
    api.put(service("reviews", "198.19.0.12"));
    api.put(httpproxy(
        "shop",
        json!({"projectcontour.io/ingress.class": "rudder",
               "kubectl.kubernetes.io/last-applied-configuration": "{}"}),
    ));
    api.put(httpproxy(
        "other",
        json!({"kubernetes.io/ingress.class": "contour"}),
    ));
    api.put(
        json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Mapping",
                   "metadata": {"name": "quote", "namespace": "default"},
                   "spec": {"hostname": "quote.example.com", "prefix": "/backend/",
                            "service": "reviews:9080"}}),
    );

    let (registry, snapshots) = Registry::new(RegistryOptions::default());
    let runtime = KubeRuntime::with_client(
        api.client(),
        registry.handle(),
        registry.diagnostics(),
        &KubeOptions::default(),
    );
    tokio::time::timeout(Duration::from_secs(30), runtime.wait_synced())
        .await
        .expect("synced");
    registry.handle().flush().await.expect("build");

    let snap = snapshots.borrow().clone();
    let mut gateways: Vec<String> = snap.gateways.iter().map(|g| g.qualified_name()).collect();
    gateways.sort();
    assert_eq!(
        gateways,
        [
            "rudder-system/emissary-mappings",
            "rudder-system/shop-httpproxy-default"
        ]
    );
    for host in ["shop.example.com", "quote.example.com"] {
        assert!(
            snap.gateway_route_tables
                .iter()
                .any(|t| t.hosts.iter().any(|h| h.as_str() == host)),
            "{host} is served"
        );
    }
    assert!(
        snap.diagnostics
            .iter()
            .any(|d| d.object == "HTTPProxy default/other"
                && d.message.contains("kubernetes.io/ingress.class: contour")),
        "{:?}",
        snap.diagnostics
    );
}
