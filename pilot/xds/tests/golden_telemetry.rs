//! Telemetry (issue 17): a workload's access logs (file, JSON labels,
//! disabled) and Zipkin tracing through the collector's outbound cluster,
//! and the mesh default (stdout, Istio's format) for the others. Each case
//! is validated by `envoy --mode validate`.

mod support;

use rudder_model::{NodeId, NodeMetadata};
use rudder_xds::resolve_proxy;
use serde_json::Value;
use support::*;

const PLATFORM: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: rudder-mesh, namespace: rudder-system}
data:
  mesh: |
    rootNamespace: istio-system
    extensionProviders:
    - name: json-file
      envoyFileAccessLog:
        path: /tmp/access.json
        logFormat: {labels: {code: "%RESPONSE_CODE%", path: "%REQ(:PATH)%"}}
    - name: zipkin
      zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
---
apiVersion: v1
kind: Service
metadata: {name: zipkin, namespace: istio-system}
spec:
  clusterIP: 198.19.0.9
  ports: [{name: http-zipkin, port: 9411}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 198.19.0.2
  selector: {app: reviews}
  ports: [{name: http, port: 9080}, {name: tcp-db, port: 3306}]
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: default, labels: {app: reviews}}
status: {phase: Running, podIP: 198.18.0.5, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: ratings-v1, namespace: default, labels: {app: ratings}}
status: {phase: Running, podIP: 198.18.0.6, conditions: [{type: Ready, status: "True"}]}
"#;

const TELEMETRY: &str = r#"apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  accessLogging:
  - providers: [{name: json-file}]
    match: {mode: SERVER}
  - disabled: true
    match: {mode: CLIENT}
  tracing:
  - providers: [{name: zipkin}]
    randomSamplingPercentage: 50
"#;

fn sidecar(s: &rudder_model::Snapshot, pod: &str, ip: &str) -> rudder_model::Proxy {
    let meta = NodeMetadata {
        namespace: "default".into(),
        labels: s.workloads[&format!("default/{pod}")].labels.clone(),
        instance_ips: vec![ip.parse().unwrap()],
        ..NodeMetadata::default()
    };
    resolve_proxy(
        s,
        NodeId::sidecar(ip.parse().unwrap(), pod, "default"),
        &meta,
    )
}

/// The HCMs and TCP proxies of every chain of `lds`, by chain name.
fn filters(j: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for l in j["lds"].as_object().unwrap().values() {
        let chains = l["filterChains"].as_array().into_iter().flatten();
        for c in chains.chain(l.get("defaultFilterChain")) {
            for f in c["filters"].as_array().into_iter().flatten() {
                out.push((
                    c["name"].as_str().unwrap_or_default().to_string(),
                    f["typedConfig"].clone(),
                ));
            }
        }
    }
    out
}

#[test]
fn workload_telemetry_sets_logs_and_tracing_per_side() {
    let s = yaml_snapshot(&[PLATFORM.to_string(), TELEMETRY.to_string()]);
    assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);
    let j = golden(
        "telemetry_workload",
        &s,
        &sidecar(&s, "reviews-v1", "198.18.0.5"),
    );
    let all = filters(&j);
    let inbound: Vec<&Value> = all
        .iter()
        .filter(|(c, _)| c.starts_with("inbound|9080"))
        .map(|(_, f)| f)
        .collect();
    assert!(!inbound.is_empty());
    for f in &inbound {
        let log = &f["accessLog"][0]["typedConfig"];
        assert_eq!(log["path"], "/tmp/access.json", "{f}");
        assert_eq!(log["logFormat"]["jsonFormat"]["code"], "%RESPONSE_CODE%");
        assert_eq!(f["tracing"]["randomSampling"]["value"], 50.0);
        assert_eq!(
            f["tracing"]["provider"]["typedConfig"]["collectorCluster"],
            "outbound|9411||zipkin.istio-system.svc.cluster.local"
        );
    }
    // Client side: no access log, tracing on.
    for (c, f) in all.iter().filter(|(c, _)| !c.starts_with("inbound")) {
        assert!(f.get("accessLog").is_none(), "{c}: {f}");
    }
}

#[test]
fn other_workloads_keep_the_mesh_default() {
    let s = yaml_snapshot(&[PLATFORM.to_string(), TELEMETRY.to_string()]);
    let j = golden(
        "telemetry_default",
        &s,
        &sidecar(&s, "ratings-v1", "198.18.0.6"),
    );
    for (c, f) in filters(&j) {
        let log = &f["accessLog"][0];
        assert_eq!(log["name"], "envoy.access_loggers.stdout", "{c}");
        let format = &log["typedConfig"]["logFormat"]["textFormatSource"]["inlineString"];
        assert_eq!(format, rudder_model::telemetry::ISTIO_TEXT_FORMAT, "{c}");
        assert!(f.get("tracing").is_none(), "{c}");
    }
}
