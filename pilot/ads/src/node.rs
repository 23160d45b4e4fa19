//! Who is on the other end of a stream: the Envoy `Node` turned into plain data
//! for [`ProxyDirectory`](crate::ProxyDirectory).
//!
//! The ADS server does not interpret the node id or metadata (that is the
//! model's vocabulary, `rudder_model::NodeId::parse` / `NodeMetadata::from_json`,
//! applied by pilot); it only converts the protobuf `Struct` to JSON so the
//! directory never has to name an Envoy type.

use envoy_types::pb::envoy::config::core::v3::{node::UserAgentVersionType, Node};
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};

/// The node as a proxy announces it on the first request of a stream.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NodeInfo {
    /// `Node.id`, e.g. `sidecar~10.0.0.1~reviews-v1-abc.default~default.svc.cluster.local`.
    pub id: String,
    /// `Node.cluster` (Envoy's `--service-cluster`).
    pub cluster: String,
    /// `Node.metadata` as JSON (an object; `{}` when absent).
    pub metadata: serde_json::Value,
    /// `user_agent_name/version`, e.g. `envoy/1.40.0` (only the name when no
    /// version is given).
    pub user_agent: String,
}

/// Why a stream's node is unusable.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NodeError {
    /// The first request of a stream must carry the node: later ones may omit it.
    #[error("the first request of an ADS stream carries no node")]
    Missing,
    /// An empty id cannot name a proxy.
    #[error("the node in the first request of the ADS stream has an empty id")]
    EmptyId,
}

impl NodeInfo {
    /// Converts the protobuf node; `None` is the caller's "no node yet".
    pub fn from_proto(node: Option<&Node>) -> Result<Self, NodeError> {
        let node = node.ok_or(NodeError::Missing)?;
        if node.id.is_empty() {
            return Err(NodeError::EmptyId);
        }
        let version = match &node.user_agent_version_type {
            Some(UserAgentVersionType::UserAgentVersion(v)) => v.clone(),
            Some(UserAgentVersionType::UserAgentBuildVersion(b)) => b
                .version
                .as_ref()
                .map(|v| format!("{}.{}.{}", v.major_number, v.minor_number, v.patch))
                .unwrap_or_default(),
            None => String::new(),
        };
        let user_agent = if version.is_empty() {
            node.user_agent_name.clone()
        } else {
            format!("{}/{}", node.user_agent_name, version)
        };
        Ok(NodeInfo {
            id: node.id.clone(),
            cluster: node.cluster.clone(),
            metadata: node
                .metadata
                .as_ref()
                .map(struct_to_json)
                .unwrap_or_else(|| serde_json::json!({})),
            user_agent,
        })
    }
}

/// `google.protobuf.Struct` → JSON object (proto3 JSON mapping of `Struct`).
pub fn struct_to_json(s: &Struct) -> serde_json::Value {
    // HashMap iteration order is arbitrary; serde_json's Map sorts keys anyway.
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(v: &Value) -> serde_json::Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_to_json).collect())
        }
    }
}

/// JSON → `google.protobuf.Struct`; the inverse of [`struct_to_json`], for
/// clients and tests that build nodes (non-objects become an empty Struct).
pub fn json_to_struct(v: &serde_json::Value) -> Struct {
    match v {
        serde_json::Value::Object(m) => Struct {
            fields: m
                .iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect(),
        },
        _ => Struct::default(),
    }
}

fn json_to_value(v: &serde_json::Value) -> Value {
    use envoy_types::pb::google::protobuf::ListValue;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(_) => Kind::StructValue(json_to_struct(v)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_user_agent_is_joined() {
        let md = serde_json::json!({"NAMESPACE": "default", "LABELS": {"app": "reviews"}, "N": 2.0, "L": [true, null]});
        let node = Node {
            id: "sidecar~10.0.0.1~a.default~default.svc.cluster.local".into(),
            cluster: "reviews".into(),
            metadata: Some(json_to_struct(&md)),
            user_agent_name: "envoy".into(),
            user_agent_version_type: Some(UserAgentVersionType::UserAgentVersion("1.40.0".into())),
            ..Default::default()
        };
        let info = NodeInfo::from_proto(Some(&node)).unwrap();
        assert_eq!(info.metadata, md);
        assert_eq!(info.user_agent, "envoy/1.40.0");
        assert_eq!(info.cluster, "reviews");
    }

    #[test]
    fn missing_or_anonymous_node_is_an_error() {
        assert_eq!(NodeInfo::from_proto(None), Err(NodeError::Missing));
        assert_eq!(
            NodeInfo::from_proto(Some(&Node::default())),
            Err(NodeError::EmptyId)
        );
    }
}
