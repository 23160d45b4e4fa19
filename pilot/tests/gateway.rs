//! End to end with real Envoy: a gateway (a `router` node) in its own
//! network namespace, driven by `pilot serve` on a config directory, takes
//! requests from a client pod into the backends behind it.
//!
//! ```text
//!  host: pilot serve --config-dir TMP ──ADS──┐
//!  pod client ── curl ─► pod gw: Envoy (router~<ip>~istio-ingressgateway-0.istio-system~...)
//!                             :8080 HTTP  (Istio's bookinfo-gateway.yaml, unchanged) ─► pod productpage :9080
//!                             :8443 HTTPS SNI bookinfo.example.com (SIMPLE) / httpbin.example.com (MUTUAL)
//!                             :8081 HTTP  httpsRedirect ─► 301
//!                             :9443 TLS   PASSTHROUGH by SNI ─► pod nginx :8443 (openssl s_server)
//! ```
//!
//! The backend is plaintext (an unmeshed echo pod): the gateway's ISTIO_MUTUAL
//! auto mTLS to a sidecar is covered by the golden (the cluster's TLS
//! context) rather than here.
//!
//! One scenario: the bookinfo routes; each HTTPS host with its own
//! certificate from its own Secret, MUTUAL refusing a client without a
//! certificate; httpsRedirect; passthrough reaching the TLS server's own
//! certificate; a Secret rotated under a bounded request loop with no
//! failed request, the new certificate seen, the same Envoy process.
//!
//! Needs root, Envoy, curl and openssl: skipped without them, failed under
//! CI=true.

mod support;

use std::{
    net::Ipv4Addr,
    path::PathBuf,
    time::{Duration, Instant},
};

use rudder_harness::{EchoConfig, Net, Pod, ProcessSpec};
use rudder_test_support::{check_tool, prerequisite};
use support::{
    edge::{pod_yaml, start_ingress_gateway, start_pilot},
    mesh::{prerequisites, write_config},
};

fn credentials() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/credentials")
}

fn testdata(file: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/gateway")
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn pem(file: &str) -> String {
    std::fs::read_to_string(credentials().join(file)).expect("test credential")
}

/// A `kubernetes.io/tls` Secret in istio-system (the gateway's namespace).
fn secret(name: &str, stem: &str, with_ca: bool) -> String {
    let block = |t: String| {
        let lines: Vec<String> = t.lines().map(|l| format!("    {l}")).collect();
        format!("|\n{}", lines.join("\n"))
    };
    let mut s = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: istio-system}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}\n  tls.key: {}\n",
        block(pem(&format!("{stem}.crt"))),
        block(pem(&format!("{stem}.key")))
    );
    if with_ca {
        s.push_str(&format!("  ca.crt: {}\n", block(pem("ca.crt"))));
    }
    s
}

fn service_yaml(name: &str, vip: Ipv4Addr, port_name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  clusterIP: {vip}
  selector: {{app: {name}}}
  ports: [{{name: {port_name}, port: {port}, targetPort: {port}}}]
"
    )
}

/// What one curl from the client pod saw.
#[derive(Debug)]
struct Curl {
    ok: bool,
    code: String,
    redirect: String,
    certs: String,
    body: String,
    stderr: String,
}

