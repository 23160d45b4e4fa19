//! Gateways at the edge, shared by the end-to-end tests of gateways: a
//! `router` Envoy in a harness pod bootstrapped from the agent's builder,
//! plain HTTP requests from a client pod, and bounded waits.
//!
//! ```text
//!  host: pilot serve ──ADS──► pod gw: Envoy (router~<ip>~<pod>.<ns>~<ns>.svc.cluster.local)
//!  pod client ── HttpRequest ─► <gw ip>:<port> ─► backends (echo pods)
//! ```

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    time::{Duration, Instant},
};

use rudder_agent::{bootstrap, BootstrapConfig, DiscoveryAddress};
use rudder_harness::{Envoy, EnvoySpec, HttpRequest, Net, Outcome, Pod};

use super::pilot::{free_port, Pilot};
use rudder_model::{NodeId, NodeMetadata};

/// A running, ready Pod `name` in `ns` at `ip` with `labels` (YAML flow
/// mapping entries, `app: x, version: v1`) and service account `name`.
pub fn pod_yaml(name: &str, ns: &str, ip: std::net::Ipv4Addr, labels: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}, labels: {{{labels}}}}}
spec: {{serviceAccountName: {name}}}
status:
  phase: Running
  podIP: {ip}
  conditions: [{{type: Ready, status: \"True\"}}]
"
    )
}

/// Pilot serving the directory `config`, its ADS port on the harness
/// network's host address and its monitoring port on loopback, ready; with
/// that ADS address.
pub fn start_pilot(net: &Net, pilot_bin: &Path, config: &Path) -> (Pilot, SocketAddr) {
    let xds = SocketAddr::from((net.host_addr(), free_port(net.host_addr())));
    let monitoring = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)));
    let log = net.state_dir().join("pilot.log");
    let mut pilot = Pilot::start(pilot_bin, config, xds, monitoring, &log).expect("start pilot");
    pilot
        .wait_ready(Duration::from_secs(30))
        .expect("pilot ready");
    (pilot, xds)
}

/// The ingress gateway (`istio-system/istio-ingressgateway-0`, labelled
/// `istio: ingressgateway`) in `pod`, fed by pilot at `xds`.
pub fn start_ingress_gateway(pod: &Pod, xds: SocketAddr) -> Envoy {
    start_router(
        pod,
        xds,
        "istio-ingressgateway-0",
        "istio-system",
        &[("istio", "ingressgateway"), ("app", "istio-ingressgateway")],
    )
}

/// Starts a gateway Envoy (`router` node) for pod `name` in namespace `ns`
/// with pod `labels`, fed by pilot at `xds`, and waits until it is live.
pub fn start_router(
    pod: &Pod,
    xds: SocketAddr,
    name: &str,
    ns: &str,
    labels: &[(&str, &str)],
) -> Envoy {
    let node = NodeId::router(pod.ip().into(), name, ns);
    let metadata = NodeMetadata {
        namespace: ns.into(),
        service_account: name.into(),
        workload_name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        instance_ips: vec![pod.ip().into()],
        ..NodeMetadata::default()
    };
    let discovery = DiscoveryAddress {
        host: xds.ip().to_string(),
        port: xds.port(),
    };
    let cfg = BootstrapConfig::new(node, metadata, discovery);
    let envoy = pod
        .spawn_envoy(EnvoySpec::new(bootstrap(&cfg).to_string()))
        .expect("spawn gateway Envoy");
    envoy
        .wait_live(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("gateway Envoy {name} not live: {e}"));
    envoy
}

/// Lets UID 1337 bind ports below 1024 in the pod's network namespace, as
/// gateway pods do (`net.ipv4.ip_unprivileged_port_start=0`), so listener
/// ports are served as written.
pub fn allow_low_ports(pod: &Pod) {
    let out = pod
        .exec("sysctl", &["-w", "net.ipv4.ip_unprivileged_port_start=0"])
        .expect("sysctl in the gateway pod");
    assert!(out.status.success(), "sysctl: {out:?}");
}

/// One GET from `client` to `addr` with `host` and extra headers.
pub fn get(
    client: &Pod,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Outcome {
    let mut req = HttpRequest::get(addr, path).host(host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    client
        .http_get(&req, Duration::from_secs(5))
        .unwrap_or_else(|e| Outcome {
            error: Some(e.to_string()),
            ..Outcome::default()
        })
}

/// Polls `f` every 200 ms until it holds; panics with its last error after `timeout`.
pub fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => panic!("timed out waiting for {what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}
