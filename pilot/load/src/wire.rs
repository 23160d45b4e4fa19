//! The few fields of xDS responses the emulation reads, decoded from the
//! response's bytes without copying resource bodies or building the
//! resources Envoy would build.
//!
//! ```text
//!  gRPC frame ─► RawCodec: the message's bytes (a slice of the read buffer)
//!             ─► Response / DeltaResponse: names, nonces, each resource's
//!                body as a slice ─► Cluster (name, EDS service name) and
//!                Listener (the RDS names of its connection managers)
//! ```
//!
//! Decoding every `Cluster` and `Listener` in full (envoy-types' messages,
//! with every nested field allocated) was most of the emulation's CPU: at
//! 2000 sidecars the load tool, not pilot, bounded the storm and every SotW
//! push. The field numbers are those of Envoy's v3 protos (prost skips the
//! fields not declared here); `tests/envoy_sequence.rs` checks the result
//! against real Envoy.

use std::marker::PhantomData;

use bytes::{Buf, Bytes};
use tonic::{
    codec::{Codec, DecodeBuf, Decoder},
    Status,
};

/// `envoy.service.discovery.v3.DiscoveryResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    /// `version_info`.
    #[prost(string, tag = "1")]
    pub version_info: String,
    /// `resources`.
    #[prost(message, repeated, tag = "2")]
    pub resources: Vec<Body>,
    /// `type_url`.
    #[prost(string, tag = "4")]
    pub type_url: String,
    /// `nonce`.
    #[prost(string, tag = "5")]
    pub nonce: String,
}

/// `envoy.service.discovery.v3.DeltaDiscoveryResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeltaResponse {
    /// `resources`.
    #[prost(message, repeated, tag = "2")]
    pub resources: Vec<Resource>,
    /// `type_url`.
    #[prost(string, tag = "4")]
    pub type_url: String,
    /// `nonce`.
    #[prost(string, tag = "5")]
    pub nonce: String,
    /// `removed_resources`.
    #[prost(string, repeated, tag = "6")]
    pub removed_resources: Vec<String>,
}

/// `envoy.service.discovery.v3.Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// `resource`.
    #[prost(message, optional, tag = "2")]
    pub resource: Option<Body>,
    /// `name`.
    #[prost(string, tag = "3")]
    pub name: String,
}

/// A `google.protobuf.Any` whose type the response names: its `value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Body {
    /// `value`.
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// A `google.protobuf.Any`: `type_url` and `value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypedBody {
    /// `type_url`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// `value`.
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// `envoy.config.cluster.v3.Cluster`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Cluster {
    /// `name`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `type` (of the `cluster_discovery_type` oneof).
    #[prost(int32, optional, tag = "2")]
    pub r#type: Option<i32>,
    /// `eds_cluster_config`.
    #[prost(message, optional, tag = "3")]
    pub eds_cluster_config: Option<EdsClusterConfig>,
}

/// `Cluster.DiscoveryType.EDS`.
pub const EDS: i32 = 3;

/// `envoy.config.cluster.v3.Cluster.EdsClusterConfig`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EdsClusterConfig {
    /// `service_name`.
    #[prost(string, tag = "2")]
    pub service_name: String,
}

/// `envoy.config.listener.v3.Listener`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Listener {
    /// `name`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `filter_chains`.
    #[prost(message, repeated, tag = "3")]
    pub filter_chains: Vec<FilterChain>,
    /// `default_filter_chain`.
    #[prost(message, optional, tag = "25")]
    pub default_filter_chain: Option<FilterChain>,
}

/// `envoy.config.listener.v3.FilterChain`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FilterChain {
    /// `filters`.
    #[prost(message, repeated, tag = "3")]
    pub filters: Vec<Filter>,
}

/// `envoy.config.listener.v3.Filter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Filter {
    /// `typed_config` (of the `config_type` oneof).
    #[prost(message, optional, tag = "4")]
    pub typed_config: Option<TypedBody>,
}

/// `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpConnectionManager {
    /// `rds` (of the `route_specifier` oneof).
    #[prost(message, optional, tag = "3")]
    pub rds: Option<Rds>,
}

