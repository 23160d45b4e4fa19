//! LDS: the `virtual` listener on the capture port, one `<VIP>_<port>`
//! listener per service port with a VIP, and `virtualInbound` when
//! inbound traffic is captured on a port of its own.
//!
//! ```text
//!  0.0.0.0:<capture_port>, original_dst listener filter, use_original_dst
//!   ├─ hand-off: a listener at exactly <original dst IP>:<port> takes the connection
//!   │    <VIP>_<port> (bind_to_port false)   outbound HTTP to a service VIP: HCM, RDS "<host>:<port>"
//!   │      sniffed port (no protocol declared): HTTP inspector; HTTP/1.x, h2c → that HCM,
//!   │      anything else → tcp_proxy (weighted if a TCP route splits)
//!   │    <VIP>_<port> (bind_to_port false)   outbound TCP to a service VIP: tcp_proxy (weighted
//!   │      if a TCP route splits); TLS ports: TLS inspector, SNI chains of the tls routes first
//!   └─ otherwise the chains of `virtual` itself:
//!   ├─ dst port P, prefix pod IPs   inbound: HCM (inline route) or tcp_proxy → inbound|P||
//!   ├─ dst port P, prefix pod IPs   outbound port the pod does not serve → InboundPassthroughCluster
//!   ├─ prefix pod IPs               other inbound ports → InboundPassthroughCluster
//!   ├─ dst port P                   outbound HTTP: HCM, RDS "P"
//!   ├─ dst port P, prefix pod IPs   headless Service pods (not this one): tcp_proxy, ORIGINAL_DST
//!   ├─ dst port P (+ SNI)           ServiceEntry host without addresses, TCP/TLS port: tcp_proxy
//!   ├─ dst port <capture port>      BlackHoleCluster (never proxy to ourselves)
//!   └─ default                      PassthroughCluster (unknown destinations unchanged);
//!                                   BlackHoleCluster under REGISTRY_ONLY
//! ```
//!
//! Envoy picks a chain by destination port first, then the longest prefix. Once
//! some chain names port P, a connection to P that matches none of P's prefixes
//! gets the default chain; it never falls back to the port-less chains
//! (`FilterChainManagerImpl::findFilterChainForDestinationPort`). So every
//! port with an outbound chain (HTTP: any address; headless TCP: its pods)
//! also gets a pod-IP chain, else inbound connections to pod IP:P would be
//! proxied outbound (HTTP) or passed through without the 127.0.0.6 source and
//! captured again (TCP).
//!
//! The hand-off (Istio's `virtualOutbound`): with `use_original_dst` Envoy
//! looks for a listener at the connection's original destination, exactly
//! `IP:port` first, then `0.0.0.0:port`; the `<VIP>_<port>` listeners are
//! never bound (`bind_to_port: false`) and exist only to be found this way.
//! Inbound connections (to pod IPs) and everything else find none and stay in
//! `virtual`. A connection to a VIP therefore uses its service's own route
//! configuration, and the port's `"<port>"` table keeps only the hosts without
//! a VIP. TCP VIPs get their listeners the same way (as Istio's do), so the
//! capture listener, which is every proxy's own, holds only what depends on
//! the proxy (inbound) and the port-wide chains. The outbound chains depend only on the snapshot, the proxy's scope
//! (namespace and Sidecar: the services it sees), its labels (TCP routes)
//! and its capture ports, so they are built once per such key and shared
//! ([`OutboundChains`]).

use std::{collections::BTreeSet, net::IpAddr, sync::Arc};

use envoy_types::pb::{
    envoy::{
        config::{
            core::v3::{CidrRange, TrafficDirection},
            listener::v3::{
                listener_filter, AdditionalAddress, FilterChain, FilterChainMatch, Listener,
                ListenerFilter,
            },
        },
        extensions::filters::{
            listener::{http_inspector::v3::HttpInspector, original_dst::v3::OriginalDst},
            network::http_connection_manager::v3::{http_connection_manager::RouteSpecifier, Rds},
        },
    },
    google::protobuf::BoolValue,
};
use rudder_model::{
    names::{
        outbound_route_name, service_route_name, vip_listener_name, ClusterName, BLACKHOLE_CLUSTER,
        INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER, VIRTUAL_INBOUND_LISTENER,
        VIRTUAL_LISTENER,
    },
    Labels, OutboundMode, Protocol, Proxy, Scope, Snapshot,
};

