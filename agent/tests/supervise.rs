//! The agent with real Envoy, loopback only: readiness follows the first
//! configuration from ADS; a killed Envoy is restarted; SIGTERM drains
//! (an in-flight slow request completes) and the agent exits 0, leaving no
//! Envoy process and no shared memory behind.

mod common;

use std::time::Duration;

use common::{
    ads::{AdsConfig, AdsServer},
    get,
    upstream::start_upstream,
    Agent, Ports,
};
use nix::sys::signal::Signal;

async fn wait_envoy_state(agent: &Agent) -> String {
    let admin = rudder_agent::admin::Admin::new(agent.ports.admin, Duration::from_secs(2));
    for _ in 0..100 {
        if let Ok(s) = admin.state().await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Envoy admin never answered\n{}", agent.tail());
}

/// Readiness is false while ADS has not answered, true once it has.
async fn readiness_follows_ads(xds: &str) -> (Agent, AdsServer, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (upstream_port, _, _) = start_upstream().await;
    let listen_port = common::free_port();
    let ads = AdsServer::start(
        AdsConfig {
            upstream_port,
            listen_port,
            tls_port: None,
            sds: false,
        },
        true,
    )
    .await;
    let agent = Agent::start(
        dir.path(),
        Ports::free(),
        ads.port,
        &dir.path().join("no-certs"),
        &[
            "--xds",
            xds,
            "--drain-duration",
            "3s",
            "--parent-shutdown-duration",
            "5s",
        ],
    );
    let state = wait_envoy_state(&agent).await;
    let mut not_ready = 0;
    for _ in 0..5 {
        let (status, body) = agent.ready().await;
        assert_eq!(status, 503, "ready before ADS answered: {body}");
        assert!(body.contains("not ready"), "{body}");
        not_ready += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "[{xds}] Envoy {state}, readiness 503 x{not_ready} before ADS answered: {:?}",
        agent.ready().await.1.trim()
    );
    ads.open();
    let polls = agent.wait_ready(Duration::from_secs(30)).await;
    let (status, body) = get(listen_port, "/").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "ok"),
        "traffic through Envoy"
    );
    println!(
        "[{xds}] ready after {polls} polls once ADS answered; request through Envoy: {status}"
    );
    (agent, ads, listen_port, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_ready_restart_after_kill_and_drain_on_sigterm() {
    if rudder_test_support::envoy_bin("delta_ready_restart_after_kill_and_drain_on_sigterm")
        .is_none()
    {
        return;
    }
    let (mut agent, _ads, listen_port, _dir) = readiness_follows_ads("delta").await;

    // kill -9 Envoy: the agent starts a new one, readiness comes back.
    let pids = agent.envoy_pids();
    assert_eq!(pids.len(), 1, "one Envoy: {pids:?}");
    let old = pids[0];
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old as i32), Signal::SIGKILL).unwrap();
    agent
        .wait_metric(
            "rudder_agent_envoy_restarts_total",
            1,
            Duration::from_secs(20),
        )
        .await;
    agent.wait_ready(Duration::from_secs(30)).await;
    let new = agent.envoy_pids();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_ne!(new[0], old, "a new Envoy process");
    assert_eq!(get(listen_port, "/").await.0, 200);
    println!(
        "kill -9 Envoy pid {old} -> restarted as pid {}, ready again, restarts_total=1",
        new[0]
    );

    // SIGTERM with a slow request in flight: it completes, then the agent exits 0.
    let base_id = agent.base_id().expect("base id written");
    let shm = rudder_agent::envoy::shm_path(base_id);
    assert!(shm.exists(), "{} exists while Envoy runs", shm.display());
    let slow = tokio::spawn(async move { get(listen_port, "/slow?ms=1500").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.signal(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = agent.ready().await;
    let (slow_status, slow_body) = slow.await.unwrap();
    assert_eq!(
        (slow_status, slow_body.as_str()),
        (200, "slow ok"),
        "in-flight request completed during drain"
    );
    let code = agent.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(code, Some(0), "agent exit code\n{}", agent.tail());
    assert!(
        agent.envoy_pids().is_empty(),
        "no Envoy left: {:?}",
        agent.envoy_pids()
    );
    assert!(!shm.exists(), "{} removed", shm.display());
    let log = agent.log_text();
    assert!(log.contains("drain finished"), "{}", agent.tail());
    println!("SIGTERM: readiness during drain {status} {:?}; slow request {slow_status}; exit code 0; shm removed", body.trim());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_ready_and_quitquitquit() {
    if rudder_test_support::envoy_bin("sotw_ready_and_quitquitquit").is_none() {
        return;
    }
    let (mut agent, _ads, _listen_port, _dir) = readiness_follows_ads("sotw").await;
    let metrics = agent.metrics().await;
    assert!(
        metrics.contains("envoy_cluster_manager_cds_update_success"),
        "Envoy's stats merged in"
    );
    assert!(
        metrics.contains("\nrudder_agent_hot_restart_epoch 0\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("rudder_agent_cert_expiry_seconds"),
        "no certificates, no expiry"
    );
    // `agent wait` (the app's postStart hook) returns at once when ready, fails after its timeout otherwise.
    let wait = |url: String, timeout: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_agent"))
            .args([
                "wait",
                "--timeout",
                timeout,
                "--period",
                "100ms",
                "--url",
                &url,
            ])
            .output()
            .unwrap()
    };
    let ok = wait(agent.status_url(), "10s");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let closed = format!("http://127.0.0.1:{}/healthz/ready", common::free_port());
    let timed_out = wait(closed, "500ms");
    assert!(!timed_out.status.success());
    let err = String::from_utf8_lossy(&timed_out.stderr);
    assert!(err.contains("not ready after"), "{err}");
    println!(
        "agent wait: exit 0 when ready; exit {:?} after its timeout: {}",
        timed_out.status.code(),
        err.trim()
    );

    // The read-only config dump on the metrics port (15020): Envoy's own.
    let dump_url = |q: &str| format!("http://127.0.0.1:{}/config_dump{q}", agent.ports.metrics);
    let get_dump = |url: String| async move {
        rudder_agent::admin::request(hyper::Method::GET, &url, Duration::from_secs(5))
            .await
            .unwrap()
    };
    let all = get_dump(dump_url("")).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let all: serde_json::Value = serde_json::from_str(&all.body).expect("config dump is JSON");
    let types: Vec<&str> = all["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .filter_map(|c| c["@type"].as_str())
        .collect();
    for t in [
        "BootstrapConfigDump",
        "ClustersConfigDump",
        "ListenersConfigDump",
    ] {
        assert!(types.iter().any(|x| x.ends_with(t)), "{t} in {types:?}");
    }
    let clusters = get_dump(dump_url("?resource=dynamic_active_clusters")).await;
    let clusters: serde_json::Value = serde_json::from_str(&clusters.body).unwrap();
    let names: Vec<&str> = clusters["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["cluster"]["name"].as_str())
        .collect();
    assert!(!names.is_empty(), "the ADS server's clusters: {clusters}");
    let refused = get_dump(dump_url("?format=prometheus")).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let certs = get_dump(format!("http://127.0.0.1:{}/certs", agent.ports.metrics)).await;
    assert_eq!(certs.status, 200);
    assert!(serde_json::from_str::<serde_json::Value>(&certs.body).is_ok());
    let hosts = get_dump(format!("http://127.0.0.1:{}/clusters", agent.ports.metrics)).await;
    let hosts: serde_json::Value = serde_json::from_str(&hosts.body).unwrap();
    assert!(hosts["cluster_statuses"].is_array(), "{hosts}");
    println!(
        "GET :15020/config_dump: {} config types; ?resource=dynamic_active_clusters: {names:?}; other parameters 400",
        types.len()
    );

    let url = format!("http://127.0.0.1:{}/quitquitquit", agent.ports.metrics);
    let r = rudder_agent::admin::request(hyper::Method::POST, &url, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let code = agent.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(code, Some(0), "{}", agent.tail());
    assert!(agent.envoy_pids().is_empty());
    println!("[sotw] /quitquitquit from loopback: 200, agent exited 0");
}
