//! One ADS stream's task, common to SotW and Delta: cache the node from the
//! first request, ask the directory for the proxy's resources, then one
//! `select!` over inbound requests and the resources watch, handing each
//! event to the protocol adapter (`sotw`, `delta`) and
//! writing what it returns to the stream, in order.
//!
//! ```text
//!  Envoy ──requests──► inbound ─┐
//!                               ├─► Protocol::{on_request, on_resources} ─► responses ─► Envoy
//!  pilot ──watch::Receiver<Arc<ProxyResources>>─┘
//! ```
//!
//! The watch channel holds only the latest value, so updates that arrive
//! while a type waits for its ACK coalesce by construction: the adapter
//! always diffs against the newest resources.

use std::{sync::Arc, time::Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use rudder_xds::{ProxyResources, TypeUrl};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tonic::Status;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::{
    auth::Guard,
    metrics::Metrics,
    node::NodeInfo,
    shared::Shared,
    status::{now_unix_ms, ConnectionStatus, StreamStatus},
    subscription::Subscription,
    transport::{Outgoing, Requests, StreamMessage},
};

/// A protocol variant (SotW or Delta) as a state machine over one stream.
pub(crate) trait Protocol: Send + 'static {
    type Req: prost::Message + Default + Send + 'static;
    /// `sotw` or `delta`, for logs and syncz.
    const MODE: &'static str;

    fn node(req: &Self::Req) -> Option<&Node>;

    /// Handles one request; responses to send go to `out`, in order.
    fn on_request(
        &mut self,
        cx: &mut StreamCtx,
        req: Self::Req,
        res: &ProxyResources,
        out: &mut Vec<Outgoing>,
    );

    /// Handles new resources for the proxy.
    fn on_resources(&mut self, cx: &mut StreamCtx, res: &ProxyResources, out: &mut Vec<Outgoing>);

    /// Nothing in flight and nothing left to send: the proxy holds (or has
    /// rejected) everything it should.
    fn is_converged(&self, res: &ProxyResources) -> bool;
}

/// Longest a stream holds its first-push permit: a proxy that never ACKs
/// must not keep others waiting.
const FIRST_PUSH_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// What the adapters need from their stream: identity for logs, metrics,
/// the syncz entry and nonces.
pub(crate) struct StreamCtx {
    pub(crate) proxy: String,
    pub(crate) metrics: Metrics,
    pub(crate) status: StreamStatus,
    nonce_prefix: String,
    next_nonce: u64,
}

impl StreamCtx {
    /// A nonce unique to this server process, stream and response.
    pub(crate) fn nonce(&mut self) -> String {
        self.next_nonce += 1;
        format!("{}-{}", self.nonce_prefix, self.next_nonce)
    }

    /// Counts one response of type `t` carrying `resources` resources.
    pub(crate) fn pushed(&self, t: TypeUrl, resources: usize) {
        self.metrics.pushed(t, resources);
    }

    /// Records a type's subscription in syncz.
    pub(crate) fn subscribed(&self, t: TypeUrl, sub: &Subscription) {
        self.status.update(t, |s| {
            s.wildcard = sub.is_wildcard();
            s.subscribed = sub.names();
        });
    }
}

/// Times `pilot_proxy_convergence_time`: from the first new resources a
/// stream observes until it is converged again, counted only when something
/// was actually sent in between (resources that change nothing for this
/// proxy are not a push).
#[derive(Default)]
struct Convergence {
    since: Option<Instant>,
    sent: bool,
}

impl Convergence {
    fn observed(&mut self) {
        if self.since.is_none() {
            self.since = Some(Instant::now());
            self.sent = false;
        }
    }

    fn after_event(&mut self, sent: bool, converged: bool, metrics: &Metrics) {
        let Some(since) = self.since else { return };
        self.sent |= sent;
        if converged {
            if self.sent {
                metrics.converged(since.elapsed());
            }
            self.since = None;
        }
    }
}

