//! Telemetry (`telemetry.istio.io`): access logs and tracing per workload,
//! with Istio's precedence.
//!
//! ```text
//!  mesh config (accessLogFile, defaultProviders)   ◄─ weakest
//!  mesh-wide Telemetry (root namespace, no selector)
//!  namespace Telemetry (no selector)
//!  workload Telemetry (selector or targetRefs)      ◄─ strongest
//! ```
//!
//! At each level the oldest Telemetry that applies is used (Istio warns
//! about the others). Access logging: the most specific level that sets
//! `accessLogging` for a side (client = outbound, server = inbound) decides
//! that side's logs whole. Tracing: each field (provider, sampling, span
//! reporting) comes from the most specific level that sets it.

use std::collections::BTreeMap;

use crate::{
    route::{Percent, RuleRef},
    service::{selects, Hostname, Labels},
};

/// Which side of the traffic a setting applies to (`match.mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrafficMode {
    /// Both (Istio's default).
    #[default]
    ClientAndServer,
    /// Outbound (the proxy as a client).
    Client,
    /// Inbound (the proxy as a server).
    Server,
}

impl TrafficMode {
    /// Parses Istio's spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "CLIENT_AND_SERVER" => TrafficMode::ClientAndServer,
            "CLIENT" => TrafficMode::Client,
            "SERVER" => TrafficMode::Server,
            _ => return None,
        })
    }

    /// Whether it covers `side`.
    pub fn covers(self, side: Side) -> bool {
        matches!(
            (self, side),
            (TrafficMode::ClientAndServer, _)
                | (TrafficMode::Client, Side::Client)
                | (TrafficMode::Server, Side::Server)
        )
    }
}

/// One side of a proxy's traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// Outbound chains (and gateways).
    Client,
    /// Inbound chains.
    Server,
}

/// An access log line's format.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogFormat {
    /// An Envoy format string.
    Text(String),
    /// A JSON object: key → Envoy command operator.
    Json(BTreeMap<String, String>),
}

/// Istio's default access log format (`EnvoyTextLogFormat` of Istio's
/// `pilot/pkg/networking/core/accesslog.go`).
pub const ISTIO_TEXT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// Istio's default JSON labels (`accessLogEncoding: JSON` without a format).
pub fn istio_json_labels() -> BTreeMap<String, String> {
    [
        ("start_time", "%START_TIME%"),
        ("method", "%REQ(:METHOD)%"),
        ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
        ("protocol", "%PROTOCOL%"),
        ("response_code", "%RESPONSE_CODE%"),
        ("response_flags", "%RESPONSE_FLAGS%"),
        ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
        (
            "connection_termination_details",
            "%CONNECTION_TERMINATION_DETAILS%",
        ),
        (
            "upstream_transport_failure_reason",
            "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
        ),
        ("bytes_received", "%BYTES_RECEIVED%"),
        ("bytes_sent", "%BYTES_SENT%"),
        ("duration", "%DURATION%"),
        (
            "upstream_service_time",
            "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
        ),
        ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
        ("user_agent", "%REQ(USER-AGENT)%"),
        ("request_id", "%REQ(X-REQUEST-ID)%"),
        ("authority", "%REQ(:AUTHORITY)%"),
        ("upstream_host", "%UPSTREAM_HOST%"),
        ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
        ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
        ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
        ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
        ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
        ("route_name", "%ROUTE_NAME%"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Where and how one access log is written.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccessLogSink {
    /// File path; `/dev/stdout` is Envoy's stdout (the agent's log).
    pub path: String,
    /// Line format.
    pub format: LogFormat,
}

impl AccessLogSink {
    /// The built-in `envoy` provider: stdout, Istio's default text format.
    pub fn stdout() -> Self {
        Self {
            path: "/dev/stdout".into(),
            format: LogFormat::Text(ISTIO_TEXT_FORMAT.into()),
        }
    }
}

/// One `accessLogging` entry, its providers resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccessLogRule {
    /// Side it applies to.
    pub mode: TrafficMode,
    /// Logs to write (empty when `disabled`).
    pub sinks: Vec<AccessLogSink>,
    /// `disabled: true`: no access log on that side.
    pub disabled: bool,
}

/// A tracing provider's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TracerKind {
    /// Zipkin v2 JSON over HTTP.
    Zipkin,
    /// OTLP over gRPC.
    OpenTelemetry,
}

/// A tracing provider from mesh config, resolved.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tracer {
    /// Provider name.
    pub name: String,
    /// Protocol.
    pub kind: TracerKind,
    /// Collector service FQDN (its outbound cluster carries the spans).
    pub service: Hostname,
    /// Collector port.
    pub port: u16,
    /// Longest tag value.
    pub max_tag_length: u32,
    /// Zipkin collector path.
    pub path: String,
}

/// One `tracing` entry, its provider resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TracingRule {
    /// Side it applies to.
    pub mode: TrafficMode,
    /// Provider (`None`: inherited).
    pub tracer: Option<Tracer>,
    /// `randomSamplingPercentage` (`None`: inherited).
    pub sampling: Option<Percent>,
    /// `disableSpanReporting` (`None`: inherited).
    pub disable_span_reporting: Option<bool>,
}

