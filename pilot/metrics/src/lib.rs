//! Prometheus metrics for every Rudder binary: one `prometheus_client`
//! [`Registry`] per binary, encoded in Prometheus' text format (0.0.4).
//!
//! ```text
//!  ads, ca, pilot monitoring ─register─► pilot's Registry ─► GET :15014/metrics
//!  agent state               ─register─► agent's Registry ─► GET :15020/metrics (after Envoy's stats)
//!                  ▲ you are here: the metric types and the one encoder they share
//! ```
//!
//! Istio's counters carry no `_total` suffix (`pilot_xds_pushes`,
//! `citadel_server_csr_count`), and dashboards and alerts query those exact
//! names. prometheus-client appends `_total` to every [`Counter`], as
//! OpenMetrics asks, so Istio's counters are [`IstioCounter`]s: they reach the
//! encoder as `Unknown` (no suffix is added to an unknown metric) and
//! [`encode`] writes `counter` in their `# TYPE` line, which is what the
//! exposition said before and what Istio's pilot says. Nothing else in Rudder
//! registers an `Unknown` metric. Counters whose names are ours (the agent's
//! `rudder_agent_*_total`) are plain [`Counter`]s, registered without the
//! suffix the encoder adds. Help texts are registered without their final
//! period: the registry adds one.
//!
//! Where this sits among the other parts: `docs/architecture.md` at the
//! repository root.
#![forbid(unsafe_code)]

use std::fmt;

pub use prometheus_client::{
    self,
    metrics::{counter::Counter, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use prometheus_client::{
    encoding::{prometheus_text, EncodeMetric, MetricEncoder},
    metrics::{MetricType, TypedMetric},
};

/// The `Content-Type` of what [`encode`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The Prometheus text exposition (format 0.0.4) of every metric in
/// `registry`, with Istio's counters typed `counter` (see the crate docs).
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut text, registry);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" untyped\n"))
        {
            Some(name) => {
                out.push_str("# TYPE ");
                out.push_str(name);
                out.push_str(" counter\n");
            }
            None => out.push_str(line),
        }
    }
    out
}

/// A counter exposed under exactly the name it is registered with (Istio's
/// `pilot_xds_pushes`, not `pilot_xds_pushes_total`). Clones share the count.
#[derive(Clone, Debug, Default)]
pub struct IstioCounter(Counter);

impl IstioCounter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }

    /// Adds `n`.
    pub fn inc_by(&self, n: u64) {
        self.0.inc_by(n);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

impl TypedMetric for IstioCounter {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for IstioCounter {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        encoder.encode_gauge(&self.0.get())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A metric with one label whose values are known up front (`type` = `cds`,
/// `eds`, … or `severity` = `error`, `warning`): every series is exposed from
/// the start, at zero, in the order given. (`prometheus_client`'s `Family`
/// creates series on first use and exposes them in hash order.) Clones share
/// the series.
#[derive(Clone, Debug)]
pub struct Labelled<M> {
    label: &'static str,
    series: Vec<(&'static str, M)>,
}

impl<M: Default> Labelled<M> {
    /// One series per value of `label`, in this order.
    pub fn new(label: &'static str, values: impl IntoIterator<Item = &'static str>) -> Self {
        Labelled {
            label,
            series: values.into_iter().map(|v| (v, M::default())).collect(),
        }
    }
}

impl<M> Labelled<M> {
    /// The series whose label has `value`.
    pub fn get(&self, value: &str) -> Option<&M> {
        self.series
            .iter()
            .find(|(v, _)| *v == value)
            .map(|(_, m)| m)
    }

    /// The `i`th series, in the order given to [`Labelled::new`].
    pub fn at(&self, i: usize) -> &M {
        &self.series[i].1
    }
}

impl<M: EncodeMetric + TypedMetric> EncodeMetric for Labelled<M> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        for (value, metric) in &self.series {
            let labels = [(self.label, *value)];
            metric.encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_counters_keep_their_names_and_type() {
        let mut r = Registry::default();
        let c = IstioCounter::default();
        r.register("citadel_server_csr_count", "CSRs received", c.clone());
        let ours = Counter::<u64>::default();
        r.register("rudder_agent_envoy_restarts", "Restarts", ours.clone());
        c.inc_by(2);
        ours.inc();
        assert_eq!(
            encode(&r),
            "# HELP citadel_server_csr_count CSRs received.\n\
             # TYPE citadel_server_csr_count counter\n\
             citadel_server_csr_count 2\n\
             # HELP rudder_agent_envoy_restarts_total Restarts.\n\
             # TYPE rudder_agent_envoy_restarts_total counter\n\
             rudder_agent_envoy_restarts_total 1\n"
        );
    }

    #[test]
    fn labelled_series_exist_from_the_start_in_order() {
        let mut r = Registry::default();
        let by_type = Labelled::<IstioCounter>::new("type", ["cds", "eds", "lds"]);
        r.register("pilot_xds_pushes", "Pushes", by_type.clone());
        by_type.get("eds").unwrap().inc();
        let by_severity = Labelled::<Gauge>::new("severity", ["error", "warning"]);
        r.register("rudder_config_diagnostics", "Findings", by_severity.clone());
        by_severity.at(1).set(3);
        assert_eq!(
            encode(&r),
            "# HELP pilot_xds_pushes Pushes.\n\
             # TYPE pilot_xds_pushes counter\n\
             pilot_xds_pushes{type=\"cds\"} 0\n\
             pilot_xds_pushes{type=\"eds\"} 1\n\
             pilot_xds_pushes{type=\"lds\"} 0\n\
             # HELP rudder_config_diagnostics Findings.\n\
             # TYPE rudder_config_diagnostics gauge\n\
             rudder_config_diagnostics{severity=\"error\"} 0\n\
             rudder_config_diagnostics{severity=\"warning\"} 3\n"
        );
    }

    #[test]
    fn histograms_keep_prometheus_bucket_labels() {
        let mut r = Registry::default();
        let h = Histogram::new([0.1, 1.0, 30.0]);
        r.register("pilot_proxy_convergence_time", "Delay", h.clone());
        h.observe(0.05);
        h.observe(100.0);
        let text = encode(&r);
        assert!(
            text.contains("pilot_proxy_convergence_time_bucket{le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("pilot_proxy_convergence_time_bucket{le=\"1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("pilot_proxy_convergence_time_bucket{le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE pilot_proxy_convergence_time histogram\n"),
            "{text}"
        );
    }
}
