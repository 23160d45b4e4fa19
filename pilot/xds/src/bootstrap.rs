//! Generated resources → a static Envoy bootstrap, so `envoy --mode validate`
//! (which checks static resources only) can judge them: EDS clusters become
//! STATIC with their load assignment inlined, RDS route configurations are
//! inlined into the HCMs naming them, and nothing refers to ADS.

use envoy_types::pb::envoy::{
    config::{
        bootstrap::v3::{bootstrap::StaticResources, Bootstrap},
        cluster::v3::{cluster, Cluster},
        endpoint::v3::ClusterLoadAssignment,
        listener::v3::{filter, Filter, FilterChain, Listener},
        route::v3::RouteConfiguration,
    },
    extensions::filters::network::http_connection_manager::v3::{
        http_connection_manager::RouteSpecifier, HttpConnectionManager,
    },
};

use crate::{
    common::{any, HTTP_CONNECTION_MANAGER},
    consistency::decode,
    ProxyResources, TypeUrl,
};

/// Why resources could not be turned into a bootstrap.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// A resource does not decode as its type.
    #[error("{kind} {name}: {reason}")]
    Decode {
        /// `cluster`, `listener`, ...
        kind: &'static str,
        /// Resource name.
        name: String,
        /// Why.
        reason: String,
    },
    /// An HCM names a route configuration that is not there.
    #[error("listener {listener}: route configuration {route} missing")]
    MissingRoute {
        /// Listener name.
        listener: String,
        /// Route configuration name.
        route: String,
    },
}

/// The resources as a bootstrap with static resources only.
pub fn to_static_bootstrap(res: &ProxyResources) -> Result<Bootstrap, BootstrapError> {
    fn err<'a>(kind: &'static str, name: &'a str) -> impl FnOnce(String) -> BootstrapError + 'a {
        move |reason| BootstrapError::Decode {
            kind,
            name: name.to_string(),
            reason,
        }
    }
    let mut clusters = Vec::new();
    for (name, r) in res.of(TypeUrl::Cluster).into_iter().flatten() {
        let mut c: Cluster = decode(&r.body).map_err(err("cluster", name))?;
        if let Some(eds) = c.eds_cluster_config.take() {
            let service = if eds.service_name.is_empty() {
                c.name.clone()
            } else {
                eds.service_name
            };
            let cla = match res.of(TypeUrl::Endpoint).and_then(|m| m.get(&service)) {
                Some(e) => {
                    decode::<ClusterLoadAssignment>(&e.body).map_err(err("endpoints", &service))?
                }
                None => ClusterLoadAssignment {
                    cluster_name: service,
                    ..Default::default()
                },
            };
            c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Static as i32,
            ));
            c.load_assignment = Some(ClusterLoadAssignment {
                cluster_name: c.name.clone(),
                ..cla
            });
        }
        clusters.push(c);
    }
    let mut listeners = Vec::new();
    for (name, r) in res.of(TypeUrl::Listener).into_iter().flatten() {
        let mut l: Listener = decode(&r.body).map_err(err("listener", name))?;
        let chains = l
            .filter_chains
            .iter_mut()
            .chain(l.default_filter_chain.as_mut());
        for c in chains {
            inline_routes(c, res, name)?;
        }
        listeners.push(l);
    }
    Ok(Bootstrap {
        static_resources: Some(StaticResources {
            listeners,
            clusters,
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn inline_routes(
    chain: &mut FilterChain,
    res: &ProxyResources,
    listener: &str,
) -> Result<(), BootstrapError> {
    for f in chain
        .filters
        .iter_mut()
        .filter(|f| f.name == HTTP_CONNECTION_MANAGER)
    {
        let Some(filter::ConfigType::TypedConfig(cfg)) = &f.config_type else {
            continue;
        };
        let mut hcm: HttpConnectionManager =
            decode(cfg).map_err(|reason| BootstrapError::Decode {
                kind: "listener",
                name: listener.to_string(),
                reason,
            })?;
        if let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier {
            let name = rds.route_config_name.clone();
            let r = res
                .of(TypeUrl::Route)
                .and_then(|m| m.get(&name))
                .ok_or_else(|| BootstrapError::MissingRoute {
                    listener: listener.to_string(),
                    route: name.clone(),
                })?;
            let rc: RouteConfiguration =
                decode(&r.body).map_err(|reason| BootstrapError::Decode {
                    kind: "route configuration",
                    name,
                    reason,
                })?;
            hcm.route_specifier = Some(RouteSpecifier::RouteConfig(rc));
            *f = Filter {
                name: f.name.clone(),
                config_type: Some(filter::ConfigType::TypedConfig(any(&hcm))),
            };
        }
    }
    Ok(())
}
