//! Generated resources → a static Envoy bootstrap, so `envoy --mode validate`
//! (which checks static resources only) can judge them: EDS clusters become
//! STATIC with their load assignment inlined, RDS route configurations are
//! inlined into the HCMs naming them, SDS secrets (pilot's `kubernetes://`
//! credentials) become static secrets that the TLS contexts name without a
//! config source, and nothing refers to ADS.

use envoy_types::pb::envoy::{
    config::{
        bootstrap::v3::{bootstrap::StaticResources, Bootstrap},
        cluster::v3::{cluster, Cluster},
        core::v3::{config_source, transport_socket, ConfigSource, TransportSocket},
        endpoint::v3::ClusterLoadAssignment,
        listener::v3::{filter, Filter, FilterChain, Listener},
        route::v3::RouteConfiguration,
    },
    extensions::{
        filters::network::http_connection_manager::v3::{
            http_connection_manager::RouteSpecifier, HttpConnectionManager,
        },
        transport_sockets::tls::v3::{
            common_tls_context::ValidationContextType, CommonTlsContext, DownstreamTlsContext,
            Secret, UpstreamTlsContext,
        },
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
        if let Some(ts) = c.transport_socket.as_mut() {
            static_secret_refs(ts);
        }
        for m in &mut c.transport_socket_matches {
            if let Some(ts) = m.transport_socket.as_mut() {
                static_secret_refs(ts);
            }
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
            if let Some(ts) = c.transport_socket.as_mut() {
                static_secret_refs(ts);
            }
        }
        listeners.push(l);
    }
    let mut secrets = Vec::new();
    for (name, r) in res.of(TypeUrl::Secret).into_iter().flatten() {
        secrets.push(decode::<Secret>(&r.body).map_err(err("secret", name))?);
    }
    Ok(Bootstrap {
        static_resources: Some(StaticResources {
            listeners,
            clusters,
            secrets,
        }),
        ..Default::default()
    })
}

/// Secrets a TLS context reads over ADS are named without a config source
/// (static secrets of the bootstrap) in a TLS transport socket.
fn static_secret_refs(ts: &mut TransportSocket) {
    let Some(transport_socket::ConfigType::TypedConfig(cfg)) = ts.config_type.as_mut() else {
        return;
    };
    fn strip(common: &mut CommonTlsContext) {
        let is_ads = |c: &Option<ConfigSource>| {
            matches!(
                c.as_ref().and_then(|c| c.config_source_specifier.as_ref()),
                Some(config_source::ConfigSourceSpecifier::Ads(_))
            )
        };
        for s in &mut common.tls_certificate_sds_secret_configs {
            if is_ads(&s.sds_config) {
                s.sds_config = None;
            }
        }
        if let Some(ValidationContextType::CombinedValidationContext(c)) =
            common.validation_context_type.as_mut()
        {
            if let Some(s) = c.validation_context_sds_secret_config.as_mut() {
                if is_ads(&s.sds_config) {
                    s.sds_config = None;
                }
            }
        }
        if let Some(ValidationContextType::ValidationContextSdsSecretConfig(s)) =
            common.validation_context_type.as_mut()
        {
            if is_ads(&s.sds_config) {
                s.sds_config = None;
            }
        }
    }
    if let Ok(mut ctx) = decode::<UpstreamTlsContext>(cfg) {
        if cfg.type_url.ends_with("UpstreamTlsContext") {
            if let Some(common) = ctx.common_tls_context.as_mut() {
                strip(common);
            }
            *cfg = any(&ctx);
            return;
        }
    }
    if cfg.type_url.ends_with("DownstreamTlsContext") {
        if let Ok(mut ctx) = decode::<DownstreamTlsContext>(cfg) {
            if let Some(common) = ctx.common_tls_context.as_mut() {
                strip(common);
            }
            *cfg = any(&ctx);
        }
    }
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
