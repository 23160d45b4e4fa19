//! EDS: a ClusterLoadAssignment per outbound EDS cluster, from the ready
//! endpoints of the service port, narrowed to the subset's labels.
//!
//! Endpoints carry only an address: no labels, names or anything secret reach
//! Envoy. An endpoint-only change in the model changes these resources and
//! nothing else.

use std::{net::IpAddr, sync::Arc};

use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint as PbEndpoint, LbEndpoint, LocalityLbEndpoints,
};
use rudder_model::{selects, Endpoint, Labels};

use crate::{
    common::{resource, socket_address},
    version::Version,
    Resource,
};

/// The addresses a cluster balances over: ready endpoints matching the subset
/// labels, sorted and deduplicated (the model's order is not a contract).
pub(crate) fn select(endpoints: &[Endpoint], subset: Option<&Labels>) -> Vec<(IpAddr, u16)> {
    let mut out: Vec<(IpAddr, u16)> = endpoints
        .iter()
        .filter(|e| e.ready && subset.is_none_or(|s| selects(s, &e.labels)))
        .map(|e| (e.address, e.port))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The load assignment for `cluster_name`.
pub(crate) fn load_assignment(
    cluster_name: &str,
    addrs: &[(IpAddr, u16)],
) -> ClusterLoadAssignment {
    let lb_endpoints = addrs
        .iter()
        .map(|(ip, port)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(PbEndpoint {
                address: Some(socket_address(&ip.to_string(), *port)),
                ..Default::default()
            })),
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
