//! YAML-driven goldens: what a user writes, through the same path `pilot serve`
//! takes, down to the xDS a sidecar receives.
//!
//! ```text
//!  testdata/golden/inputs/platform.yaml ─┐  load_file → Store (one scope per file)
//!  testdata/golden/inputs/<case>.yaml  ──┴► → Snapshot → Generator(productpage-v1)
//!                                           → to_json ══ testdata/golden/<case>.json
//!                                           → to_static_bootstrap → envoy --mode validate
//! ```
//!
//! pilot/xds has goldens built from model fixtures; these start one step
//! earlier, from YAML, so they also pin down how the registry compiles each
//! rule. `REFRESH_GOLDEN=1` rewrites the files. Each case also asserts the
//! fields that carry its feature, so a careless refresh cannot hide a
//! regression, and the two spellings of the same rule (v1alpha2 RouteRule and
//! VirtualService + DestinationRule) must give the same routes.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rudder_model::{NodeId, NodeMetadata, Severity, Snapshot};
use rudder_registry::{load::load_file, Batch, Store};
use rudder_xds::{
    check_consistency,
    fixtures::{envoy_validate_bootstrap, VersionLedger},
    to_json, to_static_bootstrap, Generator, ProxyResources,
};
use serde_json::{json, Value};

const REVIEWS: &str = "reviews.default.svc.cluster.local";
const RATINGS: &str = "ratings.default.svc.cluster.local";

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden")
}

/// platform.yaml + the case's rule file → a snapshot, as `pilot serve` builds
/// it (each file its own scope). Any validation error fails the test: every
/// input here is meant to be valid.
fn snapshot(case: &str) -> Arc<Snapshot> {
    let mut store = Store::new();
    for file in ["platform.yaml", &format!("{case}.yaml")] {
        let path = testdata().join("inputs").join(file);
        let loaded = load_file(&path).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert!(
            loaded.unsupported.is_empty(),
            "{case}: {:?}",
            loaded.unsupported
        );
        let scope = path.display().to_string();
        store.reset(
            &scope,
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
    assert!(
        errors.is_empty(),
        "{case}: validation errors:\n{}",
        errors.join("\n")
    );
    Arc::new(snap)
}

/// The resources of the productpage sidecar, found by its node id alone (the
/// store supplies its namespace and labels, as when Envoy connects).
fn productpage(snapshot: &Arc<Snapshot>) -> ProxyResources {
    let node = NodeId::sidecar("198.18.0.10".parse().unwrap(), "productpage-v1", "default");
    let proxy = rudder_xds::resolve_proxy(snapshot, node, &NodeMetadata::default());
    assert_eq!(
        proxy.labels.get("app").map(String::as_str),
        Some("productpage"),
        "pod not resolved from the store"
    );
    Generator::new(snapshot.clone()).generate(&proxy)
}

/// Generates, checks consistency, compares with (or with REFRESH_GOLDEN=1
/// rewrites) `testdata/golden/<case>.json`, and has Envoy validate it.
fn golden(case: &str) -> Value {
    let res = productpage(&snapshot(case));
    if let Err(problems) = check_consistency(&res) {
        panic!("{case}: inconsistent resources:\n{}", problems.join("\n"));
    }
    // Same version ⇔ same canonical JSON, against every case run before.
    static LEDGER: std::sync::Mutex<Option<VersionLedger>> = std::sync::Mutex::new(None);
    let clash = LEDGER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(VersionLedger::default)
        .record(case, &res);
    assert!(clash.is_empty(), "versions:\n{}", clash.join("\n"));
    let json = to_json(&res);
    let text = serde_json::to_string_pretty(&json).unwrap() + "\n";
    let path = testdata().join(format!("{case}.json"));
    rudder_test_support::assert_golden(&path, &text);
    envoy_validate(case, &res);
    json
}

/// `envoy --mode validate` on the resources as a static bootstrap. Skips
/// (with a message) when Envoy is missing, unless CI=true.
fn envoy_validate(case: &str, res: &ProxyResources) {
    let Some(bin) = rudder_test_support::envoy_bin(case) else {
        return;
    };
    let bootstrap = to_static_bootstrap(res).unwrap_or_else(|e| panic!("{case}: {e}"));
    if let Err(text) = envoy_validate_bootstrap(&bin, case, &bootstrap) {
        panic!("{case}: Envoy rejects the generated config:\n{text}");
    }
}

/// The routes of `host`'s virtual host for port 9080: in its own route
/// configuration `<host>:9080` (a service with a VIP), else in the port's.
fn routes<'a>(j: &'a Value, host: &str) -> &'a [Value] {
    let own = &j["rds"][format!("{host}:9080")];
    let table = if own.is_null() {
        &j["rds"]["9080"]
    } else {
        own
    };
    let vhosts = table["virtualHosts"]
        .as_array()
        .expect("route table 9080 has virtual hosts");
    let vh = vhosts
        .iter()
        .find(|v| v["name"] == format!("{host}:9080"))
        .unwrap_or_else(|| panic!("no virtual host {host}:9080"));
    vh["routes"].as_array().expect("routes")
}

