//! CDS: one EDS cluster per service port and per DestinationRule subset, plus
//! the fixed clusters every sidecar needs (inbound, passthrough, blackhole).
//!
//! Policy comes from the host's DestinationPolicy as a proxy's namespace looks
//! it up (its own namespace, the service's, the root: [`rudder_model::Snapshot::destination_policy`]),
//! merged port by port and subset over host ([`TrafficPolicy::merged_with`]).
//! TLS comes from the policy's `tls` or, without one, from auto mTLS over the
//! cluster's endpoints ([`crate::tls`]); the secrets it names depend on the
//! proxy's certificate mode, so outbound clusters are per (name, cert mode).

use std::{collections::HashMap, sync::Arc, time::Duration};

use envoy_types::pb::{
    envoy::{
        config::{
            cluster::v3::{
                circuit_breakers::Thresholds, cluster, CircuitBreakers, Cluster,
                OutlierDetection as PbOutlier, UpstreamConnectionOptions,
            },
            core::v3::{
                address, proxy_protocol_config, transport_socket, BindConfig, Http1ProtocolOptions,
                Http2ProtocolOptions, HttpProtocolOptions as CommonHttp, ProxyProtocolConfig,
                RuntimeDouble, TcpKeepalive as PbKeepalive, TransportSocket,
            },
            endpoint::v3::{
                lb_endpoint, ClusterLoadAssignment, Endpoint as PbEndpoint, LbEndpoint,
                LocalityLbEndpoints,
            },
        },
        extensions::{
            transport_sockets::proxy_protocol::v3::ProxyProtocolUpstreamTransport,
            upstreams::http::v3::{
                http_protocol_options::{
                    explicit_http_config::ProtocolConfig, ExplicitHttpConfig,
                    UpstreamProtocolOptions, UseDownstreamHttpConfig,
                },
                HttpProtocolOptions,
            },
        },
        r#type::v3::Percent as PbPercent,
    },
    google::protobuf::UInt64Value,
};
use rudder_model::{
    names::ClusterName,
    names::{BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER},
    node::CertMode,
    well_known::INBOUND_PASSTHROUGH_SOURCE,
    ConnectionPool, DestinationPolicy, Endpoint, H2Upgrade, LoadBalancer, OutlierDetection,
    Protocol, ProxyProtocol, Resolution, Service, ServiceEntryInfo, ServicePort, SlowStart, Subset,
    TargetPort, TrafficPolicy,
};

use crate::{
    common::{ads, any, duration, resource, socket_address, u32v, HTTP_PROTOCOL_OPTIONS},
    tls::{apply_upstream, destination_identities, raw_buffer, upstream_tls, UpstreamTls},
    version::Version,
    Resource,
};

/// Connect timeout when no policy sets one (Istio's default).
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Circuit-breaker limit when no policy sets one: Istio lifts Envoy's small
/// defaults (1024 connections, 3 concurrent retries) out of the way.
const UNLIMITED: u32 = u32::MAX;
/// Ring size for consistent hashing when `minimumRingSize` is unset (Istio's default).
const MIN_RING_SIZE: u64 = 1024;

/// The effective policy of a cluster: host policy, port-level, then subset.
pub(crate) fn effective_policy(
    policy: Option<&DestinationPolicy>,
    subset: Option<&Subset>,
    port: u16,
) -> TrafficPolicy {
    policy
        .map(|p| {
            p.traffic_policy
                .merged_with(subset.and_then(|s| s.traffic_policy.as_deref()), port)
        })
        .unwrap_or_default()
}

/// Who a cluster talks to, for its TLS settings: the (subset's) ready
/// endpoints, the mesh trust domain and the proxy's certificate mode.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peers<'a> {
    /// Ready endpoints of the cluster.
    pub(crate) endpoints: &'a [&'a Endpoint],
    /// SPIFFE trust domain.
    pub(crate) trust_domain: &'a str,
    /// Where the proxy's secrets come from.
    pub(crate) cert_mode: CertMode,
}

