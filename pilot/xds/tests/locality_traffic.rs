//! Locality load balancing carries traffic as its load assignment says
//! (issue 14): one real Envoy plays sleep (in us-east-1a) with its generated
//! listener, cluster and load assignment (made STATIC: no capture, no ADS),
//! in front of two servers of one service, one in sleep's zone and one in
//! us-west. Failover (priority 0 for the same zone) keeps every request in
//! the zone; `distribute` sends every request to us-west.

mod support;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener},
    time::Duration,
};

use envoy_types::pb::envoy::config::{
    bootstrap::v3::{bootstrap::StaticResources, Bootstrap},
    cluster::v3::{cluster, Cluster},
    endpoint::v3::ClusterLoadAssignment,
    listener::v3::Listener,
};
use rudder_model::*;
use rudder_xds::{fixtures::*, Generator, TypeUrl};
use support::loopback::*;
use support::NS;

const VIP_LISTENER: &str = "198.19.1.5_8000";

/// Answers every HTTP request with `name`.
fn server(l: TcpListener, name: &'static str) {
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            if s.read(&mut buf).is_err() {
                continue;
            }
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{name}",
                    name.len()
                )
                .as_bytes(),
            );
        }
    });
}

/// Two servers on one port: `near` on 127.0.0.2, `far` on 127.0.0.3.
fn servers() -> u16 {
    for _ in 0..20 {
        let near = TcpListener::bind("127.0.0.2:0").unwrap();
        let port = near.local_addr().unwrap().port();
        if let Ok(far) = TcpListener::bind(SocketAddr::from(([127, 0, 0, 3], port))) {
            server(near, "near");
            server(far, "far");
            return port;
        }
    }
    panic!("no port free on both addresses");
}

fn mesh(port: u16, tp: TrafficPolicy) -> std::sync::Arc<Snapshot> {
    let pod = |name: &str, ip: &str, loc: &str| {
        mk_pod(
            name,
            NS,
            ip,
            &[("app", "web"), (locality::LOCALITY_LABEL, loc)],
        )
    };
    SnapshotBuilder::new()
        .service(mk_service(
            "web",
            NS,
            "198.19.1.5",
            vec![mk_port("http", 8000, port)],
            &[("app", "web")],
        ))
        .pod(pod("web-near", "127.0.0.2", "us-east.us-east-1a"))
        .pod(pod("web-far", "127.0.0.3", "us-west.us-west-1a"))
        .pod(mk_pod(
            "sleep",
            NS,
            "198.18.1.9",
            &[
                ("app", "sleep"),
                (locality::LOCALITY_LABEL, "us-east.us-east-1a"),
            ],
        ))
        .policy(mk_policy(NS, &fqdn("web", NS), &[], tp))
        .build()
}

/// The answers of 20 requests through sleep's generated config.
fn answers(bin: &std::path::Path, tp: TrafficPolicy) -> Vec<String> {
    let port = servers();
    let s = mesh(port, tp);
    let res = Generator::new(s.clone()).generate(&mk_proxy(&s, NS, "sleep"));
    let host = fqdn("web", NS);
    let name = format!("outbound|8000||{host}");
    let mut c: Cluster = decode(&res.by_type[&TypeUrl::Cluster][&name].body);
    let cla: ClusterLoadAssignment = decode(&res.by_type[&TypeUrl::Endpoint][&name].body);
    c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
        cluster::DiscoveryType::Static as i32,
    ));
    c.eds_cluster_config = None;
    c.load_assignment = Some(cla);
    let mut l: Listener = decode(&res.by_type[&TypeUrl::Listener][VIP_LISTENER].body);
    inline_routes(&mut l.filter_chains[0], &res);
    let listen = free_port();
    l.address = Some(socket(SocketAddr::from(([127, 0, 0, 1], listen))));
    l.bind_to_port = None;
    let bootstrap = Bootstrap {
        static_resources: Some(StaticResources {
            listeners: vec![l],
            clusters: vec![c],
            ..Default::default()
        }),
        ..Default::default()
    };
    let (dir, _envoy) = run_envoy(bin, &bootstrap, listen, &host);
    (0..20)
        .map(|_| {
            let out = raw_get_host(listen, "/", &host).unwrap_or_else(|e| {
                let log = std::fs::read_to_string(dir.path().join("envoy.log"));
                panic!("{e}\n{}", log.unwrap_or_default())
            });
            out.rsplit("\r\n\r\n").next().unwrap_or("").to_string()
        })
        .collect()
}

#[test]
fn failover_keeps_traffic_in_the_zone_and_distribute_moves_it() {
    let Some(bin) = rudder_test_support::envoy_bin(
        "failover_keeps_traffic_in_the_zone_and_distribute_moves_it",
    ) else {
        return;
    };
    let failover = TrafficPolicy {
        locality_lb: Some(LocalityLb {
            enabled: true,
            ..Default::default()
        }),
        outlier_detection: Some(OutlierDetection {
            consecutive_5xx_errors: Some(5),
            ..Default::default()
        }),
        ..Default::default()
    };
    let got = answers(&bin, failover);
    assert!(got.iter().all(|a| a == "near"), "{got:?}");

    let distribute = TrafficPolicy {
        locality_lb: Some(LocalityLb {
            enabled: true,
            distribute: vec![("us-east/*".into(), [("us-west/*".into(), 100)].into())],
            ..Default::default()
        }),
        ..Default::default()
    };
    let got = answers(&bin, distribute);
    assert!(got.iter().all(|a| a == "far"), "{got:?}");

    // Without a setting, both localities share the traffic.
    let got = answers(&bin, TrafficPolicy::default());
    assert!(
        got.iter().any(|a| a == "near") && got.iter().any(|a| a == "far"),
        "{got:?}"
    );
}