fn cluster(subset: &str, host: &str) -> String {
    format!("outbound|9080|{subset}|{host}")
}

/// `(cluster, weight)` of a route's weighted clusters, or of its single cluster (weight 100).
fn weights(route: &Value) -> Vec<(String, u64)> {
    let r = &route["route"];
    match r["weightedClusters"]["clusters"].as_array() {
        Some(cs) => cs
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["weight"].as_u64().unwrap_or(0),
                )
            })
            .collect(),
        None => vec![(
            r["cluster"]
                .as_str()
                .expect("route has a cluster")
                .to_string(),
            100,
        )],
    }
}

/// What decides where a request goes: each route's match and destinations
/// (names, metadata and decorators, which record the source rule, left out).
fn routing(j: &Value, host: &str) -> Vec<(Value, Vec<(String, u64)>)> {
    routes(j, host)
        .iter()
        .map(|r| (r["match"].clone(), weights(r)))
        .collect()
}

#[test]
fn split_99_1_route_rule_and_virtual_service_route_identically() {
    let rr = golden("split-99-1-route-rule");
    let vs = golden("split-99-1-virtual-service");
    let want = vec![(cluster("v1", REVIEWS), 99), (cluster("v3", REVIEWS), 1)];
    let rr_routes = routes(&rr, REVIEWS);
    let vs_routes = routes(&vs, REVIEWS);
    assert_eq!(rr_routes.len(), 1, "{rr_routes:?}");
    assert_eq!(weights(&rr_routes[0]), want, "RouteRule form");
    assert_eq!(weights(&vs_routes[0]), want, "VirtualService form");
    // Not only the weights: the whole weighted-cluster block is the same.
    assert_eq!(
        rr_routes[0]["route"]["weightedClusters"],
        vs_routes[0]["route"]["weightedClusters"]
    );
    assert_eq!(routing(&rr, REVIEWS), routing(&vs, REVIEWS));
    // Both forms give the same clusters and endpoints, so the split means the same pods.
    assert_eq!(rr["cds"], vs["cds"]);
    assert_eq!(rr["eds"], vs["eds"]);
    let v3 = &vs["eds"][cluster("v3", REVIEWS)]["endpoints"][0]["lbEndpoints"];
    assert_eq!(
        v3.as_array().map(Vec::len),
        Some(1),
        "v3 subset holds exactly reviews-v3: {v3}"
    );
    assert_eq!(
        v3[0]["endpoint"]["address"]["socketAddress"]["address"],
        "198.18.0.23"
    );
}

