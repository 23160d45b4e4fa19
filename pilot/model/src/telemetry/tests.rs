//! Scope resolution: mesh, namespace and workload levels, as Istio.

use super::*;

const ROOT: &str = "istio-system";

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sink(path: &str) -> AccessLogSink {
    AccessLogSink {
        path: path.into(),
        format: LogFormat::Text("%RESPONSE_CODE%\n".into()),
    }
}

fn policy(ns: &str, name: &str, workloads: Option<Vec<Labels>>) -> TelemetryPolicy {
    TelemetryPolicy {
        source: RuleRef {
            kind: "Telemetry".into(),
            namespace: ns.into(),
            name: name.into(),
        },
        workloads,
        access_logging: Vec::new(),
        tracing: Vec::new(),
    }
}

fn logs_to(mut p: TelemetryPolicy, mode: TrafficMode, path: &str) -> TelemetryPolicy {
    p.access_logging.push(AccessLogRule {
        mode,
        sinks: vec![sink(path)],
        disabled: false,
    });
    p
}

fn disabled(mut p: TelemetryPolicy) -> TelemetryPolicy {
    p.access_logging.push(AccessLogRule {
        mode: TrafficMode::ClientAndServer,
        sinks: Vec::new(),
        disabled: true,
    });
    p
}

fn tracer(name: &str) -> Tracer {
    Tracer {
        name: name.into(),
        kind: TracerKind::Zipkin,
        service: format!("{name}.{ROOT}.svc.cluster.local"),
        port: 9411,
        max_tag_length: 256,
        path: "/api/v2/spans".into(),
    }
}

fn paths(logs: &[AccessLogSink]) -> Vec<&str> {
    logs.iter().map(|s| s.path.as_str()).collect()
}

#[test]
fn without_telemetry_the_mesh_default_applies() {
    let t = Telemetries::default();
    let e = t.effective(ROOT, "default", &labels(&[("app", "a")]));
    assert_eq!(e.client_logs, vec![AccessLogSink::stdout()]);
    assert_eq!(e.server_logs, vec![AccessLogSink::stdout()]);
    assert_eq!(e.client_tracing, None);
    assert_eq!(e, t.mesh_default());
}

#[test]
fn the_most_specific_level_wins() {
    let t = Telemetries {
        policies: vec![
            logs_to(
                policy(ROOT, "mesh", None),
                TrafficMode::ClientAndServer,
                "/mesh",
            ),
            logs_to(
                policy("ns", "ns", None),
                TrafficMode::ClientAndServer,
                "/ns",
            ),
            logs_to(
                policy("ns", "wl", Some(vec![labels(&[("app", "a")])])),
                TrafficMode::ClientAndServer,
                "/wl",
            ),
        ],
        ..Telemetries::default()
    };
    let a = labels(&[("app", "a")]);
    let b = labels(&[("app", "b")]);
    assert_eq!(paths(&t.effective(ROOT, "ns", &a).client_logs), ["/wl"]);
    assert_eq!(paths(&t.effective(ROOT, "ns", &b).client_logs), ["/ns"]);
    assert_eq!(
        paths(&t.effective(ROOT, "other", &a).client_logs),
        ["/mesh"]
    );
    // A selector only selects in its own namespace.
    assert_eq!(
        paths(&t.effective(ROOT, "other", &a).server_logs),
        ["/mesh"]
    );
}

#[test]
fn disabled_turns_off_what_a_wider_level_enabled() {
    let t = Telemetries {
        policies: vec![
            logs_to(
                policy(ROOT, "mesh", None),
                TrafficMode::ClientAndServer,
                "/mesh",
            ),
            disabled(policy("quiet", "off", None)),
        ],
        default_logs: Vec::new(),
        default_tracer: None,
    };
    let l = labels(&[]);
    assert!(t.effective(ROOT, "quiet", &l).client_logs.is_empty());
    assert!(t.effective(ROOT, "quiet", &l).server_logs.is_empty());
    assert_eq!(paths(&t.effective(ROOT, "loud", &l).client_logs), ["/mesh"]);
}

#[test]
fn mode_limits_a_rule_to_one_side() {
    let t = Telemetries {
        policies: vec![logs_to(
            policy("ns", "srv", None),
            TrafficMode::Server,
            "/srv",
        )],
        ..Telemetries::default()
    };
    let e = t.effective(ROOT, "ns", &labels(&[]));
    assert_eq!(paths(&e.server_logs), ["/srv"]);
    assert_eq!(e.client_logs, vec![AccessLogSink::stdout()]);
}

#[test]
fn the_oldest_telemetry_of_a_level_is_used() {
    let t = Telemetries {
        policies: vec![
            logs_to(
                policy("ns", "older", None),
                TrafficMode::ClientAndServer,
                "/older",
            ),
            logs_to(
                policy("ns", "newer", None),
                TrafficMode::ClientAndServer,
                "/newer",
            ),
        ],
        ..Telemetries::default()
    };
    assert_eq!(
        paths(&t.effective(ROOT, "ns", &labels(&[])).client_logs),
        ["/older"]
    );
}

#[test]
fn tracing_fields_inherit_one_by_one() {
    let mut mesh = policy(ROOT, "mesh", None);
    mesh.tracing.push(TracingRule {
        tracer: Some(tracer("zipkin")),
        sampling: Some(Percent::from_f64(5.0)),
        ..TracingRule::default()
    });
    let mut ns = policy("ns", "ns", None);
    ns.tracing.push(TracingRule {
        sampling: Some(Percent::ALL),
        ..TracingRule::default()
    });
    let t = Telemetries {
        policies: vec![mesh, ns],
        ..Telemetries::default()
    };
    let e = t
        .effective(ROOT, "ns", &labels(&[]))
        .client_tracing
        .unwrap();
    assert_eq!(e.tracer, tracer("zipkin"));
    assert_eq!(e.sampling, Percent::ALL);
    let other = t
        .effective(ROOT, "other", &labels(&[]))
        .server_tracing
        .unwrap();
    assert_eq!(other.sampling, Percent::from_f64(5.0));
}

#[test]
fn sampling_without_a_provider_traces_nothing() {
    let mut ns = policy("ns", "ns", None);
    ns.tracing.push(TracingRule {
        sampling: Some(Percent::ALL),
        ..TracingRule::default()
    });
    let t = Telemetries {
        policies: vec![ns],
        ..Telemetries::default()
    };
    assert_eq!(t.effective(ROOT, "ns", &labels(&[])).client_tracing, None);
    let with_default = Telemetries {
        default_tracer: Some(tracer("zipkin")),
        ..t
    };
    let e = with_default.effective(ROOT, "ns", &labels(&[]));
    assert_eq!(e.client_tracing.unwrap().sampling, Percent::ALL);
    assert_eq!(
        with_default
            .effective(ROOT, "other", &labels(&[]))
            .client_tracing
            .unwrap()
            .sampling,
        DEFAULT_SAMPLING
    );
}