/// An outbound EDS cluster for a service port (and subset).
pub(crate) fn outbound_cluster(
    name: &str,
    svc: &Service,
    port: &ServicePort,
    policy: Option<&DestinationPolicy>,
    subset: Option<&Subset>,
    peers: Peers<'_>,
) -> Arc<Resource> {
    let tp = effective_policy(policy, subset, port.port);
    let tls = if svc.is_mesh_external() && tp.tls.is_none() {
        // Istio: a MESH_EXTERNAL host never gets auto mTLS.
        UpstreamTls::None
    } else {
        upstream_tls(tp.tls.as_ref(), peers.endpoints)
    };
    let identities = match &tls {
        UpstreamTls::None => vec![],
        _ => {
            // A ServiceEntry's subjectAltNames join its endpoints'
            // identities (Istio's service accounts of the service).
            let mut ids = destination_identities(peers.trust_domain, peers.endpoints);
            if let Some(e) = &svc.entry {
                ids.extend(e.subject_alt_names.iter().cloned());
                ids.sort();
                ids.dedup();
            }
            ids
        }
    };
    // The resolved inputs only: the TLS setting as resolved (DISABLE and no
    // setting both build plaintext), and the certificate mode only where a
    // TLS context names secrets.
    // (`tp` is already merged for this port: its per-port table is spent.)
    // Locality settings shape the load assignments; the cluster only says
    // whether localities are weighted.
    let locality_weighted = tp
        .locality_lb()
        .is_some_and(|l| !l.distribute.is_empty() || tp.outlier_detection.is_some());
    let rest = TrafficPolicy {
        tls: None,
        port_level: Default::default(),
        locality_lb: None,
        ..tp.clone()
    };
    let cert_mode = (!matches!(tls, UpstreamTls::None)).then_some(peers.cert_mode);
    // What a ServiceEntry changes in the cluster: its resolution and, when
    // resolved by DNS, its endpoints (the SANs are in `identities`).
    let entry = svc.entry.as_ref().map(|e| {
        (
            e.resolution,
            e.is_dns().then_some(&e.endpoints),
            subset.filter(|_| e.is_dns()).map(|s| &s.labels),
        )
    });
    let version = Version::new("cds")
        .with(name)
        .with(&svc.hostname)
        .with(&(port.port, &port.target_port, port.protocol))
        .with(&rest)
        .with(&locality_weighted)
        .with(&tls)
        .with(&identities)
        .with(&cert_mode)
        .with(&svc.external_name)
        .with(&entry);
    let mut c = Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: name.to_string(),
        }),
        connect_timeout: Some(duration(
            tp.connection_pool
                .as_ref()
                .and_then(|p| p.connect_timeout)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        )),
        circuit_breakers: Some(circuit_breakers(tp.connection_pool.as_ref())),
        ..Default::default()
    };
    let cluster_name =
        ClusterName::outbound(port.port, subset.map(|s| s.name.as_str()), &svc.hostname);
    (c.transport_socket, c.transport_socket_matches) = apply_upstream(
        &tls,
        &cluster_name,
        &identities,
        // ALPN offers h2 where the cluster speaks it (Istio's in-mesh h2 ALPN).
        port.protocol.is_http2()
            || tp.connection_pool.as_ref().and_then(|p| p.h2_upgrade) == Some(H2Upgrade::Upgrade),
        peers.cert_mode,
    );
    if let Some(external) = &svc.external_name {
        resolve_by_dns(&mut c, external, port.port);
    }
    if let Some(e) = svc.entry.as_ref().filter(|e| e.is_dns()) {
        resolve_entry_by_dns(&mut c, svc, e, port, subset);
    }
    apply_load_balancer(&mut c, tp.load_balancer.as_ref(), tp.slow_start.as_ref());
    if svc.is_headless()
        || svc
            .entry
            .as_ref()
            .is_some_and(|e| e.resolution == Resolution::None)
    {
        keep_original_destination(&mut c);
    }
    if let Some(od) = &tp.outlier_detection {
        apply_outlier_detection(&mut c, od);
    }
    if locality_weighted {
        // Istio: locality weights where `distribute` sets them, or where
        // failover (outlier detection) makes priorities; each locality's
        // weight is then in the load assignment.
        c.common_lb_config
            .get_or_insert_with(Default::default)
            .locality_config_specifier = Some(
            cluster::common_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(
                cluster::common_lb_config::LocalityWeightedLbConfig {},
            ),
        );
    }
    if let Some(opts) = http_protocol_options(port.protocol, tp.connection_pool.as_ref()) {
        c.typed_extension_protocol_options =
            HashMap::from([(HTTP_PROTOCOL_OPTIONS.to_string(), any(&opts))]);
    }
    if let Some(k) = tp
        .connection_pool
        .as_ref()
        .and_then(|p| p.tcp_keepalive.as_ref())
    {
        // Unset fields keep the OS defaults (SO_KEEPALIVE alone), as Istio.
        c.upstream_connection_options = Some(UpstreamConnectionOptions {
            tcp_keepalive: Some(PbKeepalive {
                keepalive_probes: k.probes.and_then(u32v),
                keepalive_time: k.time_secs.and_then(u32v),
                keepalive_interval: k.interval_secs.and_then(u32v),
            }),
            ..Default::default()
        });
    }
    if let Some(v) = tp.proxy_protocol {
        apply_proxy_protocol(&mut c, v);
    }
    resource(version, &c)
}

