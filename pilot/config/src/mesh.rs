//! The `rudder-mesh` ConfigMap: `data.mesh` holds YAML shaped like Istio's
//! MeshConfig (only the fields Rudder uses; Istio's others are ignored so an
//! Istio user's mesh config can be reused).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Name of the ConfigMap holding the mesh config.
pub const MESH_CONFIGMAP_NAME: &str = "rudder-mesh";
/// Key of the mesh config in the ConfigMap's `data`.
pub const MESH_CONFIGMAP_KEY: &str = "mesh";

/// Mesh config fields Rudder reads; absent fields take the model's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct MeshConfigSpec {
    /// Namespace of mesh-wide policies.
    pub root_namespace: Option<String>,
    /// SPIFFE trust domain.
    pub trust_domain: Option<String>,
    /// DNS domain suffix.
    pub domain_suffix: Option<String>,
    /// Namespaces pilot reads (a namespace any selector matches); empty:
    /// all. Objects in other namespaces are ignored entirely, as in Istio.
    pub discovery_selectors: Vec<LabelSelector>,
    /// What sidecars do with destinations outside the registry (a Sidecar's
    /// own `outboundTrafficPolicy` wins for its pods).
    pub outbound_traffic_policy: Option<MeshOutboundTrafficPolicy>,
    /// Where every sidecar writes its access log when no Telemetry says
    /// otherwise: `""` turns it off (Istio's default profile); absent,
    /// Rudder keeps `/dev/stdout` (Istio's demo profile).
    pub access_log_file: Option<String>,
    /// `TEXT` (default) or `JSON`, for `access_log_file`.
    pub access_log_encoding: Option<String>,
    /// Envoy format string for `access_log_file` (absent: Istio's default).
    pub access_log_format: Option<String>,
    /// Providers a Telemetry names (access log files, tracers, Prometheus).
    pub extension_providers: Vec<MeshExtensionProvider>,
    /// Providers used when a Telemetry names none.
    pub default_providers: Option<MeshDefaultProviders>,
}

/// `defaultProviders`: provider names per telemetry kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct MeshDefaultProviders {
    /// For `tracing`.
    pub tracing: Vec<String>,
    /// For `metrics`.
    pub metrics: Vec<String>,
    /// For `accessLogging`.
    pub access_logging: Vec<String>,
}

/// One `extensionProviders` entry: a name and one provider kind. Kinds
/// Rudder does not serve (ext-authz, Stackdriver, ...) are kept by name so
/// a Telemetry naming one is refused with its kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct MeshExtensionProvider {
    /// Name a Telemetry refers to.
    pub name: String,
    /// An access log file.
    pub envoy_file_access_log: Option<FileAccessLogProvider>,
    /// A Zipkin collector.
    pub zipkin: Option<TracerProvider>,
    /// An OpenTelemetry collector (OTLP over gRPC).
    pub opentelemetry: Option<TracerProvider>,
    /// Prometheus scraping (Envoy's stats endpoint).
    pub prometheus: Option<serde_json::Value>,
    /// Any other kind, by its field name.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `envoyFileAccessLog: {path, logFormat}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FileAccessLogProvider {
    /// File path (`/dev/stdout` goes to the agent's log).
    pub path: String,
    /// Text format or JSON labels (absent: Istio's default text format).
    pub log_format: Option<AccessLogFormat>,
}

/// `logFormat: {text}` or `logFormat: {labels}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AccessLogFormat {
    /// Envoy format string.
    pub text: Option<String>,
    /// JSON object: key → Envoy command operator.
    pub labels: Option<BTreeMap<String, String>>,
}

/// `zipkin` / `opentelemetry`: the collector's service and port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TracerProvider {
    /// Collector service FQDN (`zipkin.istio-system.svc.cluster.local`).
    pub service: String,
    /// Collector port.
    pub port: u32,
    /// Longest tag value (Istio's default 256).
    pub max_tag_length: Option<u32>,
    /// Zipkin: 128-bit trace ids (not served).
    pub enable_64bit_trace_id: Option<bool>,
    /// Zipkin: collector path (default `/api/v2/spans`).
    pub path: Option<String>,
    /// OpenTelemetry: `http` exporter (not served: gRPC only).
    pub http: Option<serde_json::Value>,
    /// OpenTelemetry: resource detectors (not served).
    pub resource_detectors: Option<serde_json::Value>,
    /// OpenTelemetry: dynatrace sampler etc. (not served).
    pub dynatrace_sampler: Option<serde_json::Value>,
}

/// `outboundTrafficPolicy: {mode}` of the mesh config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct MeshOutboundTrafficPolicy {
    /// `ALLOW_ANY` (default) or `REGISTRY_ONLY` (a string: validation lists the values).
    pub mode: Option<String>,
}

/// A Kubernetes label selector: every `matchLabels` pair and every
/// `matchExpressions` requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LabelSelector {
    /// Labels that must be present with these values.
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// `{key, operator: In|NotIn|Exists|DoesNotExist, values}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` and `NotIn`.
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector (an unknown operator selects nothing).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}
