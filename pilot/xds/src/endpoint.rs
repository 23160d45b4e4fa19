//! EDS: a ClusterLoadAssignment per outbound EDS cluster, from the ready
//! endpoints of the service port, narrowed to the subset's labels, grouped
//! by locality (one `LocalityLbEndpoints` per region/zone/subzone).
//!
//! Endpoints carry an address and, for meshed pods, the one label auto mTLS
//! needs (`envoy.transport_socket_match: {tlsMode: istio}`, which the
//! cluster's `transport_socket_matches` select on); no other labels, names or
//! anything secret reach Envoy.
//!
//! Where the cluster's policy sets `localityLbSetting` (enabled), the groups
//! get Istio's priorities and weights relative to the client proxy's
//! locality (`ApplyLocalityLoadBalancer`), so such an assignment is built
//! per proxy locality (the generator keys it so):
//!
//! ```text
//!  distribute set        → weights: the first rule whose `from` covers the
//!                          proxy splits each `to` weight over the groups it
//!                          covers (by their endpoint counts); others emptied
//!  else, with outlier    → failoverPriority: endpoints split by how many of
//!  detection (failover)    the labels they share with the proxy, then
//!                          (failover, or no failoverPriority) priority by
//!                          locality: 0 subzone, 1 zone, 2 region, 3 else,
//!                          4 a region other than the proxy's failover `to`
//! ```

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use envoy_types::pb::envoy::config::{
    core::v3::{Locality as PbLocality, Metadata},
    endpoint::v3::{
        lb_endpoint, ClusterLoadAssignment, Endpoint as PbEndpoint, LbEndpoint, LocalityLbEndpoints,
    },
};
use rudder_model::{selects, Endpoint, Labels, Locality, LocalityLb};

use crate::{
    common::{resource, socket_address, u32v},
    tls::{is_meshed, string_struct, TLS_MODE_ISTIO, TRANSPORT_SOCKET_MATCH_KEY},
    version::Version,
    Resource,
};

/// An address a cluster balances over, whether it is meshed, and its
/// load-balancing weight (0: unset).
type Addr = (IpAddr, u16, bool, u32);

/// The ready endpoints of a cluster: those matching the subset labels.
pub(crate) fn members<'a>(endpoints: &'a [Endpoint], subset: Option<&Labels>) -> Vec<&'a Endpoint> {
    endpoints
        .iter()
        .filter(|e| e.ready && subset.is_none_or(|s| selects(s, &e.labels)))
        .collect()
}

/// Locality load balancing for one cluster as one proxy sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalityFor<'a> {
    /// The cluster's setting (enabled).
    pub setting: &'a LocalityLb,
    /// Whether the cluster has outlier detection: Istio applies failover
    /// (priorities) only then, since Envoy would never leave priority 0.
    pub failover: bool,
    /// The proxy's locality.
    pub proxy: &'a Locality,
    /// The proxy's values (its locality's topology labels added) of the
    /// labels `failoverPriority` names: all the ranks read.
    pub proxy_labels: &'a Labels,
}

/// One `LocalityLbEndpoints`.
#[derive(Debug, Hash)]
struct Group {
    locality: Locality,
    priority: u32,
    weight: Option<u32>,
    addrs: Vec<Addr>,
}

/// The groups of a cluster: ready endpoints matching the subset labels, by
/// locality (and `failoverPriority` rank), sorted and deduplicated (the
/// model's order is not a contract), with locality load balancing applied.
fn groups(
    endpoints: &[Endpoint],
    subset: Option<&Labels>,
    lb: Option<LocalityFor<'_>>,
) -> Vec<Group> {
    // (Istio skips ranks for a proxy without labels; its proxies always
    // carry the cluster label it adds, so ranks always apply.)
    let by_labels = lb.filter(|l| {
        l.failover && l.setting.distribute.is_empty() && !l.setting.failover_priority.is_empty()
    });
    let mut by: BTreeMap<(Locality, u32), Vec<Addr>> = BTreeMap::new();
    for e in members(endpoints, subset) {
        let rank = by_labels.map_or(0, |l| label_rank(l, e));
        by.entry((e.locality.clone(), rank)).or_default().push((
            e.address,
            e.port,
            is_meshed(e),
            e.weight,
        ));
    }
    let mut out: Vec<Group> = by
        .into_iter()
        .map(|((locality, priority), mut addrs)| {
            addrs.sort();
            addrs.dedup();
            Group {
                weight: lb.map(|_| u32::try_from(addrs.len()).unwrap_or(u32::MAX)),
                locality,
                priority,
                addrs,
            }
        })
        .collect();
    let Some(l) = lb else { return out };
    if !l.setting.distribute.is_empty() {
        distribute(&mut out, l);
    } else if l.failover {
        compact(&mut out);
        if l.setting.failover_priority.is_empty() || !l.setting.failover.is_empty() {
            by_locality(&mut out, l);
        }
    }
    out
}

