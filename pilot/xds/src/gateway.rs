//! Gateway proxies (`router` nodes): listeners on the selected Gateways'
//! server ports, their route configurations and TLS, from the VirtualServices
//! bound to those Gateways. Clusters, assignments and secrets are the
//! sidecar's (the gateway's namespace scope, no inbound clusters).
//!
//! ```text
//!  router proxy ─► Gateways whose selector matches its pod labels (any namespace)
//!    port P, HTTP/HTTP2/GRPC servers ─► listener 0.0.0.0_P: HCM, RDS http.P
//!        virtual host per host (VirtualService host ∩ server host), httpsRedirect → require_tls
//!    port P, HTTPS / TLS servers ─► listener 0.0.0.0_P + TLS inspector, one chain per server:
//!        SIMPLE/MUTUAL/ISTIO_MUTUAL HTTPS ─► SNI = server hosts, DownstreamTlsContext
//!                                            (credentialName: kubernetes://NAME over ADS), HCM, RDS https.P.<server>
//!        TLS PASSTHROUGH ─► one chain per VirtualService tls route (SNI) ─► tcp_proxy
//!        TLS SIMPLE/MUTUAL ─► terminated, tcp_proxy from the tcp routes
//!    port P, TCP servers ─► tcp_proxy from the VirtualService tcp routes
//! ```
//!
//! VirtualServices bind by `spec.gateways` (`ns/name`, a bare name in the
//! VirtualService's namespace); a match's own `gateways` narrows it further.
//! The listener is on the server port's target port in the gateway pod (the
//! Service selecting it maps 80 → 8080), but a match's `port` and a
//! destination's default port mean the server's port (80), as in Istio.
//! All VirtualServices bound to a gateway contribute, oldest first, as Istio
//! merges them for gateways. A server host `ns/host` takes VirtualServices
//! of namespace `ns` only (`*/`: any, `./`: the Gateway's).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use envoy_types::pb::{
    envoy::{
        config::{
            core::v3::{data_source, transport_socket, DataSource, TransportSocket},
            listener::v3::{FilterChain, FilterChainMatch, Listener},
            route::v3::{virtual_host::TlsRequirementType, RouteConfiguration, VirtualHost},
        },
        extensions::{
            filters::network::http_connection_manager::v3::{
                http_connection_manager, HttpFilter, Rds,
            },
            transport_sockets::tls::v3::{
                common_tls_context::{CombinedCertificateValidationContext, ValidationContextType},
                tls_parameters::TlsProtocol,
                CertificateValidationContext, CommonTlsContext, DownstreamTlsContext,
                TlsCertificate, TlsParameters,
            },
        },
    },
    google::protobuf::BoolValue,
};
use rudder_model::{
    gateway::{
        qualify_gateway, Gateway, GatewayServer, ServerCredential, ServerProtocol, ServerTls,
        ServerTlsMode, TlsVersion,
    },
    node::CertMode,
    scope::{host_matches, hosts_overlap},
    secret::{credential_ca_resource, credential_resource},
    HttpMatch, Proxy, RouteTable, Scope, Snapshot,
};

use crate::{
    common::{ads, any, resource, socket_address, tcp_proxy},
    hcm::{http_connection_manager, HcmOptions},
    http_route::{envoy_routes, Destinations},
    inbound::tls_inspector_on,
    jwt,
    tls::{ads_secret_ref, downstream_mtls},
    version::Version,
    Resource,
};

type Named = crate::resources::Content;

/// A gateway proxy's listeners and route configurations.
#[derive(Debug, Default)]
pub(crate) struct GatewayResources {
    pub(crate) listeners: Named,
    pub(crate) routes: Named,
}

/// One server of one Gateway, as a port's listener sees it.
struct Bound<'a> {
    gateway: &'a Gateway,
    index: usize,
    server: &'a GatewayServer,
}

/// The Gateways that select this proxy (any namespace, as Istio's default
/// without `PILOT_SCOPE_GATEWAY_TO_NAMESPACE`).
pub(crate) fn selected<'a>(snapshot: &'a Snapshot, proxy: &Proxy) -> Vec<&'a Gateway> {
    snapshot
        .gateways
        .iter()
        .filter(|g| g.selects(&proxy.labels))
        .collect()
}

