//! The istioctl-like commands against a running local mesh (bookinfo, real
//! Envoys in network namespaces): `proxy-status` (golden, with the ingress
//! gateway deliberately NACKing a route Envoy rejects), `proxy-status POD`
//! (pilot's config matches the sidecar's Envoy; the NACKing gateway's routes
//! do not), `proxy-config` (the bookinfo clusters in the short table, `-o
//! json` parses), `version`, and `mesh load --from` with the names `mesh
//! status` prints. `REFRESH_GOLDEN=1` rewrites the golden.
//!
//! The NACK is a real one: a VirtualService bound to the gateway only, with
//! a header regex whose RE2 program exceeds Envoy's default limit (pilot
//! accepts it, Envoy refuses the whole RouteConfiguration and keeps its
//! previous one), so exactly one proxy is STALE.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Mesh;

fn text(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "rudder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Versions, nonces and the Envoy version out of proxy-status output.
fn normalize(s: &str) -> String {
    s.lines()
        .map(|l| {
            let mut l = l.to_string();
            if let Some(i) = l.find("(nonce ") {
                let end = l[i..].find("):").map_or(l.len(), |j| i + j + 1);
                l.replace_range(i..end, "(nonce <nonce>, keeps version <version>)");
            }
            if let Some((head, last)) = l.rsplit_once(' ') {
                if !last.is_empty() && last.chars().all(|c| c.is_ascii_digit() || c == '.') {
                    l = format!("{head} <envoy>");
                }
            }
            l + "\n"
        })
        .collect()
}

#[test]
fn proxy_status_config_and_version_against_a_local_mesh() {
    if !common::prerequisites("proxy_status_config_and_version_against_a_local_mesh") {
        return;
    }
    let mesh = Mesh::up(7, &[]);

    // Everything in sync after `up`.
    let status = text(&mesh.cmd(&["proxy-status"]));
    assert_eq!(
        status.lines().count(),
        8,
        "7 proxies and the header:\n{status}"
    );
    assert_eq!(status.matches("SYNCED").count(), 28, "{status}");

    // pilot's config equals the sidecar's Envoy's.
    let diff = text(&mesh.cmd(&["proxy-status", "default/productpage-v1-0"]));
    assert_eq!(diff, "Clusters Match\nListeners Match\nRoutes Match\n");

    // One proxy NACKs: the gateway's RDS is STALE (NACK), with Envoy's error.
    let rule = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/nack-gateway-route.yaml");
    let out = mesh.cmd(&["mesh", "apply", rule.to_str().unwrap()]);
    assert!(out.status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let s = text(&mesh.cmd(&["proxy-status"]));
        if s.contains("STALE (NACK)") && s.matches("SYNCED").count() == 27 {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no settled NACK after 60 s:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let status = normalize(&status);
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/proxy-status-nack.golden");
    if std::env::var_os("REFRESH_GOLDEN").is_some() {
        std::fs::write(&golden, &status).unwrap();
    }
    let want = std::fs::read_to_string(&golden).expect("golden (REFRESH_GOLDEN=1 writes it)");
    pretty_assertions::assert_eq!(status, want);

    // The NACKing gateway: routes differ (pilot has the rejected vhost, Envoy not).
    let diff = text(&mesh.cmd(&["proxy-status", "rudder-ingressgateway"]));
    assert!(
        diff.starts_with("Clusters Match\nListeners Match\nRoutes Don't Match\n--- Pilot Routes\n+++ Envoy Routes (rudder-system/rudder-ingressgateway-0)\n"),
        "{diff}"
    );
    assert!(
        diff.contains("-                      \"regex\": \"^jason[0-9]{200}$\""),
        "{diff}"
    );
    // Sidecars are unaffected.
    let diff = text(&mesh.cmd(&["proxy-status", "reviews-v1-0.default"]));
    assert_eq!(diff, "Clusters Match\nListeners Match\nRoutes Match\n");

    // proxy-config: the bookinfo clusters in istioctl's table; JSON parses.
    let clusters = text(&mesh.cmd(&["proxy-config", "clusters", "productpage"]));
    assert!(clusters.starts_with("SERVICE FQDN "), "{clusters}");
    for svc in ["details", "productpage", "ratings", "reviews"] {
        let fqdn = format!("{svc}.default.svc.cluster.local");
        assert!(
            clusters.lines().any(|l| l.starts_with(&fqdn)
                && l.contains(" 9080 ")
                && l.contains(" outbound ")
                && l.contains(" EDS")),
            "{fqdn} missing:\n{clusters}"
        );
    }
    assert!(
        clusters.lines().any(|l| l.contains(" v3 ")),
        "reviews' subsets: {clusters}"
    );
    let json: serde_json::Value = serde_json::from_slice(
        &mesh
            .cmd(&[
                "proxy-config",
                "clusters",
                "default/productpage-v1-0",
                "-o",
                "json",
            ])
            .stdout,
    )
    .expect("-o json parses");
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"outbound|9080|v2|reviews.default.svc.cluster.local"),
        "{names:?}"
    );
    let listeners = text(&mesh.cmd(&["proxy-config", "listeners", "productpage"]));
    assert!(
        listeners.contains("Route: reviews.default.svc.cluster.local:9080"),
        "{listeners}"
    );
    let routes = text(&mesh.cmd(&["proxy-config", "routes", "productpage", "-o", "yaml"]));
    assert!(
        routes.contains("reviews.default.svc.cluster.local:9080"),
        "{routes}"
    );
    let reviews_v2 = mesh.pod("reviews-v2");
    let endpoints = text(&mesh.cmd(&["proxy-config", "endpoints", "productpage"]));
    assert!(
        endpoints
            .lines()
            .any(|l| l.starts_with(&format!("{}:9080", reviews_v2.ip))
                && l.contains("HEALTHY")
                && l.ends_with("outbound|9080|v2|reviews.default.svc.cluster.local")),
        "{endpoints}"
    );
    let secret = text(&mesh.cmd(&["proxy-config", "secret", "productpage"]));
    assert!(
        secret
            .lines()
            .any(|l| l.contains("Cert Chain") && l.contains("ACTIVE     true")),
        "{secret}"
    );
    let bootstrap: serde_json::Value = serde_json::from_str(&text(&mesh.cmd(&[
        "proxy-config",
        "bootstrap",
        "productpage",
    ])))
    .unwrap();
    assert!(bootstrap["bootstrap"]["node"]["id"]
        .as_str()
        .unwrap_or("")
        .contains("productpage-v1-0.default"));

    // version: client, pilot, proxies.
    let version = text(&mesh.cmd(&["version"]));
    assert!(version.contains("client version: 0.1.0"), "{version}");
    assert!(
        version.contains("control plane version: 0.1.0"),
        "{version}"
    );
    assert!(
        version.contains("data plane version: envoy/1.40") && version.contains("(7 proxies)"),
        "{version}"
    );

    // analyze without paths: the running mesh's configuration (the NACKed
    // rule is valid for Istio's analyzers: its host and subsets exist).
    let out = mesh.cmd(&["analyze"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Analyzing the configuration of local mesh"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("Error ["),
        "no errors in the running mesh's config"
    );

    // Names as `mesh status` prints them work for load.
    let split = mesh.load("sleep/sleep-0", "http://productpage.default:9080/", 5);
    assert_eq!(split["succeeded"], 5, "{split}");
    let split = mesh.load("sleep", "http://productpage.default:9080/", 5);
    assert_eq!(split["succeeded"], 5, "{split}");
    println!("proxy-status with one NACKing proxy:\n{status}\n{clusters}");
}
