//! Goldens for ServiceEntry, WorkloadEntry and `outboundTrafficPolicy`:
//! YAML as a user writes it, through the store, down to the xDS the
//! productpage sidecar receives, each validated by `envoy --mode validate`.
//!
//! ```text
//!  testdata/egress/platform.yaml ─┐
//!  testdata/egress/<case>.yaml   ─┴► Store → Snapshot → Generator(productpage-v1)
//!                                    → to_json ══ testdata/egress_<case>.json
//! ```
//!
//! Each case also asserts the fields that carry its feature, so a careless
//! `REFRESH_GOLDEN=1` cannot hide a regression.

mod support;

use std::{path::PathBuf, sync::Arc};

use rudder_model::{NodeId, NodeMetadata, Severity, Snapshot};
use rudder_registry::{load::load_file, Batch, Store};
use serde_json::Value;

fn inputs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/egress")
}

/// platform.yaml + the case's file → a snapshot (each file its own scope,
/// as the directory source does); any validation error fails the test.
fn snapshot(case: &str) -> Arc<Snapshot> {
    let mut store = Store::new();
    for file in ["platform.yaml", &format!("{case}.yaml")] {
        let path = inputs().join(file);
        let loaded = load_file(&path).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert!(
            loaded.unsupported.is_empty(),
            "{case}: {:?}",
            loaded.unsupported
        );
        store.reset(
            &path.display().to_string(),
            Batch {
                objects: loaded.objects,
                rejected: loaded.rejected,
                problems: loaded.problems,
            },
        );
    }
    let snap = store.snapshot();
    let errors: Vec<String> = snap
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{case}: errors:\n{}", errors.join("\n"));
    Arc::new(snap)
}

/// The productpage sidecar's resources as `testdata/egress_<case>.json`
/// (consistency, version ledger and `envoy --mode validate` included).
fn golden(case: &str) -> Value {
    let snap = snapshot(case);
    let node = NodeId::sidecar("198.18.0.10".parse().unwrap(), "productpage-v1", "default");
    let proxy = rudder_xds::resolve_proxy(&snap, node, &NodeMetadata::default());
    support::golden(&format!("egress_{}", case.replace('-', "_")), &snap, &proxy)
}

fn cluster<'a>(j: &'a Value, name: &str) -> &'a Value {
    let c = &j["cds"][name];
    assert!(c.is_object(), "no cluster {name}");
    c
}

/// The capture listener's filter chain named `name`.
fn chain<'a>(j: &'a Value, name: &str) -> &'a Value {
    j["lds"]["virtual"]["filterChains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no chain {name}"))
}