/// Istio's `applyFailoverPriorityPerLocality`: 0 when the endpoint has the
/// proxy's value of every `failoverPriority` label (`label=value`: that
/// value), else `n - i` for the first label `i` that differs.
fn label_rank(l: LocalityFor<'_>, e: &Endpoint) -> u32 {
    let labels = e.locality.augment(&e.labels);
    let n = l.setting.failover_priority.len();
    for (i, entry) in l.setting.failover_priority.iter().enumerate() {
        let (label, fixed) = match entry.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (entry.as_str(), None),
        };
        let want = fixed.or_else(|| l.proxy_labels.get(label).map(String::as_str));
        if want.unwrap_or("") != labels.get(label).map_or("", String::as_str) {
            return u32::try_from(n - i).unwrap_or(u32::MAX);
        }
    }
    0
}

/// Istio's `applyLocalityFailover`: a group's priority becomes its earlier
/// priority times 5 plus its locality's distance from the proxy (4: a
/// region other than the `to` of the failover rule from the proxy's region).
fn by_locality(groups: &mut [Group], l: LocalityFor<'_>) {
    for g in groups.iter_mut() {
        let mut p = l.proxy.priority_of(&g.locality);
        if p == 3 {
            if let Some((_, to)) = l
                .setting
                .failover
                .iter()
                .find(|(from, _)| *from == l.proxy.region)
            {
                if g.locality.region != *to {
                    p = 4;
                }
            }
        }
        g.priority = g.priority * 5 + p;
    }
    compact(groups);
}

/// Priorities from 0 without gaps, in the same order (Envoy's rule).
fn compact(groups: &mut [Group]) {
    let mut used: Vec<u32> = groups.iter().map(|g| g.priority).collect();
    used.sort_unstable();
    used.dedup();
    for g in groups.iter_mut() {
        g.priority = u32::try_from(used.partition_point(|&p| p < g.priority)).unwrap_or(u32::MAX);
    }
}

/// Istio's `applyLocalityWeights`: the first `distribute` rule whose `from`
/// covers the proxy gives each `to` pattern's weight to the groups it covers
/// (not already taken by an earlier pattern), split by their endpoint
/// counts and rounded up; groups no pattern covers get no endpoints.
fn distribute(groups: &mut [Group], l: LocalityFor<'_>) {
    let Some((_, to)) = l
        .setting
        .distribute
        .iter()
        .find(|(from, _)| l.proxy.matches(from))
    else {
        return;
    };
    let mut unmatched: Vec<bool> = vec![true; groups.len()];
    for (pattern, weight) in to {
        let hits: Vec<usize> = (0..groups.len())
            .filter(|&i| unmatched[i] && groups[i].locality.matches(pattern))
            .collect();
        let total: u64 = hits
            .iter()
            .map(|&i| u64::from(groups[i].weight.unwrap_or(1)))
            .sum();
        for &i in &hits {
            unmatched[i] = false;
            let share = u64::from(groups[i].weight.unwrap_or(1)) * u64::from(*weight);
            let w = share.div_ceil(total.max(1));
            if w > 0 {
                groups[i].weight = Some(u32::try_from(w).unwrap_or(u32::MAX));
            }
        }
    }
    for (g, unmatched) in groups.iter_mut().zip(unmatched) {
        if unmatched {
            g.addrs.clear();
        }
    }
}

/// The load assignment for `cluster_name`.
fn load_assignment(cluster_name: &str, groups: &[Group]) -> ClusterLoadAssignment {
    let endpoints = groups
        .iter()
        .map(|g| LocalityLbEndpoints {
            locality: (!g.locality.is_empty()).then(|| PbLocality {
                region: g.locality.region.clone(),
                zone: g.locality.zone.clone(),
                sub_zone: g.locality.subzone.clone(),
            }),
            lb_endpoints: g.addrs.iter().map(lb_endpoint).collect(),
            load_balancing_weight: g.weight.and_then(u32v),
            priority: g.priority,
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: cluster_name.to_string(),
        endpoints,
        ..Default::default()
    }
}

fn lb_endpoint((ip, port, meshed, weight): &Addr) -> LbEndpoint {
    LbEndpoint {
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
        load_balancing_weight: (*weight > 0).then(|| u32v(*weight)).flatten(),
        ..Default::default()
    }
}

/// The EDS resource for `cluster_name`, versioned by its groups (addresses,
/// localities, priorities, weights).
pub(crate) fn eds_resource(
    cluster_name: &str,
    endpoints: &[Endpoint],
    subset: Option<&Labels>,
    lb: Option<LocalityFor<'_>>,
) -> Arc<Resource> {
    let mut groups = groups(endpoints, subset, lb);
    if groups.is_empty() {
        // No endpoints: one empty group, as before localities.
        groups.push(Group {
            locality: Locality::default(),
            priority: 0,
            weight: None,
            addrs: Vec::new(),
        });
    }
    let version = Version::new("eds").with(cluster_name).with(&groups);
    resource(version, &load_assignment(cluster_name, &groups))
}