fn curl(client: &Pod, args: &[&str]) -> Curl {
    let body = client.dir().join("curl-body");
    let body_path = body.display().to_string();
    let mut argv = vec![
        "-sS",
        "--max-time",
        "5",
        "-o",
        &body_path,
        "-w",
        "%{http_code}\n%{redirect_url}\n%{certs}",
    ];
    argv.extend_from_slice(args);
    match client.exec("curl", &argv) {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut lines = text.splitn(3, '\n');
            let code = lines.next().unwrap_or_default().to_string();
            let redirect = lines.next().unwrap_or_default().to_string();
            Curl {
                ok: true,
                code,
                redirect,
                certs: lines.next().unwrap_or_default().to_string(),
                body: std::fs::read_to_string(&body).unwrap_or_default(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
        Err(e) => Curl {
            ok: false,
            code: String::new(),
            redirect: String::new(),
            certs: String::new(),
            body: String::new(),
            stderr: e.to_string(),
        },
    }
}

/// An HTTPS request to `host` at the gateway's `port`, verified against the
/// test CA, with SNI `host`.
fn https(client: &Pod, gw: Ipv4Addr, host: &str, port: u16, extra: &[&str]) -> Curl {
    let resolve = format!("{host}:{port}:{gw}");
    let url = format!("https://{host}:{port}/productpage");
    let ca = credentials().join("ca.crt").display().to_string();
    let mut args = vec!["--resolve", &resolve, "--cacert", &ca];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(client, &args)
}

/// Polls until `f` holds (bounded).
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
fn gateway_serves_bookinfo_https_sni_redirect_passthrough_and_rotation() {
    let test = "gateway_e2e";
    let Some((_proxy_init, pilot_bin)) = prerequisites(test) else {
        return;
    };
    if prerequisite(test, check_tool("curl", "apt-get install curl")).is_none()
        || prerequisite(test, check_tool("openssl", "apt-get install openssl")).is_none()
    {
        return;
    }
    let net = Net::for_test("gateway").expect("harness net");
    let gw = net.add_pod("gw").expect("gateway pod");
    let client = net.add_pod("client").expect("client pod");
    let productpage = net.add_pod("productpage").expect("productpage pod");
    let nginx = net.add_pod("nginx").expect("nginx pod");
    let _echo = productpage
        .start_echo(EchoConfig::new(9080, "productpage"))
        .expect("echo");
    let creds = credentials();
    let _tls_server = nginx
        .spawn(ProcessSpec {
            args: [
                "s_server",
                "-accept",
                "8443",
                "-www",
                "-cert",
                &creds.join("nginx.crt").display().to_string(),
                "-key",
                &creds.join("nginx.key").display().to_string(),
            ]
            .map(String::from)
            .to_vec(),
            ..ProcessSpec::new("openssl")
        })
        .expect("openssl s_server");
    let mut cidr = net.service_cidr();
    let (vip_pp, vip_nginx) = (cidr.nth(10).unwrap(), cidr.nth(11).unwrap());
    let _ = &mut cidr;

    let config = tempfile::tempdir().expect("config dir");
    let platform = [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n".to_string(),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n".to_string(),
        pod_yaml(
            "istio-ingressgateway-0",
            "istio-system",
            gw.ip(),
            "istio: ingressgateway, app: istio-ingressgateway",
        ),
        pod_yaml(
            "productpage-v1",
            "default",
            productpage.ip(),
            "app: productpage",
        ),
        pod_yaml("nginx-0", "default", nginx.ip(), "app: nginx"),
        service_yaml("productpage", vip_pp, "http", 9080),
        service_yaml("nginx", vip_nginx, "https", 8443),
    ]
    .join("---\n");
    write_config(config.path(), "platform.yaml", &platform);
    // Istio's file, byte for byte.
    write_config(
        config.path(),
        "bookinfo-gateway.yaml",
        &testdata("bookinfo-gateway.yaml"),
    );
    write_config(config.path(), "gateways.yaml", &testdata("gateways.yaml"));
    write_config(
        config.path(),
        "bookinfo-credential.yaml",
        &secret("bookinfo-credential", "bookinfo", false),
    );
    write_config(
        config.path(),
        "httpbin-credential.yaml",
        &secret("httpbin-credential", "httpbin", true),
    );

    let (pilot, xds) = start_pilot(&net, &pilot_bin, config.path());

    let envoy = start_ingress_gateway(&gw, xds);
    let envoy_pid = envoy.process().pid();
    let gw_ip = gw.ip();
    let envoy_log = || {
        let l = envoy.process().read_log();
        let lines: Vec<&str> = l.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };

    // 1. Istio's bookinfo-gateway.yaml, unchanged: /productpage reaches
    //    productpage; a path no match names is 404.
    let bookinfo = format!("http://{gw_ip}:8080/productpage");
    eventually(
        "bookinfo through the gateway",
        Duration::from_secs(30),
        || {
            let c = curl(&client, &[&bookinfo]);
            (c.code == "200" && c.body == "productpage")
                .then_some(())
                .ok_or_else(|| format!("{c:?}\n{}", envoy_log()))
        },
    );
    let miss = curl(&client, &[&format!("http://{gw_ip}:8080/nothing-here")]);
    assert_eq!(miss.code, "404", "{miss:?}");
    println!("{test}: bookinfo-gateway.yaml: /productpage 200 from productpage, /nothing-here 404");

    // 2. HTTPS, SNI: each host its own certificate, from its own Secret.
    eventually("HTTPS on 8443", Duration::from_secs(20), || {
        let c = https(&client, gw_ip, "bookinfo.example.com", 8443, &[]);
        (c.code == "200").then_some(()).ok_or(format!("{c:?}"))
    });
    let b = https(&client, gw_ip, "bookinfo.example.com", 8443, &[]);
    assert_eq!(
        (b.code.as_str(), b.body.as_str()),
        ("200", "productpage"),
        "{b:?}"
    );
    assert!(b.certs.contains("CN = bookinfo.example.com"), "{}", b.certs);
    let client_crt = creds.join("client.crt").display().to_string();
    let client_key = creds.join("client.key").display().to_string();
    let h = https(
        &client,
        gw_ip,
        "httpbin.example.com",
        8443,
        &["--cert", &client_crt, "--key", &client_key],
    );
    assert_eq!(h.code, "200", "{h:?}");
    assert!(h.certs.contains("CN = httpbin.example.com"), "{}", h.certs);
    assert!(!h.certs.contains("bookinfo"), "{}", h.certs);
    let refused = https(&client, gw_ip, "httpbin.example.com", 8443, &[]);
    assert!(
        !refused.ok || refused.code != "200",
        "MUTUAL served a client without a certificate: {refused:?}"
    );
    println!(
        "{test}: MUTUAL without a client certificate: {}",
        refused.stderr.lines().last().unwrap_or_default()
    );
    println!("{test}: SNI: bookinfo.example.com and httpbin.example.com each got their own certificate; MUTUAL refused a client without one");

    // 3. httpsRedirect: 301 to https.
    let r = curl(
        &client,
        &[
            "-H",
            "Host: bookinfo.example.com",
            &format!("http://{gw_ip}:8081/productpage"),
        ],
    );
    assert_eq!(r.code, "301", "{r:?}");
    assert!(
        r.redirect.starts_with("https://bookinfo.example.com"),
        "{r:?}"
    );
    println!("{test}: httpsRedirect: 301 → {}", r.redirect);

    // 4. Passthrough: the TLS server's own certificate, end to end.
    let resolve = format!("nginx.example.com:9443:{gw_ip}");
    let ca = creds.join("ca.crt").display().to_string();
    let p = curl(
        &client,
        &[
            "--resolve",
            &resolve,
            "--cacert",
            &ca,
            "https://nginx.example.com:9443/",
        ],
    );
    assert_eq!(p.code, "200", "{p:?}");
    assert!(p.certs.contains("CN = nginx.example.com"), "{}", p.certs);
    assert!(
        p.body.contains("s_server"),
        "not the TLS server's page: {}",
        p.body
    );
    println!("{test}: passthrough: nginx.example.com answered with its own certificate");

    // 5. Rotation: the Secret changes under a bounded request loop; no
    //    request fails, the new certificate is served, Envoy is the same.
    const MAX: usize = 400;
    let mut failures = Vec::new();
    let (mut old_seen, mut new_seen, mut rotated_at) = (0, 0, None);
    for i in 0..MAX {
        if i == 20 {
            write_config(
                config.path(),
                "bookinfo-credential.yaml",
                &secret("bookinfo-credential", "bookinfo-rotated", false),
            );
            rotated_at = Some(i);
        }
        let c = https(&client, gw_ip, "bookinfo.example.com", 8443, &[]);
        if c.code != "200" || c.body != "productpage" {
            failures.push(format!("request {i}: {c:?}"));
        } else if c.certs.contains("bookinfo-rotated") {
            new_seen += 1;
        } else {
            old_seen += 1;
        }
        if new_seen >= 20 {
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:#?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(
        new_seen >= 20,
        "the rotated certificate was never served (old {old_seen})"
    );
    assert!(
        old_seen >= 20,
        "the first certificate was served before the rotation"
    );
    assert_eq!(envoy.process().pid(), envoy_pid, "Envoy restarted");
    assert!(envoy.process().try_wait().is_none(), "Envoy exited");
    println!(
        "{test}: rotation at request {}: {} requests, 0 failed, {old_seen} with the old certificate, {new_seen} with the new, same Envoy",
        rotated_at.unwrap_or_default(),
        old_seen + new_seen
    );
    drop(pilot);
    drop(envoy);
}
