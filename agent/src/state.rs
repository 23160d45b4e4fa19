//! State the supervisor shares with the HTTP endpoints: what runs now, whether
//! the agent is draining, and the agent's own Prometheus metrics.

use std::{
    fmt,
    sync::atomic::{AtomicBool, AtomicU32},
};

use rudder_metrics::{
    prometheus_client::{
        collector::Collector,
        encoding::{DescriptorEncoder, EncodeMetric},
        metrics::{gauge::ConstGauge, MetricType},
    },
    Counter, Gauge, Registry,
};

/// Shared between the supervisor (writer) and the status/metrics servers.
#[derive(Debug)]
pub struct AgentState {
    /// PID of the newest Envoy epoch, 0 when none runs.
    pub envoy_pid: AtomicU32,
    /// Set once a graceful shutdown began: readiness turns false.
    pub draining: AtomicBool,
    /// Unexpected Envoy exits followed by a restart.
    pub envoy_restarts: Counter,
    /// Hot restarts (new epochs of the same family).
    pub hot_restarts: Counter,
    /// The newest epoch's restart epoch.
    pub epoch: Gauge,
    /// Certificate sets rejected (unreadable, invalid, expired, mismatched).
    pub cert_errors: Counter,
    /// The running workload certificate's `notAfter` (Unix seconds); 0 = none.
    pub cert_not_after: Gauge,
    /// The agent's one metrics registry, over the cells above.
    registry: Registry,
    /// "Now" (Unix seconds) of the scrape being rendered, for [`CertExpiry`].
    now: Gauge,
}

impl Default for AgentState {
    fn default() -> Self {
        let (envoy_restarts, hot_restarts, cert_errors) =
            (Counter::default(), Counter::default(), Counter::default());
        let (epoch, cert_not_after, now) = (Gauge::default(), Gauge::default(), Gauge::default());
        let mut registry = Registry::default();
        // Counters are registered without `_total`: the encoder adds it.
        registry.register(
            "rudder_agent_envoy_restarts",
            "Times Envoy died unexpectedly and was started again",
            envoy_restarts.clone(),
        );
        registry.register(
            "rudder_agent_hot_restarts",
            "Hot restarts (new epochs) after certificate changes",
            hot_restarts.clone(),
        );
        registry.register(
            "rudder_agent_hot_restart_epoch",
            "Restart epoch of the newest Envoy process",
            epoch.clone(),
        );
        registry.register(
            "rudder_agent_cert_errors",
            "Certificate sets rejected; the running Envoy kept its certificates",
            cert_errors.clone(),
        );
        registry.register_collector(Box::new(CertExpiry {
            not_after: cert_not_after.clone(),
            now: now.clone(),
        }));
        AgentState {
            envoy_pid: AtomicU32::new(0),
            draining: AtomicBool::new(false),
            envoy_restarts,
            hot_restarts,
            epoch,
            cert_errors,
            cert_not_after,
            registry,
            now,
        }
    }
}

impl AgentState {
    /// The agent's own metrics in Prometheus text format; `now` in Unix seconds.
    pub fn render_metrics(&self, now: i64) -> String {
        self.now.set(now);
        rudder_metrics::encode(&self.registry)
    }
}

/// `rudder_agent_cert_expiry_seconds`: seconds until the workload certificate
/// Envoy uses expires; absent while there is none.
#[derive(Debug)]
struct CertExpiry {
    not_after: Gauge,
    now: Gauge,
}

impl Collector for CertExpiry {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let not_after = self.not_after.get();
        if not_after == 0 {
            return Ok(());
        }
        let m = encoder.encode_descriptor(
            "rudder_agent_cert_expiry_seconds",
            "Seconds until the workload certificate Envoy uses expires.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(not_after - self.now.get()).encode(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let s = AgentState::default();
        assert!(!s.render_metrics(0).contains("cert_expiry"));
        s.epoch.set(3);
        s.cert_not_after.set(1_000);
        s.envoy_restarts.inc();
        let text = s.render_metrics(400);
        assert!(
            text.contains("\nrudder_agent_hot_restart_epoch 3\n"),
            "{text}"
        );
        assert!(
            text.contains("\nrudder_agent_cert_expiry_seconds 600\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE rudder_agent_envoy_restarts_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("\nrudder_agent_envoy_restarts_total 1\n"),
            "{text}"
        );
    }
}