/// Everything a gateway proxy listens on and routes.
pub(crate) fn gateway_resources(
    snapshot: &Snapshot,
    proxy: &Proxy,
    scope: &Scope,
) -> GatewayResources {
    let mut by_port: BTreeMap<u16, Vec<Bound<'_>>> = BTreeMap::new();
    let listen = crate::proxy::gateway_listen_ports(snapshot, proxy);
    for g in selected(snapshot, proxy) {
        for (index, server) in g.servers.iter().enumerate() {
            let port = listen.get(&server.port).copied().unwrap_or(server.port);
            by_port.entry(port).or_default().push(Bound {
                gateway: g,
                index,
                server,
            });
        }
    }
    let dests = Destinations { snapshot, scope };
    // RequestAuthentications selecting the gateway pod: `jwt_authn` on
    // every HTTP chain (plain and TLS-terminated), as on a sidecar's inbound.
    let jwt_rules: Vec<jwt::ResolvedRule<'_>> = snapshot
        .security
        .request_authn_for(
            &snapshot.mesh.root_namespace,
            &proxy.namespace,
            &proxy.labels,
        )
        .flat_map(|p| &p.rules)
        .map(|r| (r, jwt::resolve(r, &snapshot.security.jwks)))
        .collect();
    let jwt = jwt::http_filter(&jwt_rules);
    let mut out = GatewayResources::default();
    for (port, servers) in by_port {
        let first = servers[0].server.protocol;
        let mut lv = Version::new("gw-listener")
            .with(&port)
            .with(&proxy.cert_mode)
            .with(&jwt_rules);
        for b in &servers {
            lv.add(&b.gateway.qualified_name())
                .add(&b.index)
                .add(b.server);
        }
        let chains = match first {
            ServerProtocol::Http | ServerProtocol::Http2 | ServerProtocol::Grpc => {
                let name = format!("http.{port}");
                let plain: Vec<&Bound<'_>> = servers
                    .iter()
                    .filter(|b| {
                        !matches!(
                            b.server.protocol,
                            ServerProtocol::Tcp | ServerProtocol::Tls | ServerProtocol::Https
                        )
                    })
                    .collect();
                out.routes.insert(
                    name.clone(),
                    route_config(&name, port, &plain, snapshot, &dests),
                );
                vec![hcm_chain("http", &name, None, vec![], jwt.as_ref())]
            }
            ServerProtocol::Https | ServerProtocol::Tls => tls_chains(
                port,
                &servers,
                snapshot,
                &dests,
                (proxy.cert_mode, jwt.as_ref()),
                &mut out.routes,
                &mut lv,
            ),
            ServerProtocol::Tcp => {
                let clusters = tcp_clusters(&servers, snapshot, &dests, &mut lv);
                match clusters {
                    Some(c) => vec![FilterChain {
                        name: format!("tcp.{port}"),
                        filters: vec![tcp_proxy(&format!("tcp.{port}"), &c)],
                        ..Default::default()
                    }],
                    None => vec![],
                }
            }
        };
        if chains.is_empty() {
            // Nothing routes there (yet): no listener, as Istio.
            continue;
        }
        let inspect = matches!(first, ServerProtocol::Https | ServerProtocol::Tls);
        let name = format!("0.0.0.0_{port}");
        let listener = Listener {
            name: name.clone(),
            address: Some(socket_address("0.0.0.0", port)),
            listener_filters: if inspect {
                tls_inspector_on(vec![port]).into_iter().collect()
            } else {
                vec![]
            },
            filter_chains: chains,
            ..Default::default()
        };
        // Inputs: the servers on the port, the cert mode, and what the
        // chains resolved (SNI names, clusters), added as they were built.
        out.listeners.insert(name, resource(lv, &listener));
    }
    out
}

/// An HCM chain naming route configuration `route_name`.
fn hcm_chain(
    name: &str,
    route_name: &str,
    tls: Option<TransportSocket>,
    server_names: Vec<String>,
    jwt: Option<&HttpFilter>,
) -> FilterChain {
    let hcm = http_connection_manager(
        route_name,
        http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route_name.to_string(),
        }),
        HcmOptions {
            http_filters: jwt.into_iter().cloned().collect(),
            ..Default::default()
        },
    );
    FilterChain {
        name: name.to_string(),
        filter_chain_match: (!server_names.is_empty()).then(|| FilterChainMatch {
            server_names,
            ..Default::default()
        }),
        filters: vec![hcm],
        transport_socket: tls,
        ..Default::default()
    }
}