#[test]
fn jason_goes_to_v2_in_both_forms() {
    let rr = golden("jason-v2-route-rule");
    let vs = golden("jason-v2-virtual-service");
    for (form, j) in [("RouteRule", &rr), ("VirtualService", &vs)] {
        let rs = routes(j, REVIEWS);
        assert_eq!(
            rs.len(),
            2,
            "{form}: a jason route, then the default: {rs:?}"
        );
        assert_eq!(
            rs[0]["match"]["headers"],
            json!([{"name": "end-user", "stringMatch": {"exact": "jason"}}]),
            "{form}"
        );
        assert_eq!(
            weights(&rs[0]),
            vec![(cluster("v2", REVIEWS), 100)],
            "{form}"
        );
        assert!(
            rs[1]["match"].get("headers").is_none(),
            "{form}: the default route matches everyone"
        );
        assert_eq!(
            weights(&rs[1]),
            vec![(cluster("v1", REVIEWS), 100)],
            "{form}"
        );
    }
    assert_eq!(routing(&rr, REVIEWS), routing(&vs, REVIEWS));
}

#[test]
fn split_50_50() {
    let j = golden("split-50-50");
    let rs = routes(&j, REVIEWS);
    assert_eq!(
        weights(&rs[0]),
        vec![(cluster("v1", REVIEWS), 50), (cluster("v3", REVIEWS), 50)]
    );
}

#[test]
fn ratings_delay_fault_for_jason_only() {
    let j = golden("ratings-delay");
    let rs = routes(&j, RATINGS);
    assert_eq!(rs.len(), 2);
    let fault = &rs[0]["typedPerFilterConfig"]["envoy.filters.http.fault"];
    assert_eq!(fault["delay"]["fixedDelay"], "7s", "{fault}");
    assert_eq!(
        fault["delay"]["percentage"]["numerator"], 1_000_000,
        "100% as parts per million: {fault}"
    );
    assert_eq!(rs[0]["match"]["headers"][0]["name"], "end-user");
    assert!(
        rs[1].get("typedPerFilterConfig").is_none(),
        "no fault for everyone else: {}",
        rs[1]
    );
    // The fault filter must be in the HCM for the per-route config to act.
    let text = j["lds"].to_string();
    assert!(
        text.contains("envoy.filters.http.fault"),
        "no fault filter in any listener"
    );
}

#[test]
fn retries_and_timeout() {
    let j = golden("retries-timeout");
    let r = &routes(&j, REVIEWS)[0]["route"];
    assert_eq!(r["cluster"], cluster("v2", REVIEWS));
    assert_eq!(r["timeout"], "0.500s");
    assert_eq!(r["retryPolicy"]["numRetries"], 3);
    assert_eq!(r["retryPolicy"]["perTryTimeout"], "2s");
    assert_eq!(
        r["retryPolicy"]["retryOn"],
        "gateway-error,connect-failure,refused-stream"
    );
}

#[test]
fn mirror_to_v2() {
    let j = golden("mirror");
    let r = &routes(&j, REVIEWS)[0]["route"];
    assert_eq!(r["cluster"], cluster("v1", REVIEWS));
    let mirrors = r["requestMirrorPolicies"]
        .as_array()
        .expect("a mirror policy");
    assert_eq!(mirrors.len(), 1);
    assert_eq!(mirrors[0]["cluster"], cluster("v2", REVIEWS));
    assert_eq!(
        mirrors[0]["runtimeFraction"]["defaultValue"]["numerator"], 1_000_000,
        "{}",
        mirrors[0]
    );
}

#[test]
fn all_v1() {
    let j = golden("all-v1");
    for host in [REVIEWS, RATINGS] {
        assert_eq!(
            routing(&j, host)
                .iter()
                .map(|r| r.1.clone())
                .collect::<Vec<_>>(),
            vec![vec![(cluster("v1", host), 100)]]
        );
    }
    // Services without a rule keep default routing to the whole service.
    let pp = routes(&j, "productpage.default.svc.cluster.local");
    assert_eq!(
        weights(&pp[0]),
        vec![(
            "outbound|9080||productpage.default.svc.cluster.local".to_string(),
            100
        )]
    );
}