/// A headless Service's cluster, or a `PASSTHROUGH` one, as Istio builds
/// them: ORIGINAL_DST, so a client keeps the destination it connected to (a
/// StatefulSet member it resolved by DNS); no endpoints of ours (EDS or
/// inline), and Envoy's own load balancing (the destination decides).
fn keep_original_destination(c: &mut Cluster) {
    c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
        cluster::DiscoveryType::OriginalDst as i32,
    ));
    c.eds_cluster_config = None;
    c.load_assignment = None;
    c.lb_policy = cluster::LbPolicy::ClusterProvided as i32;
    c.lb_config = None;
}

/// An ExternalName Service's cluster, as Istio builds it: STRICT_DNS on the
/// external name at the service port (IPv4, as the listeners are), its
/// endpoints inline instead of over EDS.
fn resolve_by_dns(c: &mut Cluster, external_name: &str, port: u16) {
    c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
        cluster::DiscoveryType::StrictDns as i32,
    ));
    c.eds_cluster_config = None;
    c.dns_lookup_family = cluster::DnsLookupFamily::V4Only as i32;
    c.load_assignment = Some(ClusterLoadAssignment {
        cluster_name: c.name.clone(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(PbEndpoint {
                    address: Some(socket_address(external_name, port)),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    });
}

/// A DNS ServiceEntry's cluster, as Istio builds it: STRICT_DNS (`DNS`) or
/// LOGICAL_DNS (`DNS_ROUND_ROBIN`) over its endpoints' addresses (those of
/// the subset's labels), each at its port for this service port, or over
/// the host itself at the target port when it has no endpoints; inline,
/// not over EDS. Endpoint weights and localities are kept.
fn resolve_entry_by_dns(
    c: &mut Cluster,
    svc: &Service,
    entry: &ServiceEntryInfo,
    port: &ServicePort,
    subset: Option<&Subset>,
) {
    c.eds_cluster_config = None;
    c.dns_lookup_family = cluster::DnsLookupFamily::V4Only as i32;
    let target = match port.target_port {
        TargetPort::Number(n) => n,
        TargetPort::Name(_) => port.port,
    };
    let targets: Vec<(String, u16, u32, rudder_model::Locality)> = if entry.endpoints.is_empty() {
        vec![(svc.hostname.clone(), target, 0, Default::default())]
    } else {
        entry
            .endpoints
            .iter()
            .filter(|e| subset.is_none_or(|s| rudder_model::selects(&s.labels, &e.labels)))
            .map(|e| {
                (
                    e.address.clone(),
                    e.port_for(port),
                    e.weight,
                    e.locality.clone(),
                )
            })
            .collect()
    };
    // Envoy's LOGICAL_DNS takes exactly one address: a subset that selects
    // none keeps an empty STRICT_DNS cluster.
    let kind = match entry.resolution {
        Resolution::DnsRoundRobin if targets.len() == 1 => cluster::DiscoveryType::LogicalDns,
        _ => cluster::DiscoveryType::StrictDns,
    };
    c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(kind as i32));
    let mut by_locality: std::collections::BTreeMap<_, Vec<LbEndpoint>> = Default::default();
    for (address, port, weight, locality) in targets {
        by_locality.entry(locality).or_default().push(LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(PbEndpoint {
                address: Some(socket_address(&address, port)),
                ..Default::default()
            })),
            load_balancing_weight: (weight > 0).then(|| u32v(weight)).flatten(),
            ..Default::default()
        });
    }
    c.load_assignment = Some(ClusterLoadAssignment {
        cluster_name: c.name.clone(),
        endpoints: by_locality
            .into_iter()
            .map(|(l, lb_endpoints)| LocalityLbEndpoints {
                locality: (!l.is_empty()).then_some(
                    envoy_types::pb::envoy::config::core::v3::Locality {
                        region: l.region,
                        zone: l.zone,
                        sub_zone: l.subzone,
                    },
                ),
                lb_endpoints,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
}

/// Istio's `applyUpstreamProxyProtocol`: the cluster's transport socket
/// (each of its matches', or raw buffer when it has none) wrapped in the
/// upstream PROXY protocol socket.
fn apply_proxy_protocol(c: &mut Cluster, version: ProxyProtocol) {
    let wrap = |inner: TransportSocket| TransportSocket {
        name: "envoy.transport_sockets.upstream_proxy_protocol".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(
            &ProxyProtocolUpstreamTransport {
                config: Some(ProxyProtocolConfig {
                    version: match version {
                        ProxyProtocol::V1 => proxy_protocol_config::Version::V1,
                        ProxyProtocol::V2 => proxy_protocol_config::Version::V2,
                    } as i32,
                    ..Default::default()
                }),
                transport_socket: Some(inner),
                ..Default::default()
            },
        ))),
    };
    if c.transport_socket_matches.is_empty() {
        let inner = c.transport_socket.take().unwrap_or_else(raw_buffer);
        c.transport_socket = Some(wrap(inner));
    }
    for m in &mut c.transport_socket_matches {
        if let Some(inner) = m.transport_socket.take() {
            m.transport_socket = Some(wrap(inner));
        }
    }
}

fn slow_start_config(s: &SlowStart) -> cluster::SlowStartConfig {
    // Validation admits only numbers that parse.
    let number = |t: &Option<String>| t.as_deref().and_then(|t| t.parse::<f64>().ok());
    cluster::SlowStartConfig {
        slow_start_window: Some(duration(s.window)),
        aggression: number(&s.aggression).map(|a| RuntimeDouble {
            default_value: a,
            // Envoy requires a key; this one is never set in the runtime.
            runtime_key: "upstream.slow_start.aggression".into(),
        }),
        min_weight_percent: number(&s.min_weight_percent).map(|value| PbPercent { value }),
    }
}

fn apply_load_balancer(c: &mut Cluster, lb: Option<&LoadBalancer>, slow: Option<&SlowStart>) {
    use cluster::LbPolicy;
    c.lb_policy = match lb {
        None | Some(LoadBalancer::RoundRobin) => {
            if let Some(s) = slow {
                c.lb_config = Some(cluster::LbConfig::RoundRobinLbConfig(
                    cluster::RoundRobinLbConfig {
                        slow_start_config: Some(slow_start_config(s)),
                    },
                ));
            }
            LbPolicy::RoundRobin
        }
        Some(LoadBalancer::LeastRequest) => {
            if let Some(s) = slow {
                c.lb_config = Some(cluster::LbConfig::LeastRequestLbConfig(
                    cluster::LeastRequestLbConfig {
                        slow_start_config: Some(slow_start_config(s)),
                        ..Default::default()
                    },
                ));
            }
            LbPolicy::LeastRequest
        }
        Some(LoadBalancer::Random) => LbPolicy::Random,
        Some(LoadBalancer::Passthrough) => {
            // Istio: ORIGINAL_DST to wherever the client connected; no
            // endpoints of ours (EDS or inline) apply.
            keep_original_destination(c);
            LbPolicy::ClusterProvided
        }
        Some(LoadBalancer::ConsistentHash {
            maglev: Some(table_size),
            ..
        }) => {
            if let Some(n) = table_size {
                c.lb_config = Some(cluster::LbConfig::MaglevLbConfig(cluster::MaglevLbConfig {
                    table_size: Some(UInt64Value { value: *n }),
                }));
            }
            LbPolicy::Maglev
        }
        Some(LoadBalancer::ConsistentHash {
            minimum_ring_size, ..
        }) => {
            c.lb_config = Some(cluster::LbConfig::RingHashLbConfig(
                cluster::RingHashLbConfig {
                    minimum_ring_size: Some(UInt64Value {
                        value: minimum_ring_size.unwrap_or(MIN_RING_SIZE),
                    }),
                    ..Default::default()
                },
            ));
            LbPolicy::RingHash
        }
    } as i32;
}

fn circuit_breakers(pool: Option<&ConnectionPool>) -> CircuitBreakers {
    let get = |f: fn(&ConnectionPool) -> Option<u32>| u32v(pool.and_then(f).unwrap_or(UNLIMITED));
    CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: get(|p| p.max_connections),
            max_pending_requests: get(|p| p.http1_max_pending_requests),
            max_requests: get(|p| p.http2_max_requests),
            max_retries: get(|p| p.max_retries),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn apply_outlier_detection(c: &mut Cluster, od: &OutlierDetection) {
    let mut out = PbOutlier {
        interval: od.interval.map(duration),
        base_ejection_time: od.base_ejection_time.map(duration),
        max_ejection_percent: od.max_ejection_percent.and_then(u32v),
        // Istio never ejects on success rate; only the error counts it was given.
        enforcing_success_rate: u32v(0),
        ..Default::default()
    };
    match od.consecutive_5xx_errors {
        Some(n) => out.consecutive_5xx = u32v(n),
        None => out.enforcing_consecutive_5xx = u32v(0),
    }
    if let Some(n) = od.consecutive_gateway_errors {
        out.consecutive_gateway_failure = u32v(n);
        out.enforcing_consecutive_gateway_failure = u32v(100);
    }
    if od.split_external_local_origin_errors {
        out.split_external_local_origin_errors = true;
        if let Some(n) = od.consecutive_local_origin_failures.filter(|&n| n > 0) {
            out.consecutive_local_origin_failure = u32v(n);
            out.enforcing_consecutive_local_origin_failure = u32v(100);
        }
        out.enforcing_local_origin_success_rate = u32v(0);
    }
    c.outlier_detection = Some(out);
    if let Some(min) = od.min_health_percent {
        c.common_lb_config = Some(cluster::CommonLbConfig {
            healthy_panic_threshold: Some(PbPercent {
                value: f64::from(min),
            }),
            ..Default::default()
        });
    }
}

/// Upstream HTTP options, as Istio's `applyConnectionPool` and
/// `applyH2Upgrade` set them: HTTP/2 for http2/grpc ports (and any port with
/// `h2UpgradePolicy: UPGRADE`), the client's protocol with
/// `useClientProtocol`, and the pool's per-connection limits (which Istio
/// sets on TCP clusters too; Envoy's TCP pool honours the idle timeout and
/// the connection duration). `None` when there is nothing to say.
fn http_protocol_options(
    protocol: Protocol,
    pool: Option<&ConnectionPool>,
) -> Option<HttpProtocolOptions> {
    let idle = pool.and_then(|p| p.idle_timeout);
    let max_per_conn = pool.and_then(|p| p.max_requests_per_connection);
    let max_duration = pool.and_then(|p| p.max_connection_duration);
    let upgrade = pool.and_then(|p| p.h2_upgrade) == Some(H2Upgrade::Upgrade);
    let downstream = pool.is_some_and(|p| p.use_client_protocol);
    let common =
        (idle.is_some() || max_per_conn.is_some() || max_duration.is_some()).then(|| CommonHttp {
            idle_timeout: idle.map(duration),
            max_requests_per_connection: max_per_conn.and_then(u32v),
            max_connection_duration: max_duration.map(duration),
            ..Default::default()
        });
    let http2 = protocol.is_http2();
    if !http2 && !upgrade && !downstream && common.is_none() {
        return None;
    }
    let explicit = |config| {
        UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
            protocol_config: Some(config),
        })
    };
    let h2 = || {
        ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions {
            // Only HTTP/2 clusters carry it (Istio's check).
            max_concurrent_streams: pool.and_then(|p| p.max_concurrent_streams).and_then(u32v),
            ..Default::default()
        })
    };
    let options = if upgrade {
        explicit(h2())
    } else if downstream {
        UpstreamProtocolOptions::UseDownstreamProtocolConfig(UseDownstreamHttpConfig {
            http_protocol_options: Some(Http1ProtocolOptions::default()),
            http2_protocol_options: Some(Http2ProtocolOptions::default()),
            ..Default::default()
        })
    } else if http2 {
        explicit(h2())
    } else {
        explicit(ProtocolConfig::HttpProtocolOptions(
            Http1ProtocolOptions::default(),
        ))
    };
    Some(HttpProtocolOptions {
        common_http_protocol_options: common,
        upstream_protocol_options: Some(options),
        ..Default::default()
    })
}