/// The SNI names of a server's hosts (`*` matches every name: none).
fn server_names(server: &GatewayServer) -> Vec<String> {
    if server.hosts.iter().any(|h| h.host == "*") {
        return vec![];
    }
    let names: BTreeSet<String> = server.hosts.iter().map(|h| h.host.clone()).collect();
    names.into_iter().collect()
}

/// Istio's route configuration name of an HTTPS server:
/// `https.<port>.<port name>.<gateway>.<namespace>`.
fn https_route_name(b: &Bound<'_>) -> String {
    format!(
        "https.{}.{}.{}.{}",
        b.server.port, b.server.port_name, b.gateway.source.name, b.gateway.source.namespace
    )
}

fn tls_chains(
    port: u16,
    servers: &[Bound<'_>],
    snapshot: &Snapshot,
    dests: &Destinations<'_>,
    (cert_mode, jwt): (CertMode, Option<&HttpFilter>),
    routes: &mut Named,
    version: &mut Version,
) -> Vec<FilterChain> {
    let mut chains = Vec::new();
    let mut taken: BTreeSet<Vec<String>> = BTreeSet::new();
    for b in servers {
        let Some(tls) = &b.server.tls else { continue };
        if tls.mode == ServerTlsMode::Passthrough {
            chains.extend(passthrough_chains(
                port, b, snapshot, dests, &mut taken, version,
            ));
            continue;
        }
        let names = server_names(b.server);
        if !taken.insert(names.clone()) {
            // Envoy refuses two chains alike: the first server wins, as Istio.
            continue;
        }
        version.add(&names);
        let http = b.server.protocol == ServerProtocol::Https;
        let socket = downstream_tls(tls, http, cert_mode);
        if http {
            let name = https_route_name(b);
            routes.insert(
                name.clone(),
                route_config(&name, port, &[b], snapshot, dests),
            );
            chains.push(hcm_chain(&name, &name, Some(socket), names, jwt));
        } else {
            if let Some(c) = tcp_clusters(std::slice::from_ref(b), snapshot, dests, version) {
                let stat = format!("tls.{port}.{}", b.index);
                chains.push(FilterChain {
                    name: stat.clone(),
                    filter_chain_match: (!names.is_empty()).then(|| FilterChainMatch {
                        server_names: names,
                        ..Default::default()
                    }),
                    filters: vec![tcp_proxy(&stat, &c)],
                    transport_socket: Some(socket),
                    ..Default::default()
                });
            }
        }
    }
    chains
}

/// PASSTHROUGH: one chain per tls route of the bound VirtualServices, by
/// the SNI names its matches give (within the server's hosts).
fn passthrough_chains(
    port: u16,
    b: &Bound<'_>,
    snapshot: &Snapshot,
    dests: &Destinations<'_>,
    taken: &mut BTreeSet<Vec<String>>,
    version: &mut Version,
) -> Vec<FilterChain> {
    let mut out = Vec::new();
    for t in bound_tables(snapshot, b) {
        for (i, r) in t.tls.iter().enumerate() {
            let snis: BTreeSet<String> = r
                .matches
                .iter()
                .filter(|m| {
                    m.tcp.port.is_none_or(|p| p == b.server.port)
                        && gateway_match(&m.tcp.gateways, &t.source.namespace, b.gateway)
                })
                .flat_map(|m| m.sni_hosts.iter().cloned())
                .filter(|sni| b.server.hosts.iter().any(|h| hosts_overlap(&h.host, sni)))
                .collect();
            let snis: Vec<String> = snis.into_iter().collect();
            if snis.is_empty() || !taken.insert(snis.clone()) {
                continue;
            }
            let clusters = weighted(dests, &r.destinations, b.server.port);
            let stat = format!(
                "passthrough.{port}.{}.{}.{i}",
                t.source.namespace, t.source.name
            );
            version.add(&stat).add(&snis).add(&clusters);
            out.push(FilterChain {
                name: stat.clone(),
                filter_chain_match: Some(FilterChainMatch {
                    server_names: snis,
                    ..Default::default()
                }),
                filters: vec![tcp_proxy(&stat, &clusters)],
                ..Default::default()
            });
        }
    }
    out
}

fn weighted(
    dests: &Destinations<'_>,
    to: &[rudder_model::Destination],
    port: u16,
) -> Vec<(String, u32)> {
    let clusters: Vec<(String, u32)> = to
        .iter()
        .filter(|d| d.weight > 0 || to.len() == 1)
        .map(|d| (dests.cluster(d, port), d.weight))
        .collect();
    if clusters.is_empty() {
        vec![(rudder_model::names::BLACKHOLE_CLUSTER.to_string(), 100)]
    } else {
        clusters
    }
}

/// The first tcp route of the bound VirtualServices that applies on a
/// server's port (not the listener's, its target port).
fn tcp_clusters(
    servers: &[Bound<'_>],
    snapshot: &Snapshot,
    dests: &Destinations<'_>,
    version: &mut Version,
) -> Option<Vec<(String, u32)>> {
    for b in servers {
        for t in bound_tables(snapshot, b) {
            for r in &t.tcp {
                let applies = r.matches.is_empty()
                    || r.matches.iter().any(|m| {
                        m.port.is_none_or(|p| p == b.server.port)
                            && gateway_match(&m.gateways, &t.source.namespace, b.gateway)
                    });
                if applies {
                    let c = weighted(dests, &r.destinations, b.server.port);
                    version.add(&c);
                    return Some(c);
                }
            }
        }
    }
    None
}

/// Whether a match's own `gateways` let it apply on `gateway` (empty: it
/// applies wherever its VirtualService does).
fn gateway_match(gateways: &[String], vs_namespace: &str, gateway: &Gateway) -> bool {
    gateways.is_empty() || {
        let me = gateway.qualified_name();
        gateways
            .iter()
            .any(|g| qualify_gateway(g, vs_namespace) == me)
    }
}

/// The VirtualServices bound to a server's Gateway whose namespace the
/// server's hosts allow and whose hosts meet them, oldest first.
fn bound_tables<'a>(snapshot: &'a Snapshot, b: &Bound<'_>) -> Vec<&'a RouteTable> {
    let me = b.gateway.qualified_name();
    snapshot
        .gateway_route_tables
        .iter()
        .filter(|t| t.binds_gateway(&me))
        .filter(|t| {
            t.hosts.iter().any(|h| {
                b.server.hosts.iter().any(|sh| {
                    sh.namespace
                        .as_deref()
                        .is_none_or(|ns| ns == t.source.namespace)
                        && hosts_overlap(&sh.host, h)
                })
            })
        })
        .collect()
}

/// The virtual host name a VirtualService host gets on a server: the more
/// specific of the two.
fn vhost_domain(server_host: &str, vs_host: &str) -> String {
    if host_matches(server_host, vs_host) {
        vs_host.to_string()
    } else {
        server_host.to_string()
    }
}

/// A route configuration for the servers sharing it: a virtual host per
/// host the bound VirtualServices serve there, their HTTP routes in order
/// (oldest VirtualService first); `require_tls` where a server redirects
/// to HTTPS.
fn route_config(
    name: &str,
    port: u16,
    servers: &[&Bound<'_>],
    snapshot: &Snapshot,
    dests: &Destinations<'_>,
) -> Arc<Resource> {
    let mut version = Version::new("gw-rds").with(name);
    // domain → (redirect, routes)
    let mut vhosts: BTreeMap<String, (bool, Vec<_>)> = BTreeMap::new();
    for b in servers {
        for t in bound_tables(snapshot, b) {
            version.add(&t.source).add(&t.hosts);
            for h in &t.hosts {
                for sh in b.server.hosts.iter().filter(|sh| {
                    sh.namespace
                        .as_deref()
                        .is_none_or(|ns| ns == t.source.namespace)
                        && hosts_overlap(&sh.host, h)
                }) {
                    let domain = vhost_domain(&sh.host, h);
                    let entry = vhosts.entry(domain).or_insert((false, Vec::new()));
                    entry.0 |= b.server.https_redirect;
                    for (i, r) in t.http.iter().enumerate() {
                        let matches: Vec<&HttpMatch> = r
                            .matches
                            .iter()
                            .filter(|m| {
                                m.port.is_none_or(|p| p == b.server.port)
                                    && gateway_match(&m.gateways, &t.source.namespace, b.gateway)
                            })
                            .collect();
                        if !r.matches.is_empty() && matches.is_empty() {
                            continue;
                        }
                        version.add(&i).add(r).add(&matches).add(&b.server.port);
                        entry.1.extend(envoy_routes(
                            r,
                            &matches,
                            b.server.port,
                            dests,
                            &mut version,
                        ));
                    }
                }
            }
        }
        // A server with no VirtualService still redirects its hosts.
        if b.server.https_redirect {
            for sh in &b.server.hosts {
                vhosts
                    .entry(sh.host.clone())
                    .or_insert((true, Vec::new()))
                    .0 = true;
            }
        }
    }
    version.add(&servers.iter().map(|b| b.server).collect::<Vec<_>>());
    let virtual_hosts = vhosts
        .into_iter()
        .map(|(domain, (redirect, routes))| {
            let domains = if domain == "*" {
                vec!["*".to_string()]
            } else {
                vec![domain.clone(), format!("{domain}:{port}")]
            };
            VirtualHost {
                name: format!("{domain}:{port}"),
                domains,
                routes,
                require_tls: if redirect {
                    TlsRequirementType::All as i32
                } else {
                    TlsRequirementType::None as i32
                },
                ..Default::default()
            }
        })
        .collect();
    let config = RouteConfiguration {
        name: name.to_string(),
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    };
    resource(version, &config)
}

fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_string())),
        ..Default::default()
    }
}