use crate::{
    common::{
        ads, any, host_cidr, resource, socket_address, tcp_proxy, tcp_proxy_with, u32v,
        TcpProxyTimeouts, ORIGINAL_DST_FILTER,
    },
    hcm::{http_connection_manager, HcmOptions},
    http_route::Destinations,
    inbound::{inbound_chains, tls_inspector_on, InboundSecurity},
    proxy::{pod_ips, InboundPort},
    rds::vip_http_ports,
    version::Version,
    Resource,
};

/// The outbound half of the capture listener, shared by proxies with the same
/// scope, relevant labels and capture ports.
#[derive(Debug)]
pub(crate) struct OutboundChains {
    /// Filter chains, in a deterministic order.
    pub(crate) chains: Vec<FilterChain>,
    /// HTTP ports with a chain (and an RDS route configuration).
    pub(crate) http_ports: Vec<u16>,
    /// Every destination port some outbound chain names.
    pub(crate) ports: BTreeSet<u16>,
    /// Ports with chains by SNI (TLS routes): the TLS inspector runs there.
    pub(crate) tls_ports: Vec<u16>,
    /// Hash of the model inputs the chains were built from.
    pub(crate) version: String,
    /// [`OutboundChains::version`] and the versions of the service
    /// listeners: equal for equal chains and listeners, from any snapshot.
    pub(crate) content_version: String,
    /// The `<VIP>_<port>` listeners of HTTP, sniffed, TCP and TLS service
    /// ports (never bound; reached by hand-off).
    pub(crate) vip_listeners: Vec<(String, Arc<Resource>)>,
    /// The same listeners by name, the part of every listener map built
    /// from these chains that the proxies share
    /// ([`crate::ProxyResources::common`]).
    pub(crate) vip_map: Arc<crate::resources::Content>,
    /// The services and ports whose route configuration `<host>:<port>` those
    /// listeners name.
    pub(crate) service_routes: Vec<(String, u16)>,
    /// Where destinations no chain claims go (the capture listener's
    /// default chain): PassthroughCluster or BlackHoleCluster.
    pub(crate) outbound: OutboundMode,
}

/// Builds the outbound chains for a proxy with `scope` and `labels`: only
/// the services in its scope get chains and listeners.
pub(crate) fn outbound_chains(
    snapshot: &Snapshot,
    scope: &Scope,
    labels: &Labels,
    capture_ports: &[u16],
) -> OutboundChains {
    let mut version = Version::new("lds-outbound")
        .with(scope.namespace.as_str())
        .with(capture_ports)
        .with(&scope.outbound);
    let http_ports = outbound_http_ports(snapshot, scope, capture_ports);
    version.add(&http_ports);
    let mut chains: Vec<FilterChain> = http_ports.iter().map(|&port| http_chain(port)).collect();
    let mut seen = BTreeSet::new();
    let tcp_listeners = tcp_chains(
        snapshot,
        scope,
        labels,
        capture_ports,
        &mut seen,
        &mut version,
        &mut chains,
    );
    entry_chains(
        snapshot,
        scope,
        labels,
        capture_ports,
        &http_ports,
        &mut seen,
        &mut version,
        &mut chains,
    );
    let ports = chains
        .iter()
        .filter_map(|c| c.filter_chain_match.as_ref()?.destination_port)
        .map(|p| p.value as u16)
        .collect();
    let tls_ports: BTreeSet<u16> = chains
        .iter()
        .filter_map(|c| c.filter_chain_match.as_ref())
        .filter(|m| !m.server_names.is_empty())
        .filter_map(|m| m.destination_port.map(|p| p.value as u16))
        .collect();
    let (mut vip_listeners, service_routes) = vip_listeners(snapshot, scope, labels, capture_ports);
    vip_listeners.extend(tcp_listeners);
    let version = version.to_string();
    let mut content_version = Version::new("lds-outbound-content").with(&version);
    for (name, r) in &vip_listeners {
        content_version.add(&(name, &r.version));
    }
    OutboundChains {
        chains,
        http_ports,
        ports,
        tls_ports: tls_ports.into_iter().collect(),
        content_version: content_version.to_string(),
        version,
        vip_map: Arc::new(vip_listeners.iter().cloned().collect()),
        vip_listeners,
        service_routes,
        outbound: scope.outbound,
    }
}

