//! Telemetry end to end (issue 17) with real Envoy: a client sidecar's
//! access log lines appear for its requests by default (Istio's format on
//! stdout), stop when a Telemetry disables them, and come back as JSON
//! through a mesh config provider, each change an LDS push to the same
//! Envoy process (no restart).

mod support;

use std::time::{Duration, Instant};

use rudder_agent::XdsMode;
use rudder_harness::HttpRequest;
use support::{
    mesh::{prerequisites, write_config, Mesh},
    pilot::{settled_version, PilotError},
};

const MESH_CONFIG: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: rudder-mesh, namespace: rudder-system}
data:
  mesh: |
    extensionProviders:
    - name: json-stdout
      envoyFileAccessLog:
        path: /dev/stdout
        logFormat: {labels: {path: "%REQ(:PATH)%", code: "%RESPONSE_CODE%", cluster: "%UPSTREAM_CLUSTER%"}}
"#;

const DISABLED: &str = r#"apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: default}
spec:
  accessLogging: [{disabled: true}]
"#;

const JSON_LOGS: &str = r#"apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: default}
spec:
  selector: {matchLabels: {app: client}}
  accessLogging: [{providers: [{name: json-stdout}]}]
"#;

/// Sends `count` requests for `path` through the client's sidecar; all
/// must succeed.
fn send(mesh: &Mesh, path: &str, count: usize) {
    let req = HttpRequest::get((mesh.vip, 9080).into(), path).host("reviews");
    let report = mesh.load(req, count);
    assert_eq!(report.successes(), count, "{path}: {:?}", report.failures());
}

/// Envoy's log lines that mention `path`.
fn lines_with(mesh: &Mesh, path: &str) -> Vec<String> {
    mesh.envoy
        .process()
        .read_log()
        .lines()
        .filter(|l| l.contains(path))
        .map(str::to_string)
        .collect()
}

/// Waits until `count` lines mention `path` (Envoy flushes access logs
/// about every second); panics after 15 s.
fn wait_lines(mesh: &Mesh, path: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lines = lines_with(mesh, path);
        if lines.len() >= count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} access log lines for {path}:\n{}",
            lines.len(),
            mesh.envoy_log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Applies `file` and waits until the client's Envoy ACKed new listeners.
fn push(mesh: &mut Mesh, file: &str, text: &str) {
    let node = mesh.node_id.clone();
    let old = settled_version(&mesh.pilot.syncz(), &node, "lds");
    write_config(mesh.config_dir.path(), file, text);
    let what = format!("an ACKed LDS version other than {old:?} for {node}");
    mesh.pilot
        .wait_for(&what, Duration::from_secs(20), |p| {
            settled_version(&p.syncz(), &node, "lds").filter(|v| Some(v) != old.as_ref())
        })
        .unwrap_or_else(|e: PilotError| panic!("{e}"));
}

#[test]
fn access_logs_follow_telemetry_without_an_envoy_restart() {
    let Some((proxy_init, pilot)) = prerequisites("access_logs_follow_telemetry") else {
        return;
    };
    let mut mesh = Mesh::start("tmlog", XdsMode::Delta, &proxy_init, &pilot, "");
    let pid = mesh.envoy.process().pid();

    // Default: Istio's text format on stdout, one line per request.
    send(&mesh, "/telemetry-default", 5);
    let lines = wait_lines(&mesh, "/telemetry-default", 5);
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(
        lines[0].contains("\"GET /telemetry-default HTTP/1.1\" 200")
            && lines[0].contains("outbound|9080||reviews.default.svc.cluster.local"),
        "not Istio's format: {}",
        lines[0]
    );

    // Disabled for the namespace: no line, same Envoy.
    push(&mut mesh, "telemetry.yaml", DISABLED);
    send(&mesh, "/telemetry-off", 5);
    // A marker request logged by nothing either; give Envoy two flushes.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lines_with(&mesh, "/telemetry-off"), Vec::<String>::new());

    // On again, as JSON from a mesh config provider, for the workload.
    write_config(mesh.config_dir.path(), "mesh.yaml", MESH_CONFIG);
    push(&mut mesh, "telemetry.yaml", JSON_LOGS);
    send(&mesh, "/telemetry-json", 3);
    let lines = wait_lines(&mesh, "/telemetry-json", 3);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert_eq!(v["path"], "/telemetry-json");
        assert_eq!(v["code"], 200);
        assert_eq!(v["cluster"], "outbound|9080||reviews.default.svc.cluster.local");
    }
    assert_eq!(mesh.envoy.process().pid(), pid, "Envoy was restarted");
    assert_eq!(lines_with(&mesh, "/telemetry-off"), Vec::<String>::new());
}
