//! Telemetry through the registry: one table row per validation rule
//! (exact field, object rejected), providers resolved from the mesh config,
//! and the compiled policies in the snapshot.

mod common;

use common::{errors, mk_service, objects, validate};
use pretty_assertions::assert_eq;
use rudder_model::telemetry::{AccessLogSink, LogFormat, TracerKind, TrafficMode};
use rudder_registry::build::build_snapshot;

const MESH: &str = r#"apiVersion: v1
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
    - name: otel
      opentelemetry: {service: otel.istio-system.svc.cluster.local, port: 4317}
    - name: prom
      prometheus: {}
    - name: authz
      envoyExtAuthzHttp: {service: authz.default.svc.cluster.local, port: 8000}
"#;

fn telemetry(spec: &str) -> String {
    format!("apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: t, namespace: default}}\nspec:\n{spec}")
}

#[test]
fn each_telemetry_rule_reports_field_and_reason() {
    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "unknown provider",
            "  accessLogging: [{providers: [{name: nope}]}]\n",
            "spec.accessLogging[0].providers[0].name",
        ),
        (
            "tracer as access log",
            "  accessLogging: [{providers: [{name: zipkin}]}]\n",
            "spec.accessLogging[0].providers[0].name",
        ),
        (
            "ext-authz as tracer",
            "  tracing: [{providers: [{name: authz}]}]\n",
            "spec.tracing[0].providers[0].name",
        ),
        (
            "two tracers",
            "  tracing: [{providers: [{name: zipkin}, {name: otel}]}]\n",
            "spec.tracing[0].providers",
        ),
        (
            "sampling above 100",
            "  tracing: [{randomSamplingPercentage: 101}]\n",
            "spec.tracing[0].randomSamplingPercentage",
        ),
        (
            "custom tags",
            "  tracing: [{customTags: {a: {literal: {value: b}}}}]\n",
            "spec.tracing[0].customTags",
        ),
        (
            "bad mode",
            "  accessLogging: [{match: {mode: BOTH}}]\n",
            "spec.accessLogging[0].match.mode",
        ),
        (
            "CEL filter",
            "  accessLogging: [{filter: {expression: 'response.code >= 400'}}]\n",
            "spec.accessLogging[0].filter",
        ),
        (
            "metrics overrides",
            "  metrics: [{overrides: [{disabled: true}]}]\n",
            "spec.metrics[0].overrides",
        ),
        (
            "reporting interval",
            "  metrics: [{reportingInterval: 5s}]\n",
            "spec.metrics[0].reportingInterval",
        ),
        (
            "metrics to a file",
            "  metrics: [{providers: [{name: json-file}]}]\n",
            "spec.metrics[0].providers[0].name",
        ),
        (
            "selector and targetRefs",
            "  selector: {matchLabels: {app: a}}\n  targetRefs: [{kind: Service, name: a}]\n",
            "spec.selector",
        ),
        (
            "targetRef of another kind",
            "  targetRefs: [{group: apps, kind: Deployment, name: a}]\n",
            "spec.targetRefs[0].kind",
        ),
        (
            "targetRef elsewhere",
            "  targetRefs: [{kind: Service, name: a, namespace: other}]\n",
            "spec.targetRefs[0].namespace",
        ),
    ];
    for (name, spec, field) in cases {
        let yaml = telemetry(spec);
        let r = validate(&[("mesh.yaml", MESH), ("t.yaml", &yaml)]);
        let errs = errors(&r);
        assert_eq!(errs.len(), 1, "{name}: {:#?}", r.diagnostics);
        assert_eq!(errs[0].field, field, "{name}: {}", errs[0].message);
        assert_eq!(errs[0].object, "Telemetry default/t", "{name}");
    }
}

#[test]
fn unknown_fields_are_refused_with_their_path() {
    let yaml = telemetry("  accessLogging: [{disable: true}]\n");
    let r = validate(&[("t.yaml", &yaml)]);
    let errs = errors(&r);
    assert_eq!(errs.len(), 1, "{:#?}", r.diagnostics);
    assert!(errs[0].field.contains("accessLogging"), "{:?}", errs[0]);
}

