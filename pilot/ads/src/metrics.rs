//! The server's Prometheus metrics, with Istio's names where Istio has one, and
//! a small text-format renderer (no metrics crate: a handful of atomics is all
//! this needs, and the output format is simple and stable).
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
    fmt::Write as _,
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use rudder_xds::TypeUrl;

/// Istio's buckets for `pilot_proxy_convergence_time` (seconds).
const CONVERGENCE_BUCKETS: [f64; 8] = [0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0];
/// Istio's buckets for `pilot_xds_send_time` (seconds).
const SEND_BUCKETS: [f64; 8] = [0.01, 0.1, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0];

/// A cumulative histogram with fixed upper bounds.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    state: Mutex<HistogramState>,
}

#[derive(Debug, Default, Clone)]
struct HistogramState {
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        let state = HistogramState {
            counts: vec![0; bounds.len() + 1],
            ..Default::default()
        };
        Histogram {
            bounds,
            state: Mutex::new(state),
        }
    }

    fn observe(&self, seconds: f64) {
        let idx = self
            .bounds
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(self.bounds.len());
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.counts[idx] += 1;
        s.sum += seconds;
        s.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        header(out, name, help, "histogram");
        let mut cumulative = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            cumulative += s.counts[i];
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += s.counts[self.bounds.len()];
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", s.sum);
        let _ = writeln!(out, "{name}_count {}", s.count);
    }
}

/// One counter per xDS type.
#[derive(Debug, Default)]
struct PerType([AtomicU64; TypeUrl::ALL.len()]);

impl PerType {
    fn inc(&self, t: TypeUrl) {
        self.add(t, 1);
    }

    fn add(&self, t: TypeUrl, n: u64) {
        self.0[index(t)].fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self, t: TypeUrl) -> u64 {
        self.0[index(t)].load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "counter");
        for t in TypeUrl::ALL {
            let _ = writeln!(out, "{name}{{type=\"{}\"}} {}", t.short(), self.get(t));
        }
    }
}

fn index(t: TypeUrl) -> usize {
    TypeUrl::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[derive(Debug)]
struct Inner {
    connected: AtomicI64,
    throttled: AtomicU64,
    waiting: AtomicI64,
    pushes: PerType,
    pushed_resources: PerType,
    rejects: PerType,
    expired_nonce: PerType,
    convergence: Histogram,
    send_time: Histogram,
}

/// A cheap-to-clone handle on the server's metrics; [`Metrics::render`] gives
/// the Prometheus text exposition (format 0.0.4) for `/metrics`.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            inner: Arc::new(Inner {
                connected: AtomicI64::new(0),
                throttled: AtomicU64::new(0),
                waiting: AtomicI64::new(0),
                pushes: PerType::default(),
                pushed_resources: PerType::default(),
                rejects: PerType::default(),
                expired_nonce: PerType::default(),
                convergence: Histogram::new(&CONVERGENCE_BUCKETS),
                send_time: Histogram::new(&SEND_BUCKETS),
            }),
        }
    }
}

impl Metrics {
    /// Streams connected now (`pilot_xds`).
    pub fn connected(&self) -> i64 {
        self.inner.connected.load(Ordering::Relaxed)
    }

    /// Responses sent of one type (`pilot_xds_pushes`).
    pub fn pushes(&self, t: TypeUrl) -> u64 {
        self.inner.pushes.get(t)
    }

    /// Streams whose first push waited for a permit (`pilot_xds_first_push_throttled`).
    pub fn first_pushes_throttled(&self) -> u64 {
        self.inner.throttled.load(Ordering::Relaxed)
    }

    /// Streams waiting for a first-push permit now (`pilot_xds_first_push_waiting`).
    pub fn first_pushes_waiting(&self) -> i64 {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    pub(crate) fn first_push_throttled(&self) {
        self.inner.throttled.fetch_add(1, Ordering::Relaxed);
        self.inner.waiting.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn first_push_resumed(&self) {
        self.inner.waiting.fetch_sub(1, Ordering::Relaxed);
    }

    /// Resources sent of one type, summed over its responses
    /// (`pilot_xds_pushed_resources`).
    pub fn pushed_resources(&self, t: TypeUrl) -> u64 {
        self.inner.pushed_resources.get(t)
    }

    /// NACKs received of one type (`pilot_total_xds_rejects`).
    pub fn rejects(&self, t: TypeUrl) -> u64 {
        self.inner.rejects.get(t)
    }

    /// Stale-nonce requests ignored of one type (`pilot_xds_expired_nonce`).
    pub fn expired_nonces(&self, t: TypeUrl) -> u64 {
        self.inner.expired_nonce.get(t)
    }

    /// Observations in `pilot_proxy_convergence_time`.
    pub fn convergence_count(&self) -> u64 {
        self.inner
            .convergence
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .count
    }

    pub(crate) fn stream_opened(&self) {
        self.inner.connected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stream_closed(&self) {
        self.inner.connected.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn pushed(&self, t: TypeUrl, resources: usize) {
        self.inner.pushes.inc(t);
        self.inner.pushed_resources.add(t, resources as u64);
    }

    pub(crate) fn rejected(&self, t: TypeUrl) {
        self.inner.rejects.inc(t);
    }

    pub(crate) fn expired_nonce(&self, t: TypeUrl) {
        self.inner.expired_nonce.inc(t);
    }

    pub(crate) fn converged(&self, d: Duration) {
        self.inner.convergence.observe(d.as_secs_f64());
    }

    pub(crate) fn sent(&self, d: Duration) {
        self.inner.send_time.observe(d.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric above.
    pub fn render(&self) -> String {
        let i = &self.inner;
        let mut out = String::new();
        header(
            &mut out,
            "pilot_xds",
            "Number of endpoints connected to this pilot using XDS.",
            "gauge",
        );
        let _ = writeln!(out, "pilot_xds {}", self.connected());
        header(
            &mut out,
            "pilot_xds_first_push_throttled",
            "Streams whose first push waited for a permit (--push-throttle).",
            "counter",
        );
        let _ = writeln!(
            out,
            "pilot_xds_first_push_throttled {}",
            self.first_pushes_throttled()
        );
        header(
            &mut out,
            "pilot_xds_first_push_waiting",
            "Streams waiting for a first-push permit now.",
            "gauge",
        );
        let _ = writeln!(
            out,
            "pilot_xds_first_push_waiting {}",
            self.first_pushes_waiting()
        );
        i.pushes.render(
            &mut out,
            "pilot_xds_pushes",
            "xDS responses sent to proxies, by type.",
        );
        i.pushed_resources.render(
            &mut out,
            "pilot_xds_pushed_resources",
            "Resources carried by the xDS responses sent to proxies, by type.",
        );
        i.rejects.render(
            &mut out,
            "pilot_total_xds_rejects",
            "Total number of XDS responses from pilot rejected by proxy.",
        );
        i.expired_nonce.render(
            &mut out,
            "pilot_xds_expired_nonce",
            "Total number of XDS requests with an expired nonce.",
        );
        i.convergence.render(
            &mut out,
            "pilot_proxy_convergence_time",
            "Delay in seconds between config change and a proxy receiving all required configuration.",
        );
        i.send_time.render(
            &mut out,
            "pilot_xds_send_time",
            "Total time in seconds Pilot takes to send generated configuration.",
        );
        out
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
