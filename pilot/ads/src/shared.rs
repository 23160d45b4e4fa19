//! What every stream of one ADS server shares: the directory it asks for
//! each proxy's resources, the status table (`/debug/syncz`), the metrics,
//! the nonce prefix and the first-push permits. The server creates it; each
//! stream's task holds an `Arc` of it.
//!
//! ```text
//!  AdsServer ──Arc<Shared>──► stream::run (one task per stream) ──► ProxyDirectory::connect
//! ```

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use rudder_xds::ProxyResources;
use tokio::sync::{watch, Semaphore};
use tonic::Status;

use crate::{metrics::Metrics, node::NodeInfo, status::StatusTable};

/// Where the server gets each proxy's resources; pilot implements it.
///
/// Called once per stream, with the node from its first request, inside the
/// stream's first-push permit (see [`AdsOptions::push_throttle`](crate::AdsOptions::push_throttle)); it may take
/// its time (pilot generates the proxy's resources off the async runtime),
/// and other streams are served meanwhile. The
/// returned receiver is the proxy's resources, republished by pilot whenever
/// they change; the stream drops it when it ends (pilot sees that through
/// `Sender::is_closed` / `receiver_count`). Several streams may connect with
/// the same node id at once (Envoy hot restart): each gets its own call.
/// Dropping the sender ends the streams watching it (the proxy reconnects).
#[tonic::async_trait]
pub trait ProxyDirectory: Send + Sync + 'static {
    /// The proxy's resources, or the status to end the stream with (e.g.
    /// `invalid_argument` for a node id pilot cannot parse).
    async fn connect(
        &self,
        node: &NodeInfo,
    ) -> Result<watch::Receiver<Arc<ProxyResources>>, Status>;
}

pub(crate) struct Shared {
    pub(crate) directory: Arc<dyn ProxyDirectory>,
    pub(crate) status: StatusTable,
    pub(crate) metrics: Metrics,
    /// Makes nonces of this process distinct from a previous one's.
    pub(crate) nonce_prefix: String,
    /// Permits for streams in their first push.
    pub(crate) first_push: Arc<Semaphore>,
    next_stream: AtomicU64,
}

impl Shared {
    pub(crate) fn next_stream_id(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl Shared {
    /// State for a new server: `push_throttle` first-push permits (at least one).
    pub(crate) fn new(directory: Arc<dyn ProxyDirectory>, push_throttle: usize) -> Shared {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Shared {
            directory,
            status: StatusTable::default(),
            metrics: Metrics::default(),
            nonce_prefix: format!("{:x}", started as u64),
            first_push: Arc::new(Semaphore::new(push_throttle.max(1))),
            next_stream: AtomicU64::new(0),
        }
    }
}
