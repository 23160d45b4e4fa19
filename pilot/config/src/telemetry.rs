//! `telemetry.istio.io` Telemetry (v1 and v1alpha1 share this spec): access
//! logging, tracing and metrics for the mesh (root namespace), a namespace
//! or the workloads a selector or `targetRefs` names.
//!
//! Providers are named, not defined, here: their definitions live in the
//! mesh config's `extensionProviders` ([`crate::mesh::MeshExtensionProvider`]).
//! Enumerations (`match.mode`) stay strings so validation can name the field
//! and list the values.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::security::{PolicyTargetReference, WorkloadSelector};

/// Telemetry spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TelemetrySpec {
    /// Workloads it applies to (absent: the namespace, or the mesh in the
    /// root namespace).
    pub selector: Option<WorkloadSelector>,
    /// Gateway API attachment (a `Service` or `Gateway` of the namespace).
    pub target_ref: Option<PolicyTargetReference>,
    /// See `target_ref`.
    pub target_refs: Vec<PolicyTargetReference>,
    /// Tracing settings (Istio honours the first entry per mode).
    pub tracing: Vec<Tracing>,
    /// Metrics settings.
    pub metrics: Vec<Metrics>,
    /// Access logging settings.
    pub access_logging: Vec<AccessLogging>,
}

/// `{name}`: a provider of the mesh config's `extensionProviders`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProviderRef {
    /// Provider name.
    pub name: String,
}

/// `match: {mode}` of tracing and access logging.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ModeSelector {
    /// `CLIENT_AND_SERVER` (default), `CLIENT` or `SERVER`.
    pub mode: Option<String>,
}

/// One `tracing` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Tracing {
    /// Which side of the traffic it applies to.
    #[serde(rename = "match")]
    pub match_: Option<ModeSelector>,
    /// Providers (one is served, as in Istio).
    pub providers: Vec<ProviderRef>,
    /// Percentage of requests sampled, 0–100.
    pub random_sampling_percentage: Option<f64>,
    /// Stop reporting spans (headers still propagate).
    pub disable_span_reporting: Option<bool>,
    /// Extra span tags (not served).
    pub custom_tags: BTreeMap<String, serde_json::Value>,
    /// Sample by `x-request-id` (not served).
    pub use_request_id_for_trace_sampling: Option<bool>,
    /// Istio's own tags (not served).
    pub enable_istio_tags: Option<bool>,
}

/// One `metrics` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Metrics {
    /// Providers (`prometheus` is the one served).
    pub providers: Vec<ProviderRef>,
    /// Per-metric overrides.
    pub overrides: Vec<MetricsOverrides>,
    /// Reporting interval (not served: Prometheus is scraped).
    pub reporting_interval: Option<String>,
}

/// One `metrics[].overrides` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MetricsOverrides {
    /// Which metrics.
    #[serde(rename = "match")]
    pub match_: Option<MetricSelector>,
    /// Turn the selected metrics off.
    pub disabled: Option<bool>,
    /// Tag changes (not served).
    pub tag_overrides: BTreeMap<String, serde_json::Value>,
}

/// `match` of a metrics override.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MetricSelector {
    /// `ALL_METRICS`, `REQUEST_COUNT`, `REQUEST_DURATION`, ...
    pub metric: Option<String>,
    /// A metric outside Istio's standard set (not served).
    pub custom_metric: Option<String>,
    /// `CLIENT_AND_SERVER` (default), `CLIENT` or `SERVER`.
    pub mode: Option<String>,
}

/// One `accessLogging` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AccessLogging {
    /// Which side of the traffic it applies to.
    #[serde(rename = "match")]
    pub match_: Option<ModeSelector>,
    /// Providers (absent: the mesh's default providers).
    pub providers: Vec<ProviderRef>,
    /// Turn access logging off.
    pub disabled: Option<bool>,
    /// A CEL filter (not served: upstream Envoy has no CEL access log filter
    /// in every build).
    pub filter: Option<AccessLogFilter>,
}

/// `filter: {expression}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AccessLogFilter {
    /// CEL expression.
    pub expression: String,
}
