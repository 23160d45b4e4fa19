//! RDS: the outbound route configuration of one HTTP port (named by the port,
//! `"9080"`), and the inline inbound one.
//!
//! One virtual host per service with that port, with Istio's domain set; its
//! routes come from the first route table naming the host that the proxy's
//! namespace can see. Routes whose every match is meant for other sources
//! (`sourceLabels`, source namespace) or another port are left out, which is
//! why the config depends on the proxy's namespace and labels and is cached by
//! them (see [`crate::Generator`]).

use std::{collections::HashSet, sync::Arc};

use envoy_types::pb::{
    envoy::config::route::v3::{
        route, route_action, Route, RouteAction, RouteConfiguration, VirtualHost,
    },
    google::protobuf::BoolValue,
};
use rudder_model::{
    names::{inbound_route_name, outbound_route_name, ClusterName, PASSTHROUGH_CLUSTER},
    Destination, HttpAction, HttpMatch, HttpRoute, Labels, Service, Snapshot,
};

use crate::{
    common::{duration, resource},
    http_route::{catch_all, envoy_routes, Destinations},
    version::Version,
    Resource,
};

/// Name of the last virtual host, which passes unknown authorities through.
pub(crate) const ALLOW_ANY: &str = "allow_any";

/// The outbound route configuration for HTTP port `port`, as a proxy in
/// `namespace` with `labels` sees it.
pub(crate) fn outbound_route_config(
    snapshot: &Snapshot,
    port: u16,
    namespace: &str,
    labels: &Labels,
) -> Arc<Resource> {
    let name = outbound_route_name(port);
    let mut version = Version::new("rds").with(&name).with(namespace);
    let dests = Destinations {
        snapshot,
        namespace,
    };
    let mut used_domains = HashSet::new();
    let mut virtual_hosts = Vec::new();
    for svc in snapshot.services.values() {
        if !svc.port(port).is_some_and(|p| p.protocol.is_http()) {
            continue;
        }
        let domains: Vec<String> = domains(svc, port, namespace)
            .into_iter()
            .filter(|d| used_domains.insert(d.clone()))
            .collect();
        version.add(&domains);
        let routes = service_routes(snapshot, svc, port, namespace, labels, &dests, &mut version);
        virtual_hosts.push(VirtualHost {
            name: format!("{}:{port}", svc.hostname),
            domains,
            routes,
            ..Default::default()
        });
    }
    virtual_hosts.push(VirtualHost {
        name: ALLOW_ANY.into(),
        domains: vec!["*".into()],
        routes: vec![Route {
            name: ALLOW_ANY.into(),
            r#match: Some(catch_all()),
            action: Some(route::Action::Route(to_cluster(PASSTHROUGH_CLUSTER))),
            ..Default::default()
        }],
        ..Default::default()
    });
    let config = RouteConfiguration {
        name,
        virtual_hosts,
        // Clusters may arrive after routes; Envoy must not reject the routes for it.
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
    if svc.namespace == proxy_namespace {
        hosts.push(svc.name.clone());
    }
    hosts.push(format!("{}.{}", svc.name, svc.namespace));
    hosts.push(format!("{}.{}.svc", svc.name, svc.namespace));
    hosts.push(svc.hostname.clone());
    if let Some(vip) = svc.cluster_ip {
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
    snapshot: &Snapshot,
    svc: &Service,
    port: u16,
    namespace: &str,
    labels: &Labels,
    dests: &Destinations<'_>,
    version: &mut Version,
) -> Vec<Route> {
    let mut routes = Vec::new();
    if let Some(table) = snapshot.route_tables_for(&svc.hostname, namespace).next() {
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
