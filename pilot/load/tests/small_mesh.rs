//! `pilot-load generate` + `pilot-load run --json` on a tiny mesh, SotW and
//! Delta, against the real `pilot` binary. Asserts counts, never times:
//! every sidecar configured, no refused or broken connection, every change
//! of every scenario reached every sidecar, and each type delivered resources.
//!
//! pilot is `PILOT_BIN`, else `pilot` in this test's target directory
//! (built with `cargo build -p rudder-pilot` when missing).

use std::process::Command;

use serde_json::Value;

mod common;
use common::pilot_bin;

const SERVICES: u64 = 5;
const VERSIONS: u64 = 3;
const SIDECARS: u64 = 4;
const VS_CHANGES: u64 = 2;
/// 5 changes/s for 1 s.
const CHURN_CHANGES: u64 = 5;
const ADDS: u64 = 2;

fn pilot_load(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pilot-load"))
        .args(args)
        .output()
        .expect("run pilot-load");
    assert!(
        out.status.success(),
        "pilot-load {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn run_mode(mode: &str) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    let services = SERVICES.to_string();
    let versions = VERSIONS.to_string();
    let sidecars = SIDECARS.to_string();
    pilot_load(&[
        "generate",
        "--services",
        &services,
        "--versions",
        &versions,
        "--namespaces",
        "2",
        "--sidecars",
        &sidecars,
        "--out",
        d,
    ]);
    let pilot = pilot_bin();
    let out = pilot_load(&[
        "run",
        "--dir",
        d,
        "--sidecars",
        &sidecars,
        "--mode",
        mode,
        "--scenarios",
        "storm,vs-change,churn,service-add",
        "--pilot",
        pilot.to_str().expect("utf-8 path"),
        "--vs-changes",
        &VS_CHANGES.to_string(),
        "--churn-rate",
        "5",
        "--churn-secs",
        "1",
        "--adds",
        &ADDS.to_string(),
        "--timeout",
        "60",
        "--json",
    ]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn n(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a count in {v:#}"))
}

fn check(report: &Value, mode: &str) {
    assert_eq!(report["mode"], mode);
    assert_eq!(n(report, &["sidecars"]), SIDECARS);
    assert_eq!(n(report, &["pods"]), SERVICES * VERSIONS);
    assert_eq!(n(report, &["configured"]), SIDECARS, "{report:#}");
    assert_eq!(n(report, &["refused"]), 0, "{report:#}");
    assert_eq!(n(report, &["broken"]), 0, "{report:#}");
    for t in ["CDS", "EDS", "LDS", "RDS"] {
        assert!(
            n(report, &["types", t, "resources"]) > 0,
            "no {t}: {report:#}"
        );
        // Every response ACKed (plus the subscriptions).
        assert!(
            n(report, &["types", t, "requests"]) >= n(report, &["types", t, "responses"]),
            "{t} responses not all ACKed: {report:#}"
        );
    }
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["storm", "vs-change", "churn", "service-add"]);
    let expected_changes = [1, VS_CHANGES, CHURN_CHANGES, ADDS];
    for (s, changes) in scenarios.iter().zip(expected_changes) {
        assert_eq!(n(s, &["changes"]), changes, "{s:#}");
        assert_eq!(n(s, &["missed"]), 0, "{s:#}");
        assert_eq!(n(s, &["samples"]), changes * SIDECARS, "{s:#}");
    }
    // A route change arrives as RDS; a pod change as EDS; a new service as
    // CDS and EDS. (Which other types pilot also sends is what issue 13's
    // tests pin down; here only that the change's own type came.)
    let by_name = |name: &str| scenarios.iter().find(|s| s["name"] == name).unwrap();
    assert!(n(by_name("vs-change"), &["types", "RDS", "responses"]) >= VS_CHANGES * SIDECARS);
    assert!(n(by_name("churn"), &["types", "EDS", "responses"]) >= SIDECARS);
    assert!(n(by_name("service-add"), &["types", "CDS", "responses"]) >= ADDS * SIDECARS);
    assert!(n(by_name("service-add"), &["types", "EDS", "responses"]) >= ADDS * SIDECARS);
    assert!(n(report, &["pilot", "peak_rss_bytes"]) > 0);
}

#[test]
fn small_mesh_sotw() {
    let report = run_mode("sotw");
    check(&report, "sotw");
}

#[test]
fn small_mesh_delta() {
    let report = run_mode("delta");
    check(&report, "delta");
}

#[test]
fn generate_writes_one_pod_per_sidecar() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    // 2 services × 2 versions = 4 pods per replica; 10 sidecars need 3 replicas.
    let out = pilot_load(&[
        "generate",
        "--services",
        "2",
        "--versions",
        "2",
        "--namespaces",
        "1",
        "--sidecars",
        "10",
        "--out",
        d,
    ]);
    assert!(out.contains("(12 pods)"), "{out}");
    let pods = std::fs::read_to_string(dir.path().join("pods/ns0/svc1.yaml")).unwrap();
    assert_eq!(pods.matches("kind: Pod").count(), 6);
    let vs = std::fs::read_to_string(dir.path().join("routes/ns0/svc0.yaml")).unwrap();
    assert!(
        vs.contains("weight: 90") && vs.contains("weight: 10"),
        "{vs}"
    );
    let svc = std::fs::read_to_string(dir.path().join("services/ns0/svc0.yaml")).unwrap();
    assert!(
        svc.contains("kind: DestinationRule") && svc.contains("name: v2"),
        "{svc}"
    );
}
