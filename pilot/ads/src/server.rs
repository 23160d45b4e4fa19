//! The tonic service: both ADS methods on one port, one task per stream.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::mpsc};
use tokio_stream::{wrappers::TcpListenerStream, StreamExt};
use tonic::{body::Body, codegen::http};

use crate::{
    auth::{Guard, StreamAuthorizer},
    delta::Delta,
    metrics::Metrics,
    shared::{ProxyDirectory, Shared},
    sotw::Sotw,
    status::ConnectionStatus,
    stream,
    transport::{streaming_response, AdsService, Requests},
};

/// HTTP/2 pings to each proxy's connection, and how long to wait for the answer.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Responses buffered per stream before the stream task waits for the client.
const STREAM_BUFFER: usize = 16;

/// Pending connections the kernel queues before pilot accepts them: a
/// connection storm of thousands of proxies must not overflow it (Linux caps
/// it at `net.core.somaxconn`, 4096 by default).
pub const LISTEN_BACKLOG: u32 = 4096;

/// HTTP/2 flow control sized for large responses (a CDS or EDS of thousands
/// of resources is megabytes): the peer may send, and we may send, this much
/// before waiting for a window update.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 8 << 20;
/// Largest HTTP/2 frame we accept (Envoy's requests; its default is 16 KiB).
const MAX_FRAME: u32 = 1 << 20;

/// Binds a listener for ADS with a backlog of [`LISTEN_BACKLOG`].
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Applies Rudder's HTTP/2 and keepalive settings for ADS to a server
/// builder (plaintext and TLS ports alike).
pub fn configure(builder: tonic::transport::Server) -> tonic::transport::Server {
    builder
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .max_frame_size(Some(MAX_FRAME))
}

/// Server settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdsOptions {
    /// How many streams may be in their first push at once (generation for
    /// the new proxy, then its first responses until it has ACKed them);
    /// further streams wait their turn, counted in
    /// `pilot_xds_first_push_throttled`, and are never refused.
    pub push_throttle: usize,
}

impl Default for AdsOptions {
    fn default() -> Self {
        AdsOptions { push_throttle: 100 }
    }
}

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The gRPC transport failed (accepting, HTTP/2).
    #[error("ADS transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The ADS server (SotW and Delta). Cheap to clone; clones share state.
#[derive(Clone)]
pub struct AdsServer {
    shared: Arc<Shared>,
}

impl AdsServer {
    /// A server that serves what `directory` hands it, with default options.
    pub fn new(directory: Arc<dyn ProxyDirectory>) -> Self {
        Self::with_options(directory, AdsOptions::default())
    }

    /// A server with explicit options.
    pub fn with_options(directory: Arc<dyn ProxyDirectory>, options: AdsOptions) -> Self {
        AdsServer {
            shared: Arc::new(Shared::new(directory, options.push_throttle)),
        }
    }

    /// The service for a `tonic::transport::Server` (both methods; see
    /// [`crate::transport`] for why it frames gRPC itself).
    pub fn into_service(self) -> AdsService {
        AdsService {
            server: self,
            authorizer: None,
        }
    }

    /// The same service, asking `authorizer` once per stream, with the
    /// client's credentials and node, before serving it (pilot's TLS port).
    pub fn into_authorized_service(self, authorizer: Arc<dyn StreamAuthorizer>) -> AdsService {
        AdsService {
            server: self,
            authorizer: Some(authorizer),
        }
    }

    /// Starts a SotW stream's task; its responses are the returned body.
    pub(crate) fn open_sotw(&self, body: Body, guard: Option<Guard>) -> http::Response<Body> {
        self.open(Sotw::default(), body, guard)
    }

    /// Starts a Delta stream's task; its responses are the returned body.
    pub(crate) fn open_delta(&self, body: Body, guard: Option<Guard>) -> http::Response<Body> {
        self.open(Delta::default(), body, guard)
    }

    fn open<P: stream::Protocol>(
        &self,
        proto: P,
        body: Body,
        guard: Option<Guard>,
    ) -> http::Response<Body> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(stream::run(
            proto,
            self.shared.clone(),
            Requests::new(body),
            tx,
            guard,
        ));
        streaming_response(rx)
    }

    /// Serves ADS on `listener` (plaintext gRPC) until `shutdown` completes.
    /// Bind it with [`bind`] for a backlog fit for connection storms.
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
        configure(tonic::transport::Server::builder())
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
