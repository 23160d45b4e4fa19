//! End to end with real Envoy: a Kubernetes Ingress (issue 15, item 3)
//! served by the ingress gateway, a `router` node in its own network
//! namespace, driven by `pilot serve` on a config directory.
//!
//! ```text
//!  host: pilot serve --config-dir TMP ──ADS──┐
//!  pod client ── curl ─► pod gw: Envoy (router~<ip>~istio-ingressgateway-0.istio-system~...)
//!                          Service rudder-ingressgateway 80 → 8080, 443 → 8443
//!                          Ingress shop: /exact (Exact), /foo (Prefix) ─► pod api :9000
//!                                        defaultBackend, anything else ─► pod web :8000
//!                                        tls shop (Secret in the gateway's namespace) on 8443
//! ```
//!
//! Which backend answers tells which route matched: Exact `/exact` (not
//! `/exact/x`), Prefix `/foo` (also `/foo/x`, never `/foobar`), the default
//! backend for everything else, on a named host, a wildcard host and by
//! HTTPS with the Ingress's certificate.
//!
//! Needs root, Envoy and curl: skipped without them, failed under CI=true.

mod support;

use std::{
    net::Ipv4Addr,
    path::PathBuf,
    time::{Duration, Instant},
};

use rudder_harness::{EchoConfig, Net, Pod};
use rudder_test_support::{check_tool, prerequisite};
use support::{
    edge::{pod_yaml, start_ingress_gateway, start_pilot},
    mesh::{prerequisites, write_config},
};

fn credentials() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/credentials")
}

fn pem(file: &str) -> String {
    std::fs::read_to_string(credentials().join(file)).expect("test credential")
}

fn service_yaml(name: &str, vip: Ipv4Addr, port_name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: shop}}
spec:
  clusterIP: {vip}
  selector: {{app: {name}}}
  ports: [{{name: {port_name}, port: {port}, targetPort: {port}}}]
"
    )
}

/// The Ingress under test (Kubernetes' own example shapes).
const INGRESS: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: shop
  annotations: {kubernetes.io/ingress.class: istio}
spec:
  tls:
  - hosts: [bookinfo.example.com]
    secretName: shop-credential
  defaultBackend:
    service: {name: web, port: {name: http-web}}
  rules:
  - host: bookinfo.example.com
    http:
      paths:
      - {path: /exact, pathType: Exact, backend: {service: {name: api, port: {number: 9000}}}}
      - {path: /foo, pathType: Prefix, backend: {service: {name: api, port: {name: http-api}}}}
  - host: '*.example.org'
    http:
      paths:
      - {path: /foo, pathType: Prefix, backend: {service: {name: api, port: {number: 9000}}}}
";

/// (status code, body) of one curl from the client pod, or the error.
fn curl(client: &Pod, args: &[&str]) -> Result<(String, String), String> {
    let body = client.dir().join("curl-body");
    let _ = std::fs::remove_file(&body);
    let body_path = body.display().to_string();
    let mut argv = vec![
        "-sS",
        "--max-time",
        "5",
        "-o",
        &body_path,
        "-w",
        "%{http_code}",
    ];
    argv.extend_from_slice(args);
    let out = client.exec("curl", &argv).map_err(|e| e.to_string())?;
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        std::fs::read_to_string(&body).unwrap_or_default(),
    ))
}

/// Which backend answered `path` on `host` (plain HTTP to the gateway's 8080).
fn who(client: &Pod, gw: Ipv4Addr, host: &str, path: &str) -> String {
    let url = format!("http://{gw}:8080{path}");
    let header = format!("Host: {host}");
    match curl(client, &["-H", &header, &url]) {
        Ok((code, body)) if code == "200" => body,
        Ok((code, body)) => format!("{code} {body}"),
        Err(e) => e,
    }
}

fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => panic!("timed out waiting for {what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn ingress_paths_reach_their_backends_through_the_gateway() {
    let test = "ingress_e2e";
    let Some((_proxy_init, pilot_bin)) = prerequisites(test) else {
        return;
    };
    if prerequisite(test, check_tool("curl", "apt-get install curl")).is_none() {
        return;
    }
    let net = Net::for_test("ingress").expect("harness net");
    let gw = net.add_pod("gw").expect("gateway pod");
    let client = net.add_pod("client").expect("client pod");
    let web = net.add_pod("web").expect("web pod");
    let api = net.add_pod("api").expect("api pod");
    let _web_echo = web.start_echo(EchoConfig::new(8000, "web")).expect("echo");
    let _api_echo = api.start_echo(EchoConfig::new(9000, "api")).expect("echo");
    let cidr = net.service_cidr();
    let (vip_gw, vip_web, vip_api) = (
        cidr.nth(2).unwrap(),
        cidr.nth(10).unwrap(),
        cidr.nth(11).unwrap(),
    );

    let config = tempfile::tempdir().expect("config dir");
    let block = |t: String| {
        let lines: Vec<String> = t.lines().map(|l| format!("    {l}")).collect();
        format!("|\n{}", lines.join("\n"))
    };
    let platform = [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n".to_string(),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n".to_string(),
        pod_yaml(
            "istio-ingressgateway-0",
            "istio-system",
            gw.ip(),
            "istio: ingressgateway, app: istio-ingressgateway",
        ),
        // The gateway's Service: Ingress port 80 listens on its target 8080.
        format!(
            "apiVersion: v1
kind: Service
metadata: {{name: rudder-ingressgateway, namespace: istio-system}}
spec:
  type: LoadBalancer
  clusterIP: {vip_gw}
  selector: {{istio: ingressgateway}}
  ports: [{{name: http2, port: 80, targetPort: 8080}}, {{name: https, port: 443, targetPort: 8443}}]
"
        ),
        pod_yaml("web-0", "shop", web.ip(), "app: web"),
        pod_yaml("api-0", "shop", api.ip(), "app: api"),
        service_yaml("web", vip_web, "http-web", 8000),
        service_yaml("api", vip_api, "http-api", 9000),
        // As in Istio, an Ingress's TLS Secret is read where the gateway runs.
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: shop-credential, namespace: istio-system}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}\n  tls.key: {}\n",
            block(pem("bookinfo.crt")),
            block(pem("bookinfo.key"))
        ),
    ]
    .join("---\n");
    write_config(config.path(), "platform.yaml", &platform);
    write_config(config.path(), "ingress.yaml", INGRESS);

    let (pilot, xds) = start_pilot(&net, &pilot_bin, config.path());

    let envoy = start_ingress_gateway(&gw, xds);
    let gw_ip = gw.ip();
    let host = "bookinfo.example.com";

    eventually(
        "the Ingress on the gateway",
        Duration::from_secs(30),
        || {
            let got = who(&client, gw_ip, host, "/exact");
            (got == "api").then_some(()).ok_or_else(|| {
                let l = envoy.process().read_log();
                format!("{got}\n{}", &l[l.len().saturating_sub(3000)..])
            })
        },
    );

    let cases = [
        // Exact: only the path itself.
        (host, "/exact", "api"),
        (host, "/exact/x", "web"),
        // Prefix: path elements, as Kubernetes defines it.
        (host, "/foo", "api"),
        (host, "/foo/", "api"),
        (host, "/foo/bar", "api"),
        (host, "/foobar", "web"),
        // The default backend for what no path matches, on any host.
        (host, "/", "web"),
        (host, "/other", "web"),
        ("other.example.com", "/foo", "web"),
        // A wildcard host.
        ("a.example.org", "/foo/x", "api"),
        ("a.example.org", "/foobar", "web"),
    ];
    let mut wrong = Vec::new();
    for (h, path, want) in cases {
        let got = who(&client, gw_ip, h, path);
        if got != want {
            wrong.push(format!("{h}{path}: want {want}, got {got}"));
        }
        println!("{test}: {h}{path} -> {got}");
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // HTTPS on 8443 (Service port 443), with the Ingress's certificate.
    let ca = credentials().join("ca.crt").display().to_string();
    let resolve = format!("{host}:8443:{gw_ip}");
    eventually(
        "HTTPS with the Ingress's Secret",
        Duration::from_secs(20),
        || match curl(
            &client,
            &[
                "--resolve",
                &resolve,
                "--cacert",
                &ca,
                &format!("https://{host}:8443/foo/x"),
            ],
        ) {
            Ok((code, body)) if code == "200" && body == "api" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    println!("{test}: https://{host}:8443/foo/x -> api (certificate from Secret shop-credential)");
    drop(pilot);
    drop(envoy);
}
