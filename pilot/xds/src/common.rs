//! Small proto builders every generator shares (durations, addresses, config
//! sources, the access log, `Any` packing), so each xDS type's module reads as
//! "what" rather than "how to spell it in protobuf".

use std::{net::IpAddr, sync::Arc, time::Duration};

use envoy_types::pb::envoy::config::core::v3::Address;
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter};
use envoy_types::pb::{
    envoy::{
        config::{
            accesslog::v3::AccessLog,
            core::v3::{
                address, config_source, socket_address, AggregatedConfigSource, ApiVersion,
                CidrRange, ConfigSource, SocketAddress,
            },
        },
        extensions::filters::network::tcp_proxy::v3::{tcp_proxy, TcpProxy},
        r#type::v3::{fractional_percent::DenominatorType, FractionalPercent},
    },
    google::protobuf::{Any, Duration as PbDuration, UInt32Value},
};
use prost::{Message, Name};
use rudder_model::Percent;

use crate::{version::Version, Resource};

/// Packs a message into `Any` with its canonical type URL.
pub(crate) fn any<M: Message + Name>(msg: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: msg.encode_to_vec(),
    }
}

/// A finished resource: version from the model inputs, body packed. A
/// resource whose version is already alive (built from an earlier snapshot,
/// or by another generator) is that same `Arc`: versions are content hashes
/// (equal version ⇔ equal bytes, checked by the version ledger test), so
/// every unchanged resource keeps its pointer from one snapshot to the next
/// and the ADS server and pilot's publish tell "unchanged" by pointer.
pub(crate) fn resource<M: Message + Name>(version: Version, msg: &M) -> Arc<Resource> {
    intern(Resource {
        version: version.to_string(),
        body: any(msg),
    })
}

/// Live resources by version (weak: a resource nobody holds is forgotten).
struct Interned {
    by_version: std::collections::HashMap<String, std::sync::Weak<Resource>>,
    /// Size after the last sweep of dead entries.
    swept: usize,
}

fn intern(r: Resource) -> Arc<Resource> {
    static INTERNED: std::sync::OnceLock<std::sync::Mutex<Interned>> = std::sync::OnceLock::new();
    let table = INTERNED.get_or_init(|| {
        std::sync::Mutex::new(Interned {
            by_version: std::collections::HashMap::new(),
            swept: 0,
        })
    });
    let mut t = table.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(live) = t
        .by_version
        .get(&r.version)
        .and_then(std::sync::Weak::upgrade)
    {
        return live;
    }
    if t.by_version.len() >= 2 * t.swept.max(1024) {
        t.by_version.retain(|_, w| w.strong_count() > 0);
        t.swept = t.by_version.len();
    }
    let version = r.version.clone();
    let arc = Arc::new(r);
    t.by_version.insert(version, Arc::downgrade(&arc));
    arc
}

/// `std` duration → protobuf duration.
pub(crate) fn duration(d: Duration) -> PbDuration {
    PbDuration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// Optional `u32` wrapper.
pub(crate) fn u32v(v: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value: v })
}

/// Config source pointing at the ADS stream the bootstrap opened.
pub(crate) fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

/// A TCP socket address.
pub(crate) fn socket_address(ip: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

/// A host prefix: `/32` for IPv4, `/128` for IPv6.
pub(crate) fn host_cidr(ip: &IpAddr) -> CidrRange {
    let len = if ip.is_ipv4() { 32 } else { 128 };
    CidrRange {
        address_prefix: ip.to_string(),
        prefix_len: u32v(len),
    }
}

/// Envoy's `FractionalPercent` in millionths (the model's [`Percent`] unit).
pub(crate) fn fraction(p: Percent) -> FractionalPercent {
    FractionalPercent {
        numerator: p.0,
        denominator: DenominatorType::Million as i32,
    }
}

/// Access log to Envoy's stdout (the agent forwards it) in Istio's default
/// format, on every HCM and TCP proxy: the mesh default. A proxy whose
/// Telemetry says otherwise gets its listeners rewritten
/// ([`crate::telemetry`]).
pub(crate) fn stdout_access_log() -> AccessLog {
    crate::telemetry::access_log(&rudder_model::telemetry::AccessLogSink::stdout())
}

/// A network filter with a typed config.
pub(crate) fn network_filter<M: Message + Name>(name: &str, config: &M) -> Filter {
    Filter {
        name: name.into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(config))),
    }
}

/// A `tcp_proxy` filter to one cluster or, with several weighted clusters, a split.
pub(crate) fn tcp_proxy(stat_prefix: &str, clusters: &[(String, u32)]) -> Filter {
    tcp_proxy_with(stat_prefix, clusters, TcpProxyTimeouts::default())
}

/// What a DestinationRule's host-level `connectionPool.tcp` sets on the
/// `tcp_proxy` of its service's outbound TCP chains (Istio's
/// `buildOutboundNetworkFilters`): `idleTimeout` and `maxConnectionDuration`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct TcpProxyTimeouts {
    /// `idle_timeout` (`None`: Envoy's 1h).
    pub(crate) idle: Option<std::time::Duration>,
    /// `max_downstream_connection_duration`.
    pub(crate) max_connection: Option<std::time::Duration>,
}

/// [`tcp_proxy`] with timeouts.
pub(crate) fn tcp_proxy_with(
    stat_prefix: &str,
    clusters: &[(String, u32)],
    timeouts: TcpProxyTimeouts,
) -> Filter {
    let specifier = match clusters {
        [(one, _)] => tcp_proxy::ClusterSpecifier::Cluster(one.clone()),
        many => tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
            clusters: many
                .iter()
                .map(
                    |(name, weight)| tcp_proxy::weighted_cluster::ClusterWeight {
                        name: name.clone(),
                        weight: *weight,
                        ..Default::default()
                    },
                )
                .collect(),
        }),
    };
    let config = TcpProxy {
        stat_prefix: stat_prefix.into(),
        cluster_specifier: Some(specifier),
        access_log: vec![stdout_access_log()],
        idle_timeout: timeouts.idle.map(duration),
        max_downstream_connection_duration: timeouts.max_connection.map(duration),
        ..Default::default()
    };
    network_filter(TCP_PROXY, &config)
}

/// Filter names Envoy knows the extensions by.
pub(crate) const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
/// See [`TCP_PROXY`].
pub(crate) const HTTP_CONNECTION_MANAGER: &str = "envoy.filters.network.http_connection_manager";
/// See [`TCP_PROXY`].
pub(crate) const FAULT_FILTER: &str = "envoy.filters.http.fault";
/// The CORS HTTP filter (routes carry their policies).
pub(crate) const CORS_FILTER: &str = "envoy.filters.http.cors";
/// See [`TCP_PROXY`].
pub(crate) const ROUTER_FILTER: &str = "envoy.filters.http.router";
/// See [`TCP_PROXY`].
pub(crate) const ORIGINAL_DST_FILTER: &str = "envoy.filters.listener.original_dst";
/// Key of upstream HTTP protocol options in `typed_extension_protocol_options`.
pub(crate) const HTTP_PROTOCOL_OPTIONS: &str =
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
