//! Canonical JSON of generated resources: proto3 JSON mapping (via
//! prost-reflect over a descriptor set compiled at build time from the protos
//! envoy-types ships), with object keys sorted. Goldens, `/debug/config_dump`
//! and "identical xDS" comparisons all use it, because encoded bytes are not
//! canonical (map fields encode in random order).

use std::sync::OnceLock;

use envoy_types::pb::google::protobuf::Any;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::{Map, Value};

use crate::{ProxyResources, Resource};

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// Why a resource could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The type URL names a message the descriptor set does not have.
    #[error("unknown message type {0:?} (not in the compiled descriptor set)")]
    UnknownType(String),
    /// The bytes do not decode as that message.
    #[error("decoding {type_url}: {source}")]
    Decode {
        /// The type.
        type_url: String,
        /// Why.
        source: prost::DecodeError,
    },
    /// prost-reflect refused to serialise it.
    #[error("rendering {type_url} as JSON: {source}")]
    Serialize {
        /// The type.
        type_url: String,
        /// Why.
        source: serde_json::Error,
    },
}

/// The descriptor pool of the Envoy API (built once).
pub fn descriptor_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTORS).expect("descriptor set compiled by build.rs decodes")
    })
}

/// One packed message as canonical JSON (nested `Any`s resolved, `@type` kept).
pub fn any_to_json(any: &Any) -> Result<Value, JsonError> {
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let desc = descriptor_pool()
        .get_message_by_name(name)
        .ok_or_else(|| JsonError::UnknownType(any.type_url.clone()))?;
    let msg =
        DynamicMessage::decode(desc, any.value.as_slice()).map_err(|source| JsonError::Decode {
            type_url: any.type_url.clone(),
            source,
        })?;
    let value = msg
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .map_err(|source| JsonError::Serialize {
            type_url: any.type_url.clone(),
            source,
        })?;
    Ok(sorted(value))
}

/// A resource's body as canonical JSON (the version is not part of it).
pub fn resource_to_json(r: &Resource) -> Result<Value, JsonError> {
    any_to_json(&r.body)
}

/// All resources, `{ "cds": { name: body }, "eds": ..., "lds": ..., "rds": ... }`,
/// without versions (they are hashes, not content). A resource that cannot be
/// rendered shows as `{"error": "..."}` so a dump still shows everything else.
pub fn to_json(res: &ProxyResources) -> Value {
    let mut out = Map::new();
    for (t, named) in &res.by_type {
        let rendered: Map<String, Value> = named
            .iter()
            .map(|(name, r)| {
                let v = resource_to_json(r)
                    .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
                (name.clone(), v)
            })
            .collect();
        out.insert(t.short().to_string(), Value::Object(rendered));
    }
    sorted(Value::Object(out))
}

/// Rebuilds objects with sorted keys (serde_json may preserve insertion order
/// when another crate enables its `preserve_order` feature).
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}