/// The HTTP ports of the services in scope (not captured ports), sorted and
/// deduplicated: one chain each.
fn outbound_http_ports(snapshot: &Snapshot, scope: &Scope, capture_ports: &[u16]) -> Vec<u16> {
    scope
        .services(snapshot)
        .flat_map(|s| {
            s.ports
                .iter()
                .filter(|p| p.protocol.is_http())
                .map(|p| p.port)
        })
        .filter(|p| !capture_ports.contains(p))
        .collect::<BTreeSet<u16>>()
        .into_iter()
        .collect()
}

/// The chain `outbound|<port>`: an HCM on the route configuration of `port`.
fn http_chain(port: u16) -> FilterChain {
    chain(
        format!("outbound|{port}"),
        Some(port),
        &[],
        http_connection_manager(
            &format!("outbound_0.0.0.0_{port}"),
            RouteSpecifier::Rds(Rds {
                config_source: Some(ads()),
                route_config_name: outbound_route_name(port),
            }),
            HcmOptions::default(),
        ),
    )
}

/// The outbound TCP of the services in scope: a `<VIP>_<port>` listener per
/// (non-HTTP port, VIP), first service first, as Istio builds them (each
/// shared by every proxy with the same chains key, so the per-proxy capture
/// listener stays small), and the chains of headless Services' pods, which
/// stay in `virtual` (they match pod addresses, not a VIP).
fn tcp_chains(
    snapshot: &Snapshot,
    scope: &Scope,
    labels: &Labels,
    capture_ports: &[u16],
    seen: &mut BTreeSet<(u16, IpAddr)>,
    version: &mut Version,
    chains: &mut Vec<FilterChain>,
) -> NamedListeners {
    let dests = Destinations { snapshot, scope };
    let mut listeners = NamedListeners::new();
    for svc in scope.services(snapshot) {
        if svc.is_headless() {
            headless_chains(&dests, svc, labels, capture_ports, seen, version, chains);
            continue;
        }
        for sp in svc
            .ports
            .iter()
            .filter(|p| p.protocol.is_opaque() && !capture_ports.contains(&p.port))
        {
            // Every VIP (both families of a dual-stack Service) not taken by
            // an earlier service on this port.
            let vips: Vec<IpAddr> = svc.vips().filter(|v| seen.insert((sp.port, *v))).collect();
            if vips.is_empty() {
                continue;
            }
            let default = ClusterName::outbound(sp.port, None, &svc.hostname).to_string();
            let clusters = tcp_clusters(&dests, &svc.hostname, sp.port, &vips, &default, labels);
            let timeouts = tcp_timeouts(snapshot, scope, &svc.hostname);
            let mut v = Version::new("lds-vip-tcp").with(&(
                sp.port,
                &vips,
                &svc.hostname,
                &clusters,
                timeouts,
            ));
            let tls = if sp.protocol == Protocol::Tls {
                tls_clusters(&dests, &svc.hostname, sp.port, &vips, labels)
            } else {
                Vec::new()
            };
            v.add(&tls);
            let mut filter_chains: Vec<FilterChain> = tls
                .into_iter()
                .enumerate()
                .map(|(i, (snis, clusters))| FilterChain {
                    name: format!("{default}|tls|{i}"),
                    filter_chain_match: Some(FilterChainMatch {
                        server_names: snis,
                        transport_protocol: "tls".into(),
                        ..Default::default()
                    }),
                    filters: vec![tcp_proxy_with(&default, &clusters, timeouts)],
                    ..Default::default()
                })
                .collect();
            let sni = !filter_chains.is_empty();
            filter_chains.push(FilterChain {
                name: default.clone(),
                filters: vec![tcp_proxy_with(&default, &clusters, timeouts)],
                ..Default::default()
            });
            for vip in vips {
                let name = vip_listener_name(vip, sp.port);
                let l = Listener {
                    name: name.clone(),
                    address: Some(socket_address(&vip.to_string(), sp.port)),
                    bind_to_port: Some(BoolValue { value: false }),
                    traffic_direction: TrafficDirection::Outbound as i32,
                    filter_chains: filter_chains.clone(),
                    listener_filters: tls_inspector_on(if sni { vec![sp.port] } else { vec![] })
                        .into_iter()
                        .collect(),
                    listener_filters_timeout: sni
                        .then(|| crate::common::duration(crate::inbound::LISTENER_FILTERS_TIMEOUT)),
                    continue_on_listener_filters_timeout: sni,
                    ..Default::default()
                };
                listeners.push((name.clone(), resource(v.clone().with(&name), &l)));
            }
        }
    }
    listeners
}

