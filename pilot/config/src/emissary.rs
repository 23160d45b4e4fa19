//! Emissary-ingress's `getambassador.io/v3alpha1` Mapping, trimmed to what
//! Rudder translates (`compile::emissary` in the registry turns Mappings
//! into VirtualServices bound to a Gateway of the ingress gateway).
//!
//! Field names are Emissary's own (snake_case). Unknown fields are errors
//! naming their path, as for the Istio specs: a Mapping field Rudder does
//! not translate (`add_request_headers`, `cors`, `precedence`,
//! `host_rewrite`, `circuit_breakers`, ...) is refused, never ignored.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group.
pub const GROUP: &str = "getambassador.io";
/// The version read.
pub const VERSION: &str = "v3alpha1";
/// The `ambassador_id` an Emissary installation has unless told otherwise;
/// Rudder serves Mappings without one or naming it.
pub const DEFAULT_AMBASSADOR_ID: &str = "default";

/// Mapping spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MappingSpec {
    /// Which Emissary installations serve it (a string or a list).
    pub ambassador_id: Option<AmbassadorId>,
    /// The host it serves (`*`: any; default `*`).
    pub hostname: Option<String>,
    /// The path prefix (required).
    pub prefix: String,
    /// `prefix` is a regular expression over the whole path.
    pub prefix_regex: Option<bool>,
    /// What the matched prefix becomes upstream (default `/`; `""` keeps the path).
    pub rewrite: Option<String>,
    /// The upstream: `[http://]name[.namespace][:port]`.
    pub service: String,
    /// Percentage of the traffic of its group (same host, prefix and headers).
    pub weight: Option<i64>,
    /// Headers that must equal these values.
    pub headers: BTreeMap<String, String>,
    /// Headers that must match these regular expressions.
    pub regex_headers: BTreeMap<String, String>,
    /// Request timeout in milliseconds (default 3000; 0: none).
    pub timeout_ms: Option<i64>,
    /// Retries.
    pub retry_policy: Option<RetryPolicy>,
    /// Mirror the group's traffic here instead of routing it.
    pub shadow: Option<bool>,
    /// Where the service's API documentation is, for Emissary's developer
    /// portal (Emissary's quickstart Mapping sets it); it has no effect on
    /// routing in Emissary either, so Rudder accepts it and routes the same.
    pub docs: Option<MappingDocs>,
}

/// `docs`: developer-portal metadata (no effect on routing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MappingDocs {
    /// Path of the documentation on the service.
    pub path: Option<String>,
    /// URL of the documentation.
    pub url: Option<String>,
    /// Do not show the service in the portal.
    pub ignored: Option<bool>,
    /// Display name.
    pub display_name: Option<String>,
}

/// `ambassador_id`: one id or several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AmbassadorId {
    /// One id.
    One(String),
    /// Several ids.
    Many(Vec<String>),
}

/// A string or a list of strings has no structural schema: the API server
/// keeps the value as written and the registry checks its shape.
impl JsonSchema for AmbassadorId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AmbassadorId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "One id, or a list of ids.",
            "x-kubernetes-preserve-unknown-fields": true,
        })
    }
}

impl AmbassadorId {
    /// The ids.
    pub fn ids(&self) -> Vec<&str> {
        match self {
            AmbassadorId::One(s) => vec![s.as_str()],
            AmbassadorId::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// Retries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Envoy retry condition (`5xx`, `gateway-error`, `connect-failure`, ...).
    pub retry_on: Option<String>,
    /// Retries (default 1).
    pub num_retries: Option<i64>,
    /// Timeout of each try (`"0.5s"`).
    pub per_try_timeout: Option<String>,
}
