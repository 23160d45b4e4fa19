//! Who a proxy is and which ports its own pod serves.
//!
//! The store wins over node metadata: a sidecar's metadata is what the agent
//! saw at start-up, the store is what Kubernetes (or the directory) says now.

use std::{collections::BTreeMap, net::IpAddr};

use rudder_model::{NodeId, NodeMetadata, Protocol, Proxy, Snapshot, TargetPort, Workload};

/// The proxy for a node: node id and metadata, with namespace, labels, service
/// account and IPs taken from the pod in the store when the store knows it (by
/// the node id's IP, else by any metadata IP).
pub fn resolve_proxy(snapshot: &Snapshot, id: NodeId, md: &NodeMetadata) -> Proxy {
    let mut proxy = Proxy::from_node(id, md);
    let known = proxy.ips.iter().find_map(|ip| snapshot.workload_by_ip(ip));
    if let Some(w) = known {
        proxy.namespace = w.namespace.clone();
        proxy.labels = w.labels.clone();
        proxy.service_account = w.service_account.clone();
        // The pod's locality labels (Istio's `istio-locality`, else its
        // topology labels; nodes are not watched).
        proxy.locality = rudder_model::Locality::from_labels(&w.labels);
        for ip in &w.ips {
            if !proxy.ips.contains(ip) {
                proxy.ips.push(*ip);
            }
        }
    }
    proxy
}

/// A port the proxy's own app serves, as some Service selecting the pod declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InboundPort {
    /// Where the app listens (the Service's target port).
    pub port: u16,
    /// Protocol from the Service port (the first Service by hostname wins
    /// when two disagree, as Istio takes the first).
    pub protocol: Protocol,
}

/// The ports the proxy's pod serves: target ports of the Services in the
/// proxy's namespace whose selector matches its labels. Named target ports
/// resolve through the pod's container ports, which only the store knows.
pub fn inbound_ports(snapshot: &Snapshot, proxy: &Proxy) -> Vec<InboundPort> {
    let mut ports: BTreeMap<u16, Protocol> = BTreeMap::new();
    for (_, port, protocol) in service_ports(snapshot, proxy) {
        ports.entry(port).or_insert(protocol);
    }
    ports
        .into_iter()
        .map(|(port, protocol)| InboundPort { port, protocol })
        .collect()
}

/// (Service port, target port, protocol) of every Service port selecting
/// the proxy's pod, by Service hostname.
fn service_ports(snapshot: &Snapshot, proxy: &Proxy) -> Vec<(u16, u16, Protocol)> {
    let stored = proxy.ips.iter().find_map(|ip| snapshot.workload_by_ip(ip));
    let as_workload = Workload {
        name: proxy.id.pod_name.clone(),
        namespace: proxy.namespace.clone(),
        labels: proxy.labels.clone(),
        ips: proxy.ips.clone(),
        service_account: proxy.service_account.clone(),
        ready: true,
        named_ports: stored.map(|w| w.named_ports.clone()).unwrap_or_default(),
    };
    let mut out = Vec::new();
    for svc in snapshot.services_for_workload(&as_workload) {
        for sp in &svc.ports {
            let target = match &sp.target_port {
                TargetPort::Number(n) => Some(*n),
                TargetPort::Name(name) => as_workload.named_ports.get(name).copied(),
            };
            if let Some(port) = target.filter(|p| *p != 0) {
                out.push((sp.port, port, sp.protocol));
            }
        }
    }
    out
}

/// Istio's `resolvePorts` for a gateway: a Gateway server port equal to a
/// port of a Service selecting the gateway pod listens on that port's
/// target port (Service 80 → 8080); any other number is used as written.
pub(crate) fn gateway_listen_ports(snapshot: &Snapshot, proxy: &Proxy) -> BTreeMap<u16, u16> {
    let mut out = BTreeMap::new();
    for (service_port, target, _) in service_ports(snapshot, proxy) {
        out.entry(service_port).or_insert(target);
    }
    out
}

/// The proxy's IPs, sorted and deduplicated (prefix ranges of inbound chains).
pub(crate) fn pod_ips(proxy: &Proxy) -> Vec<IpAddr> {
    let mut ips = proxy.ips.clone();
    ips.sort();
    ips.dedup();
    ips
}
