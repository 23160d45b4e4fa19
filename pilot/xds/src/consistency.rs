//! The check before publishing: a proxy's resources must reference only each
//! other (go-control-plane's snapshot consistency, extended to clusters).
//! A dangling name makes Envoy warm forever (EDS) or answer 404/503 (RDS,
//! clusters), so pilot refuses to publish such a set.

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use envoy_types::pb::{
    envoy::{
        config::{
            cluster::v3::{cluster, Cluster},
            listener::v3::{filter, Filter, Listener},
            route::v3::{route, route_action, RouteConfiguration},
        },
        extensions::filters::network::{
            http_connection_manager::v3::{
                http_connection_manager::RouteSpecifier, HttpConnectionManager,
            },
            tcp_proxy::v3::{tcp_proxy, TcpProxy},
        },
    },
    google::protobuf::Any,
};
use prost::{Message, Name};

use crate::{
    common::{HTTP_CONNECTION_MANAGER, TCP_PROXY},
    Content, ProxyResources, Resource, TypeUrl,
};

/// Decodes an `Any` holding an `M`, saying what went wrong otherwise.
pub(crate) fn decode<M: Message + Name + Default>(any: &Any) -> Result<M, String> {
    if any.type_url != M::type_url() {
        return Err(format!("expected {}, got {}", M::type_url(), any.type_url));
    }
    M::decode(any.value.as_slice()).map_err(|e| format!("decoding {}: {e}", M::full_name()))
}

/// Generated resource sets that failed [`check_consistency`] since start
/// (Istio's `pilot_total_xds_internal_errors`).
static INTERNAL_ERRORS: AtomicU64 = AtomicU64::new(0);

/// How many generated resource sets failed the consistency check (and were
/// not published) since this process started: pilot exports it as
/// `pilot_total_xds_internal_errors`.
pub fn internal_errors() -> u64 {
    INTERNAL_ERRORS.load(Ordering::Relaxed)
}

/// Records one failed check: logged (the first problems) and counted.
pub(crate) fn report_inconsistent(proxy: &str, problems: &[String]) {
    INTERNAL_ERRORS.fetch_add(1, Ordering::Relaxed);
    const SHOWN: usize = 5;
    tracing::error!(
        proxy,
        problems = problems.len(),
        first = %problems.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; "),
        "generated xDS is inconsistent; not published (the proxy keeps its previous resources)"
    );
}

/// Checks that every EDS resource belongs to an EDS cluster (and every EDS
/// cluster has one), every route configuration a listener names exists, and
/// every cluster a route or TCP proxy names exists. Returns every problem.
pub fn check_consistency(res: &ProxyResources) -> Result<(), Vec<String>> {
    let empty = Content::new();
    let of = |t| res.of(t).unwrap_or(&empty);
    let mut problems = eds_problems(of(TypeUrl::Cluster), of(TypeUrl::Endpoint));
    problems.extend(reference_problems(
        of(TypeUrl::Listener),
        of(TypeUrl::Route),
        of(TypeUrl::Cluster),
        of(TypeUrl::Route),
    ));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Every EDS cluster has its assignment and every assignment its EDS cluster.
pub(crate) fn eds_problems(clusters: &Content, endpoints: &Content) -> Vec<String> {
    eds_problems_with(clusters, endpoints, |_, r| eds_service(r))
}

/// The name an EDS cluster's load assignment goes by (its
/// `eds_cluster_config.service_name`, else its name), `None` for a cluster
/// of another discovery type, or why it does not decode.
pub(crate) fn eds_service(r: &Resource) -> Result<Option<String>, String> {
    let c = decode::<Cluster>(&r.body)?;
    let eds = c.cluster_discovery_type
        == Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        ));
    Ok(eds.then(|| {
        c.eds_cluster_config
            .map(|e| e.service_name)
            .filter(|s| !s.is_empty())
            .unwrap_or(c.name)
    }))
}

