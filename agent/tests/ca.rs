//! Certificates from pilot's CA, with real Envoy: an in-process certificate
//! service (rudder-ca over TLS on loopback, 6 s certificates) and the agent
//! binary with `--ca-address`.
//!
//! - file mode: the agent gets the first certificate before Envoy starts,
//!   renews at half life, and every renewal hot-restarts Envoy under load
//!   with 0 failed requests;
//! - SDS mode: Envoy gets `default`/`ROOTCA` from the agent's socket (its
//!   `/certs` shows the SPIFFE URI SAN) and renewals change the served
//!   certificate with the same Envoy process (no restart).

mod common;

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};

use common::{
    ads::{AdsConfig, AdsServer},
    upstream::{h2_streams, keepalive_requests, short_requests, start_upstream, LoadStats},
    Agent, Ports,
};
use rudder_ca::{sign_local_token, Authenticators, Counter, LocalTokenAuthenticator};
use rudder_test_support::ca::CaServer;

const KEY: &[u8] = b"test-local-token-key-0123456789abcdef";
const SPIFFE: &str = "spiffe://cluster.local/ns/default/sa/app";

/// Starts the certificate service and writes the root and the pod's token into `dir`.
async fn start_ca(dir: &Path, ttl: Duration) -> CaServer {
    let auth = Authenticators::new().with(Arc::new(LocalTokenAuthenticator::new(KEY)));
    let ca = CaServer::start(ttl, auth).await;
    std::fs::write(dir.join("root-cert.pem"), ca.root_pem()).unwrap();
    std::fs::write(
        dir.join("istio-token"),
        sign_local_token(KEY, "app-0", "default", "app", Duration::from_secs(3600)),
    )
    .unwrap();
    ca
}

fn ca_flags<'a>(ca: &'a CaServer, dir: &'a Path, mode: &'a str) -> Vec<String> {
    let mut v = vec![
        "--ca-address".to_string(),
        ca.addr.clone(),
        "--ca-root".into(),
        dir.join("root-cert.pem").display().to_string(),
        "--token-file".into(),
        dir.join("istio-token").display().to_string(),
        "--cert-ttl".into(),
        "6s".into(),
        "--cert-mode".into(),
        mode.into(),
        "--drain-duration".into(),
        "1s".into(),
        "--parent-shutdown-duration".into(),
        "2s".into(),
    ];
    if mode == "sds" {
        v.extend([
            "--sds-socket".to_string(),
            dir.join("sds").join("socket").display().to_string(),
        ]);
    }
    v
}

/// The serial of the workload certificate Envoy serves (from admin `/certs`), once its SAN is ours.
async fn served_serial(agent: &Agent) -> Option<String> {
    let body = agent.envoy_certs().await;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    for c in v["certificates"].as_array()? {
        for cert in c["cert_chain"].as_array().into_iter().flatten() {
            let ours = cert["subject_alt_names"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["uri"] == SPIFFE);
            if ours {
                return cert["serial_number"].as_str().map(str::to_string);
            }
        }
    }
    None
}

