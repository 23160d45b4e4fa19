//! The certificate service's counters, with Istio's names (`citadel_server_*`)
//! so existing dashboards keep working.

use std::sync::Arc;

use rudder_metrics::{IstioCounter, Registry};

/// Counters; clones share them.
#[derive(Clone, Debug, Default)]
pub struct CaMetrics(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    csr: IstioCounter,
    success: IstioCounter,
    auth_failure: IstioCounter,
    csr_parsing_err: IstioCounter,
    id_extraction_err: IstioCounter,
}

/// One counter of [`CaMetrics`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// `citadel_server_csr_count`: CSRs received.
    Csr,
    /// `citadel_server_success_cert_issuance_count`: certificates issued.
    Success,
    /// `citadel_server_authentication_failure_count`: credentials refused.
    AuthFailure,
    /// `citadel_server_csr_parsing_err_count`: CSRs that did not parse or verify.
    CsrParsingErr,
    /// `citadel_server_id_extraction_err_count`: CSRs asking for an identity the caller does not have.
    IdExtractionErr,
}

/// Each counter, its Istio name and its help (the registry adds the period).
const ALL: [(Counter, &str, &str); 5] = [
    (
        Counter::Csr,
        "citadel_server_csr_count",
        "The number of CSRs received by the certificate service",
    ),
    (
        Counter::Success,
        "citadel_server_success_cert_issuance_count",
        "The number of certificates issued",
    ),
    (
        Counter::AuthFailure,
        "citadel_server_authentication_failure_count",
        "The number of requests whose credential was refused",
    ),
    (
        Counter::CsrParsingErr,
        "citadel_server_csr_parsing_err_count",
        "The number of CSRs that could not be parsed or verified",
    ),
    (
        Counter::IdExtractionErr,
        "citadel_server_id_extraction_err_count",
        "The number of CSRs asking for an identity the caller does not have",
    ),
];

impl CaMetrics {
    fn cell(&self, c: Counter) -> &IstioCounter {
        match c {
            Counter::Csr => &self.0.csr,
            Counter::Success => &self.0.success,
            Counter::AuthFailure => &self.0.auth_failure,
            Counter::CsrParsingErr => &self.0.csr_parsing_err,
            Counter::IdExtractionErr => &self.0.id_extraction_err,
        }
    }

    /// Adds one.
    pub fn inc(&self, c: Counter) {
        self.cell(c).inc();
    }

    /// The current value.
    pub fn get(&self, c: Counter) -> u64 {
        self.cell(c).get()
    }

    /// Adds the counters to `registry` (pilot's, served on `/metrics`).
    pub fn register(&self, registry: &mut Registry) {
        for (c, name, help) in ALL {
            registry.register(name, help, self.cell(c).clone());
        }
    }

    /// The Prometheus text exposition of these counters alone (tests);
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
    fn renders_istio_names() {
        let m = CaMetrics::default();
        m.inc(Counter::Csr);
        m.inc(Counter::Csr);
        m.clone().inc(Counter::IdExtractionErr);
        let text = m.render();
        assert!(text.contains("\ncitadel_server_csr_count 2\n"), "{text}");
        assert!(
            text.contains("\ncitadel_server_id_extraction_err_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE citadel_server_success_cert_issuance_count counter\n"),
            "{text}"
        );
    }
}
