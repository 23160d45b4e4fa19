//! Real Envoy against the server, SotW and Delta: a cluster + TCP listener
//! reach Envoy (traffic flows through it, config_dump shows them), then a
//! cluster Envoy rejects is NACKed, shows in syncz, and the previous version
//! keeps serving. An endpoint change sends one ClusterLoadAssignment and
//! Envoy keeps the other cluster's endpoints (SotW EDS is incremental).
//!
//! Needs Envoy (`ENVOY_BIN`, default `/opt/rudder/bin/envoy`); skipped when
//! missing unless `CI=true`. Everything listens on 127.0.0.1; Envoy runs with
//! `--disable-hot-restart` and is killed when the test ends, also on failure.

mod common;

use std::{process::Stdio, time::Duration};

use common::*;
use envoy_types::pb::envoy::{
    config::listener::v3::{filter::ConfigType, Filter, FilterChain, Listener},
    extensions::filters::network::tcp_proxy::v3::{tcp_proxy::ClusterSpecifier, TcpProxy},
};
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use rudder_xds::ProxyResources;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    process::{Child, Command},
};

const ENVOY_NODE: &str = "sidecar~127.0.0.1~envoy-test.default~default.svc.cluster.local";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Cluster `backend` → `echo_port`, listener `ingress` on `listen_port`
/// proxying TCP to it. `timeout_s` < 0 makes a cluster Envoy rejects.
fn resources(
    echo_port: u16,
    listen_port: u16,
    cluster_version: &str,
    timeout_s: i64,
) -> ProxyResources {
    let mut c = cluster("backend");
    c.connect_timeout = Some(PbDuration {
        seconds: timeout_s,
        nanos: 0,
    });
    let tcp = TcpProxy {
        stat_prefix: "ingress".into(),
        cluster_specifier: Some(ClusterSpecifier::Cluster("backend".into())),
        ..Default::default()
    };
    let listener = Listener {
        name: "ingress".into(),
        address: Some(socket("127.0.0.1", listen_port.into())),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.tcp_proxy".into(),
                config_type: Some(ConfigType::TypedConfig(envoy_types::util::pack_any(tcp))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    Res::new()
        .any(
            CDS,
            "backend",
            cluster_version,
            envoy_types::util::pack_any(c),
        )
        .any(
            EDS,
            "backend",
            "1",
            envoy_types::util::pack_any(load_assignment("backend", echo_port.into())),
        )
        .any(LDS, "ingress", "1", envoy_types::util::pack_any(listener))
        .build()
}

fn bootstrap(xds_port: u16, api_type: &str) -> String {
    rudder_test_support::ads_bootstrap(
        &format!("{{id: \"{ENVOY_NODE}\", cluster: test}}"),
        api_type,
        xds_port,
    )
}

async fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// One round trip through Envoy's listener, bounded.
async fn echo_through(port: u16) -> bool {
    let attempt = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"ping").await.ok()?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.ok()?;
        Some(&buf == b"ping")
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

async fn http_get(port: u16, path: &str) -> String {
    let url = format!("http://127.0.0.1:{port}{path}");
    rudder_http::request(rudder_http::Method::GET, &url, Duration::from_secs(5))
        .await
        .unwrap()
        .body
}

/// The `version_info` of dynamic active cluster `name` in Envoy's config_dump.
async fn active_cluster_version(admin: u16, name: &str) -> Option<String> {
    let body = http_get(admin, "/config_dump?resource=dynamic_active_clusters").await;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["configs"]
        .as_array()?
        .iter()
        .find(|c| c["cluster"]["name"] == name)
        .map(|c| c["version_info"].as_str().unwrap_or("").to_string())
}

/// Kills Envoy when the test ends, however it ends.
struct EnvoyGuard(Child);

impl Drop for EnvoyGuard {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

async fn round_trip(api_type: &str) {
    let Some(envoy) = rudder_test_support::envoy_bin("round_trip") else {
        return;
    };
    let echo = echo_server().await;
    let listen = free_port();
    let good = resources(echo, listen, "1", 1);
    let h = Harness::start(good.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bootstrap.yaml");
    let admin_path = dir.path().join("admin");
    std::fs::write(&cfg, bootstrap(h.addr.port(), api_type)).unwrap();
    let child = Command::new(envoy)
        .arg("-c")
        .arg(&cfg)
        .arg("--disable-hot-restart")
        .arg("--admin-address-path")
        .arg(&admin_path)
        .args(["--log-level", "warn", "--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let _guard = EnvoyGuard(child);

    wait_until_async(|| async { echo_through(listen).await }).await;
    let admin = loop_read_admin(&admin_path).await;
    let status = &h.server.status()[0];
    assert_eq!(status.node_id, ENVOY_NODE);
    assert!(
        status.user_agent.starts_with("envoy/"),
        "{}",
        status.user_agent
    );
    let good_cds = status.types["cds"]
        .last_acked_version
        .clone()
        .expect("CDS ACKed");
    let good_cluster_version = active_cluster_version(admin, "backend")
        .await
        .expect("backend in config_dump");
    let listeners = http_get(admin, "/config_dump?resource=dynamic_listeners").await;
    assert!(listeners.contains("\"ingress\""), "listener in config_dump");

    // A cluster Envoy rejects (connect_timeout must be > 0).
    h.publish(resources(echo, listen, "bad", -1));
    wait_until(|| h.server.status()[0].types["cds"].last_nack.is_some()).await;
    let cds = &h.server.status()[0].types["cds"];
    let nack = cds.last_nack.as_ref().unwrap();
    assert!(
        nack.error.to_ascii_lowercase().contains("duration"),
        "Envoy's reason, verbatim: {}",
        nack.error
    );
    assert_eq!(
        cds.last_acked_version.as_deref(),
        Some(good_cds.as_str()),
        "the ACKed version stays"
    );
    assert_eq!(h.server.metrics().rejects(CDS), 1);
    assert_eq!(
        active_cluster_version(admin, "backend").await.as_deref(),
        Some(good_cluster_version.as_str())
    );
    assert!(
        echo_through(listen).await,
        "traffic keeps flowing on the last good config"
    );

    // The next good change is accepted.
    h.publish(resources(echo, listen, "2", 2));
    wait_until_async(|| async {
        active_cluster_version(admin, "backend").await != Some(good_cluster_version.clone())
    })
    .await;
    assert!(echo_through(listen).await);
}

async fn loop_read_admin(path: &std::path::Path) -> u16 {
    let mut port = None;
    wait_until(|| {
        port = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().rsplit(':').next()?.parse().ok());
        port.is_some()
    })
    .await;
    port.unwrap()
}

/// Bounded wait for an async condition (Envoy start-up takes a moment).
async fn wait_until_async<F: std::future::Future<Output = bool>>(mut cond: impl FnMut() -> F) {
    for _ in 0..100 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not reached within the bound");
}

#[tokio::test]
async fn real_envoy_sotw_serves_and_nack_keeps_last_good() {
    round_trip("GRPC").await;
}

#[tokio::test]
async fn real_envoy_delta_serves_and_nack_keeps_last_good() {
    round_trip("DELTA_GRPC").await;
}

/// `resources` plus a cluster `other` whose one endpoint is `port`.
fn with_other(mut r: ProxyResources, port: u16) -> ProxyResources {
    let extra = Res::new()
        .cluster("other", "1")
        .any(
            EDS,
            "other",
            &port.to_string(),
            envoy_types::util::pack_any(load_assignment("other", port.into())),
        )
        .build();
    for (t, m) in extra.by_type {
        r.make_mut(t)
            .extend(m.iter().map(|(n, x)| (n.clone(), x.clone())));
    }
    r
}

/// An endpoint change sends one ClusterLoadAssignment, and Envoy keeps the
/// assignments the response does not name (SotW included).
async fn endpoint_change_sends_one_assignment(api_type: &str) {
    let Some(envoy) = rudder_test_support::envoy_bin("endpoint_change_sends_one_assignment") else {
        return;
    };
    let echo = echo_server().await;
    let listen = free_port();
    let h = Harness::start(with_other(resources(echo, listen, "1", 1), 20_001)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bootstrap.yaml");
    let admin_path = dir.path().join("admin");
    std::fs::write(&cfg, bootstrap(h.addr.port(), api_type)).unwrap();
    let child = Command::new(envoy)
        .arg("-c")
        .arg(&cfg)
        .arg("--disable-hot-restart")
        .arg("--admin-address-path")
        .arg(&admin_path)
        .args(["--log-level", "warn", "--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let _guard = EnvoyGuard(child);
    wait_until_async(|| async { echo_through(listen).await }).await;
    let admin = loop_read_admin(&admin_path).await;
    wait_until_async(|| async {
        http_get(admin, "/clusters")
            .await
            .contains("other::127.0.0.1:20001::")
    })
    .await;
    let before = h.server.metrics().pushed_resources(EDS);
    h.publish(with_other(resources(echo, listen, "1", 1), 20_002));
    wait_until_async(|| async {
        http_get(admin, "/clusters")
            .await
            .contains("other::127.0.0.1:20002::")
    })
    .await;
    assert_eq!(h.server.metrics().pushed_resources(EDS) - before, 1);
    let clusters = http_get(admin, "/clusters").await;
    assert!(
        clusters.contains(&format!("backend::127.0.0.1:{echo}::")),
        "backend's endpoints kept:\n{clusters}"
    );
    assert!(echo_through(listen).await);
}

#[tokio::test]
async fn real_envoy_sotw_keeps_assignments_a_response_omits() {
    endpoint_change_sends_one_assignment("GRPC").await;
}

#[tokio::test]
async fn real_envoy_delta_endpoint_change_sends_one_assignment() {
    endpoint_change_sends_one_assignment("DELTA_GRPC").await;
}
