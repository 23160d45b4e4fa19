//! What one VirtualService change costs a sidecar (issue 13, item 3):
//! `cargo run -p rudder-xds --features testing --example route_change [-- SERVICES]`.
//!
//! Istio's load-test shape: SERVICES (default 1000) services in 10 namespaces,
//! each with an HTTP port 9080 and a ClusterIP, 3 versions each, a
//! DestinationRule with subsets v1..v3 and a 90/10 VirtualService. Generates a
//! sidecar's resources, changes svc0's VirtualService to 80/20, generates
//! again, and prints per type the resources whose version changed (what Delta
//! sends, and what a SotW RDS/EDS response needs to carry) with their encoded
//! bytes, beside the size of the whole type.
//!
//! Before per-service route configurations, the change re-sent route
//! configuration "9080" holding every host on the port; now it re-sends
//! `svc0.ns0.svc.cluster.local:9080` alone.

use std::sync::Arc;

use rudder_model::{Snapshot, TrafficPolicy};
use rudder_xds::{fixtures::*, Generator, ProxyResources, TypeUrl};

const NAMESPACES: usize = 10;

fn mesh(services: usize, changed_split: u32) -> Arc<Snapshot> {
    let mut b = SnapshotBuilder::new();
    for i in 0..services {
        let ns = format!("ns{}", i % NAMESPACES);
        let name = format!("svc{i}");
        let vip = format!("198.19.{}.{}", i / 250, i % 250 + 1);
        let ports = vec![mk_port("http", 9080, 9080)];
        b = b.service(mk_service(&name, &ns, &vip, ports, &[("app", &name)]));
        for v in 1..=3 {
            let n = i * 3 + v;
            let ip = format!("198.18.{}.{}", n / 250, n % 250 + 1);
            let version = format!("v{v}");
            b = b.pod(mk_pod(
                &format!("{name}-{version}"),
                &ns,
                &ip,
                &[("app", &name), ("version", &version)],
            ));
        }
        let host = fqdn(&name, &ns);
        b = b.policy(mk_policy(
            &ns,
            &host,
            &["v1", "v2", "v3"],
            TrafficPolicy::default(),
        ));
        let v1 = if i == 0 { changed_split } else { 90 };
        let http = vec![mk_http_route(vec![
            dest(&host, Some("v1"), v1),
            dest(&host, Some("v2"), 100 - v1),
        ])];
        b = b.route_table(mk_route_table(&ns, &name, &[&host], http, vec![]));
    }
    b.build()
}

fn bytes(r: &rudder_xds::Resource) -> usize {
    r.body.value.len()
}

fn main() {
    let services: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let (before, after) = (mesh(services, 90), mesh(services, 80));
    let proxy = mk_proxy(&before, "ns1", "svc1-v1");
    let a: ProxyResources = Generator::new(before).generate(&proxy);
    let b: ProxyResources = Generator::new(after).generate(&proxy);
    println!(
        "mesh: {services} services in {NAMESPACES} namespaces, {} pods, a DestinationRule and a 90/10 VirtualService each",
        services * 3
    );
    println!("change: svc0's VirtualService 90/10 -> 80/20; sidecar svc1-v1.ns1");
    println!(
        "{:<5} {:>9} {:>12} {:>9} {:>12}  changed names",
        "type", "resources", "bytes", "changed", "bytes"
    );
    for t in [
        TypeUrl::Cluster,
        TypeUrl::Endpoint,
        TypeUrl::Listener,
        TypeUrl::Route,
    ] {
        let empty = Default::default();
        let (ma, mb) = (a.of(t).unwrap_or(&empty), b.of(t).unwrap_or(&empty));
        let changed: Vec<(&String, usize)> = mb
            .iter()
            .filter(|(name, r)| ma.get(name).is_none_or(|old| old.version != r.version))
            .map(|(name, r)| (name, bytes(r)))
            .collect();
        let removed = ma.keys().filter(|n| !mb.contains_key(n)).count();
        let total: usize = mb.values().map(|r| bytes(r)).sum();
        let names: Vec<String> = changed
            .iter()
            .take(3)
            .map(|(n, b)| format!("{n} ({b} B)"))
            .collect();
        println!(
            "{:<5} {:>9} {:>12} {:>9} {:>12}  {}{}",
            t.short(),
            mb.len(),
            total,
            changed.len() + removed,
            changed.iter().map(|(_, b)| b).sum::<usize>(),
            names.join(", "),
            if changed.len() > 3 { ", ..." } else { "" }
        );
    }
    if let Some(port) = b.of(TypeUrl::Route).and_then(|m| m.get("9080")) {
        println!(
            "route configuration \"9080\" (hosts without a VIP + allow_any): {} B",
            bytes(port)
        );
    }
}
