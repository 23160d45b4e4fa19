//! The server's Prometheus metrics, with Istio's names where Istio has one,
//! as `prometheus_client` metrics that pilot registers in its one registry
//! (see `rudder-metrics` for how Istio's counters keep their names).
//!
//! | metric | kind | meaning |
//! | --- | --- | --- |
//! | `pilot_xds` | gauge | streams connected now |
//! | `pilot_xds_pushes{type}` | counter | responses sent, by type |
//! | `pilot_xds_first_push_throttled` | counter | streams whose first push waited for a permit (`--push-throttle`) |
//! | `pilot_xds_first_push_waiting` | gauge | streams waiting for a first-push permit now |
//! | `pilot_xds_pushed_resources{type}` | counter | resources carried by those responses, by type (Delta: not counting removed names) |
//! | `pilot_total_xds_rejects{type}` | counter | NACKs received, by type |
//! | `pilot_xds_expired_nonce{type}` | counter | requests ignored for a stale nonce |
//! | `pilot_proxy_convergence_time` | histogram (s) | new resources seen → everything changed ACKed |
//! | `pilot_xds_send_time` | histogram (s) | time to hand one response to the stream |

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use rudder_metrics::{Gauge, Histogram, IstioCounter, Labelled, Registry};
use rudder_xds::TypeUrl;

/// Istio's buckets for `pilot_proxy_convergence_time` (seconds).
const CONVERGENCE_BUCKETS: [f64; 8] = [0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0];
/// Istio's buckets for `pilot_xds_send_time` (seconds).
const SEND_BUCKETS: [f64; 8] = [0.01, 0.1, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0];

/// One counter per xDS type, labelled `type` (`cds`, `eds`, …).
type PerType = Labelled<IstioCounter>;

fn per_type() -> PerType {
    Labelled::new("type", TypeUrl::ALL.map(|t| t.short()))
}

/// The `reason` label of `pilot_xds_auth_failures`.
const AUTH_REASONS: [&str; 3] = ["unauthenticated", "permission_denied", "other"];

fn index(t: TypeUrl) -> usize {
    TypeUrl::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

#[derive(Debug)]
struct Inner {
    connected: Gauge,
    throttled: IstioCounter,
    /// Streams refused by the TLS port's authorizer, by reason.
    auth_refused: Labelled<IstioCounter>,
    waiting: Gauge,
    pushes: PerType,
    pushed_resources: PerType,
    rejects: PerType,
    expired_nonce: PerType,
    convergence: Histogram,
    /// Observations in `convergence` (the histogram does not expose its count).
    converged: AtomicU64,
    send_time: Histogram,
}

/// A cheap-to-clone handle on the server's metrics. [`Metrics::register`] adds
/// them to the binary's registry; [`Metrics::render`] exposes them alone.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            inner: Arc::new(Inner {
                connected: Gauge::default(),
                throttled: IstioCounter::default(),
                auth_refused: Labelled::new("reason", AUTH_REASONS),
                waiting: Gauge::default(),
                pushes: per_type(),
                pushed_resources: per_type(),
                rejects: per_type(),
                expired_nonce: per_type(),
                convergence: Histogram::new(CONVERGENCE_BUCKETS),
                converged: AtomicU64::new(0),
                send_time: Histogram::new(SEND_BUCKETS),
            }),
        }
    }
}

impl Metrics {
    /// Streams connected now (`pilot_xds`).
    pub fn connected(&self) -> i64 {
        self.inner.connected.get()
    }

    /// Responses sent of one type (`pilot_xds_pushes`).
    pub fn pushes(&self, t: TypeUrl) -> u64 {
        self.inner.pushes.at(index(t)).get()
    }

    /// Streams whose first push waited for a permit (`pilot_xds_first_push_throttled`).
    pub fn first_pushes_throttled(&self) -> u64 {
        self.inner.throttled.get()
    }

    /// Streams waiting for a first-push permit now (`pilot_xds_first_push_waiting`).
    pub fn first_pushes_waiting(&self) -> i64 {
        self.inner.waiting.get()
    }

    pub(crate) fn first_push_throttled(&self) {
        self.inner.throttled.inc();
        self.inner.waiting.inc();
    }

    /// Streams refused by the authorizer with `reason`
    /// (`unauthenticated`, `permission_denied`, `other`)
    /// (`pilot_xds_auth_failures`).
    pub fn auth_failures(&self, reason: &str) -> u64 {
        let i = AUTH_REASONS.iter().position(|r| *r == reason).unwrap_or(2);
        self.inner.auth_refused.at(i).get()
    }

    pub(crate) fn auth_refused(&self, code: tonic::Code) {
        let i = match code {
            tonic::Code::Unauthenticated => 0,
            tonic::Code::PermissionDenied => 1,
            _ => 2,
        };
        self.inner.auth_refused.at(i).inc();
    }

    pub(crate) fn first_push_resumed(&self) {
        self.inner.waiting.dec();
    }

