//! Generation benchmark (prints numbers; not a test):
//! `cargo run --release -p rudder-xds --features testing --example genbench [-- ITERATIONS]`.
//!
//! A synthetic mesh: 1000 services in 10 namespaces, each with an HTTP port
//! (every 10th also a TCP port), 3 versions each (3000 pods) and a
//! DestinationRule with subsets v1..v3, plus 300 route tables (90/10 splits,
//! every third with a header match to v3). Per proxy it reports the median
//! time of
//!   - warm: `generate` on a Generator that already served a proxy of the
//!     same namespace (shared resources reused: what pilot does for every
//!     proxy after the first),
//!   - cold: a fresh Generator, then `generate`,
//!   - floor: prost-encoding the same resources (`encode_to_vec` of every
//!     `Any`), measured in the same run.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use prost::Message;
use rudder_model::{HttpMatch, HttpRoute, Snapshot, StringMatch, TrafficPolicy};
use rudder_xds::{check_consistency, fixtures::*, Generator, ProxyResources, TypeUrl};

const NAMESPACES: usize = 10;
const SERVICES: usize = 1000;
const ROUTE_TABLES: usize = 300;

fn mesh() -> Arc<Snapshot> {
    let mut b = SnapshotBuilder::new();
    for i in 0..SERVICES {
        let ns = format!("ns{}", i % NAMESPACES);
        let name = format!("svc{i}");
        let mut ports = vec![mk_port("http", 9080, 9080)];
        if i % 10 == 0 {
            ports.push(mk_port("tcp-redis", 6379, 6379));
        }
        let vip = format!("198.19.{}.{}", i / 250, i % 250 + 1);
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
        if i < ROUTE_TABLES {
            let mut http = Vec::new();
            if i % 3 == 0 {
                http.push(HttpRoute {
                    matches: vec![HttpMatch {
                        headers: [("end-user".to_string(), StringMatch::Exact("jason".into()))]
                            .into(),
                        ..Default::default()
                    }],
                    ..mk_http_route(vec![dest(&host, Some("v3"), 100)])
                });
            }
            http.push(mk_http_route(vec![
                dest(&host, Some("v1"), 90),
                dest(&host, Some("v2"), 10),
            ]));
            b = b.route_table(mk_route_table(&ns, &name, &[&host], http, vec![]));
        }
    }
    b.build()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed(), out)
}

fn encode_all(r: &ProxyResources) -> usize {
    r.by_type
        .values()
        .flat_map(|m| m.values())
        .map(|res| res.body.encode_to_vec().len())
        .sum()
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(21);
    let (build, snapshot) = time(mesh);
    println!(
        "mesh: {} services, {} pods, {} route tables, {} destination policies (fixture build + seal {:.1} ms)",
        snapshot.services.len(),
        snapshot.workloads.len(),
        snapshot.route_tables.len(),
        snapshot.destination_rules.all().count(),
        build.as_secs_f64() * 1e3
    );
    let first = mk_proxy(&snapshot, "ns0", "svc0-v1");
    let proxies: Vec<_> = (0..iterations)
        .map(|i| mk_proxy(&snapshot, "ns0", &format!("svc{}-v2", i * 10)))
        .collect();

    let mut cold = Vec::new();
    for p in proxies.iter().take(iterations.min(7)) {
        let (d, _) = time(|| Generator::new(snapshot.clone()).generate(p));
        cold.push(d);
    }

    let g = Generator::new(snapshot.clone());
    let (first_d, _) = time(|| g.generate(&first));
    let mut warm = Vec::new();
    let mut floor = Vec::new();
    let mut last = None;
    for p in &proxies {
        let (d, res) = time(|| g.generate(p));
        warm.push(d);
        let (e, _) = time(|| encode_all(&res));
        floor.push(e);
        last = Some(res);
    }
    let res = last.expect("at least one iteration");
    check_consistency(&res).expect("benchmark resources are consistent");
    let count = |t| res.of(t).map_or(0, |m| m.len());
    let bytes = encode_all(&res);
    println!(
        "per proxy: {} clusters, {} EDS, {} listeners, {} route configs ({} virtual hosts in 9080), {:.1} MB encoded",
        count(TypeUrl::Cluster),
        count(TypeUrl::Endpoint),
        count(TypeUrl::Listener),
        count(TypeUrl::Route),
        res.of(TypeUrl::Route)
            .and_then(|m| m.get("9080"))
            .and_then(|r| rudder_xds::resource_to_json(r).ok())
            .and_then(|j| j["virtualHosts"].as_array().map(Vec::len))
            .unwrap_or(0),
        bytes as f64 / 1e6
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("medians over {} proxies:", proxies.len());
    println!(
        "  warm (shared resources reused): {:8.3} ms",
        ms(median(warm))
    );
    println!(
        "  floor (prost-encode the same resources): {:8.3} ms",
        ms(median(floor))
    );
    println!(
        "  cold (fresh Generator, {} runs): {:8.3} ms",
        cold.len(),
        ms(median(cold))
    );
    println!(
        "  first proxy on a fresh Generator (fills the caches): {:8.3} ms",
        ms(first_d)
    );
}
