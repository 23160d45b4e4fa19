//! `/debug/syncz` data and Prometheus metrics as the protocol drives them.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

#[tokio::test]
async fn syncz_reports_nack() {
    let h = Harness::start(base().build()).await;
    let mut c = h.sotw(NODE).await;
    c.request(CDS, "", &[], "").await;
    let good = c.expect(CDS).await;
    c.ack(&good, &[]).await;
    c.request(EDS, "", &["a", "missing"], "").await;
    c.expect(EDS).await;
    h.publish(base().cluster("a", "bad").build());
    let bad = c.expect(CDS).await;
    c.nack(
        CDS,
        &good.version_info,
        &bad.nonce,
        &[],
        "Proto constraint validation failed",
    )
    .await;
    c.barrier().await;

    let json = serde_json::to_value(h.server.status()).unwrap();
    let s = &json[0];
    assert_eq!(s["node_id"], NODE);
    assert_eq!(s["mode"], "sotw");
    assert_eq!(s["user_agent"], "scripted");
    let cds = &s["types"]["cds"];
    assert_eq!(cds["last_sent"]["nonce"], bad.nonce.as_str());
    assert_eq!(cds["last_sent"]["version"], bad.version_info.as_str());
    assert_eq!(cds["last_acked_version"], good.version_info.as_str());
    assert_eq!(cds["last_nack"]["nonce"], bad.nonce.as_str());
    assert_eq!(cds["last_nack"]["version"], good.version_info.as_str());
    assert_eq!(
        cds["last_nack"]["error"],
        "Proto constraint validation failed"
    );
    assert_eq!(cds["wildcard"], true);
    assert_eq!(cds["resources_sent"], serde_json::json!(["a", "b"]));
    let eds = &s["types"]["eds"];
    assert_eq!(eds["subscribed"], serde_json::json!(["a", "missing"]));
    assert_eq!(eds["resources_sent"], serde_json::json!(["a"]));
    assert!(eds["last_acked_version"].is_null(), "EDS was never ACKed");
}

#[tokio::test]
async fn syncz_reports_nack_delta() {
    let h = Harness::start(base().build()).await;
    let mut c = h.delta(NODE).await;
    c.subscribe(CDS, &[], "").await;
    let good = c.expect(CDS).await;
    c.ack(&good).await;
    h.publish(base().cluster("a", "bad").build());
    let bad = c.expect(CDS).await;
    c.nack(&bad, "missing ]: [").await;
    c.barrier().await;
    let st = &h.server.status()[0];
    assert_eq!(st.mode, "delta");
    let cds = &st.types["cds"];
    assert_eq!(
        cds.last_acked_version.as_deref(),
        Some(good.system_version_info.as_str())
    );
    let nack = cds.last_nack.as_ref().unwrap();
    assert_eq!(
        (nack.nonce.as_str(), nack.error.as_str()),
        (bad.nonce.as_str(), "missing ]: [")
    );
}

#[tokio::test]
async fn metrics_count_pushes_and_nacks() {
    let h = Harness::start(base().build()).await;
    let mut c = h.sotw(NODE).await;
    c.start_all(&["a", "b"], &["r"]).await;
    let mut d = h
        .delta("sidecar~10.0.0.2~other.default~default.svc.cluster.local")
        .await;
    d.subscribe(CDS, &[], "").await;
    let dcds = d.expect(CDS).await;
    d.nack(&dcds, "bad").await;
    d.barrier().await;
    // A change both streams see: CDS to the SotW one (the delta one NACKed
    // and its content has changed, so it gets it too).
    h.publish(base().cluster("a", "2").build());
    let cds = c.expect(CDS).await;
    d.expect(CDS).await;
    c.ack(&cds, &[]).await;
    c.barrier().await;

    let text = h.server.metrics().render();
    let samples = parse_prometheus(&text);
    assert_eq!(samples["pilot_xds"], 2.0);
    // SotW: start (1) + change (1); delta: start (1) + change (1).
    assert_eq!(samples["pilot_xds_pushes{type=\"cds\"}"], 4.0);
    assert_eq!(samples["pilot_total_xds_rejects{type=\"cds\"}"], 1.0);
    assert_eq!(samples["pilot_total_xds_rejects{type=\"eds\"}"], 0.0);
    assert_eq!(samples["pilot_xds_expired_nonce{type=\"cds\"}"], 0.0);
    // The SotW proxy converged once it ACKed the change.
    assert!(
        samples["pilot_proxy_convergence_time_count"] >= 1.0,
        "{text}"
    );
    assert!(samples["pilot_xds_send_time_count"] >= 8.0);
    drop(c);
    drop(d);
    wait_until(|| h.server.metrics().connected() == 0).await;
    assert_eq!(
        parse_prometheus(&h.server.metrics().render())["pilot_xds"],
        0.0
    );
}

/// A strict reader of the Prometheus text format (0.0.4) for what we emit:
/// every sample belongs to a family announced by HELP and TYPE first,
/// histogram buckets are cumulative and end with `+Inf` equal to `_count`.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut last_bucket: Option<(String, f64)> = None;
    for (i, line) in text.lines().enumerate() {
        let at = format!("line {}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect(&at);
            assert!(!help.is_empty(), "{at}");
            assert!(helped.insert(name.to_string()), "duplicate HELP, {at}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(&at);
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{at}");
            assert!(helped.contains(name), "TYPE before HELP, {at}");
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "duplicate TYPE, {at}"
            );
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{at}");
        let (series, value) = line.rsplit_once(' ').expect(&at);
        let value: f64 = value.parse().expect(&at);
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{at}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{at}");
                for pair in labels[1..labels.len() - 1].split(',') {
                    let (k, v) = pair.split_once('=').expect(&at);
                    assert!(
                        !k.is_empty() && v.starts_with('"') && v.ends_with('"'),
                        "{at}"
                    );
                }
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        assert!(typed.contains_key(family), "sample before its TYPE, {at}");
        if name.ends_with("_bucket") {
            assert!(series.contains("le=\""), "{at}");
            if let Some((f, prev)) = &last_bucket {
                if f == family {
                    assert!(value >= *prev, "buckets must be cumulative, {at}");
                }
            }
            last_bucket = Some((family.to_string(), value));
        }
        if name.ends_with("_count") && typed.get(family).map(String::as_str) == Some("histogram") {
            let inf = samples
                .get(&format!("{family}_bucket{{le=\"+Inf\"}}"))
                .expect(&at);
            assert_eq!(*inf, value, "+Inf bucket must equal _count, {at}");
        }
        samples.insert(series.to_string(), value);
    }
    samples
}