fn tls_version(v: TlsVersion) -> i32 {
    (match v {
        TlsVersion::Auto => TlsProtocol::TlsAuto,
        TlsVersion::V1_0 => TlsProtocol::TlSv10,
        TlsVersion::V1_1 => TlsProtocol::TlSv11,
        TlsVersion::V1_2 => TlsProtocol::TlSv12,
        TlsVersion::V1_3 => TlsProtocol::TlSv13,
    }) as i32
}

/// The server side of a terminated server: its certificate (a Secret over
/// SDS from pilot, files, or the mesh certificate), the client CA for
/// MUTUAL, versions and ciphers.
fn downstream_tls(tls: &ServerTls, http: bool, cert_mode: CertMode) -> TransportSocket {
    if tls.mode == ServerTlsMode::IstioMutual {
        return downstream_mtls(http, cert_mode);
    }
    let mutual = tls.mode == ServerTlsMode::Mutual;
    let mut common = CommonTlsContext {
        alpn_protocols: if http {
            vec!["h2".into(), "http/1.1".into()]
        } else {
            vec![]
        },
        ..Default::default()
    };
    let sans = tls
        .subject_alt_names
        .iter()
        .map(|s| envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SubjectAltNameMatcher {
            san_type: if s.contains("://") {
                envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType::Uri
            } else {
                envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType::Dns
            } as i32,
            matcher: Some(crate::tls::exact(s)),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    match &tls.credential {
        Some(ServerCredential::Secret(name)) => {
            common.tls_certificate_sds_secret_configs =
                vec![ads_secret_ref(&credential_resource(name))];
            if mutual {
                common.validation_context_type =
                    Some(ValidationContextType::CombinedValidationContext(
                        CombinedCertificateValidationContext {
                            default_validation_context: Some(CertificateValidationContext {
                                match_typed_subject_alt_names: sans,
                                ..Default::default()
                            }),
                            validation_context_sds_secret_config: Some(ads_secret_ref(
                                &credential_ca_resource(name),
                            )),
                            ..Default::default()
                        },
                    ));
            }
        }
        Some(ServerCredential::Files {
            certificate,
            private_key,
            ca_certificates,
        }) => {
            common.tls_certificates = vec![TlsCertificate {
                certificate_chain: Some(file(certificate)),
                private_key: Some(file(private_key)),
                ..Default::default()
            }];
            if mutual {
                common.validation_context_type = Some(ValidationContextType::ValidationContext(
                    CertificateValidationContext {
                        trusted_ca: ca_certificates.as_deref().map(file),
                        match_typed_subject_alt_names: sans,
                        ..Default::default()
                    },
                ));
            }
        }
        Some(ServerCredential::Mesh) | None => {}
    }
    if tls.min_version.is_some() || tls.max_version.is_some() || !tls.cipher_suites.is_empty() {
        common.tls_params = Some(TlsParameters {
            tls_minimum_protocol_version: tls.min_version.map(tls_version).unwrap_or_default(),
            tls_maximum_protocol_version: tls.max_version.map(tls_version).unwrap_or_default(),
            cipher_suites: tls.cipher_suites.clone(),
            ..Default::default()
        });
    }
    let ctx = DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: mutual.then_some(BoolValue { value: true }),
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(&ctx))),
    }
}
