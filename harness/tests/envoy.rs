//! Envoy in a pod, as UID 1337, proxying to an echo upstream in another pod.

use std::time::Duration;

use rudder_harness::{EchoConfig, EnvoySpec, HttpRequest, LoadSpec, Net};
use rudder_test_support::{check_envoy, check_netns, prerequisite};
use serde_json::json;

/// A tiny static bootstrap: listener `ingress` on `listen`:8080, routing
/// everything to the static cluster `echo` at `upstream`.
fn bootstrap(listen: std::net::Ipv4Addr, upstream: std::net::SocketAddr) -> String {
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15009}}},
        "static_resources": {
            "listeners": [{
                "name": "ingress",
                "address": {"socket_address": {"address": listen.to_string(), "port_value": 8080}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress",
                        "route_config": {"virtual_hosts": [{
                            "name": "all", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "echo"}}]
                        }]},
                        "http_filters": [{
                            "name": "envoy.filters.http.router",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                        }]
                    }
                }]}]
            }],
            "clusters": [{
                "name": "echo", "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": "echo", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                    "socket_address": {"address": upstream.ip().to_string(), "port_value": upstream.port()}
                }}}]}]}
            }]
        }
    })
    .to_string()
}

#[test]
fn envoy_as_1337_in_a_pod_proxies_to_an_echo_upstream_in_another_pod() {
    let Some(()) = prerequisite("envoy_in_pod", check_netns()) else {
        return;
    };
    let Some(_) = prerequisite("envoy_in_pod", check_envoy()) else {
        return;
    };
    let net = Net::for_test("envoy").unwrap();
    let proxy = net.add_pod("proxy").unwrap();
    let upstream = net.add_pod("reviews-v1").unwrap();
    let client = net.add_pod("client").unwrap();
    let echo = upstream
        .start_echo(EchoConfig::new(9080, "reviews-v1").echo_header("end-user"))
        .unwrap();

    let envoy = proxy
        .spawn_envoy(EnvoySpec::new(bootstrap(proxy.ip(), echo.addr())))
        .unwrap();
    envoy.wait_live(Duration::from_secs(30)).unwrap();
    envoy
        .wait_listener("ingress", Duration::from_secs(10))
        .unwrap();
    let pid = envoy.process().pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().skip(1).all(|u| u == "1337")),
        "{status}"
    );

    let request = HttpRequest::get((proxy.ip(), 8080).into(), "/").header("end-user", "jason");
    let report = client
        .http_load(&LoadSpec {
            timeout: Duration::from_secs(20),
            ..LoadSpec::new(request, 10)
        })
        .unwrap();
    assert_eq!(
        report.successes(),
        10,
        "failures: {:?}\nenvoy log:\n{}",
        report.failures(),
        envoy.process().read_log()
    );
    assert_eq!(report.by_body().get("reviews-v1"), Some(&10));
    assert_eq!(report.outcomes[0].header("x-echo-end-user"), Some("jason"));
    assert!(
        report.outcomes[0]
            .header("x-envoy-upstream-service-time")
            .is_some(),
        "not served through Envoy"
    );
    assert_eq!(echo.count(), 10);
    // The upstream saw Envoy's pod as the peer.
    assert_eq!(echo.requests()[0].peer.ip(), proxy.ip());
    let stats = envoy
        .admin_get("/stats?filter=cluster.echo.upstream_rq_completed")
        .unwrap();
    assert!(
        stats.contains("cluster.echo.upstream_rq_completed: 10"),
        "{stats}"
    );
}