/// An ORIGINAL_DST cluster: connects to wherever the connection was going.
/// Inbound ones bind to 127.0.0.6 so proxy-init lets the delivery to the app
/// through (`-o lo -s 127.0.0.6 -j RETURN`), as Istio ≥ 1.10 does; to `::6`
/// when the pod address is IPv6 (Envoy picks the source of the upstream's
/// family).
fn original_dst_cluster(name: &str, inbound: bool, protocol: Protocol) -> Cluster {
    let mut c = Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: cluster::LbPolicy::ClusterProvided as i32,
        connect_timeout: Some(duration(DEFAULT_CONNECT_TIMEOUT)),
        circuit_breakers: Some(circuit_breakers(None)),
        ..Default::default()
    };
    if inbound {
        let Some(address::Address::SocketAddress(source)) =
            socket_address(INBOUND_PASSTHROUGH_SOURCE, 0).address
        else {
            unreachable!("socket_address builds a socket address")
        };
        let Some(address::Address::SocketAddress(v6)) =
            socket_address(rudder_model::well_known::INBOUND_PASSTHROUGH_SOURCE_V6, 0).address
        else {
            unreachable!("socket_address builds a socket address")
        };
        c.upstream_bind_config = Some(BindConfig {
            source_address: Some(source),
            extra_source_addresses: vec![
                envoy_types::pb::envoy::config::core::v3::ExtraSourceAddress {
                    address: Some(v6),
                    socket_options: None,
                },
            ],
            ..Default::default()
        });
    }
    if let Some(opts) = http_protocol_options(protocol, None) {
        c.typed_extension_protocol_options =
            HashMap::from([(HTTP_PROTOCOL_OPTIONS.to_string(), any(&opts))]);
    }
    c
}

