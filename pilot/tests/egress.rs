//! Egress end to end with real Envoy (second test: Istio's egress gateway
//! pattern, mesh → egress gateway → external host): a captured client pod reaches a
//! stand-in external host (its own network namespace, not a mesh service)
//! through a ServiceEntry, with TLS originated by the sidecar, and
//! `outboundTrafficPolicy` decides what happens to a destination no
//! ServiceEntry names.
//!
//! ```text
//!  host: pilot serve --config-dir TMP (ServiceEntry + DestinationRule SIMPLE [+ mesh config])
//!  pod client: app ─► <external IP>:80, Host api.external.test ─(REDIRECT)─► sidecar :15000
//!      └─ route table 80, vhost api.external.test ─► outbound|80||api.external.test
//!           (STATIC endpoint <external IP>:443, TLS with the test CA, SNI api.external.test)
//!  pod external (unmeshed): TLS server on 443 (an Envoy with a certificate from the
//!      test CA, adding the TLS version and SNI it saw as request headers) ─► echo :8080
//!      plain echo on :80 and :8081 (what unknown destinations reach when allowed)
//! ```
//!
//! 1. ALLOW_ANY (no mesh config): the ServiceEntry request succeeds and the
//!    external server saw TLS (version and SNI, asserted); an unknown Host
//!    on port 80 and an unknown port (8081) pass through to the external pod.
//! 2. mesh config `outboundTrafficPolicy.mode: REGISTRY_ONLY`: the
//!    ServiceEntry request still succeeds; the unknown Host gets 502 from
//!    the sidecar, the unknown port's connection is closed.
//! 3. a Sidecar in the client's namespace with `mode: ALLOW_ANY`: the
//!    unknown destinations pass again (the Sidecar wins over the mesh).
//!
//! Needs root, iptables and Envoy: skipped with a message without them,
//! failed under CI=true.

mod support;

use std::{
    net::{Ipv4Addr, SocketAddr},
    os::unix::fs::PermissionsExt,
    time::{Duration, Instant},
};

use rudder_agent::XdsMode;
use rudder_harness::{EchoConfig, Envoy, EnvoySpec, HttpRequest, Net, Outcome, Pod};
use support::{
    edge::start_router,
    mesh::{prerequisites, write_config, Sidecar},
    pilot::{free_port, settled_rds_version, Pilot},
};

const HOST: &str = "api.external.test";
/// Admin port of the external pod's TLS server (its own namespace).
const EXTERNAL_ADMIN: u16 = 15900;

fn platform(client: Ipv4Addr, external: Ipv4Addr, ca_file: &str) -> String {
    format!(
        "apiVersion: v1
kind: Namespace
metadata: {{name: default, labels: {{istio-injection: enabled}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: default, labels: {{app: client}}}}
spec: {{serviceAccountName: client}}
status:
  phase: Running
  podIP: {client}
  conditions: [{{type: Ready, status: \"True\"}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external-api, namespace: default}}
spec:
  hosts: [{HOST}]
  ports: [{{number: 80, name: http, protocol: HTTP, targetPort: 443}}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{{address: {external}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: external-api, namespace: default}}
spec:
  host: {HOST}
  trafficPolicy:
    tls:
      mode: SIMPLE
      sni: {HOST}
      caCertificates: {ca_file}
      subjectAltNames: [{HOST}]
"
    )
}

const REGISTRY_ONLY: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: rudder-mesh, namespace: rudder-system}
data:
  mesh: |
    outboundTrafficPolicy: {mode: REGISTRY_ONLY}
";

const SIDECAR_ALLOW_ANY: &str = "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: ALLOW_ANY}
";

/// The external host's TLS server: Envoy on :443 with `chain`/`key`,
/// forwarding to the echo on 127.0.0.1:8080 with the TLS version and SNI it
/// saw as request headers (the echo returns them as `x-echo-...`).
fn tls_server_bootstrap(chain: &str, key: &str) -> String {
    serde_json::json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": EXTERNAL_ADMIN}}},
        "static_resources": {
            "listeners": [{
                "name": "tls",
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": 443}},
                // The TLS inspector records the SNI (REQUESTED_SERVER_NAME).
                "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
                "filter_chains": [{
                    "transport_socket": {
                        "name": "envoy.transport_sockets.tls",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                            "common_tls_context": {"tls_certificates": [{
                                "certificate_chain": {"inline_string": chain},
                                "private_key": {"inline_string": key}
                            }]}
                        }
                    },
                    "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "tls",
                            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                            "route_config": {"virtual_hosts": [{
                                "name": "all", "domains": ["*"],
                                "request_headers_to_add": [
                                    {"header": {"key": "x-ext-tls", "value": "%DOWNSTREAM_TLS_VERSION%"}},
                                    {"header": {"key": "x-ext-sni", "value": "%REQUESTED_SERVER_NAME%"}}
                                ],
                                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "echo"}}]
                            }]}
                        }
                    }]
                }]
            }],
            "clusters": [{
                "name": "echo",
                "type": "STATIC",
                "connect_timeout": "2s",
                "load_assignment": {"cluster_name": "echo", "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}}}]}]}
            }]
        }
    })
    .to_string()
}

