//! RDS: the outbound route configurations, and the inline inbound one.
//!
//! - `<host>:<port>`: one per HTTP port of a service with a VIP, holding only
//!   that service's virtual host (domains `*`: whatever Host a client sends to
//!   the VIP, the connection is for this service). Served to the listener
//!   `<VIP>_<port>`, so a change to one service's routes re-sends one small
//!   resource (issue 13).
//! - `"<port>"` (named by the port, `"9080"`): the hosts on that port without a
//!   VIP (headless services, ServiceEntry hosts without addresses), routed by
//!   Host header with Istio's domain set, then `allow_any` (passthrough;
//!   under REGISTRY_ONLY `block_all`, a direct 502, as Istio).
//!
//! Only the services and route tables of the proxy's [`Scope`] (its
//! namespace's exports narrowed by its Sidecar) appear. A service's routes
//! come from the first route table naming the host in that scope. Routes whose every match is meant for other sources
//! (`sourceLabels`, source namespace) or another port are left out, which is
//! why the config depends on the proxy's namespace and labels and is cached by
//! them (see [`crate::Generator`]).

use std::{
    collections::{BTreeMap, HashSet},
    net::IpAddr,
    sync::Arc,
};

use envoy_types::pb::{
    envoy::config::route::v3::{
        route, route_action, DirectResponseAction, Route, RouteAction, RouteConfiguration,
        VirtualHost,
    },
    google::protobuf::BoolValue,
};
use rudder_model::{
    names::{
        inbound_route_name, outbound_route_name, service_route_name, ClusterName,
        PASSTHROUGH_CLUSTER,
    },
    Destination, HttpAction, HttpMatch, HttpRoute, Labels, OutboundMode, Scope, Service, Snapshot,
};

use crate::{
    common::{duration, resource},
    http_route::{catch_all, envoy_routes, Destinations},
    version::Version,
    Resource,
};

/// Name of the last virtual host, which passes unknown authorities through.
pub(crate) const ALLOW_ANY: &str = "allow_any";
/// Name of the last virtual host under REGISTRY_ONLY (Istio's), which
/// answers 502.
pub(crate) const BLOCK_ALL: &str = "block_all";

/// The outbound route configuration for HTTP port `port`, as a proxy in
/// `namespace` with `labels` sees it.
pub(crate) fn outbound_route_config(
    snapshot: &Snapshot,
    port: u16,
    scope: &Scope,
    labels: &Labels,
) -> Arc<Resource> {
    let namespace = scope.namespace.as_str();
    let name = outbound_route_name(port);
    // The namespace enters through what it resolves: domains, route tables,
    // destination rules (identical tables in two namespaces share a version).
    let mut version = Version::new("rds").with(&name);
    let dests = Destinations { snapshot, scope };
    let own = vip_http_ports(snapshot, scope);
    let mut used_domains = HashSet::new();
    let mut virtual_hosts = Vec::new();
    for svc in scope.services(snapshot) {
        if !svc.port(port).is_some_and(|p| p.protocol.is_http()) || has_own_routes(&own, svc, port)
        {
            continue;
        }
        let domains: Vec<String> = domains(svc, port, namespace)
            .into_iter()
            .filter(|d| used_domains.insert(d.clone()))
            .collect();
        version.add(&domains);
        let routes = service_routes(svc, port, labels, &dests, &mut version);
        virtual_hosts.push(VirtualHost {
            name: format!("{}:{port}", svc.hostname),
            domains,
            routes,
            ..Default::default()
        });
    }
    version.add(&scope.outbound);
    virtual_hosts.push(catch_all_virtual_host(scope.outbound));
    let config = RouteConfiguration {
        name,
        virtual_hosts,
        // Clusters may arrive after routes; Envoy must not reject the routes for it.
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    };
    resource(version, &config)
}

/// The last virtual host of a port's table, for authorities no service
/// claims: `allow_any` to PassthroughCluster (ALLOW_ANY), or Istio's
/// `block_all`, a direct 502 (REGISTRY_ONLY).
fn catch_all_virtual_host(mode: OutboundMode) -> VirtualHost {
    let route = match mode {
        OutboundMode::AllowAny => Route {
            name: ALLOW_ANY.into(),
            r#match: Some(catch_all()),
            action: Some(route::Action::Route(to_cluster(PASSTHROUGH_CLUSTER))),
            ..Default::default()
        },
        OutboundMode::RegistryOnly => Route {
            name: BLOCK_ALL.into(),
            r#match: Some(catch_all()),
            action: Some(route::Action::DirectResponse(DirectResponseAction {
                status: 502,
                ..Default::default()
            })),
            ..Default::default()
        },
    };
    VirtualHost {
        name: route.name.clone(),
        domains: vec!["*".into()],
        routes: vec![route],
        ..Default::default()
    }
}

/// The HTTP and sniffed service ports with a VIP in `scope`, each with the service that
/// gets listener `<VIP>_<port>` and route configuration `<host>:<port>` of its
/// own: the first by hostname when services share a VIP and port (the others
/// stay in the port's table).
pub(crate) fn vip_http_ports<'a>(
    snapshot: &'a Snapshot,
    scope: &'a Scope,
) -> BTreeMap<(IpAddr, u16), &'a Service> {
    let mut out = BTreeMap::new();
    for svc in scope.services(snapshot) {
        for vip in svc.vips() {
            for p in svc.ports.iter().filter(|p| p.protocol.has_routes()) {
                out.entry((vip, p.port)).or_insert(svc);
            }
        }
    }
    out
}