    /// Resources sent of one type, summed over its responses
    /// (`pilot_xds_pushed_resources`).
    pub fn pushed_resources(&self, t: TypeUrl) -> u64 {
        self.inner.pushed_resources.at(index(t)).get()
    }

    /// NACKs received of one type (`pilot_total_xds_rejects`).
    pub fn rejects(&self, t: TypeUrl) -> u64 {
        self.inner.rejects.at(index(t)).get()
    }

    /// Stale-nonce requests ignored of one type (`pilot_xds_expired_nonce`).
    pub fn expired_nonces(&self, t: TypeUrl) -> u64 {
        self.inner.expired_nonce.at(index(t)).get()
    }

    /// Observations in `pilot_proxy_convergence_time`.
    pub fn convergence_count(&self) -> u64 {
        self.inner.converged.load(Ordering::Relaxed)
    }

    pub(crate) fn stream_opened(&self) {
        self.inner.connected.inc();
    }

    pub(crate) fn stream_closed(&self) {
        self.inner.connected.dec();
    }

    pub(crate) fn pushed(&self, t: TypeUrl, resources: usize) {
        self.inner.pushes.at(index(t)).inc();
        self.inner
            .pushed_resources
            .at(index(t))
            .inc_by(resources as u64);
    }

    pub(crate) fn rejected(&self, t: TypeUrl) {
        self.inner.rejects.at(index(t)).inc();
    }

    pub(crate) fn expired_nonce(&self, t: TypeUrl) {
        self.inner.expired_nonce.at(index(t)).inc();
    }

    pub(crate) fn converged(&self, d: Duration) {
        self.inner.convergence.observe(d.as_secs_f64());
        self.inner.converged.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self, d: Duration) {
        self.inner.send_time.observe(d.as_secs_f64());
    }

    /// Adds every metric above to `registry` (pilot's, served on `/metrics`);
    /// the registry reads the same cells this handle updates.
    pub fn register(&self, registry: &mut Registry) {
        let i = &self.inner;
        registry.register(
            "pilot_xds",
            "Number of endpoints connected to this pilot using XDS",
            i.connected.clone(),
        );
        registry.register(
            "pilot_xds_first_push_throttled",
            "Streams whose first push waited for a permit (--push-throttle)",
            i.throttled.clone(),
        );
        registry.register(
            "pilot_xds_auth_failures",
            "ADS streams on the TLS port refused: no or bad credential (unauthenticated), or a credential for another workload than the node's (permission_denied)",
            i.auth_refused.clone(),
        );
        registry.register(
            "pilot_xds_first_push_waiting",
            "Streams waiting for a first-push permit now",
            i.waiting.clone(),
        );
        registry.register(
            "pilot_xds_pushes",
            "xDS responses sent to proxies, by type",
            i.pushes.clone(),
        );
        registry.register(
            "pilot_xds_pushed_resources",
            "Resources carried by the xDS responses sent to proxies, by type",
            i.pushed_resources.clone(),
        );
        registry.register(
            "pilot_total_xds_rejects",
            "Total number of XDS responses from pilot rejected by proxy",
            i.rejects.clone(),
        );
        registry.register(
            "pilot_xds_expired_nonce",
            "Total number of XDS requests with an expired nonce",
            i.expired_nonce.clone(),
        );
        registry.register(
            "pilot_proxy_convergence_time",
            "Delay in seconds between config change and a proxy receiving all required configuration",
            i.convergence.clone(),
        );
        registry.register(
            "pilot_xds_send_time",
            "Total time in seconds Pilot takes to send generated configuration",
            i.send_time.clone(),
        );
    }

    /// The Prometheus text exposition of these metrics alone (tests, tools);
    /// pilot serves them through its one registry instead.
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        rudder_metrics::encode(&registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_count() {
        let m = Metrics::default();
        m.converged(Duration::from_millis(50));
        m.converged(Duration::from_millis(700));
        m.converged(Duration::from_secs(100));
        let text = m.render();
        assert!(
            text.contains("pilot_proxy_convergence_time_bucket{le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("pilot_proxy_convergence_time_bucket{le=\"1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("pilot_proxy_convergence_time_bucket{le=\"30\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("pilot_proxy_convergence_time_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("pilot_proxy_convergence_time_count 3\n"),
            "{text}"
        );
    }

    #[test]
    fn counters_are_per_type() {
        let m = Metrics::default();
        m.pushed(TypeUrl::Endpoint, 1);
        m.pushed(TypeUrl::Endpoint, 3);
        m.rejected(TypeUrl::Cluster);
        let text = m.render();
        assert!(text.contains("pilot_xds_pushes{type=\"eds\"} 2\n"));
        assert!(text.contains("pilot_xds_pushed_resources{type=\"eds\"} 4\n"));
        assert!(text.contains("pilot_xds_pushes{type=\"cds\"} 0\n"));
        assert!(text.contains("pilot_total_xds_rejects{type=\"cds\"} 1\n"));
    }
}