/// A ServiceEntry CIDR address: (network, prefix length).
type Cidr = (IpAddr, u8);

/// The chains of the opaque ports of ServiceEntry hosts without addresses,
/// as Istio's `0.0.0.0:<port>` listeners: a TLS port matches the host by
/// SNI (wildcards too), a TCP port takes every destination on the port (the
/// first such host in the scope; none where an HTTP port has the port),
/// each to the host's cluster. A host whose `addresses` hold CIDRs matches
/// them (by prefix) on those ports instead, beside its VIPs' chains.
/// Everything else on those ports gets the default chain (passthrough, or
/// the black hole under REGISTRY_ONLY).
#[allow(clippy::too_many_arguments)]
fn entry_chains(
    snapshot: &Snapshot,
    scope: &Scope,
    labels: &Labels,
    capture_ports: &[u16],
    http_ports: &[u16],
    seen: &mut BTreeSet<(u16, IpAddr)>,
    version: &mut Version,
    chains: &mut Vec<FilterChain>,
) {
    let dests = Destinations { snapshot, scope };
    let any = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    // (port, SNI or "" for TCP, CIDRs): one chain each, the first host's.
    let mut taken: BTreeSet<(u16, &str, &[Cidr])> = BTreeSet::new();
    for svc in scope.services(snapshot) {
        let Some(entry) = &svc.entry else { continue };
        if svc.cluster_ip.is_some() && entry.cidrs.is_empty() {
            // Its VIP chains are `tcp_chains`'.
            continue;
        }
        for sp in svc.ports.iter().filter(|p| {
            p.protocol.is_opaque()
                && !capture_ports.contains(&p.port)
                && !http_ports.contains(&p.port)
        }) {
            let tls = sp.protocol == Protocol::Tls;
            let sni = if tls { svc.hostname.as_str() } else { "" };
            if !taken.insert((sp.port, sni, entry.cidrs.as_slice())) {
                continue;
            }
            let default = ClusterName::outbound(sp.port, None, &svc.hostname).to_string();
            let clusters = tcp_clusters(&dests, &svc.hostname, sp.port, &[], &default, labels);
            let timeouts = tcp_timeouts(snapshot, scope, &svc.hostname);
            let mut c = chain(
                format!("{default}|entry"),
                Some(sp.port),
                &[],
                tcp_proxy_with(&default, &clusters, timeouts),
            );
            if let Some(m) = c.filter_chain_match.as_mut() {
                m.prefix_ranges = entry
                    .cidrs
                    .iter()
                    .map(|(ip, len)| CidrRange {
                        address_prefix: ip.to_string(),
                        prefix_len: u32v(u32::from(*len)),
                    })
                    .collect();
                if tls {
                    m.server_names = vec![svc.hostname.clone()];
                    m.transport_protocol = "tls".into();
                }
            }
            seen.insert((sp.port, any));
            version.add(&(
                sp.port,
                &svc.hostname,
                sp.protocol,
                &entry.cidrs,
                &clusters,
                timeouts,
            ));
            chains.push(c);
        }
    }
}

/// The `tcp_proxy` timeouts of a service's TCP traffic: Istio reads the
/// host-level pool of its DestinationRule only (not port or subset level).
fn tcp_timeouts(snapshot: &Snapshot, scope: &Scope, host: &str) -> TcpProxyTimeouts {
    snapshot
        .destination_policy(&scope.namespace, host)
        .and_then(|p| p.traffic_policy.connection_pool.as_ref())
        .map(|pool| TcpProxyTimeouts {
            idle: pool.tcp_idle_timeout,
            max_connection: pool.max_connection_duration,
        })
        .unwrap_or_default()
}