/// `inbound|<port>||`: delivers to the app on the pod IP.
pub(crate) fn inbound_cluster(name: &str, protocol: Protocol) -> Arc<Resource> {
    let version = Version::new("cds-inbound").with(name).with(&protocol);
    resource(version, &original_dst_cluster(name, true, protocol))
}

/// PassthroughCluster, InboundPassthroughCluster and BlackHoleCluster, which
/// depend on nothing but their names.
pub(crate) fn fixed_clusters() -> Vec<(String, Arc<Resource>)> {
    let blackhole = Cluster {
        name: BLACKHOLE_CLUSTER.into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        connect_timeout: Some(duration(DEFAULT_CONNECT_TIMEOUT)),
        ..Default::default()
    };
    let fixed = [
        (
            PASSTHROUGH_CLUSTER,
            original_dst_cluster(PASSTHROUGH_CLUSTER, false, Protocol::Tcp),
        ),
        (
            INBOUND_PASSTHROUGH_CLUSTER,
            original_dst_cluster(INBOUND_PASSTHROUGH_CLUSTER, true, Protocol::Tcp),
        ),
        (BLACKHOLE_CLUSTER, blackhole),
    ];
    fixed
        .into_iter()
        .map(|(name, c)| {
            (
                name.to_string(),
                resource(Version::new("cds-fixed").with(name), &c),
            )
        })
        .collect()
}