async fn wait_serial_other_than(agent: &Agent, old: Option<&str>, limit: Duration) -> String {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if let Some(s) = served_serial(agent).await {
            if Some(s.as_str()) != old {
                return s;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "Envoy never served a new certificate with SAN {SPIFFE} (old {old:?}): {}\n{}",
        agent.envoy_certs().await,
        agent.tail()
    );
}

struct Load {
    stop: Arc<AtomicBool>,
    stats: [Arc<LoadStats>; 3],
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn start_load(port: u16) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let stats = [
        Arc::new(LoadStats::default()),
        Arc::new(LoadStats::default()),
        Arc::new(LoadStats::default()),
    ];
    let tasks = vec![
        tokio::spawn(short_requests(port, stop.clone(), stats[0].clone())),
        tokio::spawn(keepalive_requests(port, stop.clone(), stats[1].clone())),
        tokio::spawn(h2_streams(port, 1000, stop.clone(), stats[2].clone())),
    ];
    Load { stop, stats, tasks }
}

impl Load {
    async fn finish(self) -> String {
        self.stop.store(true, SeqCst);
        for t in self.tasks {
            tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .expect("load task ends")
                .unwrap();
        }
        let [s, k, h] = &self.stats;
        let failed = s.failed.load(SeqCst) + k.failed.load(SeqCst) + h.failed.load(SeqCst);
        let text = format!(
            "short ok={} failed={}, keep-alive ok={} failed={} reconnects={}, h2 streams ok={} failed={} cut={} stuck={}",
            s.ok.load(SeqCst), s.failed.load(SeqCst),
            k.ok.load(SeqCst), k.failed.load(SeqCst), k.reconnects.load(SeqCst),
            h.ok.load(SeqCst), h.failed.load(SeqCst), h.cut.load(SeqCst), h.stuck.load(SeqCst),
        );
        assert_eq!(failed, 0, "failed requests: {text}");
        assert!(
            h.stuck.load(SeqCst) <= 1,
            "HTTP/2 streams stuck past their deadline (tolerated once, see h2_streams): {text}"
        );
        assert!(
            s.ok.load(SeqCst) > 0 && k.ok.load(SeqCst) > 0 && h.ok.load(SeqCst) > 0,
            "{text}"
        );
        text
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_mode_obtains_renews_and_hot_restarts_without_failed_requests() {
    if rudder_test_support::envoy_bin(
        "file_mode_obtains_renews_and_hot_restarts_without_failed_requests",
    )
    .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca(dir.path(), Duration::from_secs(6)).await;
    let certs = dir.path().join("certs");
    let (upstream_port, _, _) = start_upstream().await;
    let (listen_port, tls_port) = (common::free_port(), common::free_port());
    let ads = AdsServer::start(
        AdsConfig {
            upstream_port,
            listen_port,
            tls_port: Some(tls_port),
            sds: false,
        },
        false,
    )
    .await;
    let flags = ca_flags(&ca, dir.path(), "file");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut agent = Agent::start(dir.path(), Ports::free(), ads.port, &certs, &flags);
    agent.wait_ready(Duration::from_secs(30)).await;
    let first = wait_serial_other_than(&agent, None, Duration::from_secs(20)).await;
    assert!(
        certs.join("key.pem").exists(),
        "the agent wrote its key into --cert-dir"
    );

    let load = start_load(listen_port);
    let mut serials = vec![first];
    for _ in 0..3 {
        let next = wait_serial_other_than(
            &agent,
            serials.last().map(String::as_str),
            Duration::from_secs(20),
        )
        .await;
        println!(
            "file mode: renewed, Envoy serves serial {next}, hot restarts so far {:?}",
            agent.metric("rudder_agent_hot_restarts_total").await
        );
        serials.push(next);
    }
    let restarts = agent
        .metric("rudder_agent_hot_restarts_total")
        .await
        .unwrap();
    assert!(restarts >= 3, "each renewal hot-restarts Envoy: {restarts}");
    assert_eq!(
        agent.metric("rudder_agent_envoy_restarts_total").await,
        Some(0)
    );
    let expiry = agent
        .metric("rudder_agent_cert_expiry_seconds")
        .await
        .expect("expiry metric");
    assert!((0..=7).contains(&expiry), "{expiry}");
    let text = load.finish().await;
    let issued = ca.metrics.get(Counter::Success);
    assert!(
        issued as usize <= serials.len() + 3,
        "renewals at half life, not a loop: {issued} issued"
    );
    println!(
        "file mode totals: renewals served {}, hot restarts {restarts}, CA issued {}, {text}",
        serials.len() - 1,
        ca.metrics.get(Counter::Success)
    );
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        agent.wait_exit(Duration::from_secs(20)).await,
        Some(0),
        "{}",
        agent.tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sds_mode_serves_secrets_and_rotates_without_restart() {
    if rudder_test_support::envoy_bin("sds_mode_serves_secrets_and_rotates_without_restart")
        .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca(dir.path(), Duration::from_secs(6)).await;
    let certs = dir.path().join("certs-unused");
    let (upstream_port, _, _) = start_upstream().await;
    let (listen_port, tls_port) = (common::free_port(), common::free_port());
    let ads = AdsServer::start(
        AdsConfig {
            upstream_port,
            listen_port,
            tls_port: Some(tls_port),
            sds: true,
        },
        false,
    )
    .await;
    let flags = ca_flags(&ca, dir.path(), "sds");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut agent = Agent::start(dir.path(), Ports::free(), ads.port, &certs, &flags);
    agent.wait_ready(Duration::from_secs(30)).await;
    let first = wait_serial_other_than(&agent, None, Duration::from_secs(20)).await;
    let pids = agent.envoy_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert!(!certs.exists(), "SDS mode writes no files");

    let load = start_load(listen_port);
    let mut serials = vec![first];
    for _ in 0..3 {
        let next = wait_serial_other_than(
            &agent,
            serials.last().map(String::as_str),
            Duration::from_secs(20),
        )
        .await;
        println!(
            "sds mode: renewed, Envoy serves serial {next}, Envoy pids {:?}",
            agent.envoy_pids()
        );
        serials.push(next);
    }
    assert_eq!(
        agent.envoy_pids(),
        pids,
        "same Envoy process across renewals"
    );
    assert_eq!(
        agent.metric("rudder_agent_hot_restarts_total").await,
        Some(0)
    );
    let expiry = agent
        .metric("rudder_agent_cert_expiry_seconds")
        .await
        .expect("expiry metric");
    assert!((0..=7).contains(&expiry), "{expiry}");
    let text = load.finish().await;
    let issued = ca.metrics.get(Counter::Success);
    assert!(
        issued as usize <= serials.len() + 3,
        "renewals at half life, not a loop: {issued} issued"
    );
    println!(
        "sds mode totals: renewals served {}, restarts 0, CA issued {}, {text}",
        serials.len() - 1,
        ca.metrics.get(Counter::Success)
    );
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        agent.wait_exit(Duration::from_secs(20)).await,
        Some(0),
        "{}",
        agent.tail()
    );
}
