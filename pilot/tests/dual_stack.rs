//! Dual stack end to end: real IPv6 traffic captured by proxy-init in a pod's
//! network namespace, through the Envoy that pilot configures.
//!
//! ```text
//!  pods web (sidecar) and client (none) on the harness bridge, IPv4 from the
//!  harness and fd00::10 / fd00::11 added; Service web: IPv4 VIP + fd00:10::10
//!   client ─► [fd00::10]:8080 ─(web's ip6tables PREROUTING REDIRECT)─► Envoy [::]:15000
//!            ─► inbound chain of fd00::10 ─► app, from ::6
//!   web's app ─► [fd00:10::10]:8080 ─(OUTPUT REDIRECT)─► Envoy [::]:15000 ─► <v6 VIP>_8080
//!            ─► routes ─► cluster ─► the pod's endpoint ─► inbound ─► app, from 127.0.0.6
//! ```
//!
//! Needs root, iptables and Envoy: skipped with a message without them,
//! failed under CI=true.

mod support;

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use rudder_agent::XdsMode;
use rudder_harness::{Net, Pod};
use support::{
    mesh::{prerequisites, write_config, Sidecar},
    pilot::{free_port, Pilot},
};

const POD_V6: &str = "fd00::10";
const VIP_V6: &str = "fd00:10::10";

fn platform(pod: Ipv4Addr, vip: Ipv4Addr) -> String {
    format!(
        "apiVersion: v1
kind: Namespace
metadata: {{name: default}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec:
  clusterIP: {vip}
  clusterIPs: [{vip}, \"{VIP_V6}\"]
  selector: {{app: web}}
  ports: [{{name: http, port: 8080, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: default, labels: {{app: web}}}}
spec: {{serviceAccountName: web}}
status:
  phase: Running
  podIP: {pod}
  podIPs: [{{ip: {pod}}}, {{ip: \"{POD_V6}\"}}]
  conditions: [{{type: Ready, status: \"True\"}}]
---
# No certificates in this pod: plaintext inbound.
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: default}}
spec: {{mtls: {{mode: DISABLE}}}}
"
    )
}

/// An HTTP server on [::]:8080 (both families) answering with the peer
/// address it saw; runs until the pod task is dropped.
fn serve_peer(pod: &Pod) -> rudder_harness::PodTask<()> {
    let (task, ()) = pod
        .spawn_task(|mut shutdown, ready| async move {
            let listener = tokio::net::TcpListener::bind("[::]:8080").await.unwrap();
            let _ = ready.send(());
            loop {
                let (mut s, peer) = tokio::select! {
                    _ = shutdown.wait() => return,
                    a = listener.accept() => a.unwrap(),
                };
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let body = format!("peer={}", peer.ip().to_canonical());
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        })
        .expect("server task");
    task
}

/// `GET /` to `to` from inside the pod (as root: captured where the pod has
/// capture rules): the whole response.
fn get(pod: &Pod, to: SocketAddr) -> Result<String, String> {
    pod.enter(|| {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))
            .map_err(|e| format!("connect {to}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    })
    .expect("enter the pod")
}

/// Retries `get` for up to 20 s until a 200 (listeners and routes arrive
/// over ADS after Envoy starts).
fn get_ok(pod: &Pod, to: SocketAddr, envoy_log: impl Fn() -> String) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = get(pod, to);
        match out {
            Ok(o) if o.starts_with("HTTP/1.1 200") => return o,
            _ if Instant::now() > deadline => {
                panic!(
                    "no answer through Envoy from {to}: {out:?}\n{}",
                    envoy_log()
                )
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn ipv6_inbound_and_ipv6_vip_through_the_sidecar() {
    let test = "ipv6_inbound_and_ipv6_vip_through_the_sidecar";
    let Some((proxy_init, pilot_bin)) = prerequisites(test) else {
        return;
    };
    let net = Net::for_test("dualstack").expect("harness net");
    let pod = net.add_pod("web").expect("pod");
    let client = net.add_pod("client").expect("client pod");
    let ip = |p: &Pod, args: &[&str]| {
        p.exec("ip", args)
            .unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    };
    ip(
        &pod,
        &["-6", "addr", "add", "fd00::10/64", "dev", "eth0", "nodad"],
    );
    ip(
        &client,
        &["-6", "addr", "add", "fd00::11/64", "dev", "eth0", "nodad"],
    );
    ip(&pod, &["-6", "route", "add", "fd00:10::/64", "dev", "eth0"]);
    let vip = net.service_cidr().nth(10).expect("a VIP");
    let config_dir = tempfile::tempdir().unwrap();
    write_config(config_dir.path(), "platform.yaml", &platform(pod.ip(), vip));
    let xds = SocketAddr::from((net.host_addr(), free_port(net.host_addr())));
    let monitoring = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)));
    let mut pilot = Pilot::start(
        &pilot_bin,
        config_dir.path(),
        xds,
        monitoring,
        &net.state_dir().join("pilot.log"),
    )
    .expect("start pilot");
    pilot
        .wait_ready(Duration::from_secs(30))
        .expect("pilot ready");
    pod.capture(&proxy_init, &[])
        .expect("proxy-init, IPv4 and IPv6");

    let v6: std::net::IpAddr = POD_V6.parse().unwrap();
    let (_, envoy) = Sidecar {
        name: "web",
        namespace: "default",
        labels: &[],
        ips: vec![pod.ip().into(), v6],
        mode: XdsMode::Delta,
    }
    .spawn(&pod, xds);
    envoy
        .wait_live(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("Envoy not live: {e}\n{}", pilot.log_tail(20)));
    let _server = serve_peer(&pod);
    let log = || envoy.process().read_log();

    // Inbound over IPv6 from another pod: delivered from ::6.
    let inbound = get_ok(&client, SocketAddr::new(v6, 8080), log);
    assert!(inbound.ends_with("peer=::6"), "{inbound}");
    assert!(
        inbound.contains("x-envoy-upstream-service-time"),
        "not through Envoy: {inbound}"
    );
    // Outbound to the IPv6 VIP: its listener and routes, to the pod's
    // endpoint (IPv4), whose inbound side delivers from 127.0.0.6.
    let outbound = get_ok(&pod, SocketAddr::new(VIP_V6.parse().unwrap(), 8080), log);
    assert!(outbound.ends_with("peer=127.0.0.6"), "{outbound}");
    // And IPv4 still works beside it.
    let v4 = get_ok(&pod, SocketAddr::new(vip.into(), 8080), log);
    assert!(v4.ends_with("peer=127.0.0.6"), "{v4}");
}