/// A compiled Telemetry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TelemetryPolicy {
    /// The Telemetry it came from.
    pub source: RuleRef,
    /// Workloads it selects in its namespace: any of these selectors
    /// (`selector`, or the selectors of the Services `targetRefs` names);
    /// `None`: the whole namespace (the mesh in the root namespace).
    pub workloads: Option<Vec<Labels>>,
    /// `accessLogging` (empty: not set at this level).
    pub access_logging: Vec<AccessLogRule>,
    /// `tracing` (empty: not set at this level).
    pub tracing: Vec<TracingRule>,
}

impl TelemetryPolicy {
    fn selects(&self, labels: &Labels) -> bool {
        self.workloads
            .as_ref()
            .is_some_and(|sels| sels.iter().any(|s| selects(s, labels)))
    }
}

/// Istio's default sampling when tracing is on and nothing sets it (mesh
/// `defaultConfig.tracing.sampling`: 1%).
pub const DEFAULT_SAMPLING: Percent = Percent(10_000);

/// Every Telemetry, oldest first, and the mesh defaults.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Telemetries {
    /// Compiled Telemetries, oldest first.
    pub policies: Vec<TelemetryPolicy>,
    /// The access logs with no Telemetry (mesh `accessLogFile`, or the
    /// `defaultProviders.accessLogging`).
    pub default_logs: Vec<AccessLogSink>,
    /// The tracer with no Telemetry (mesh `defaultProviders.tracing`).
    pub default_tracer: Option<Tracer>,
}

impl Default for Telemetries {
    fn default() -> Self {
        Self {
            policies: Vec::new(),
            default_logs: vec![AccessLogSink::stdout()],
            default_tracer: None,
        }
    }
}

/// A workload's effective tracing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EffectiveTracing {
    /// Provider.
    pub tracer: Tracer,
    /// Sampling of requests that arrive without a decision.
    pub sampling: Percent,
    /// Spans are not reported (context still propagates).
    pub disable_span_reporting: bool,
}

/// What applies to one workload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EffectiveTelemetry {
    /// Access logs of outbound traffic.
    pub client_logs: Vec<AccessLogSink>,
    /// Access logs of inbound traffic.
    pub server_logs: Vec<AccessLogSink>,
    /// Tracing of outbound traffic.
    pub client_tracing: Option<EffectiveTracing>,
    /// Tracing of inbound traffic.
    pub server_tracing: Option<EffectiveTracing>,
}

impl EffectiveTelemetry {
    /// The access logs of `side`.
    pub fn logs(&self, side: Side) -> &[AccessLogSink] {
        match side {
            Side::Client => &self.client_logs,
            Side::Server => &self.server_logs,
        }
    }

    /// The tracing of `side`.
    pub fn tracing(&self, side: Side) -> Option<&EffectiveTracing> {
        match side {
            Side::Client => self.client_tracing.as_ref(),
            Side::Server => self.server_tracing.as_ref(),
        }
    }
}

impl Telemetries {
    /// The Telemetries that apply to a workload, weakest first: the oldest
    /// mesh-wide one, the oldest namespace one, the oldest workload one.
    pub fn levels<'a>(
        &'a self,
        root: &str,
        namespace: &str,
        labels: &Labels,
    ) -> Vec<&'a TelemetryPolicy> {
        let first = |f: &dyn Fn(&TelemetryPolicy) -> bool| self.policies.iter().find(|p| f(p));
        let mesh = first(&|p| p.source.namespace == root && p.workloads.is_none());
        let ns = (namespace != root)
            .then(|| first(&|p| p.source.namespace == namespace && p.workloads.is_none()))
            .flatten();
        let workload = first(&|p| p.source.namespace == namespace && p.selects(labels));
        [mesh, ns, workload].into_iter().flatten().collect()
    }

    /// The effective telemetry of a workload.
    pub fn effective(&self, root: &str, namespace: &str, labels: &Labels) -> EffectiveTelemetry {
        let levels = self.levels(root, namespace, labels);
        let logs = |side: Side| {
            let mut out = self.default_logs.clone();
            for p in &levels {
                let rules: Vec<&AccessLogRule> = p
                    .access_logging
                    .iter()
                    .filter(|r| r.mode.covers(side))
                    .collect();
                if rules.is_empty() {
                    continue;
                }
                out = if rules.iter().any(|r| r.disabled) {
                    Vec::new()
                } else {
                    let mut sinks: Vec<AccessLogSink> =
                        rules.iter().flat_map(|r| r.sinks.iter().cloned()).collect();
                    sinks.dedup();
                    sinks
                };
            }
            out
        };
        let tracing = |side: Side| {
            let mut tracer = self.default_tracer.clone();
            let mut sampling = None;
            let mut disable = None;
            for p in &levels {
                // Istio uses the first entry that covers the side.
                if let Some(r) = p.tracing.iter().find(|r| r.mode.covers(side)) {
                    tracer = r.tracer.clone().or(tracer);
                    sampling = r.sampling.or(sampling);
                    disable = r.disable_span_reporting.or(disable);
                }
            }
            tracer.map(|tracer| EffectiveTracing {
                tracer,
                sampling: sampling.unwrap_or(DEFAULT_SAMPLING),
                disable_span_reporting: disable.unwrap_or(false),
            })
        };
        EffectiveTelemetry {
            client_logs: logs(Side::Client),
            server_logs: logs(Side::Server),
            client_tracing: tracing(Side::Client),
            server_tracing: tracing(Side::Server),
        }
    }

    /// What a workload gets when no Telemetry exists.
    pub fn mesh_default(&self) -> EffectiveTelemetry {
        self.effective("", "", &Labels::new())
    }
}

#[cfg(test)]
mod tests;