/// `envoy.extensions.filters.network.http_connection_manager.v3.Rds`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Rds {
    /// `route_config_name`.
    #[prost(string, tag = "2")]
    pub route_config_name: String,
}

/// Requests encoded as envoy-types messages; responses handed over as
/// their bytes, to be decoded as the types above.
pub struct RawCodec<Req>(PhantomData<Req>);

impl<Req> Default for RawCodec<Req> {
    fn default() -> Self {
        RawCodec(PhantomData)
    }
}

impl<Req: prost::Message + Send + 'static> Codec for RawCodec<Req> {
    type Encode = Req;
    type Decode = Bytes;
    type Encoder = tonic_prost::ProstEncoder<Req>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

/// A message's bytes, split off the read buffer (no copy).
pub struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = buf.remaining();
        Ok(Some(buf.copy_to_bytes(n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::{
        envoy::{
            config::{
                cluster::v3::{cluster, Cluster as FullCluster},
                listener::v3::{
                    filter, Filter as FullFilter, FilterChain as FullChain,
                    Listener as FullListener,
                },
            },
            extensions::filters::network::http_connection_manager::v3::{
                http_connection_manager::RouteSpecifier, HttpConnectionManager as FullHcm,
                Rds as FullRds,
            },
            service::discovery::v3::{
                DeltaDiscoveryResponse, DiscoveryResponse, Resource as FullResource,
            },
        },
        google::protobuf::Any,
    };
    use prost::Message;

    #[test]
    fn reads_what_envoy_types_writes() {
        let cluster = FullCluster {
            name: "outbound|9080|v1|a.b.svc.cluster.local".into(),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Eds as i32,
            )),
            eds_cluster_config: Some(cluster::EdsClusterConfig {
                service_name: "eds-name".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let hcm = FullHcm {
            route_specifier: Some(RouteSpecifier::Rds(FullRds {
                route_config_name: "9080".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let listener = FullListener {
            name: "l".into(),
            default_filter_chain: Some(FullChain {
                filters: vec![FullFilter {
                    name: "hcm".into(),
                    config_type: Some(filter::ConfigType::TypedConfig(Any {
                        type_url: "type.googleapis.com/x.HttpConnectionManager".into(),
                        value: hcm.encode_to_vec(),
                    })),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let sotw = DiscoveryResponse {
            version_info: "v1".into(),
            resources: vec![Any {
                type_url: "t".into(),
                value: cluster.encode_to_vec(),
            }],
            type_url: "t".into(),
            nonce: "n".into(),
            ..Default::default()
        };
        let r = Response::decode(Bytes::from(sotw.encode_to_vec())).unwrap();
        assert_eq!((r.version_info.as_str(), r.nonce.as_str()), ("v1", "n"));
        let c = Cluster::decode(r.resources[0].value.clone()).unwrap();
        assert_eq!(c.name, cluster.name);
        assert_eq!(c.r#type, Some(EDS));
        assert_eq!(c.eds_cluster_config.unwrap().service_name, "eds-name");

        let delta = DeltaDiscoveryResponse {
            resources: vec![FullResource {
                name: "l".into(),
                resource: Some(Any {
                    type_url: "t".into(),
                    value: listener.encode_to_vec(),
                }),
                ..Default::default()
            }],
            removed_resources: vec!["gone".into()],
            nonce: "n2".into(),
            type_url: "t".into(),
            ..Default::default()
        };
        let d = DeltaResponse::decode(Bytes::from(delta.encode_to_vec())).unwrap();
        assert_eq!(d.removed_resources, ["gone"]);
        assert_eq!(d.resources[0].name, "l");
        let body = d.resources[0].resource.as_ref().unwrap().value.clone();
        let l = Listener::decode(body).unwrap();
        let f = l.default_filter_chain.unwrap().filters[0]
            .typed_config
            .clone()
            .unwrap();
        assert!(f.type_url.ends_with("HttpConnectionManager"));
        let h = HttpConnectionManager::decode(f.value).unwrap();
        assert_eq!(h.rds.unwrap().route_config_name, "9080");
    }
}
