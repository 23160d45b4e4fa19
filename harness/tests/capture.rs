//! Capture through the real proxy-init binary: the harness writes no rules of
//! its own, it runs proxy-init inside the pod, as the init container would.

use std::net::Ipv4Addr;
use std::time::Duration;

use rudder_harness::{workspace_bin, EchoConfig, HttpRequest, Net};
use rudder_test_support::{check_netns, prerequisite};

/// The host's iptables rules without counters and timestamps.
fn host_rules() -> String {
    let out = std::process::Command::new("iptables-save")
        .output()
        .expect("iptables-save runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(" [").next().unwrap_or(l).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn proxy_init_in_a_pod_captures_inbound_and_service_traffic_to_the_proxy_port() {
    let Some(()) = prerequisite("capture", check_netns()) else {
        return;
    };
    let Some(proxy_init) = prerequisite(
        "capture",
        workspace_bin("proxy-init").map_err(|e| e.to_string()),
    ) else {
        return;
    };
    let before = host_rules();
    let net = Net::for_test("capture").unwrap();
    let app = net.add_pod("app").unwrap();
    let peer = net.add_pod("peer").unwrap();
    // Stand-ins: the "proxy" on 15000 and the app on 9080, both in the app pod.
    let proxy = app.start_echo(EchoConfig::new(15000, "captured")).unwrap();
    let _app_echo = app.start_echo(EchoConfig::new(9080, "app")).unwrap();
    let _peer_echo = peer.start_echo(EchoConfig::new(9080, "peer")).unwrap();
    let t = Duration::from_secs(5);

    let direct = peer
        .http_get(&HttpRequest::get((app.ip(), 9080).into(), "/"), t)
        .unwrap();
    assert_eq!(
        direct.body, "app",
        "before capture the app answers itself: {direct:?}"
    );

    app.capture(&proxy_init, &[]).unwrap();

    let inbound = peer
        .http_get(&HttpRequest::get((app.ip(), 9080).into(), "/"), t)
        .unwrap();
    assert_eq!(
        inbound.body, "captured",
        "inbound traffic must reach the proxy port: {inbound:?}"
    );
    // A Service VIP exists only as a match inside the pod; the service route
    // lets connect() get as far as nat OUTPUT, which sends it to the proxy.
    let vip = net.service_cidr().nth(10).unwrap();
    let outbound = app
        .http_get(
            &HttpRequest::get((vip, 80).into(), "/").host("reviews:80"),
            t,
        )
        .unwrap();
    assert_eq!(
        outbound.body, "captured",
        "outbound traffic to a VIP must reach the proxy port: {outbound:?}"
    );
    assert_eq!(proxy.count(), 2);
    // The peer is not captured: its rules are its own.
    let uncaptured = peer
        .http_get(&HttpRequest::get((peer.ip(), 9080).into(), "/"), t)
        .unwrap();
    assert_eq!(uncaptured.body, "peer");
    // Nothing outside the CIDRs becomes reachable through capture.
    let outside = app
        .enter(|| {
            std::net::TcpStream::connect_timeout(&(Ipv4Addr::new(192, 0, 2, 1), 80).into(), t)
                .is_err()
        })
        .unwrap();
    assert!(outside);
    assert_eq!(host_rules(), before, "the host's iptables rules changed");
}
