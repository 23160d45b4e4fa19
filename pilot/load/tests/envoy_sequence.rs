//! pilot-load's Envoy emulation against real Envoy 1.40: on the same small
//! mesh, for the same pod, both send pilot the same sequence of requests
//! (SotW and Delta), from the first CDS request until they are configured,
//! and again when a service is added (new clusters, assignments, a listener
//! and its routes).
//!
//! ```text
//!  real Envoy ──┐                                   ┌── pilot serve --config-dir (generated mesh)
//!               ├─► recording ADS proxy (this test) ─┤
//!  emulation  ──┘   logs every request per stream   └── (each stream forwarded on its own)
//! ```
//!
//! A request is logged as what pilot acts on: its type, whether it answers
//! a response (nonce), whether it rejects one (error detail), the SotW
//! version it holds, and the names it subscribes and unsubscribes (sorted:
//! pilot compares names as sets). The capture listeners bind free loopback
//! ports (the node's `CAPTURE_PORT`), so Envoy accepts every resource.
//!
//! Needs Envoy (`ENVOY_BIN`, default `/opt/rudder/bin/envoy`); skipped when
//! missing unless `CI=true`. pilot is found as in `small_mesh.rs`.

use std::{
    collections::HashSet,
    net::{SocketAddr, TcpListener},
    path::Path,
    pin::Pin,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
    aggregated_discovery_service_server::{
        AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
    },
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use rudder_model::node::{NodeId, NodeMetadata};
use rudder_pilot_load::{
    generate::{self, Shape},
    run::Pilot,
    sidecar::{self, Mode, Type},
};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

mod common;
use common::pilot_bin;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The requests of one stream, as pilot sees them.
type Log = Arc<Mutex<Vec<String>>>;

fn short(type_url: &str) -> String {
    Type::ALL
        .into_iter()
        .find(|t| t.url() == type_url)
        .map_or_else(|| type_url.to_string(), |t| t.short().to_string())
}

fn sorted(names: &[String]) -> String {
    let mut v = names.to_vec();
    v.sort();
    v.join(",")
}

fn sotw_line(r: &DiscoveryRequest) -> String {
    format!(
        "{} version={} answers={} nack={} names=[{}]",
        short(&r.type_url),
        r.version_info,
        !r.response_nonce.is_empty(),
        r.error_detail.is_some(),
        sorted(&r.resource_names)
    )
}

fn delta_line(r: &DeltaDiscoveryRequest) -> String {
    format!(
        "{} answers={} nack={} +[{}] -[{}]",
        short(&r.type_url),
        !r.response_nonce.is_empty(),
        r.error_detail.is_some(),
        sorted(&r.resource_names_subscribe),
        sorted(&r.resource_names_unsubscribe)
    )
}

/// An ADS server that forwards each stream to pilot on a stream of its
/// own and logs the requests.
#[derive(Clone)]
struct Recorder {
    upstream: String,
    streams: Arc<Mutex<Vec<Log>>>,
}

type Responses<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl Recorder {
    fn log(&self) -> Log {
        let log = Log::default();
        self.streams.lock().unwrap().push(log.clone());
        log
    }

    async fn client(
        &self,
    ) -> Result<AggregatedDiscoveryServiceClient<tonic::transport::Channel>, Status> {
        AggregatedDiscoveryServiceClient::connect(self.upstream.clone())
            .await
            .map_err(|e| Status::unavailable(format!("pilot: {e}")))
            .map(|c| {
                c.max_decoding_message_size(usize::MAX)
                    .max_encoding_message_size(usize::MAX)
            })
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Recorder {
    type StreamAggregatedResourcesStream = Responses<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = Responses<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let log = self.log();
        let requests = request.into_inner().map_while(move |r| {
            let r = r.ok()?;
            log.lock().unwrap().push(sotw_line(&r));
            Some(r)
        });
        let responses = self
            .client()
            .await?
            .stream_aggregated_resources(requests)
            .await?;
        Ok(Response::new(Box::pin(responses.into_inner())))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let log = self.log();
        let requests = request.into_inner().map_while(move |r| {
            let r = r.ok()?;
            log.lock().unwrap().push(delta_line(&r));
            Some(r)
        });
        let responses = self
            .client()
            .await?
            .delta_aggregated_resources(requests)
            .await?;
        Ok(Response::new(Box::pin(responses.into_inner())))
    }
}

/// The pod both clients speak for, with its capture listeners on free
/// loopback ports.
fn node_metadata(shape: &Shape) -> (NodeId, NodeMetadata) {
    let (id, mut md) = rudder_pilot_load::run::pod_node(shape, 0, 1);
    md.capture_port = free_port();
    md.inbound_capture_port = free_port();
    (id, md)
}

fn bootstrap(node: &Node, md: &NodeMetadata, ads: SocketAddr, mode: Mode) -> String {
    let api_type = match mode {
        Mode::Sotw => "GRPC",
        Mode::Delta => "DELTA_GRPC",
    };
    // JSON is YAML: the metadata goes in as the agent writes it.
    let node = format!(
        r#"{{id: "{}", cluster: "{}", metadata: {}}}"#,
        node.id,
        node.cluster,
        md.to_json()
    );
    rudder_test_support::ads_bootstrap(&node, api_type, ads.port())
}

/// Waits until `log` has not grown for `quiet` (after it has something),
/// at most `limit`.
async fn settled(log: &Log, quiet: Duration, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let (mut len, mut since) = (0, Instant::now());
    loop {
        let now = log.lock().unwrap().len();
        if now != len {
            (len, since) = (now, Instant::now());
        } else if len > 0 && since.elapsed() >= quiet {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "requests still coming after {limit:?}: {:#?}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    log.lock().unwrap().clone()
}

/// Kills Envoy when the test ends, however it ends.
struct EnvoyGuard(std::process::Child);

impl Drop for EnvoyGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn same_sequence(mode: Mode) {
    let Some(envoy) = rudder_test_support::envoy_bin("emulation_sends_what_envoy_sends") else {
        return;
    };
    // Two services × two versions in one namespace: EDS clusters (one per
    // subset), service listeners and their route configurations.
    let dir = tempfile::tempdir().expect("tempdir");
    let shape = Shape::new(2, 2, 1, 1);
    generate::generate(dir.path(), &shape).expect("generate");
    let (mut pilot, _) = Pilot::start(&pilot_bin(), dir.path(), false).expect("start pilot");
    pilot
        .wait_ready(Duration::from_secs(30))
        .await
        .expect("pilot ready");

    let recorder = Recorder {
        upstream: format!("http://{}", pilot.xds),
        streams: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ads = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                AggregatedDiscoveryServiceServer::new(recorder.clone())
                    .max_decoding_message_size(usize::MAX)
                    .max_encoding_message_size(usize::MAX),
            )
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let (id, md) = node_metadata(&shape);
    let node = rudder_pilot_load::run::envoy_node(&id, &md);
    let work = tempfile::tempdir().expect("tempdir");
    let cfg = work.path().join("bootstrap.yaml");
    std::fs::write(&cfg, bootstrap(&node, &md, ads, mode)).unwrap();
    let child = Command::new(envoy)
        .arg("-c")
        .arg(&cfg)
        .args(["--disable-hot-restart", "--log-level", "warn"])
        .args(["--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start envoy");
    let guard = EnvoyGuard(child);
    let envoy_log = loop {
        if let Some(l) = recorder.streams.lock().unwrap().first() {
            break l.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let real = settled(&envoy_log, Duration::from_secs(2), Duration::from_secs(60)).await;
    add_service(dir.path(), &shape, true);
    let real_add = after(&envoy_log, real.len()).await;
    drop(guard);
    add_service(dir.path(), &shape, false);
    // pilot publishes the removal before the emulation connects.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let state = Arc::new(Mutex::new(sidecar::State::default()));
    let emulated = tokio::spawn(sidecar::run(
        sidecar::Config {
            addr: ads,
            mode,
            node,
            watch: Arc::new(HashSet::new()),
            stop,
            connect_deadline: Instant::now() + Duration::from_secs(10),
        },
        state.clone(),
    ));
    let emulation_log = loop {
        if let Some(l) = recorder.streams.lock().unwrap().get(1) {
            break l.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let emulation = settled(
        &emulation_log,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await;
    assert!(
        state.lock().unwrap().configured_at.is_some(),
        "the emulation configured itself"
    );
    add_service(dir.path(), &shape, true);
    let emulation_add = after(&emulation_log, emulation.len()).await;
    let _ = stop_tx.send(true);
    let _ = emulated.await;
    server.abort();

    // Configured: Envoy ACKed every type (and rejected nothing).
    for t in ["CDS", "EDS", "LDS", "RDS"] {
        assert!(
            real.iter()
                .any(|l| l.starts_with(&format!("{t} ")) && l.contains("answers=true nack=false")),
            "Envoy never ACKed {t}: {real:#?}"
        );
    }
    assert!(!real.iter().any(|l| l.contains("nack=true")), "{real:#?}");
    assert_eq!(
        emulation, real,
        "{mode:?}: the emulation's requests (left) differ from Envoy's (right)"
    );
    // The add subscribed the new service's assignments and routes.
    let added = Shape::service_name(shape.services);
    assert!(
        real_add
            .iter()
            .any(|l| l.starts_with("EDS ") && l.contains(&added)),
        "{real_add:#?}"
    );
    assert!(
        real_add
            .iter()
            .any(|l| l.starts_with("RDS ") && l.contains(&added)),
        "{real_add:#?}"
    );
    assert_eq!(
        emulation_add, real_add,
        "{mode:?}, service add: the emulation's requests (left) differ from Envoy's (right)"
    );
}

/// Adds (or removes) one more service with its pods, in one file, so
/// pilot sees it in one change.
fn add_service(dir: &Path, shape: &Shape, add: bool) {
    let i = shape.services;
    let path = dir.join("services").join("added.yaml");
    if add {
        let text = format!(
            "{}\n---\n{}",
            generate::service_yaml(shape, i),
            generate::pods_yaml(shape, i, |_| true)
        );
        generate::write_atomic(&path, &text).expect("write the added service");
    } else {
        std::fs::remove_file(&path).expect("remove the added service");
    }
}

/// The requests after the first `from`, once they settle.
async fn after(log: &Log, from: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.lock().unwrap().len() == from {
        assert!(Instant::now() < deadline, "no request after the change");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    settled(log, Duration::from_secs(2), Duration::from_secs(60)).await[from..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulation_sends_what_envoy_sends_sotw() {
    same_sequence(Mode::Sotw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulation_sends_what_envoy_sends_delta() {
    same_sequence(Mode::Delta).await;
}
