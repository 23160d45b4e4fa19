//! Telemetry end to end (issue 17) with real Envoy: a client sidecar's
//! access log lines appear for its requests by default (Istio's format on
//! stdout), stop when a Telemetry disables them, and come back as JSON
//! through a mesh config provider, each change an LDS push to the same
//! Envoy process (no restart); and spans of a request through two sidecars
//! reach a Zipkin collector the test runs.
//!
//! ```text
//!  client pod: Envoy ─► reviews-v1 pod: Envoy (inbound) ─► echo
//!      │ client span           │ server span
//!      └──────► POST /api/v2/spans ◄──┘  test's collector on the bridge address
//!               (ServiceEntry zipkin.collector.svc.cluster.local → that address)
//! ```

mod support;

use std::time::{Duration, Instant};

use rudder_agent::XdsMode;
use rudder_harness::HttpRequest;
use support::{
    mesh::{prerequisites, write_config, Mesh, Sidecar},
    pilot::{free_port, settled_version, PilotError},
    stub::Stub,
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
        assert_eq!(
            v["cluster"],
            "outbound|9080||reviews.default.svc.cluster.local"
        );
    }
    assert_eq!(mesh.envoy.process().pid(), pid, "Envoy was restarted");
    assert_eq!(lines_with(&mesh, "/telemetry-off"), Vec::<String>::new());
}

/// Sends every request to reviews v1.
const ALL_TO_V1: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
"#;

/// The mesh config, ServiceEntry and Telemetry that send every span of the
/// namespace to the collector at `collector`.
fn tracing_config(collector: std::net::SocketAddr) -> String {
    let (ip, port) = (collector.ip(), collector.port());
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: rudder-mesh, namespace: rudder-system}}
data:
  mesh: |
    extensionProviders:
    - name: zipkin
      zipkin: {{service: zipkin.collector.svc.cluster.local, port: {port}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: zipkin, namespace: default}}
spec:
  hosts: [zipkin.collector.svc.cluster.local]
  ports: [{{number: {port}, name: http-zipkin, protocol: HTTP}}]
  resolution: STATIC
  location: MESH_EXTERNAL
  endpoints: [{{address: {ip}}}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: tracing, namespace: default}}
spec:
  tracing: [{{providers: [{{name: zipkin}}], randomSamplingPercentage: 100}}]
"#
    )
}

/// The spans the collector received (Zipkin v2 JSON arrays).
fn spans(collector: &Stub) -> Vec<serde_json::Value> {
    collector
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v2/spans")
        .flat_map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.body)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.body)));
            v.as_array().cloned().unwrap_or_default()
        })
        .collect()
}

