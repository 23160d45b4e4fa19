//! `networking.istio.io` Sidecar (v1, v1beta1 and v1alpha3 share this spec):
//! which hosts a workload's sidecar imports.
//!
//! Fields Rudder does not implement (`ingress`, `egress[].bind`,
//! `egress[].captureMode`, `inboundConnectionPool`,
//! `outboundTrafficPolicy.egressProxy`, ...) are kept as free-form values so
//! that the registry's validation refuses each one with its path and a reason,
//! instead of serde's bare "unknown field".

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Sidecar spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SidecarSpec {
    /// Pods it applies to (absent: every pod of the namespace, or of the mesh
    /// in the root namespace, without a more specific Sidecar).
    pub workload_selector: Option<SidecarWorkloadSelector>,
    /// Inbound listeners (not served).
    pub ingress: Option<Value>,
    /// Outbound listeners: the hosts the sidecar imports.
    pub egress: Vec<EgressListener>,
    /// Inbound connection pool (not served).
    pub inbound_connection_pool: Option<Value>,
    /// What happens to traffic for hosts outside the registry.
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    /// Inbound TLS (not served).
    pub inbound_tls: Option<Value>,
}

/// `workloadSelector: {labels: {...}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SidecarWorkloadSelector {
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
}

/// One egress listener.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EgressListener {
    /// A port-specific listener (not served: every egress listener covers all ports).
    pub port: Option<SidecarPort>,
    /// Bind address (not served).
    pub bind: Option<String>,
    /// Capture mode (not served).
    pub capture_mode: Option<String>,
    /// `namespace/dnsName` entries.
    pub hosts: Vec<String>,
}

/// `port: {number, protocol, name}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct SidecarPort {
    /// Port number.
    pub number: Option<u32>,
    /// Protocol.
    pub protocol: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Target port.
    pub target_port: Option<u32>,
}

/// `outboundTrafficPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OutboundTrafficPolicy {
    /// `ALLOW_ANY` or `REGISTRY_ONLY` (a string: validation lists the values).
    pub mode: Option<String>,
    /// Egress proxy (not served).
    pub egress_proxy: Option<Value>,
}