fn lb_addresses(c: &Value) -> Vec<(String, u64)> {
    c["loadAssignment"]["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["lbEndpoints"].as_array().unwrap())
        .map(|e| {
            let a = &e["endpoint"]["address"]["socketAddress"];
            (
                a["address"].as_str().unwrap().to_string(),
                a["portValue"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The last virtual host of the port's route table.
fn catch_all(j: &Value, port: u16) -> &Value {
    j["rds"][port.to_string()]["virtualHosts"]
        .as_array()
        .unwrap_or_else(|| panic!("no route table {port}"))
        .last()
        .unwrap()
}

#[test]
fn service_entry_resolutions() {
    let j = golden("resolutions");
    // NONE: ORIGINAL_DST, no EDS; the wildcard TLS host is matched by SNI.
    let none = cluster(&j, "outbound|443||*.wild.example.com");
    assert_eq!(none["type"], "ORIGINAL_DST");
    assert_eq!(none["lbPolicy"], "CLUSTER_PROVIDED");
    assert!(j["eds"]["outbound|443||*.wild.example.com"].is_null());
    let tls = chain(&j, "outbound|443||*.wild.example.com|entry");
    assert_eq!(
        tls["filterChainMatch"]["serverNames"],
        serde_json::json!(["*.wild.example.com"])
    );
    assert!(tls["filterChainMatch"]["prefixRanges"].is_null());
    // A host without addresses on an HTTP port: by Host header in table 80,
    // its own name only (no namespace forms).
    let vh = j["rds"]["80"]["virtualHosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "plain.example.com:80")
        .expect("plain.example.com in table 80");
    assert_eq!(
        vh["domains"],
        serde_json::json!(["plain.example.com", "plain.example.com:80"])
    );
    assert_eq!(
        cluster(&j, "outbound|80||plain.example.com")["type"],
        "ORIGINAL_DST"
    );
    // STATIC with addresses: EDS, a VIP chain (TCP) and a VIP listener (HTTP).
    let st = cluster(&j, "outbound|5432||db.example.com");
    assert_eq!(st["type"], "EDS");
    assert!(
        st["transportSocket"].is_null(),
        "MESH_EXTERNAL: no auto mTLS"
    );
    let eds = &j["eds"]["outbound|8080||db.example.com"]["endpoints"];
    let eps: Vec<String> = eds
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["lbEndpoints"].as_array().unwrap())
        .map(|e| {
            let a = &e["endpoint"]["address"]["socketAddress"];
            format!("{}:{}", a["address"].as_str().unwrap(), a["portValue"])
        })
        .collect();
    assert_eq!(eps, ["203.0.113.11:28080", "203.0.113.10:18080"]);
    let weighted = eds
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["locality"]["zone"] == "zone1")
        .expect("the us-east/zone1 endpoint keeps its locality");
    assert_eq!(weighted["lbEndpoints"][0]["loadBalancingWeight"], 3);
    // Its address is a VIP: a listener per port, the TCP one a tcp_proxy.
    let pg = &j["lds"]["240.0.0.10_5432"];
    assert_eq!(pg["bindToPort"], false);
    assert_eq!(
        pg["filterChains"][0]["filters"][0]["typedConfig"]["cluster"],
        "outbound|5432||db.example.com"
    );
    assert!(j["lds"]["240.0.0.10_8080"].is_object());
    // DNS without endpoints: STRICT_DNS on the host; with endpoints: on theirs.
    let dns = cluster(&j, "outbound|443||api.example.com");
    assert_eq!(dns["type"], "STRICT_DNS");
    assert_eq!(lb_addresses(dns), [("api.example.com".to_string(), 443)]);
    let mirror = cluster(&j, "outbound|80||mirror.example.com");
    assert_eq!(mirror["type"], "STRICT_DNS");
    assert_eq!(
        lb_addresses(mirror),
        [
            ("eu.mirror.example.org".to_string(), 8080),
            ("us.mirror.example.org".to_string(), 80)
        ]
    );
    // CIDR addresses: the TCP port's chain matches the networks.
    let cidr = chain(&j, "outbound|6379||cache.example.com|entry");
    assert_eq!(
        cidr["filterChainMatch"]["prefixRanges"],
        serde_json::json!([
            {"addressPrefix": "10.40.0.0", "prefixLen": 16},
            {"addressPrefix": "192.0.2.0", "prefixLen": 24}
        ])
    );
    assert_eq!(
        cluster(&j, "outbound|6379||cache.example.com")["type"],
        "ORIGINAL_DST"
    );
    // DNS_ROUND_ROBIN: LOGICAL_DNS on its one endpoint.
    let rr = cluster(&j, "outbound|9000||rr.example.com");
    assert_eq!(rr["type"], "LOGICAL_DNS");
    assert_eq!(lb_addresses(rr), [("lb.example.org".to_string(), 9000)]);
    // The mesh-wide default stays ALLOW_ANY.
    assert_eq!(catch_all(&j, 80)["name"], "allow_any");
    assert_eq!(
        j["lds"]["virtual"]["defaultFilterChain"]["name"],
        "passthrough"
    );
}

#[test]
fn mesh_internal_service_entry_selects_workload_entries_with_mtls() {
    let j = golden("mesh-internal");
    let c = cluster(&j, "outbound|9090||vm-api.internal.example");
    assert_eq!(c["type"], "EDS");
    let tls = c["transportSocket"]["typedConfig"].to_string();
    assert!(
        tls.contains("spiffe://cluster.local/ns/default/sa/vm-api"),
        "{tls}"
    );
    assert!(
        tls.contains("spiffe://cluster.local/ns/vms/sa/legacy"),
        "{tls}"
    );
    assert!(
        tls.contains("outbound_.9090_._.vm-api.internal.example"),
        "{tls}"
    );
    let eds = j["eds"]["outbound|9090|v2|vm-api.internal.example"].to_string();
    assert!(eds.contains("10.20.0.6") && eds.contains("8081"), "{eds}");
    assert!(!eds.contains("10.20.0.5"), "{eds}");
    let eds = j["eds"]["outbound|9090|v1|vm-api.internal.example"].to_string();
    assert!(eds.contains("10.20.0.5") && eds.contains("8080"), "{eds}");
    assert!(eds.contains("zone2"), "{eds}");
}

#[test]
fn destination_rule_simple_tls_originates_tls_to_a_service_entry() {
    let j = golden("tls-origination");
    let c = cluster(&j, "outbound|80||payments.example.com");
    assert_eq!(c["type"], "STRICT_DNS");
    assert_eq!(lb_addresses(c), [("payments.example.com".to_string(), 443)]);
    let tls = &c["transportSocket"]["typedConfig"];
    assert_eq!(tls["sni"], "payments.example.com");
    let v = &tls["commonTlsContext"]["validationContext"];
    assert_eq!(
        v["trustedCa"]["filename"],
        "/etc/ssl/certs/ca-certificates.crt"
    );
    assert_eq!(
        v["matchTypedSubjectAltNames"][0]["matcher"]["exact"],
        "payments.example.com"
    );
    let vh = j["rds"]["80"]["virtualHosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "payments.example.com:80")
        .unwrap();
    let route = &vh["routes"][0]["route"];
    assert_eq!(route["cluster"], "outbound|80||payments.example.com");
    assert_eq!(route["timeout"], "3s");
    assert_eq!(route["retryPolicy"]["numRetries"], 2);
}

#[test]
fn registry_only_mesh_wide_blocks_unknown_destinations() {
    let j = golden("registry-only-mesh");
    let block = catch_all(&j, 80);
    assert_eq!(block["name"], "block_all");
    assert_eq!(block["routes"][0]["directResponse"]["status"], 502);
    let default = &j["lds"]["virtual"]["defaultFilterChain"];
    assert_eq!(default["name"], "BlackHoleCluster");
    assert!(default
        .to_string()
        .contains("\"cluster\":\"BlackHoleCluster\""));
    // The known host still routes.
    let known = chain(&j, "outbound|443||api.example.com|entry");
    assert_eq!(
        known["filterChainMatch"]["serverNames"],
        serde_json::json!(["api.example.com"])
    );
    assert!(j["rds"]["9080"].to_string().contains("block_all"));
}

#[test]
fn registry_only_per_sidecar_blocks_unknown_destinations() {
    let j = golden("registry-only-sidecar");
    assert_eq!(catch_all(&j, 9080)["name"], "block_all");
    assert_eq!(
        j["lds"]["virtual"]["defaultFilterChain"]["name"],
        "BlackHoleCluster"
    );
}