#[test]
fn spans_of_a_request_through_two_sidecars_reach_the_collector() {
    let Some((proxy_init, pilot)) = prerequisites("spans_reach_the_collector") else {
        return;
    };
    let mut mesh = Mesh::start("tmtrace", XdsMode::Delta, &proxy_init, &pilot, ALL_TO_V1);
    let host = mesh.net.host_addr();
    let collector = Stub::start((host, free_port(host)).into(), |_| {
        (202, "text/plain", String::new())
    });

    // Mesh reviews-v1: capture its pod and start its sidecar.
    let pod = mesh.net.pod("reviews-v1").expect("reviews-v1 pod");
    pod.capture(&proxy_init, &[])
        .expect("proxy-init in reviews-v1");
    let xds = mesh.pilot.xds_addr();
    let (server_node, server) = Sidecar {
        name: "reviews-v1",
        namespace: "default",
        labels: &[("version", "v1")],
        ips: vec![pod.ip().into()],
        mode: XdsMode::Delta,
    }
    .spawn(&pod, xds);
    server
        .wait_live(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("reviews-v1 Envoy not live: {e}"));

    write_config(
        mesh.config_dir.path(),
        "tracing.yaml",
        &tracing_config(collector.addr()),
    );
    push(&mut mesh, "rules.yaml", ALL_TO_V1);
    let server_id = server_node.to_string();
    mesh.pilot
        .wait_for(
            "reviews-v1's listeners with tracing",
            Duration::from_secs(20),
            |p| settled_version(&p.syncz(), &server_id, "lds"),
        )
        .unwrap_or_else(|e: PilotError| panic!("{e}"));

    // The first requests after the capture may meet a connection the
    // client's Envoy pooled before it (closed by now): retry a few times.
    let path = "/traced";
    let req = HttpRequest::get((mesh.vip, 9080).into(), path).host("reviews");
    let mut last = None;
    for _ in 0..20 {
        let o = mesh
            .client
            .http_get(&req, Duration::from_secs(5))
            .expect("request");
        if o.is_success() {
            last = None;
            break;
        }
        last = Some(o);
        std::thread::sleep(Duration::from_millis(500));
    }
    if let Some(o) = last {
        let log = server.process().read_log();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        panic!(
            "{path} failed through reviews-v1's sidecar: {o:?}\n{}",
            tail.join("\n")
        );
    }
    // Envoy's Zipkin tracer flushes its buffer every 5 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    // The client sidecar's span and the server sidecar's, its child.
    let (client_span, server_span) = loop {
        let all = spans(&collector);
        let ours: Vec<&serde_json::Value> = all
            .iter()
            .filter(|s| {
                s["tags"]["http.url"]
                    .as_str()
                    .is_some_and(|u| u.ends_with(path))
            })
            .collect();
        let pair = ours.iter().find_map(|child| {
            let parent = ours.iter().find(|p| p["id"] == child["parentId"])?;
            Some(((*parent).clone(), (*child).clone()))
        });
        if let Some(pair) = pair {
            break pair;
        }
        assert!(
            Instant::now() < deadline,
            "no client and server span for {path}; spans: {all:#?}\nclient Envoy:\n{}",
            mesh.envoy_log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // One trace, reported by the two sidecars.
    assert_eq!(client_span["traceId"], server_span["traceId"]);
    assert_eq!(client_span["kind"], "CLIENT", "{client_span}");
    assert_eq!(server_span["kind"], "SERVER", "{server_span}");
    assert_eq!(
        server_span["tags"]["http.status_code"], "200",
        "{server_span}"
    );
    drop(server);
}

/// Jason's requests go to reviews v2, the others to v1 (two edges).
const BY_USER: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"#;

/// Debian's Prometheus scraping the client sidecar's Envoy every second,
/// on loopback; killed (by PID) when dropped.
struct Prometheus {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(bin: &std::path::Path, target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().expect("prometheus dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s}}\nscrape_configs:\n- job_name: sidecars\n  metrics_path: /stats/prometheus\n  static_configs: [{{targets: ['{target}']}}]\n"
            ),
        )
        .expect("write prometheus.yml");
        let addr = std::net::SocketAddr::from((
            std::net::Ipv4Addr::LOCALHOST,
            free_port(std::net::Ipv4Addr::LOCALHOST),
        ));
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = std::process::Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    /// The value of each series of an instant query, by the value of `by`.
    fn query(&self, promql: &str, by: &str) -> std::collections::BTreeMap<String, f64> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let o = rt.block_on(rudder_harness::get(
            &HttpRequest::get(self.addr, format!("/api/v1/query?query={encoded}")),
            Duration::from_secs(5),
        ));
        let v: serde_json::Value = serde_json::from_str(&o.body).unwrap_or_default();
        v["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let key = s["metric"][by].as_str()?.to_string();
                let value = s["value"][1].as_str()?.parse().ok()?;
                Some((key, value))
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn request_totals_per_edge_scraped_by_prometheus_match_the_requests_sent() {
    let Some((proxy_init, pilot)) = prerequisites("request_totals_per_edge") else {
        return;
    };
    let Some(bin) = rudder_test_support::prerequisite(
        "request_totals_per_edge",
        rudder_test_support::check_tool(
            "prometheus",
            "scripts/setup.sh installs Debian's prometheus",
        ),
    ) else {
        return;
    };
    let mesh = Mesh::start("tmprom", XdsMode::Delta, &proxy_init, &pilot, BY_USER);
    let prometheus = Prometheus::start(&bin, (mesh.client.ip(), 15090).into());
    let query = r#"sum by (destination_version) (envoy_cluster_upstream_rq_total{source_workload="client",source_workload_namespace="default",destination_service="reviews.default.svc.cluster.local"})"#;
    let totals = |what: &str, done: &dyn Fn(&std::collections::BTreeMap<String, f64>) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let t = prometheus.query(query, "destination_version");
            if done(&t) {
                return t;
            }
            assert!(Instant::now() < deadline, "{what}: Prometheus has {t:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    // Every outbound cluster's counter exists from the start (0 for v2).
    let before = totals("a first scrape", &|t| {
        t.contains_key("v1") && t.contains_key("v2")
    });

    send(&mesh, "/edge", 13);
    let jason = HttpRequest::get((mesh.vip, 9080).into(), "/edge")
        .host("reviews")
        .header("end-user", "jason");
    let report = mesh.load(jason, 7);
    assert_eq!(report.successes(), 7, "{:?}", report.failures());
    let expected = |v: &str, n: f64| before[v] + n;
    let after = totals("the requests sent", &|t| {
        t.get("v1") == Some(&expected("v1", 13.0)) && t.get("v2") == Some(&expected("v2", 7.0))
    });
    assert_eq!(
        after.get("v3").copied().unwrap_or(0.0),
        before.get("v3").copied().unwrap_or(0.0)
    );
    // Still exact a few scrapes later (nothing counted twice).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(prometheus.query(query, "destination_version"), after);
}