/// Whether `svc`'s `port` has a route configuration of its own.
fn has_own_routes(own: &BTreeMap<(IpAddr, u16), &Service>, svc: &Service, port: u16) -> bool {
    svc.cluster_ip
        .and_then(|vip| own.get(&(vip, port)))
        .is_some_and(|s| s.hostname == svc.hostname)
}

/// The route configuration `<host>:<port>` of one service port with a VIP, as
/// a proxy with `scope` and `labels` sees it: one virtual host, domains `*`.
pub(crate) fn service_route_config(
    snapshot: &Snapshot,
    svc: &Service,
    port: u16,
    scope: &Scope,
    labels: &Labels,
) -> Arc<Resource> {
    let name = service_route_name(&svc.hostname, port);
    let mut version = Version::new("rds-service").with(&name);
    let dests = Destinations { snapshot, scope };
    let routes = service_routes(svc, port, labels, &dests, &mut version);
    let config = RouteConfiguration {
        name: name.clone(),
        virtual_hosts: vec![VirtualHost {
            name,
            domains: vec!["*".into()],
            routes,
            ..Default::default()
        }],
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    };
    resource(version, &config)
}

/// Istio's domain set for a service port: the short name (same namespace
/// only), `name.namespace`, `name.namespace.svc`, the FQDN and the VIP, each
/// also with `:port`.
pub(crate) fn domains(svc: &Service, port: u16, proxy_namespace: &str) -> Vec<String> {
    let mut hosts = Vec::with_capacity(5);
    if svc.entry.is_none() {
        if svc.namespace == proxy_namespace {
            hosts.push(svc.name.clone());
        }
        hosts.push(format!("{}.{}", svc.name, svc.namespace));
        hosts.push(format!("{}.{}.svc", svc.name, svc.namespace));
    }
    // A ServiceEntry host is its own only name (Istio).
    hosts.push(svc.hostname.clone());
    for vip in svc.vips() {
        hosts.push(if vip.is_ipv6() {
            format!("[{vip}]")
        } else {
            vip.to_string()
        });
    }
    hosts
        .iter()
        .flat_map(|h| [h.clone(), format!("{h}:{port}")])
        .collect()
}

/// The matches of `route` that apply in the route config of `port` for this
/// source; `None` when the route does not apply at all.
pub(crate) fn applicable_matches<'a>(
    route: &'a HttpRoute,
    port: u16,
    namespace: &str,
    labels: &Labels,
) -> Option<Vec<&'a HttpMatch>> {
    if route.matches.is_empty() {
        return Some(Vec::new());
    }
    let kept: Vec<&HttpMatch> = route
        .matches
        .iter()
        .filter(|m| m.applies_to_source(labels, namespace) && m.port.is_none_or(|p| p == port))
        .collect();
    (!kept.is_empty()).then_some(kept)
}

fn service_routes(
    svc: &Service,
    port: u16,
    labels: &Labels,
    dests: &Destinations<'_>,
    version: &mut Version,
) -> Vec<Route> {
    let namespace = dests.scope.namespace.as_str();
    let mut routes = Vec::new();
    if let Some(table) = dests.scope.route_table(dests.snapshot, &svc.hostname) {
        version.add(&table.source);
        for (i, r) in table.http.iter().enumerate() {
            let Some(matches) = applicable_matches(r, port, namespace, labels) else {
                continue;
            };
            version.add(&i).add(r).add(&matches);
            routes.extend(envoy_routes(r, &matches, port, dests, version));
        }
    }
    if routes.is_empty() {
        // No rule (or none for this source/port): everything to the service port.
        let default = HttpRoute {
            name: Some("default".into()),
            matches: Vec::new(),
            action: HttpAction::Route(vec![Destination {
                host: svc.hostname.clone(),
                subset: None,
                port: Some(port),
                weight: 100,
                headers: Default::default(),
            }]),
            timeout: None,
            retries: None,
            fault: None,
            mirrors: Vec::new(),
            rewrite: None,
            headers: Default::default(),
            cors: None,
        };
        routes = envoy_routes(&default, &[], port, dests, version);
    }
    routes
}

fn to_cluster(cluster: &str) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.to_string())),
        timeout: Some(duration(std::time::Duration::ZERO)),
        ..Default::default()
    }
}

/// The inbound route configuration of an HTTP port the pod serves (inlined
/// in its HCM: it depends only on the port, so RDS would add a round trip
/// and nothing else).
pub(crate) fn inbound_route_config(port: u16) -> RouteConfiguration {
    let name = inbound_route_name(port);
    RouteConfiguration {
        name: name.clone(),
        virtual_hosts: vec![VirtualHost {
            name: format!("inbound|http|{port}"),
            domains: vec!["*".into()],
            routes: vec![Route {
                name: "default".into(),
                r#match: Some(catch_all()),
                action: Some(route::Action::Route(to_cluster(
                    &ClusterName::inbound(port).to_string(),
                ))),
                ..Default::default()
            }],
            ..Default::default()
        }],
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    }
}
