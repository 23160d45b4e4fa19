//! Shared pieces: the object envelope, metadata, string matches, ports and percentages.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Kubernetes object metadata, trimmed to what Rudder uses (unknown fields ignored).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    /// Name.
    pub name: Option<String>,
    /// Namespace (`default` when absent, as kubectl does).
    pub namespace: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 creation time; orders VirtualServices for the same host as Istio does.
    pub creation_timestamp: Option<String>,
    /// Set when the object is being deleted (a terminating pod).
    pub deletion_timestamp: Option<String>,
    /// Resource version (Kubernetes source only).
    pub resource_version: Option<String>,
}

/// An object envelope: `apiVersion`, `kind`, `metadata`, `spec`.
///
/// The envelope tolerates unknown fields (`status`, ...); the spec type decides
/// whether its own unknown fields are errors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resource<S> {
    /// `group/version`.
    #[serde(default)]
    pub api_version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: S,
}

/// How a string is matched: exactly one of `exact`, `prefix`, `regex` (RE2 syntax).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum StringMatch {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// RE2 regular expression over the whole value.
    Regex(String),
}

/// A header or query-parameter match that may be empty: `{}` matches any
/// value of a present header (Istio's `present_match`), else a [`StringMatch`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PresenceMatch(pub Option<StringMatch>);

impl Serialize for PresenceMatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(m) => m.serialize(s),
            None => BTreeMap::<String, String>::new().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for PresenceMatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        if v.as_object().is_some_and(|m| m.is_empty()) {
            return Ok(PresenceMatch(None));
        }
        StringMatch::deserialize(v)
            .map(|m| PresenceMatch(Some(m)))
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for PresenceMatch {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PresenceMatch".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`{}` (present), or exactly one of `exact`, `prefix`, `regex` (RE2 syntax).",
            "type": "object",
            "maxProperties": 1,
            "properties": {
                "exact": {"description": "Equal.", "type": "string"},
                "prefix": {"description": "Starts with.", "type": "string"},
                "regex": {"description": "RE2 regular expression over the whole value.", "type": "string"}
            }
        })
    }
}

/// A port, by number (`port: {number: 9080}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    /// Port number.
    pub number: u32,
}

/// A percentage as a double (`{value: 0.1}` = 0.1%).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Percent {
    /// 0.0 to 100.0.
    pub value: f64,
}
