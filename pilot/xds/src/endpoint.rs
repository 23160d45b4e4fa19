//! EDS: a ClusterLoadAssignment per outbound EDS cluster, from the ready
//! endpoints of the service port, narrowed to the subset's labels.
//!
//! Endpoints carry an address and, for meshed pods, the one label auto mTLS
//! needs (`envoy.transport_socket_match: {tlsMode: istio}`, which the
//! cluster's `transport_socket_matches` select on); no other labels, names or
//! anything secret reach Envoy.

use std::{net::IpAddr, sync::Arc};

use envoy_types::pb::envoy::config::{
    core::v3::Metadata,
    endpoint::v3::{
        lb_endpoint, ClusterLoadAssignment, Endpoint as PbEndpoint, LbEndpoint, LocalityLbEndpoints,
    },
};
use rudder_model::{selects, Endpoint, Labels};

use crate::{
    common::{resource, socket_address},
    tls::{is_meshed, string_struct, TLS_MODE_ISTIO, TRANSPORT_SOCKET_MATCH_KEY},
    version::Version,
    Resource,
};

/// The ready endpoints of a cluster: those matching the subset labels.
pub(crate) fn members<'a>(endpoints: &'a [Endpoint], subset: Option<&Labels>) -> Vec<&'a Endpoint> {
    endpoints
        .iter()
        .filter(|e| e.ready && subset.is_none_or(|s| selects(s, &e.labels)))
        .collect()
}

/// The addresses a cluster balances over (and whether each is meshed):
/// ready endpoints matching the subset labels, sorted and deduplicated (the
/// model's order is not a contract).
pub(crate) fn select(endpoints: &[Endpoint], subset: Option<&Labels>) -> Vec<(IpAddr, u16, bool)> {
    let mut out: Vec<(IpAddr, u16, bool)> = members(endpoints, subset)
        .into_iter()
        .map(|e| (e.address, e.port, is_meshed(e)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The load assignment for `cluster_name`.
pub(crate) fn load_assignment(
    cluster_name: &str,
    addrs: &[(IpAddr, u16, bool)],
) -> ClusterLoadAssignment {
    let lb_endpoints = addrs
        .iter()
        .map(|(ip, port, meshed)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(PbEndpoint {
                address: Some(socket_address(&ip.to_string(), *port)),
                ..Default::default()
            })),
            metadata: meshed.then(|| Metadata {
                filter_metadata: [(
                    TRANSPORT_SOCKET_MATCH_KEY.to_string(),
                    string_struct(&[("tlsMode", TLS_MODE_ISTIO)]),
                )]
                .into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: cluster_name.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The EDS resource for `cluster_name`, versioned by the selected addresses.
pub(crate) fn eds_resource(
    cluster_name: &str,
    endpoints: &[Endpoint],
    subset: Option<&Labels>,
) -> Arc<Resource> {
    let addrs = select(endpoints, subset);
    let version = Version::new("eds").with(cluster_name).with(&addrs);
    resource(version, &load_assignment(cluster_name, &addrs))
}