/// The chains of a headless Service's TCP (and undeclared) ports, as Istio
/// builds them: one per endpoint port, matching its pods' addresses, to the
/// port's ORIGINAL_DST cluster (so the client keeps the pod it resolved). Its
/// HTTP ports need none: the port's route table sends them by Host.
fn headless_chains(
    dests: &Destinations<'_>,
    svc: &rudder_model::Service,
    labels: &Labels,
    capture_ports: &[u16],
    seen: &mut BTreeSet<(u16, IpAddr)>,
    version: &mut Version,
    chains: &mut Vec<FilterChain>,
) {
    let timeouts = tcp_timeouts(dests.snapshot, dests.scope, &svc.hostname);
    for sp in svc.ports.iter().filter(|p| !p.protocol.is_http()) {
        let mut by_port: std::collections::BTreeMap<u16, Vec<IpAddr>> = Default::default();
        for e in dests.snapshot.endpoints_of(&svc.hostname, sp.port) {
            if !capture_ports.contains(&e.port) && seen.insert((e.port, e.address)) {
                by_port.entry(e.port).or_default().push(e.address);
            }
        }
        let default = ClusterName::outbound(sp.port, None, &svc.hostname).to_string();
        for (port, addresses) in by_port {
            let clusters =
                tcp_clusters(dests, &svc.hostname, sp.port, &addresses, &default, labels);
            version.add(&(port, &addresses, &svc.hostname, &clusters, timeouts));
            chains.push(chain(
                format!("{default}|{port}"),
                Some(port),
                &addresses,
                tcp_proxy_with(&default, &clusters, timeouts),
            ));
        }
    }
}

/// The weighted clusters of a TCP service port: its first TCP route that
/// applies to this proxy, else `default`; the black hole when every weight
/// of the route is zero.
fn tcp_clusters(
    dests: &Destinations<'_>,
    hostname: &str,
    port: u16,
    vips: &[IpAddr],
    default: &str,
    labels: &Labels,
) -> Vec<(String, u32)> {
    let namespace = dests.scope.namespace.as_str();
    let route = dests
        .scope
        .route_table(dests.snapshot, hostname)
        .and_then(|t| {
            t.tcp.iter().find(|r| {
                r.matches.is_empty()
                    || r.matches
                        .iter()
                        .any(|m| m.applies(port, vips, labels, namespace))
            })
        });
    match route {
        Some(r) => weighted(dests, &r.destinations, port),
        None => vec![(default.to_string(), 100)],
    }
}

/// Cluster names with their weights, as `tcp_proxy` takes them.
type WeightedClusters = Vec<(String, u32)>;

/// The weighted clusters of destinations; the black hole when every weight
/// is zero.
fn weighted(
    dests: &Destinations<'_>,
    to: &[rudder_model::Destination],
    port: u16,
) -> WeightedClusters {
    let clusters: Vec<(String, u32)> = to
        .iter()
        .filter(|d| d.weight > 0 || to.len() == 1)
        .map(|d| (dests.cluster(d, port), d.weight))
        .collect();
    if clusters.is_empty() {
        vec![(BLACKHOLE_CLUSTER.to_string(), 100)]
    } else {
        clusters
    }
}

/// The TLS routes of a service port that apply to this proxy, in order, as
/// (SNI names, weighted clusters): one chain each, matched by the SNI the
/// TLS inspector reads. A name an earlier route took stays with it (first
/// match wins, and Envoy refuses two chains alike).
fn tls_clusters(
    dests: &Destinations<'_>,
    hostname: &str,
    port: u16,
    vips: &[IpAddr],
    labels: &Labels,
) -> Vec<(Vec<String>, WeightedClusters)> {
    let namespace = dests.scope.namespace.as_str();
    let Some(table) = dests.scope.route_table(dests.snapshot, hostname) else {
        return Vec::new();
    };
    let mut taken = BTreeSet::new();
    let mut out = Vec::new();
    for r in &table.tls {
        let snis: Vec<String> = r
            .matches
            .iter()
            .filter(|m| m.tcp.applies(port, vips, labels, namespace))
            .flat_map(|m| m.sni_hosts.iter().cloned())
            .filter(|s| taken.insert(s.clone()))
            .collect();
        if !snis.is_empty() {
            out.push((snis, weighted(dests, &r.destinations, port)));
        }
    }
    out
}

/// Listener resources by name.
type NamedListeners = Vec<(String, Arc<Resource>)>;