/// [`eds_problems`] with each cluster's [`eds_service`] from `service`
/// (a generator remembers it per shared cluster).
pub(crate) fn eds_problems_with<S: std::borrow::Borrow<Result<Option<String>, String>>>(
    clusters: &Content,
    endpoints: &Content,
    service: impl Fn(&String, &Arc<Resource>) -> S,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut eds_clusters = BTreeSet::new();
    let services: Vec<S> = clusters.iter().map(|(n, r)| service(n, r)).collect();
    for ((name, _), s) in clusters.iter().zip(&services) {
        match s.borrow() {
            Ok(Some(service)) => {
                eds_clusters.insert(service.as_str());
            }
            Ok(None) => {}
            Err(e) => problems.push(format!("cluster {name}: {e}")),
        }
    }
    for name in endpoints
        .keys()
        .filter(|n| !eds_clusters.contains(n.as_str()))
    {
        problems.push(format!("endpoints {name}: no EDS cluster of that name"));
    }
    for name in eds_clusters.iter().filter(|n| !endpoints.contains_key(n)) {
        problems.push(format!(
            "cluster {name}: EDS cluster without endpoints resource (it would warm forever)"
        ));
    }
    problems
}

/// The route configurations and clusters that `listeners` and `routes` name
/// exist in `rds` and `clusters`.
pub(crate) fn reference_problems<'a>(
    listeners: impl IntoIterator<Item = (&'a String, &'a Arc<Resource>)>,
    routes: impl IntoIterator<Item = (&'a String, &'a Arc<Resource>)>,
    clusters: &Content,
    rds: &Content,
) -> Vec<String> {
    let (refs, mut problems) = Refs::of(listeners, routes);
    problems.extend(refs.missing(clusters, rds));
    problems
}

/// Route configuration and cluster names referenced (sorted, distinct):
/// many proxies reference the same, so a generator keeps one of each.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct RefNames {
    rds: Vec<String>,
    clusters: Vec<String>,
}

impl RefNames {
    /// Whether `clusters` and `rds` hold every name referenced.
    pub(crate) fn present(&self, clusters: &Content, rds: &Content) -> bool {
        self.rds.iter().all(|n| rds.contains_key(n))
            && self.clusters.iter().all(|n| clusters.contains_key(n))
    }
}

/// Names referenced, each with who references it.
#[derive(Debug, Default)]
pub(crate) struct Refs {
    rds: BTreeSet<(String, String)>,
    clusters: BTreeSet<(String, String)>,
}

