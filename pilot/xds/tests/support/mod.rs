//! Shared by the integration tests: the bookinfo-like fixture, golden files and
//! `envoy --mode validate`.
#![allow(dead_code)]

use std::{path::PathBuf, process::Command, sync::Arc};

use prost::Message;
use rudder_model::{Proxy, RouteTable, Snapshot, TrafficPolicy};
use rudder_xds::{
    check_consistency, fixtures::*, to_json, to_static_bootstrap, Generator, ProxyResources,
};
use serde_json::Value;

pub const NS: &str = "default";

pub fn host(name: &str) -> String {
    fqdn(name, NS)
}

/// productpage → reviews (v1, v2, v3) → ratings; mysql over TCP; a sleep client.
pub fn bookinfo() -> SnapshotBuilder {
    SnapshotBuilder::new()
        .service(mk_service(
            "productpage",
            NS,
            "198.19.0.10",
            vec![mk_port("http", 9080, 9080)],
            &[("app", "productpage")],
        ))
        .service(mk_service(
            "reviews",
            NS,
            "198.19.0.11",
            vec![mk_port("http", 9080, 9080)],
            &[("app", "reviews")],
        ))
        .service(mk_service(
            "ratings",
            NS,
            "198.19.0.12",
            vec![mk_port("http", 9080, 9080)],
            &[("app", "ratings")],
        ))
        .service(mk_service(
            "mysql",
            NS,
            "198.19.0.13",
            vec![mk_port("tcp-mysql", 3306, 3306)],
            &[("app", "mysql")],
        ))
        .pod(mk_pod(
            "productpage-v1",
            NS,
            "198.18.0.10",
            &[("app", "productpage"), ("version", "v1")],
        ))
        .pod(mk_pod(
            "reviews-v1",
            NS,
            "198.18.0.11",
            &[("app", "reviews"), ("version", "v1")],
        ))
        .pod(mk_pod(
            "reviews-v2",
            NS,
            "198.18.0.12",
            &[("app", "reviews"), ("version", "v2")],
        ))
        .pod(mk_pod(
            "reviews-v3",
            NS,
            "198.18.0.13",
            &[("app", "reviews"), ("version", "v3")],
        ))
        .pod(mk_pod(
            "ratings-v1",
            NS,
            "198.18.0.14",
            &[("app", "ratings"), ("version", "v1")],
        ))
        .pod(mk_pod(
            "mysql-v1",
            NS,
            "198.18.0.15",
            &[("app", "mysql"), ("version", "v1")],
        ))
        .pod(mk_pod(
            "mysql-v2",
            NS,
            "198.18.0.16",
            &[("app", "mysql"), ("version", "v2")],
        ))
        .pod(mk_pod("sleep", NS, "198.18.0.20", &[("app", "sleep")]))
}

/// Bookinfo with subsets v1..v3 on reviews and `tables` added.
pub fn with_reviews_rules(tables: Vec<RouteTable>) -> Arc<Snapshot> {
    let mut b = bookinfo().policy(mk_policy(
        NS,
        &host("reviews"),
        &["v1", "v2", "v3"],
        TrafficPolicy::default(),
    ));
    for t in tables {
        b = b.route_table(t);
    }
    b.build()
}

/// A VirtualService for reviews with these HTTP routes.
pub fn reviews_vs(http: Vec<rudder_model::HttpRoute>) -> RouteTable {
    mk_route_table(NS, "reviews", &[&host("reviews")], http, vec![])
}

pub fn proxy(snapshot: &Snapshot, pod: &str) -> Proxy {
    mk_proxy(snapshot, NS, pod)
}

pub fn generate(snapshot: &Arc<Snapshot>, proxy: &Proxy) -> ProxyResources {
    Generator::new(snapshot.clone()).generate(proxy)
}

/// Generates, checks consistency, compares with `testdata/<case>.json`
/// (rewritten with REFRESH_GOLDEN=1), validates with Envoy; returns the JSON.
pub fn golden(case: &str, snapshot: &Arc<Snapshot>, proxy: &Proxy) -> Value {
    let res = generate(snapshot, proxy);
    if let Err(problems) = check_consistency(&res) {
        panic!("{case}: inconsistent resources:\n{}", problems.join("\n"));
    }
    let json = to_json(&res);
    let text = serde_json::to_string_pretty(&json).unwrap() + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(format!("{case}.json"));
    if std::env::var("REFRESH_GOLDEN").is_ok_and(|v| v == "1" || v == "true") {
        std::fs::write(&path, &text).unwrap();
    } else {
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with REFRESH_GOLDEN=1 to create it)",
                path.display()
            )
        });
        pretty_assertions::assert_eq!(
            want,
            text,
            "{case}: golden differs (REFRESH_GOLDEN=1 to accept)"
        );
    }
    envoy_validate(case, &res);
    json
}

/// The Envoy binary, or `None` (skip) when it is missing outside CI.
pub fn envoy_bin() -> Option<PathBuf> {
    let bin = PathBuf::from(
        std::env::var("ENVOY_BIN").unwrap_or_else(|_| "/opt/rudder/bin/envoy".into()),
    );
    if bin.is_file() {
        return Some(bin);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "Envoy not found at {} (set ENVOY_BIN); required under CI=true",
            bin.display()
        );
    }
    eprintln!(
        "skipping envoy --mode validate: no Envoy at {} (set ENVOY_BIN)",
        bin.display()
    );
    None
}

/// Runs `envoy --mode validate` on the resources as a static bootstrap.
pub fn envoy_validate(case: &str, res: &ProxyResources) {
    if let Some(Err(text)) = envoy_check(case, res) {
        panic!("{case}: Envoy rejects the generated config:\n{text}");
    }
}

/// `envoy --mode validate`: `None` when Envoy is missing (outside CI),
/// else `Ok` or Envoy's complaint.
pub fn envoy_check(case: &str, res: &ProxyResources) -> Option<Result<(), String>> {
    let bin = envoy_bin()?;
    let bootstrap = to_static_bootstrap(res).unwrap_or_else(|e| panic!("{case}: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{case}.pb"));
    std::fs::write(&file, bootstrap.encode_to_vec()).unwrap();
    let out = Command::new(&bin)
        .args(["--mode", "validate", "--log-level", "error", "-c"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(if out.status.success() && text.contains(" OK") {
        Ok(())
    } else {
        Err(text)
    })
}

/// The routes of a virtual host in an outbound route configuration.
pub fn vhost_routes<'a>(json: &'a Value, port: u16, host: &str) -> &'a Vec<Value> {
    let vhosts = json["rds"][port.to_string()]["virtualHosts"]
        .as_array()
        .expect("route config has virtual hosts");
    let vh = vhosts
        .iter()
        .find(|v| v["name"] == format!("{host}:{port}"))
        .unwrap_or_else(|| panic!("no vhost {host}"));
    vh["routes"].as_array().expect("routes")
}

/// The filter chain of the `virtual` listener with this name.
pub fn chain<'a>(json: &'a Value, listener: &str, name: &str) -> &'a Value {
    json["lds"][listener]["filterChains"]
        .as_array()
        .expect("filter chains")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no chain {name} in {listener}"))
}