/// The `<VIP>_<port>` listeners of the HTTP and sniffed service ports in
/// scope (not captured ports), and the (service, port) route configurations
/// they name.
fn vip_listeners(
    snapshot: &Snapshot,
    scope: &Scope,
    labels: &Labels,
    capture_ports: &[u16],
) -> (NamedListeners, Vec<(String, u16)>) {
    let mut vip_listeners = Vec::new();
    let mut service_routes = Vec::new();
    let dests = Destinations { snapshot, scope };
    for ((vip, port), svc) in vip_http_ports(snapshot, scope) {
        if capture_ports.contains(&port) {
            continue;
        }
        let sniffed = svc.port(port).is_some_and(|p| p.protocol.is_sniffed());
        let mut v = Version::new("lds-vip").with(&svc.hostname);
        let tcp = sniffed.then(|| {
            let default = ClusterName::outbound(port, None, &svc.hostname).to_string();
            let vips: Vec<IpAddr> = svc.vips().collect();
            let clusters = tcp_clusters(&dests, &svc.hostname, port, &vips, &default, labels);
            let timeouts = tcp_timeouts(snapshot, scope, &svc.hostname);
            v.add(&(&clusters, timeouts));
            TcpFallback {
                stat_prefix: default,
                clusters,
                timeouts,
            }
        });
        let (name, l) = vip_listener(vip, port, &svc.hostname, tcp);
        vip_listeners.push((name.clone(), resource(v.with(&name), &l)));
        service_routes.push((svc.hostname.clone(), port));
    }
    (vip_listeners, service_routes)
}

/// Where a sniffed port's connections that are not HTTP go.
struct TcpFallback {
    /// The `tcp_proxy` stat prefix (the port's default cluster).
    stat_prefix: String,
    /// Weighted clusters (TCP routes apply).
    clusters: Vec<(String, u32)>,
    /// The host-level connection pool's timeouts.
    timeouts: TcpProxyTimeouts,
}

/// What Envoy's HTTP inspector reports for HTTP/1.x and h2c (Istio's match
/// for sniffed HTTP).
const SNIFFED_HTTP: [&str; 3] = ["http/1.0", "http/1.1", "h2c"];

/// The listener `<VIP>_<port>` of an HTTP service port: not bound, one chain,
/// an HCM on the service's own route configuration. A sniffed port (`tcp`:
/// its stat prefix and TCP clusters) adds the HTTP inspector, matches that
/// chain on the inspector's HTTP protocols and sends the rest over TCP.
fn vip_listener(
    vip: IpAddr,
    port: u16,
    host: &str,
    tcp: Option<TcpFallback>,
) -> (String, Listener) {
    let name = vip_listener_name(vip, port);
    let hcm = http_connection_manager(
        &format!("outbound_{vip}_{port}"),
        RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: service_route_name(host, port),
        }),
        HcmOptions::default(),
    );
    let mut http = FilterChain {
        name: ClusterName::outbound(port, None, host).to_string(),
        filters: vec![hcm],
        ..Default::default()
    };
    let mut listener_filters = Vec::new();
    let mut default_filter_chain = None;
    if let Some(TcpFallback {
        stat_prefix,
        clusters,
        timeouts,
    }) = tcp
    {
        http.name = format!("{}|http", http.name);
        http.filter_chain_match = Some(FilterChainMatch {
            application_protocols: SNIFFED_HTTP.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        });
        listener_filters.push(ListenerFilter {
            name: HTTP_INSPECTOR_FILTER.into(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(any(
                &HttpInspector {},
            ))),
            ..Default::default()
        });
        default_filter_chain = Some(FilterChain {
            name: format!("{stat_prefix}|tcp"),
            filters: vec![tcp_proxy_with(&stat_prefix, &clusters, timeouts)],
            ..Default::default()
        });
    }
    let listener = Listener {
        name: name.clone(),
        address: Some(socket_address(&vip.to_string(), port)),
        bind_to_port: Some(BoolValue { value: false }),
        traffic_direction: TrafficDirection::Outbound as i32,
        filter_chains: vec![http],
        listener_filters_timeout: (!listener_filters.is_empty())
            .then(|| crate::common::duration(crate::inbound::LISTENER_FILTERS_TIMEOUT)),
        continue_on_listener_filters_timeout: !listener_filters.is_empty(),
        listener_filters,
        default_filter_chain,
        ..Default::default()
    };
    (name, listener)
}

/// Envoy's name of the HTTP inspector listener filter.
const HTTP_INSPECTOR_FILTER: &str = "envoy.filters.listener.http_inspector";