/// Polls `request` from `pod` until `want` holds for its outcome (bounded);
/// returns that outcome or panics with the last one and `context`.
fn until(
    pod: &Pod,
    request: &HttpRequest,
    what: &str,
    want: impl Fn(&Outcome) -> bool,
    context: impl Fn() -> String,
) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = pod
            .http_get(request, Duration::from_secs(2))
            .expect("client request");
        if want(&o) {
            return o;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last outcome {o:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log_tail(envoy: &Envoy) -> String {
    let log = envoy.process().read_log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[test]
fn service_entry_tls_origination_and_outbound_traffic_policy() {
    let test = "service_entry_tls_origination_and_outbound_traffic_policy";
    let Some((proxy_init, pilot_bin)) = prerequisites(test) else {
        return;
    };
    let net = Net::for_test("egress").expect("harness net");
    let client = net.add_pod("client").expect("client pod");
    let external = net.add_pod("external").expect("external pod");

    // The stand-in external host: a test CA's certificate for HOST on 443,
    // plain echoes on 80 and 8081 for the destinations no rule names.
    let ca_dir = tempfile::tempdir().expect("CA dir");
    let ca = rudder_ca::CertificateAuthority::load_or_create(
        ca_dir.path(),
        "external.test",
        Duration::from_secs(3600),
    )
    .expect("test CA");
    let (chain, key) = ca.serving_cert(&[HOST.to_string()], &[]).expect("cert");
    let ca_file = client.dir().join("external-ca.pem");
    std::fs::write(&ca_file, ca.root_pem()).expect("write CA");
    std::fs::set_permissions(&ca_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let behind_tls = external
        .start_echo(
            EchoConfig::new(8080, "external-tls")
                .echo_header("x-ext-tls")
                .echo_header("x-ext-sni"),
        )
        .expect("echo behind TLS");
    let plain = external
        .start_echo(EchoConfig::new(80, "external-plain"))
        .expect("plain echo");
    let other_port = external
        .start_echo(EchoConfig::new(8081, "external-8081"))
        .expect("echo on 8081");
    let tls_server = external
        .spawn_envoy(EnvoySpec {
            admin_port: EXTERNAL_ADMIN,
            // Port 443 needs root in the pod's namespace.
            uid: 0,
            gid: 0,
            ..EnvoySpec::new(tls_server_bootstrap(&chain, &key))
        })
        .expect("TLS server");
    tls_server
        .wait_live(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("TLS server: {e}\n{}", log_tail(&tls_server)));

    // pilot and the client's sidecar.
    let config_dir = tempfile::tempdir().expect("config dir");
    write_config(
        config_dir.path(),
        "platform.yaml",
        &platform(client.ip(), external.ip(), &ca_file.display().to_string()),
    );
    let xds = SocketAddr::from((net.host_addr(), free_port(net.host_addr())));
    let monitoring = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)));
    let log = net.state_dir().join("pilot.log");
    let mut pilot =
        Pilot::start(&pilot_bin, config_dir.path(), xds, monitoring, &log).expect("start pilot");
    pilot
        .wait_ready(Duration::from_secs(30))
        .expect("pilot ready");
    client
        .capture(&proxy_init, &[])
        .expect("proxy-init capture in the client pod");
    let (node, envoy) = Sidecar {
        name: "client",
        namespace: "default",
        labels: &[],
        ips: vec![client.ip().into()],
        mode: XdsMode::Delta,
    }
    .spawn(&client, xds);
    envoy
        .wait_live(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("Envoy not live: {e}\n{}", pilot.log_tail(20)));
    let node_id = node.to_string();
    let context = || {
        format!(
            "client Envoy:\n{}\nTLS server:\n{}",
            log_tail(&envoy),
            log_tail(&tls_server)
        )
    };

    let to_entry = HttpRequest::get((external.ip(), 80).into(), "/").host(HOST);
    let unknown_host = HttpRequest::get((external.ip(), 80).into(), "/").host("unknown.test");
    let unknown_port = HttpRequest::get((external.ip(), 8081).into(), "/").host("unknown.test");
    let originated = |o: &Outcome| {
        o.status == Some(200)
            && o.body == "external-tls"
            && o.header("x-echo-x-ext-tls")
                .is_some_and(|v| v.starts_with("TLSv1."))
            && o.header("x-echo-x-ext-sni") == Some(HOST)
    };

    // 1. ALLOW_ANY (Istio's default): TLS originated; unknown destinations pass.
    let o = until(
        &client,
        &to_entry,
        "plain HTTP from the app, TLS to the external host",
        originated,
        context,
    );
    eprintln!(
        "ServiceEntry request: status {:?}, external server saw {:?} with SNI {:?}",
        o.status,
        o.header("x-echo-x-ext-tls"),
        o.header("x-echo-x-ext-sni")
    );
    assert!(
        behind_tls.count() >= 1,
        "the request went through the TLS server"
    );
    let before_plain = plain.count();
    let o = until(
        &client,
        &unknown_host,
        "ALLOW_ANY passes an unknown Host",
        |o| o.status == Some(200) && o.body == "external-plain",
        context,
    );
    assert_eq!(o.body, "external-plain");
    assert!(plain.count() > before_plain, "the external pod served it");
    until(
        &client,
        &unknown_port,
        "ALLOW_ANY passes an unknown port",
        |o| o.status == Some(200) && o.body == "external-8081",
        context,
    );

    // 2. REGISTRY_ONLY mesh-wide: the ServiceEntry still works, the rest is blocked.
    let old = settled_rds_version(&pilot.syncz(), &node_id);
    write_config(config_dir.path(), "mesh.yaml", REGISTRY_ONLY);
    pilot
        .wait_for(
            "the REGISTRY_ONLY routes ACKed",
            Duration::from_secs(20),
            |p| settled_rds_version(&p.syncz(), &node_id).filter(|v| Some(v) != old.as_ref()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let o = until(
        &client,
        &unknown_host,
        "REGISTRY_ONLY answers an unknown Host with 502",
        |o| o.status == Some(502),
        context,
    );
    assert_ne!(o.body, "external-plain");
    let before_plain = plain.count();
    let before_8081 = other_port.count();
    let o = until(
        &client,
        &unknown_port,
        "REGISTRY_ONLY closes a connection to an unknown port",
        |o| o.status.is_none() && o.error.is_some(),
        context,
    );
    eprintln!("unknown port under REGISTRY_ONLY: {:?}", o.error);
    for _ in 0..5 {
        let o = client
            .http_get(&unknown_host, Duration::from_secs(2))
            .expect("client request");
        assert_eq!(o.status, Some(502), "{o:?}");
        let o = client
            .http_get(&unknown_port, Duration::from_secs(2))
            .expect("client request");
        assert!(o.status.is_none(), "{o:?}");
    }
    assert_eq!(plain.count(), before_plain, "nothing reached port 80");
    assert_eq!(other_port.count(), before_8081, "nothing reached port 8081");
    let served = behind_tls.count();
    let o = client
        .http_get(&to_entry, Duration::from_secs(2))
        .expect("client request");
    assert!(
        originated(&o),
        "the ServiceEntry host stays reachable: {o:?}"
    );
    assert_eq!(behind_tls.count(), served + 1);

    // 3. A Sidecar with ALLOW_ANY overrides the mesh for its namespace.
    write_config(config_dir.path(), "sidecar.yaml", SIDECAR_ALLOW_ANY);
    until(
        &client,
        &unknown_host,
        "the Sidecar's ALLOW_ANY passes an unknown Host again",
        |o| o.status == Some(200) && o.body == "external-plain",
        context,
    );
    until(
        &client,
        &unknown_port,
        "the Sidecar's ALLOW_ANY passes an unknown port again",
        |o| o.status == Some(200) && o.body == "external-8081",
        context,
    );
    // Teardown on drop, in reverse order of creation: Envoys, pilot and the
    // echoes stop before the network (declared first) goes.
}

/// Istio's egress gateway task ("Egress Gateways", the HTTP case), with the
/// external host a stand-in pod:
///
/// ```text
///  pod client (sidecar): Host edition.cnn.test, port 80
///     └─ VirtualService (gateways: mesh) ─► istio-egressgateway.istio-system subset cnn, port 80
///  pod istio-egressgateway-0 (router, Service port 80 → 8080): Gateway server 80 (listener on 8080)
///     └─ VirtualService (gateways: istio-egressgateway) ─► edition.cnn.test:80
///  pod external (unmeshed): echo on 80, the ServiceEntry's STATIC endpoint
/// ```
///
/// The request succeeds and the external host saw it come from the gateway
/// pod (peer address), not from the client; with the mesh route removed the
/// client goes direct (peer = client), so the gateway hop was the route's doing.
/// (Istio's task resolves `edition.cnn.com` by DNS; no DNS here, so the
/// ServiceEntry is STATIC with the stand-in's address: same routing.)
#[test]
fn egress_gateway_carries_mesh_traffic_to_the_external_host() {
    let test = "egress_gateway_carries_mesh_traffic_to_the_external_host";
    let Some((proxy_init, pilot_bin)) = prerequisites(test) else {
        return;
    };
    const CNN: &str = "edition.cnn.test";
    let net = Net::for_test("egressgw").expect("harness net");
    let client = net.add_pod("client").expect("client pod");
    let gw = net.add_pod("egressgw").expect("egress gateway pod");
    let external = net.add_pod("external").expect("external pod");
    let echo = external
        .start_echo(EchoConfig::new(80, "cnn"))
        .expect("external echo");
    let gw_vip = net.service_cidr().nth(20).unwrap();

    let platform = format!(
        "apiVersion: v1
kind: Namespace
metadata: {{name: default, labels: {{istio-injection: enabled}}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: istio-system}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: default, labels: {{app: client}}}}
spec: {{serviceAccountName: client}}
status: {{phase: Running, podIP: {client}, conditions: [{{type: Ready, status: \"True\"}}]}}
---
apiVersion: v1
kind: Pod
metadata:
  name: istio-egressgateway-0
  namespace: istio-system
  labels: {{istio: egressgateway, app: istio-egressgateway}}
spec: {{serviceAccountName: istio-egressgateway}}
status: {{phase: Running, podIP: {gw}, conditions: [{{type: Ready, status: \"True\"}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: istio-egressgateway, namespace: istio-system}}
spec:
  clusterIP: {gw_vip}
  selector: {{istio: egressgateway}}
  ports: [{{name: http2, port: 80, targetPort: 8080}}]
",
        client = client.ip(),
        gw = gw.ip(),
    );
    // Istio's egress-gateway task objects, `edition.cnn.com` → the stand-in.
    let rules = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: cnn, namespace: default}}
spec:
  hosts: [{CNN}]
  ports:
  - {{number: 80, name: http-port, protocol: HTTP}}
  resolution: STATIC
  endpoints: [{{address: {external}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: istio-egressgateway, namespace: default}}
spec:
  selector: {{istio: egressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: [{CNN}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: egressgateway-for-cnn, namespace: default}}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets: [{{name: cnn}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: direct-cnn-through-egress-gateway, namespace: default}}
spec:
  hosts: [{CNN}]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{{gateways: [mesh], port: 80}}]
    route:
    - destination: {{host: istio-egressgateway.istio-system.svc.cluster.local, subset: cnn, port: {{number: 80}}}}
      weight: 100
  - match: [{{gateways: [istio-egressgateway], port: 80}}]
    route:
    - destination: {{host: {CNN}, port: {{number: 80}}}}
      weight: 100
",
        external = external.ip(),
    );
    let config_dir = tempfile::tempdir().expect("config dir");
    write_config(config_dir.path(), "platform.yaml", &platform);
    write_config(config_dir.path(), "egress-gateway.yaml", &rules);
    let xds = SocketAddr::from((net.host_addr(), free_port(net.host_addr())));
    let monitoring = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)));
    let log = net.state_dir().join("pilot.log");
    let mut pilot =
        Pilot::start(&pilot_bin, config_dir.path(), xds, monitoring, &log).expect("start pilot");
    pilot
        .wait_ready(Duration::from_secs(30))
        .expect("pilot ready");
    client
        .capture(&proxy_init, &[])
        .expect("proxy-init capture in the client pod");
    let (_, sidecar) = Sidecar {
        name: "client",
        namespace: "default",
        labels: &[],
        ips: vec![client.ip().into()],
        mode: XdsMode::Delta,
    }
    .spawn(&client, xds);
    let gateway = start_router(
        &gw,
        xds,
        "istio-egressgateway-0",
        "istio-system",
        &[("istio", "egressgateway"), ("app", "istio-egressgateway")],
    );
    sidecar
        .wait_live(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("Envoy not live: {e}\n{}", pilot.log_tail(20)));
    let context = || {
        format!(
            "client sidecar:\n{}\negress gateway:\n{}\npilot:\n{}",
            log_tail(&sidecar),
            log_tail(&gateway),
            pilot.log_tail(20)
        )
    };

    // The app dials edition.cnn.test:80 at the address DNS would give it
    // (here the stand-in's own); the sidecar routes by Host.
    let to_cnn = HttpRequest::get((external.ip(), 80).into(), "/politics").host(CNN);
    let o = until(
        &client,
        &to_cnn,
        "client → egress gateway → external",
        |o| o.status == Some(200) && o.body == "cnn",
        context,
    );
    assert_eq!(o.body, "cnn");
    let last = echo.requests().pop().expect("the external host served it");
    assert_eq!(
        (last.peer.ip(), last.host.as_str(), last.path.as_str()),
        (std::net::IpAddr::V4(gw.ip()), CNN, "/politics"),
        "the external host saw the egress gateway, the original Host and path"
    );
    eprintln!(
        "egress gateway: 200 from the external host, peer {} (the gateway), Host {}",
        last.peer.ip(),
        last.host
    );

    // Without the mesh route the sidecar goes to the ServiceEntry directly:
    // the gateway hop above was the VirtualService's doing.
    let direct = rules.replace(
        "  - match: [{gateways: [mesh], port: 80}]
    route:
    - destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: cnn, port: {number: 80}}
      weight: 100
",
        "",
    );
    assert_ne!(direct, rules, "the mesh route was removed");
    write_config(config_dir.path(), "egress-gateway.yaml", &direct);
    until(
        &client,
        &to_cnn,
        "client → external directly once the mesh route is gone",
        |o| {
            o.status == Some(200)
                && echo
                    .requests()
                    .last()
                    .is_some_and(|r| r.peer.ip() == std::net::IpAddr::V4(client.ip()))
        },
        context,
    );
}
