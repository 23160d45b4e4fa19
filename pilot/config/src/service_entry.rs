//! `networking.istio.io` ServiceEntry and WorkloadEntry (v1, v1beta1 and
//! v1alpha3 share these specs): hosts that are not Kubernetes Services
//! (external APIs, VMs) added to the mesh's registry.
//!
//! Strings Istio constrains to an enum (`location`, `resolution`, port
//! `protocol`) stay strings so that validation can name the field and list
//! the values, instead of serde's bare "unknown variant".

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// ServiceEntry spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServiceEntrySpec {
    /// Host names (`api.example.com`, `*.example.com`), as written (never
    /// completed with the namespace).
    pub hosts: Vec<String>,
    /// Virtual IPs (or CIDRs) of the hosts.
    pub addresses: Vec<String>,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// `MESH_EXTERNAL` (default) or `MESH_INTERNAL`.
    pub location: Option<String>,
    /// `NONE` (default), `STATIC`, `DNS` or `DNS_ROUND_ROBIN`.
    pub resolution: Option<String>,
    /// Endpoints (STATIC: IP addresses; DNS: names or IPs).
    pub endpoints: Vec<WorkloadEntrySpec>,
    /// Pods and WorkloadEntries of the namespace that are its endpoints.
    pub workload_selector: Option<WorkloadSelector>,
    /// Namespaces that see the hosts.
    pub export_to: Vec<String>,
    /// Identities the endpoints' certificates must carry (ISTIO_MUTUAL).
    pub subject_alt_names: Vec<String>,
}

/// `ports[]`: `{number, protocol, name, targetPort}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServicePort {
    /// Port clients dial.
    pub number: i64,
    /// `HTTP`, `HTTPS`, `GRPC`, `HTTP2`, `MONGO`, `TCP` or `TLS`.
    pub protocol: Option<String>,
    /// Name (endpoints' `ports` map keys name it).
    pub name: String,
    /// Port of the endpoints when they do not say (default: `number`).
    pub target_port: Option<i64>,
}

/// `workloadSelector: {labels}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WorkloadSelector {
    /// Labels of the selected pods and WorkloadEntries.
    pub labels: BTreeMap<String, String>,
}

/// WorkloadEntry spec (also a ServiceEntry's `endpoints[]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WorkloadEntrySpec {
    /// IP address (or, for DNS resolution, a host name).
    pub address: String,
    /// Port by service port name.
    pub ports: BTreeMap<String, i64>,
    /// Labels (subsets, `workloadSelector`).
    pub labels: BTreeMap<String, String>,
    /// Network.
    pub network: Option<String>,
    /// `region/zone/subzone`.
    pub locality: Option<String>,
    /// Load-balancing weight.
    pub weight: Option<i64>,
    /// Service account (identity; a meshed workload).
    pub service_account: Option<String>,
}
