//! The tonic service: both ADS methods on one port, one task per stream.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use envoy_types::pb::envoy::service::discovery::v3::{
    aggregated_discovery_service_server::{
        AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
    },
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use rudder_xds::ProxyResources;
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
};
use tokio_stream::{
    wrappers::{ReceiverStream, TcpListenerStream},
    StreamExt,
};
use tonic::{Request, Response, Status, Streaming};

use crate::{
    delta::Delta,
    metrics::Metrics,
    node::NodeInfo,
    sotw::Sotw,
    status::{ConnectionStatus, StatusTable},
    stream,
};

/// HTTP/2 pings to each proxy's connection, and how long to wait for the answer.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Responses buffered per stream before the stream task waits for the client.
const STREAM_BUFFER: usize = 16;

/// Where the server gets each proxy's resources; pilot implements it.
///
/// Called once per stream, with the node from its first request. The
/// returned receiver is the proxy's resources, republished by pilot whenever
/// they change; the stream drops it when it ends (pilot sees that through
/// `Sender::is_closed` / `receiver_count`). Several streams may connect with
/// the same node id at once (Envoy hot restart): each gets its own call.
/// Dropping the sender ends the streams watching it (the proxy reconnects).
pub trait ProxyDirectory: Send + Sync + 'static {
    /// The proxy's resources, or the status to end the stream with (e.g.
    /// `invalid_argument` for a node id pilot cannot parse).
    fn connect(&self, node: &NodeInfo) -> Result<watch::Receiver<Arc<ProxyResources>>, Status>;
}

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The gRPC transport failed (accepting, HTTP/2).
    #[error("ADS transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

pub(crate) struct Shared {
    pub(crate) directory: Arc<dyn ProxyDirectory>,
    pub(crate) status: StatusTable,
    pub(crate) metrics: Metrics,
    /// Makes nonces of this process distinct from a previous one's.
    pub(crate) nonce_prefix: String,
    next_stream: AtomicU64,
}

impl Shared {
    pub(crate) fn next_stream_id(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The ADS server (SotW and Delta). Cheap to clone; clones share state.
#[derive(Clone)]
pub struct AdsServer {
    shared: Arc<Shared>,
}

impl AdsServer {
    /// A server that serves what `directory` hands it.
    pub fn new(directory: Arc<dyn ProxyDirectory>) -> Self {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        AdsServer {
            shared: Arc::new(Shared {
                directory,
                status: StatusTable::default(),
                metrics: Metrics::default(),
                nonce_prefix: format!("{:x}", started as u64),
                next_stream: AtomicU64::new(0),
            }),
        }
    }

    /// The tonic service for a `tonic::transport::Server` (both methods).
    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<AdsServer> {
        AggregatedDiscoveryServiceServer::new(self)
    }

    /// Serves ADS on `listener` (plaintext gRPC) until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        // Small responses must not wait for Nagle; keepalives find proxies
        // that vanished without closing the connection.
        let incoming = TcpListenerStream::new(listener).map(|conn| {
            if let Ok(c) = &conn {
                let _ = c.set_nodelay(true);
            }
            conn
        });
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .add_service(self.into_service())
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?;
        Ok(())
    }

    /// Every live stream, for `/debug/syncz` (ordered by stream id).
    pub fn status(&self) -> Vec<ConnectionStatus> {
        self.shared.status.snapshot()
    }

    /// The metrics handle, for `/metrics`.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics.clone()
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(stream::run(
            Sotw::default(),
            self.shared.clone(),
            request.into_inner(),
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(stream::run(
            Delta::default(),
            self.shared.clone(),
            request.into_inner(),
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