impl Refs {
    /// What `listeners` and `routes` reference (decoded once), and the
    /// problems decoding them.
    pub(crate) fn of<'a>(
        listeners: impl IntoIterator<Item = (&'a String, &'a Arc<Resource>)>,
        routes: impl IntoIterator<Item = (&'a String, &'a Arc<Resource>)>,
    ) -> (Refs, Vec<String>) {
        let mut problems = Vec::new();
        let mut refs = Refs::default();
        for (name, r) in listeners {
            match decode::<Listener>(&r.body) {
                Ok(l) => {
                    let chains = l
                        .filter_chains
                        .iter()
                        .chain(l.default_filter_chain.as_ref());
                    for f in chains.flat_map(|c| &c.filters) {
                        if let Err(e) = refs.filter(f) {
                            problems.push(format!("listener {name}: filter {}: {e}", f.name));
                        }
                    }
                }
                Err(e) => problems.push(format!("listener {name}: {e}")),
            }
        }
        for (name, r) in routes {
            match decode::<RouteConfiguration>(&r.body) {
                Ok(rc) => refs.route_config(&rc, &format!("route configuration {name}")),
                Err(e) => problems.push(format!("route configuration {name}: {e}")),
            }
        }
        (refs, problems)
    }

    /// The names referenced, without who references them (what
    /// [`RefNames::present`] checks).
    pub(crate) fn names(&self) -> RefNames {
        let mut rds: Vec<String> = self.rds.iter().map(|(n, _)| n.clone()).collect();
        let mut clusters: Vec<String> = self.clusters.iter().map(|(n, _)| n.clone()).collect();
        rds.dedup();
        clusters.dedup();
        RefNames { rds, clusters }
    }

    /// The referenced names `clusters` and `rds` do not hold.
    pub(crate) fn missing(&self, clusters: &Content, rds: &Content) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, by) in &self.rds {
            if !rds.contains_key(name) {
                problems.push(format!("{by}: route configuration {name} does not exist"));
            }
        }
        for (cluster, by) in &self.clusters {
            if !clusters.contains_key(cluster) {
                problems.push(format!("{by}: cluster {cluster} does not exist"));
            }
        }
        problems
    }

    fn filter(&mut self, f: &Filter) -> Result<(), String> {
        let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
            return Ok(());
        };
        match f.name.as_str() {
            HTTP_CONNECTION_MANAGER => {
                let hcm: HttpConnectionManager = decode(any)?;
                match hcm.route_specifier {
                    Some(RouteSpecifier::Rds(rds)) => {
                        self.rds
                            .insert((rds.route_config_name, format!("HCM {}", hcm.stat_prefix)));
                    }
                    Some(RouteSpecifier::RouteConfig(rc)) => {
                        self.route_config(&rc, &format!("HCM {}", hcm.stat_prefix))
                    }
                    _ => {}
                }
            }
            TCP_PROXY => {
                let tp: TcpProxy = decode(any)?;
                let by = format!("tcp_proxy {}", tp.stat_prefix);
                match tp.cluster_specifier {
                    Some(tcp_proxy::ClusterSpecifier::Cluster(c)) => {
                        self.clusters.insert((c, by));
                    }
                    Some(tcp_proxy::ClusterSpecifier::WeightedClusters(w)) => {
                        self.clusters
                            .extend(w.clusters.into_iter().map(|c| (c.name, by.clone())));
                    }
                    None => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn route_config(&mut self, rc: &RouteConfiguration, by: &str) {
        for vh in &rc.virtual_hosts {
            for r in &vh.routes {
                let Some(route::Action::Route(a)) = &r.action else {
                    continue;
                };
                let by = format!("{by} virtual host {} route {:?}", vh.name, r.name);
                match &a.cluster_specifier {
                    Some(route_action::ClusterSpecifier::Cluster(c)) => {
                        self.clusters.insert((c.clone(), by.clone()));
                    }
                    Some(route_action::ClusterSpecifier::WeightedClusters(w)) => {
                        self.clusters
                            .extend(w.clusters.iter().map(|c| (c.name.clone(), by.clone())));
                    }
                    _ => {}
                }
                self.clusters.extend(
                    a.request_mirror_policies
                        .iter()
                        .map(|m| (m.cluster.clone(), by.clone())),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names own listeners reference, kept without who references them,
    /// tell a set missing one from a complete set.
    #[test]
    fn referenced_names_are_present_or_not() {
        use envoy_types::pb::envoy::config::listener::v3::FilterChain;
        let listener = Listener {
            name: "virtualOutbound".into(),
            filter_chains: vec![FilterChain {
                filters: vec![
                    crate::common::tcp_proxy("a", &[("c1".into(), 1)]),
                    crate::common::tcp_proxy("b", &[("c1".into(), 1), ("c2".into(), 1)]),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let r = crate::common::resource(crate::version::Version::new("test"), &listener);
        let name = "virtualOutbound".to_string();
        let (refs, problems) = Refs::of([(&name, &r)], []);
        assert!(problems.is_empty(), "{problems:?}");
        let names = refs.names();
        let cluster = |n: &str| (n.to_string(), r.clone());
        let both: Content = [cluster("c1"), cluster("c2")].into_iter().collect();
        let one: Content = [cluster("c1")].into_iter().collect();
        assert!(names.present(&both, &Content::new()));
        assert!(!names.present(&one, &Content::new()));
        assert_eq!(
            refs.missing(&one, &Content::new()),
            ["tcp_proxy b: cluster c2 does not exist"]
        );
    }

    #[test]
    fn a_failed_check_is_counted() {
        let before = internal_errors();
        report_inconsistent("sidecar~1.2.3.4~a.b~b.svc.cluster.local", &["x".into()]);
        assert!(internal_errors() > before);
    }
}
