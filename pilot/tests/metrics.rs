//! pilot's `/metrics` as a scraper sees it: one registry's Prometheus text
//! (format 0.0.4) with Istio's names and types exactly (no `_total` on
//! Istio's counters), the ADS, snapshot and diagnostics metrics together.

mod support;

use std::{net::Ipv4Addr, path::Path, time::Duration};

use support::pilot::{free_port, metric, Pilot};

#[test]
fn metrics_keep_istio_names_and_types_in_the_text_format() {
    let dir = tempfile::tempdir().unwrap();
    let bookinfo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/bookinfo");
    let lo = Ipv4Addr::LOCALHOST;
    let mut pilot = Pilot::start(
        Path::new(env!("CARGO_BIN_EXE_pilot")),
        &bookinfo,
        (lo, free_port(lo)).into(),
        (lo, free_port(lo)).into(),
        &dir.path().join("pilot.log"),
    )
    .unwrap();
    pilot.wait_ready(Duration::from_secs(30)).unwrap();
    // `pilot serve` turned transparent huge pages off for itself (its
    // allocator's arenas would otherwise be faulted in 2 MiB at a time).
    let status = std::fs::read_to_string(format!("/proc/{}/status", pilot.pid())).unwrap();
    if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
    let out = pilot.get("/metrics");
    assert_eq!(out.status, Some(200), "{out:?}");
    assert_eq!(
        out.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = out.body;
    for (name, kind) in [
        ("pilot_xds", "gauge"),
        ("pilot_xds_pushes", "counter"),
        ("pilot_xds_pushed_resources", "counter"),
        ("pilot_xds_first_push_throttled", "counter"),
        ("pilot_xds_first_push_waiting", "gauge"),
        ("pilot_total_xds_rejects", "counter"),
        ("pilot_xds_expired_nonce", "counter"),
        ("pilot_proxy_convergence_time", "histogram"),
        ("pilot_xds_send_time", "histogram"),
        ("pilot_services", "gauge"),
        ("pilot_virt_services", "gauge"),
        ("pilot_total_xds_internal_errors", "counter"),
        ("rudder_config_diagnostics", "gauge"),
        ("pilot_jwks_resolver_network_fetch_success_total", "counter"),
        ("pilot_jwks_resolver_network_fetch_fail_total", "counter"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} {kind} missing:\n{text}"
        );
    }
    // Istio's counters have no `_total`, but for the JWKS resolver's,
    // whose Istio names end in it.
    let others: String = text
        .lines()
        .filter(|l| !l.contains("pilot_jwks_resolver_network_fetch_"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !others.contains("_total{") && !others.contains("_total "),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
    assert_eq!(metric(&text, "pilot_xds_pushes{type=\"cds\"}"), 0.0);
    assert_eq!(metric(&text, "pilot_total_xds_internal_errors"), 0.0);
    assert_eq!(
        metric(&text, "rudder_config_diagnostics{severity=\"error\"}"),
        0.0
    );
    assert!(metric(&text, "pilot_services") >= 4.0, "{text}");
    assert!(
        text.contains("\npilot_proxy_convergence_time_bucket{le=\"+Inf\"} 0\n"),
        "{text}"
    );
}