/// Runs one stream to its end. Errors before the stream is established
/// (no node, directory refusal) are sent to the client as the stream's status.
pub(crate) async fn run<P: Protocol>(
    mut proto: P,
    shared: Arc<Shared>,
    mut inbound: Requests<P::Req>,
    tx: mpsc::Sender<StreamMessage>,
    guard: Option<Guard>,
) {
    let first = match inbound.message().await {
        Ok(Some(r)) => r,
        Ok(None) | Err(_) => return,
    };
    let node = match NodeInfo::from_proto(P::node(&first)) {
        Ok(n) => n,
        Err(e) => {
            let _ = tx
                .send(Box::new(Err(Status::invalid_argument(e.to_string()))))
                .await;
            return;
        }
    };
    if let Some(guard) = guard {
        if let Err(status) = guard.authorizer.authorize(&guard.peer, &node).await {
            shared.metrics.auth_refused(status.code());
            warn!(proxy = %node.id, %status, "refused: the client may not receive this node's configuration");
            let _ = tx.send(Box::new(Err(status))).await;
            return;
        }
    }
    let mut permit = first_push_permit(&shared).await;
    let mut rx = match shared.directory.connect(&node).await {
        Ok(rx) => rx,
        Err(status) => {
            info!(proxy = %node.id, %status, "directory refused the proxy");
            let _ = tx.send(Box::new(Err(status))).await;
            return;
        }
    };
    let (stream_id, mut cx) = StreamCtx::open::<P>(&shared, &node);
    let span = info_span!("ads", stream = stream_id, proxy = %node.id, mode = P::MODE);
    async move {
        info!(user_agent = %node.user_agent, "stream opened");
        let mut res = rx.borrow_and_update().clone();
        let mut conv = Convergence::default();
        let mut out = Vec::new();
        let permit_deadline = tokio::time::Instant::now() + FIRST_PUSH_MAX;
        proto.on_request(&mut cx, first, &res, &mut out);
        loop {
            let sent = !out.is_empty();
            if !send_all(&tx, &mut out, &cx.metrics).await {
                debug!("client went away while sending");
                break;
            }
            let converged = proto.is_converged(&res);
            conv.after_event(sent, converged, &cx.metrics);
            if converged && permit.is_some() {
                // The first push is done: the proxy ACKed all it asked for.
                permit = None;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(permit_deadline), if permit.is_some() => {
                    debug!("first push still unacknowledged; releasing its permit");
                    permit = None;
                }
                msg = inbound.message() => match msg {
                    Ok(Some(req)) => proto.on_request(&mut cx, req, &res, &mut out),
                    Ok(None) => { info!("stream closed by the proxy"); break; }
                    Err(status) => { info!(%status, "stream ended"); break; }
                },
                changed = rx.changed() => {
                    if changed.is_err() {
                        info!("the directory dropped this proxy; closing the stream");
                        let _ = tx.send(Box::new(Err(Status::unavailable("proxy no longer served; reconnect")))).await;
                        break;
                    }
                    res = rx.borrow_and_update().clone();
                    conv.observed();
                    proto.on_resources(&mut cx, &res, &mut out);
                }
            }
        }
        // `cx.status` drops here: the syncz entry and the gauge go with it;
        // `rx` drops too, which is how pilot learns the stream is gone.
    }
    .instrument(span)
    .await;
}

/// The first push (generation for this proxy, then its first responses
/// until it has ACKed them) runs under a permit: a storm of new streams
/// waits its turn instead of holding thousands of first pushes at once.
async fn first_push_permit(shared: &Shared) -> Option<OwnedSemaphorePermit> {
    match shared.first_push.clone().try_acquire_owned() {
        Ok(p) => Some(p),
        Err(_) => {
            shared.metrics.first_push_throttled();
            let waited = shared.first_push.clone().acquire_owned().await.ok();
            shared.metrics.first_push_resumed();
            waited
        }
    }
}

impl StreamCtx {
    /// Registers a new stream of `node` (its syncz entry and gauge live as
    /// long as the context); returns its id and the context.
    fn open<P: Protocol>(shared: &Shared, node: &NodeInfo) -> (u64, StreamCtx) {
        let stream_id = shared.next_stream_id();
        let status = shared.status.register(
            ConnectionStatus {
                node_id: node.id.clone(),
                stream_id,
                mode: P::MODE,
                user_agent: node.user_agent.clone(),
                connected_at_unix_ms: now_unix_ms(),
                types: Default::default(),
            },
            shared.metrics.clone(),
        );
        let cx = StreamCtx {
            proxy: node.id.clone(),
            metrics: shared.metrics.clone(),
            status,
            nonce_prefix: format!("{}-{}", shared.nonce_prefix, stream_id),
            next_nonce: 0,
        };
        (stream_id, cx)
    }
}

async fn send_all<R>(
    tx: &mpsc::Sender<StreamMessage<R>>,
    out: &mut Vec<R>,
    metrics: &Metrics,
) -> bool {
    for resp in out.drain(..) {
        let start = Instant::now();
        if tx.send(Box::new(Ok(resp))).await.is_err() {
            return false;
        }
        metrics.sent(start.elapsed());
    }
    true
}
