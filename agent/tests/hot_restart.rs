//! Hot restart under load: certificates rotate 10 times (rcgen, each signed
//! by the test root; alternately kubelet-style `..data` swaps and in-place
//! rewrites) while clients send short requests, keep-alive HTTP/1.1 requests
//! and long-lived HTTP/2 streams through Envoy. Expect 10 new epochs, each
//! serving the new certificate, 0 failed requests, then a corrupt
//! certificate that is rejected while Envoy keeps serving with the old one,
//! and finally no Envoy process and no shared memory left.

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};

use common::{
    ads::{AdsConfig, AdsServer},
    upstream::{h2_streams, keepalive_requests, short_requests, start_upstream, LoadStats},
    write_certs_atomic, write_certs_in_place, Agent, Ports, TestCa,
};
use nix::sys::signal::Signal;

const SERIAL_BASE: u64 = 0x5a00_0000_0000_0000;

async fn wait_cert_served(agent: &Agent, serial: &str) {
    for _ in 0..100 {
        if agent.envoy_certs().await.to_lowercase().contains(serial) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "Envoy never served certificate {serial}: {}\n{}",
        agent.envoy_certs().await,
        agent.tail()
    );
}

async fn wait_single_epoch(agent: &Agent) -> u32 {
    for _ in 0..150 {
        let pids = agent.envoy_pids();
        if pids.len() == 1 {
            return pids[0];
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "old epochs not reaped: {:?}\n{}",
        agent.envoy_pids(),
        agent.tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_hot_restart_without_failed_requests() {
    if rudder_test_support::envoy_bin("rotations_hot_restart_without_failed_requests").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let ca = TestCa::new();
    let (chain, key, serial) = ca.leaf(SERIAL_BASE);
    write_certs_atomic(&certs, 0, &chain, &key, &ca.root_pem);

    let (upstream_port, upstream, _) = start_upstream().await;
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
    let mut agent = Agent::start(
        dir.path(),
        Ports::free(),
        ads.port,
        &certs,
        &["--drain-duration", "1s", "--parent-shutdown-duration", "3s"],
    );
    agent.wait_ready(Duration::from_secs(30)).await;
    wait_cert_served(&agent, &serial).await;
    let expiry = agent
        .metric("rudder_agent_cert_expiry_seconds")
        .await
        .expect("expiry metric");
    assert!(expiry > 0, "{expiry}");

    let stop = Arc::new(AtomicBool::new(false));
    let (short, keepalive, h2) = (
        Arc::new(LoadStats::default()),
        Arc::new(LoadStats::default()),
        Arc::new(LoadStats::default()),
    );
    let tasks = vec![
        tokio::spawn(short_requests(listen_port, stop.clone(), short.clone())),
        tokio::spawn(short_requests(listen_port, stop.clone(), short.clone())),
        tokio::spawn(keepalive_requests(
            listen_port,
            stop.clone(),
            keepalive.clone(),
        )),
        tokio::spawn(h2_streams(listen_port, 1000, stop.clone(), h2.clone())),
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut pids = vec![wait_single_epoch(&agent).await];
    for k in 1..=10u32 {
        let (chain, key, serial) = ca.leaf(SERIAL_BASE + u64::from(k));
        if k % 2 == 0 {
            write_certs_atomic(&certs, k, &chain, &key, &ca.root_pem);
        } else {
            write_certs_in_place(&certs, &chain, &key, &ca.root_pem);
        }
        agent
            .wait_metric(
                "rudder_agent_hot_restart_epoch",
                i64::from(k),
                Duration::from_secs(30),
            )
            .await;
        wait_cert_served(&agent, &serial).await;
        let pid = wait_single_epoch(&agent).await;
        assert!(!pids.contains(&pid), "epoch {k} is a new process");
        pids.push(pid);
        println!(
            "rotation {k} ({}): epoch {k} pid {pid} serves serial {serial}; so far short ok={} failed={}, keep-alive ok={} failed={} reconnects={}, h2 streams ok={} cut={} stuck={}",
            if k % 2 == 0 { "..data swap" } else { "in-place rewrite" },
            short.ok.load(SeqCst), short.failed.load(SeqCst),
            keepalive.ok.load(SeqCst), keepalive.failed.load(SeqCst), keepalive.reconnects.load(SeqCst),
            h2.ok.load(SeqCst), h2.cut.load(SeqCst), h2.stuck.load(SeqCst),
        );
    }
    assert_eq!(
        agent.metric("rudder_agent_hot_restarts_total").await,
        Some(10)
    );
    assert_eq!(
        agent.metric("rudder_agent_envoy_restarts_total").await,
        Some(0),
        "no crash restarts"
    );

    // Corrupt certificates: rejected with a clear error, Envoy keeps serving the old ones.
    let errors_before = agent
        .metric("rudder_agent_cert_errors_total")
        .await
        .unwrap();
    let last_serial = format!("{:x}", SERIAL_BASE + 10);
    let last_pid = *pids.last().unwrap();
    std::fs::write(
        certs.join("cert-chain.pem"),
        "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    agent
        .wait_metric(
            "rudder_agent_cert_errors_total",
            errors_before + 1,
            Duration::from_secs(10),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        agent.metric("rudder_agent_hot_restart_epoch").await,
        Some(10),
        "no new epoch"
    );
    assert_eq!(agent.envoy_pids(), vec![last_pid], "same Envoy process");
    assert!(
        agent
            .envoy_certs()
            .await
            .to_lowercase()
            .contains(&last_serial),
        "old certificate still served"
    );
    let log = agent.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("rejected new certificates"))
        .expect("error logged")
        .to_string();
    assert!(
        line.contains("cert-chain.pem"),
        "error names the file: {line}"
    );
    println!("corrupt cert-chain.pem -> {}", line.trim());

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, SeqCst);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("load task ends")
            .unwrap();
    }
    let base_id = agent.base_id().expect("base id");
    let shm = rudder_agent::envoy::shm_path(base_id);
    agent.signal(Signal::SIGTERM);
    assert_eq!(
        agent.wait_exit(Duration::from_secs(20)).await,
        Some(0),
        "{}",
        agent.tail()
    );
    let leftover = agent.envoy_pids();
    println!(
        "totals: epochs {}, short ok={} failed={}, keep-alive ok={} failed={} reconnects={}, h2 streams ok={} failed={} cut at parent shutdown={} stuck={}, upstream requests={}, leftover Envoy processes={}, shm {} exists={}",
        pids.len() - 1,
        short.ok.load(SeqCst), short.failed.load(SeqCst),
        keepalive.ok.load(SeqCst), keepalive.failed.load(SeqCst), keepalive.reconnects.load(SeqCst),
        h2.ok.load(SeqCst), h2.failed.load(SeqCst), h2.cut.load(SeqCst), h2.stuck.load(SeqCst),
        upstream.requests.load(SeqCst), leftover.len(), shm.display(), shm.exists(),
    );
    assert_eq!(short.failed.load(SeqCst), 0, "failed short requests");
    assert_eq!(
        keepalive.failed.load(SeqCst),
        0,
        "failed keep-alive requests"
    );
    assert_eq!(
        h2.failed.load(SeqCst),
        0,
        "HTTP/2 streams that failed to start"
    );
    // A stream that neither ends nor fails is abandoned after its deadline
    // (see `h2_streams`). Seen once in CI in ~20 runs, never locally: tolerated
    // once, printed with the phase it hung in.
    assert!(
        h2.stuck.load(SeqCst) <= 1,
        "HTTP/2 streams stuck past their deadline"
    );
    assert!(
        short.ok.load(SeqCst) > 100 && keepalive.ok.load(SeqCst) > 100,
        "load actually ran"
    );
    assert!(
        keepalive.reconnects.load(SeqCst) >= 10,
        "keep-alive client moved to each new epoch"
    );
    assert!(leftover.is_empty(), "{leftover:?}");
    assert!(!shm.exists());
}