/// The listeners of one proxy: `virtual`, plus `virtualInbound` when the
/// inbound capture port differs, then the shared `<VIP>_<port>` listeners of
/// `outbound` (in that order: the generator checks the first ones per proxy
/// and the shared ones once).
pub(crate) fn listeners(
    proxy: &Proxy,
    inbound: &[InboundPort],
    outbound: &OutboundChains,
    security: &InboundSecurity<'_>,
) -> Vec<(String, Arc<Resource>)> {
    let ips = pod_ips(proxy);
    let capture_ports = capture_ports(proxy);
    let version = Version::new("lds")
        .with(&outbound.version)
        .with(&ips)
        .with(&capture_ports)
        .with(inbound)
        .with(security);
    let blackholes: Vec<FilterChain> = capture_ports
        .iter()
        .map(|&p| {
            chain(
                format!("blackhole|{p}"),
                Some(p),
                &[],
                tcp_proxy(BLACKHOLE_CLUSTER, &[(BLACKHOLE_CLUSTER.into(), 1)]),
            )
        })
        .collect();
    let inbound: Vec<&InboundPort> = inbound
        .iter()
        .filter(|p| !capture_ports.contains(&p.port))
        .collect();
    let out = if proxy.inbound_capture_port == proxy.capture_port {
        vec![one_capture_port_listener(
            proxy, &inbound, &ips, outbound, security, blackholes,
        )]
    } else {
        two_capture_port_listeners(proxy, &inbound, outbound, security, blackholes)
    };
    out.into_iter()
        .map(|(name, l)| (name.to_string(), resource(version.clone().with(name), &l)))
        .chain(outbound.vip_listeners.iter().cloned())
        .collect()
}

/// Inbound and outbound share the capture port: one `virtual` listener whose
/// chains match inbound by destination IP (the pod's) and port, then the
/// outbound chains, then the black holes.
fn one_capture_port_listener(
    proxy: &Proxy,
    inbound: &[&InboundPort],
    ips: &[IpAddr],
    outbound: &OutboundChains,
    security: &InboundSecurity<'_>,
    blackholes: Vec<FilterChain>,
) -> (&'static str, Listener) {
    let mut chains: Vec<FilterChain> = inbound
        .iter()
        .flat_map(|p| inbound_chains(p, ips, security))
        .collect();
    let served: BTreeSet<u16> = inbound.iter().map(|p| p.port).collect();
    chains.extend(
        outbound
            .ports
            .iter()
            .filter(|p| !served.contains(p))
            .map(|&p| {
                security.passthrough(chain(
                    format!("inbound-passthrough|{p}"),
                    Some(p),
                    ips,
                    inbound_passthrough(),
                ))
            }),
    );
    chains.push(security.passthrough(chain(
        "inbound-passthrough".into(),
        None,
        ips,
        inbound_passthrough(),
    )));
    // A headless Service's chains match its pods' addresses; this pod's own
    // are inbound (its chains above), and Envoy refuses two chains alike.
    let own: Vec<_> = ips.iter().map(host_cidr).collect();
    chains.extend(outbound.chains.iter().filter_map(|c| {
        let m = c.filter_chain_match.as_ref();
        if !m.is_some_and(|m| m.prefix_ranges.iter().any(|r| own.contains(r))) {
            return Some(c.clone());
        }
        let mut c = c.clone();
        let m = c.filter_chain_match.as_mut()?;
        m.prefix_ranges.retain(|r| !own.contains(r));
        (!m.prefix_ranges.is_empty()).then_some(c)
    }));
    chains.extend(blackholes);
    (
        VIRTUAL_LISTENER,
        listener(
            VIRTUAL_LISTENER,
            proxy.capture_port,
            dual_stack(proxy),
            chains,
            outbound_default(outbound.outbound),
            tls_inspector_on([security.permissive_ports(), outbound.tls_ports.clone()].concat()),
        ),
    )
}

/// A separate inbound capture port: `virtual` holds the outbound chains,
/// `virtualInbound` the inbound ones (everything on it is inbound: chains
/// match by port alone).
fn two_capture_port_listeners(
    proxy: &Proxy,
    inbound: &[&InboundPort],
    outbound: &OutboundChains,
    security: &InboundSecurity<'_>,
    blackholes: Vec<FilterChain>,
) -> Vec<(&'static str, Listener)> {
    let mut chains = outbound.chains.clone();
    chains.extend(blackholes.iter().cloned());
    let virtual_listener = listener(
        VIRTUAL_LISTENER,
        proxy.capture_port,
        dual_stack(proxy),
        chains,
        outbound_default(outbound.outbound),
        tls_inspector_on(outbound.tls_ports.clone()),
    );
    let mut chains: Vec<FilterChain> = inbound
        .iter()
        .flat_map(|p| inbound_chains(p, &[], security))
        .collect();
    chains.extend(blackholes);
    let virtual_inbound = listener(
        VIRTUAL_INBOUND_LISTENER,
        proxy.inbound_capture_port,
        dual_stack(proxy),
        chains,
        security.passthrough(inbound_passthrough_chain()),
        tls_inspector_on(security.permissive_ports()),
    );
    vec![
        (VIRTUAL_LISTENER, virtual_listener),
        (VIRTUAL_INBOUND_LISTENER, virtual_inbound),
    ]
}

