//! The app's probes, rewritten by the injector, run by the agent binary:
//! `ISTIO_KUBE_APP_PROBERS` (as the injector writes it) is served under
//! `/app-health/` on the metrics port. A healthy HTTP and TCP probe answer
//! 200, a slow app and a closed port 503, an unknown path 404; a malformed
//! variable stops the agent at start with an error naming it.

mod common;

use std::{process::Command, time::Duration};

use common::{
    ads::{AdsConfig, AdsServer},
    get,
    upstream::start_upstream,
    Agent, Ports,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_probes_are_run_against_the_app() {
    if rudder_test_support::envoy_bin("rewritten_probes_are_run_against_the_app").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (app_port, app, _) = start_upstream().await;
    let closed = common::free_port();
    let probers = serde_json::json!({
        "/app-health/app/readyz": {"httpGet": {"path": "/", "port": app_port, "scheme": "HTTP"}, "timeoutSeconds": 1},
        "/app-health/app/livez": {"tcpSocket": {"port": app_port}, "timeoutSeconds": 1},
        "/app-health/app/startupz": {"httpGet": {"path": "/slow?ms=3000", "port": app_port}, "timeoutSeconds": 1},
        "/app-health/sidecar/readyz": {"tcpSocket": {"port": closed}, "timeoutSeconds": 1},
    })
    .to_string();
    let ads = AdsServer::start(
        AdsConfig {
            upstream_port: app_port,
            listen_port: common::free_port(),
            tls_port: None,
            sds: false,
        },
        true,
    )
    .await;
    let ports = Ports::free();
    let agent = Agent::start(
        dir.path(),
        ports,
        ads.port,
        &dir.path().join("no-certs"),
        &["--app-probers", &probers],
    );

    let mut ready = (0, String::new());
    for _ in 0..100 {
        ready = get(ports.metrics, "/app-health/app/readyz").await;
        if ready.0 != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let requests_before = app.requests.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(ready.0, 200, "{ready:?}\n{}", agent.tail());
    assert!(
        ready
            .1
            .contains(&format!("GET http://127.0.0.1:{app_port}/: HTTP 200")),
        "{ready:?}"
    );
    assert!(requests_before >= 1, "the app saw the probe");

    let live = get(ports.metrics, "/app-health/app/livez").await;
    assert_eq!(live.0, 200, "{live:?}");
    let startup = get(ports.metrics, "/app-health/app/startupz").await;
    assert_eq!(startup.0, 503, "{startup:?}");
    assert!(startup.1.contains("no answer within 1s"), "{startup:?}");
    let refused = get(ports.metrics, "/app-health/sidecar/readyz").await;
    assert_eq!(refused.0, 503, "{refused:?}");
    assert!(
        refused.1.contains(&format!("127.0.0.1:{closed}")),
        "{refused:?}"
    );
    let unknown = get(ports.metrics, "/app-health/other/readyz").await;
    assert_eq!(unknown.0, 404, "{unknown:?}");
    println!("readyz {ready:?}, livez {live:?}, startupz {startup:?}, closed port {refused:?}, unknown {unknown:?}");
}

#[test]
fn malformed_probers_stop_the_agent_with_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["proxy", "--discovery-address", "127.0.0.1:1"])
        .env("ENVOY_BIN", "/bin/true")
        .env(
            "ISTIO_KUBE_APP_PROBERS",
            r#"{"/app-health/app/readyz": {"exec": {"command": ["true"]}}}"#,
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ISTIO_KUBE_APP_PROBERS[\"/app-health/app/readyz\"]: unknown field `exec`"),
        "{stderr}"
    );
}