#[test]
fn providers_resolve_from_the_mesh_config() {
    let yaml = format!(
        "{MESH}---\n{}---\n{}---\n{}",
        mk_service("reviews", "http", 9080, "9080"),
        telemetry(
            "  targetRefs: [{kind: Service, name: reviews}]\n  accessLogging:\n  - providers: [{name: json-file}]\n    match: {mode: SERVER}\n  tracing:\n  - providers: [{name: zipkin}]\n    randomSamplingPercentage: 100\n"
        ),
        "apiVersion: telemetry.istio.io/v1alpha1\nkind: Telemetry\nmetadata: {name: mesh, namespace: istio-system}\nspec:\n  accessLogging: [{disabled: true}]\n",
    );
    let snap = build_snapshot(&objects(&yaml), vec![]);
    assert!(snap.diagnostics.is_empty(), "{:#?}", snap.diagnostics);
    assert_eq!(snap.telemetry.policies.len(), 2);
    let reviews = [("app".to_string(), "reviews".to_string())].into();
    let e = snap.telemetry_for("default", &reviews);
    assert_eq!(
        e.server_logs,
        vec![AccessLogSink {
            path: "/tmp/access.json".into(),
            format: LogFormat::Json(
                [("code", "%RESPONSE_CODE%"), ("path", "%REQ(:PATH)%")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            ),
        }]
    );
    // The mesh-wide Telemetry turned the client side off.
    assert!(e.client_logs.is_empty());
    let tr = e.client_tracing.expect("tracing");
    assert_eq!(tr.tracer.kind, TracerKind::Zipkin);
    assert_eq!(tr.tracer.port, 9411);
    assert_eq!(tr.sampling, rudder_model::Percent::ALL);
    // Another workload: only the mesh-wide Telemetry.
    let other = snap.telemetry_for("default", &[("app".to_string(), "x".to_string())].into());
    assert!(other.server_logs.is_empty() && other.client_tracing.is_none());
    let t = snap
        .telemetry
        .policies
        .iter()
        .find(|p| p.source.name == "t")
        .unwrap();
    assert_eq!(t.access_logging[0].mode, TrafficMode::Server);
}

#[test]
fn mesh_config_sets_the_default_access_log() {
    let mesh = |body: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: rudder-mesh, namespace: rudder-system}}\ndata:\n  mesh: |\n{body}")
    };
    let none = build_snapshot(&objects(""), vec![]);
    assert_eq!(none.telemetry.default_logs, vec![AccessLogSink::stdout()]);
    let off = build_snapshot(&objects(&mesh("    accessLogFile: \"\"\n")), vec![]);
    assert!(off.telemetry.default_logs.is_empty());
    let json = build_snapshot(
        &objects(&mesh(
            "    accessLogFile: /dev/stdout\n    accessLogEncoding: JSON\n",
        )),
        vec![],
    );
    assert!(matches!(
        json.telemetry.default_logs[0].format,
        LogFormat::Json(_)
    ));
    let r = validate(&[("mesh.yaml", &mesh("    accessLogEncoding: XML\n"))]);
    assert_eq!(errors(&r)[0].field, "data.mesh.accessLogEncoding");
}

#[test]
fn a_prometheus_metrics_provider_is_accepted_with_a_warning() {
    let yaml = telemetry("  metrics: [{providers: [{name: prom}]}]\n");
    let r = validate(&[("mesh.yaml", MESH), ("t.yaml", &yaml)]);
    assert!(errors(&r).is_empty(), "{:#?}", r.diagnostics);
    let w = common::warnings(&r);
    assert_eq!(w.len(), 1, "{:#?}", r.diagnostics);
    assert_eq!(w[0].field, "spec.metrics[0].providers[0].name");
    assert!(w[0].message.contains("changes nothing"), "{}", w[0].message);
}