/// The capture ports (deduplicated): never proxied to.
pub(crate) fn capture_ports(proxy: &Proxy) -> Vec<u16> {
    let mut ports = vec![proxy.capture_port, proxy.inbound_capture_port];
    ports.sort();
    ports.dedup();
    ports
}

/// Whether the pod has an IPv6 address: proxy-init captures IPv6 too, so the
/// capture listeners also listen on `[::]` (Envoy sets IPV6_V6ONLY there).
fn dual_stack(proxy: &Proxy) -> bool {
    proxy.ips.iter().any(IpAddr::is_ipv6)
}

/// A capture listener on `0.0.0.0:port`, and `[::]:port` too when `dual`.
fn listener(
    name: &str,
    port: u16,
    dual: bool,
    filter_chains: Vec<FilterChain>,
    default: FilterChain,
    tls_inspector: Option<ListenerFilter>,
) -> Listener {
    let original_dst = ListenerFilter {
        name: ORIGINAL_DST_FILTER.into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(any(
            &OriginalDst {},
        ))),
        ..Default::default()
    };
    let inspecting = tls_inspector.is_some();
    Listener {
        name: name.to_string(),
        address: Some(socket_address("0.0.0.0", port)),
        additional_addresses: dual
            .then(|| AdditionalAddress {
                address: Some(socket_address("::", port)),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        listener_filters: std::iter::once(original_dst).chain(tls_inspector).collect(),
        listener_filters_timeout: inspecting
            .then(|| crate::common::duration(crate::inbound::LISTENER_FILTERS_TIMEOUT)),
        continue_on_listener_filters_timeout: inspecting,
        filter_chains,
        default_filter_chain: Some(default),
        // Hand connections to a `<VIP>_<port>` listener when one matches
        // (only `virtual`: inbound connections never go to a VIP).
        use_original_dst: (name == VIRTUAL_LISTENER).then_some(BoolValue { value: true }),
        ..Default::default()
    }
}

fn chain(
    name: String,
    port: Option<u16>,
    prefixes: &[IpAddr],
    filter: envoy_types::pb::envoy::config::listener::v3::Filter,
) -> FilterChain {
    FilterChain {
        name,
        filter_chain_match: Some(FilterChainMatch {
            destination_port: port.and_then(|p| u32v(u32::from(p))),
            prefix_ranges: prefixes.iter().map(host_cidr).collect(),
            ..Default::default()
        }),
        filters: vec![filter],
        ..Default::default()
    }
}

fn inbound_passthrough() -> envoy_types::pb::envoy::config::listener::v3::Filter {
    tcp_proxy(
        INBOUND_PASSTHROUGH_CLUSTER,
        &[(INBOUND_PASSTHROUGH_CLUSTER.into(), 1)],
    )
}

fn inbound_passthrough_chain() -> FilterChain {
    FilterChain {
        name: "inbound-passthrough".into(),
        filters: vec![inbound_passthrough()],
        ..Default::default()
    }
}

/// The capture listener's default chain: unknown destinations pass
/// through (ALLOW_ANY) or are closed (REGISTRY_ONLY), as Istio's
/// `virtualOutbound`.
fn outbound_default(mode: OutboundMode) -> FilterChain {
    match mode {
        OutboundMode::AllowAny => passthrough(),
        OutboundMode::RegistryOnly => FilterChain {
            name: BLACKHOLE_CLUSTER.into(),
            filters: vec![tcp_proxy(
                BLACKHOLE_CLUSTER,
                &[(BLACKHOLE_CLUSTER.into(), 1)],
            )],
            ..Default::default()
        },
    }
}

fn passthrough() -> FilterChain {
    FilterChain {
        name: "passthrough".into(),
        filters: vec![tcp_proxy(
            PASSTHROUGH_CLUSTER,
            &[(PASSTHROUGH_CLUSTER.into(), 1)],
        )],
        ..Default::default()
    }
}
