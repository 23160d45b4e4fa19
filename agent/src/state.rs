//! State the supervisor shares with the HTTP endpoints: what runs now, whether
//! the agent is draining, and the agent's own Prometheus metrics.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};

use std::fmt::Write;

/// Shared between the supervisor (writer) and the status/metrics servers.
#[derive(Debug, Default)]
pub struct AgentState {
    /// PID of the newest Envoy epoch, 0 when none runs.
    pub envoy_pid: AtomicU32,
    /// Set once a graceful shutdown began: readiness turns false.
    pub draining: AtomicBool,
    /// Unexpected Envoy exits followed by a restart.
    pub envoy_restarts: AtomicU64,
    /// Hot restarts (new epochs of the same family).
    pub hot_restarts: AtomicU64,
    /// The newest epoch's restart epoch.
    pub epoch: AtomicU64,
    /// Certificate sets rejected (unreadable, invalid, expired, mismatched).
    pub cert_errors: AtomicU64,
    /// The running workload certificate's `notAfter` (Unix seconds); 0 = none.
    pub cert_not_after: AtomicI64,
}

impl AgentState {
    /// The agent's own metrics in Prometheus text format; `now` in Unix seconds.
    pub fn render_metrics(&self, now: i64) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        metric(
            "rudder_agent_envoy_restarts_total",
            "counter",
            "Times Envoy died unexpectedly and was started again.",
            self.envoy_restarts.load(Relaxed).to_string(),
        );
        metric(
            "rudder_agent_hot_restarts_total",
            "counter",
            "Hot restarts (new epochs) after certificate changes.",
            self.hot_restarts.load(Relaxed).to_string(),
        );
        metric(
            "rudder_agent_hot_restart_epoch",
            "gauge",
            "Restart epoch of the newest Envoy process.",
            self.epoch.load(Relaxed).to_string(),
        );
        metric(
            "rudder_agent_cert_errors_total",
            "counter",
            "Certificate sets rejected; the running Envoy kept its certificates.",
            self.cert_errors.load(Relaxed).to_string(),
        );
        let not_after = self.cert_not_after.load(Relaxed);
        if not_after != 0 {
            metric(
                "rudder_agent_cert_expiry_seconds",
                "gauge",
                "Seconds until the workload certificate Envoy uses expires.",
                (not_after - now).to_string(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let s = AgentState::default();
        assert!(!s.render_metrics(0).contains("cert_expiry"));
        s.epoch.store(3, Relaxed);
        s.cert_not_after.store(1_000, Relaxed);
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
    }
}
