//! End to end with real Envoy: the Kubernetes Gateway API (issue 16) at the
//! edge and in the mesh (GAMMA), driven by `pilot serve` on a config
//! directory.
//!
//! ```text
//!  host: pilot serve --config-dir TMP ──ADS──┐
//!  pod client ── HTTP ─► pod gw-same  (gateway-name: same-namespace, app: edge-gw)
//!                          :80   Gateway same-namespace: one conformance case's routes at a time
//!                          :8081 Gateway split (spec.addresses: Service edge-gw) 90/10 v1/v2
//!                   ─► pod gw-lhm   (gateway-name: httproute-listener-hostname-matching) :80
//!                   ─► pod gw-hi    (gateway-name: httproute-hostname-intersection) :80
//!          backends: infra-backend-v1/-v2/-v3 (gateway-conformance-infra),
//!                    web-backend (gateway-conformance-web-backend), echo pods on 8080
//!  mesh: client sidecar ─► reviews VIP ─ HTTPRoute parentRef Service reviews ─► 90/10 reviews-v1/-v2
//! ```
//!
//! The conformance cases are the Gateway API suite's own objects
//! (`pilot/testdata/gateway-api/conformance`) and expectations; gateway
//! pods bind port 80 as written (`ip_unprivileged_port_start=0`, as
//! gateway pods do).
//!
//! Needs root and Envoy: skipped without them, failed under CI=true.

mod support;

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use rudder_agent::XdsMode;
use rudder_harness::{EchoConfig, EchoServer, HttpRequest, LoadSpec, Pod};
use support::{
    edge::{allow_low_ports, eventually, get, pod_yaml, start_pilot, start_router},
    mesh::{prerequisites, write_config, Mesh},
    pilot::settled_rds_version,
    stats::binomial_bounds,
};

const INFRA: &str = "gateway-conformance-infra";
const WEB_NS: &str = "gateway-conformance-web-backend";
const GATEWAY_NAME: &str = "gateway.networking.k8s.io/gateway-name";

fn conformance(file: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/gateway-api/conformance")
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn service_yaml(name: &str, ns: &str, vip: Ipv4Addr, selector: &str, port: u16) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  clusterIP: {vip}
  selector: {{{selector}}}
  ports: [{{name: http, port: {port}, targetPort: {port}}}]
"
    )
}

/// The Gateway whose `spec.addresses` binds it to the manual deployment
/// behind Service edge-gw, with a 90/10 split.
const SPLIT: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: split, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: istio
  addresses: [{type: Hostname, value: edge-gw.gateway-conformance-infra.svc.cluster.local}]
  listeners: [{name: http, port: 8081, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: split}]
  rules:
  - backendRefs:
    - {name: infra-backend-v1, port: 8080, weight: 90}
    - {name: infra-backend-v2, port: 8080, weight: 10}
";

/// One expectation of a conformance case.
#[derive(Default)]
struct Expect {
    host: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    /// The backend that must answer (`None`: the status below, no backend).
    backend: Option<&'static str>,
    status: u16,
    location: Option<&'static str>,
    /// What the backend must have seen.
    seen_path: Option<&'static str>,
    seen_headers: Vec<(&'static str, &'static str)>,
    absent: Vec<&'static str>,
}

fn to(backend: &'static str, path: &'static str) -> Expect {
    Expect {
        host: "gw.example",
        path,
        backend: Some(backend),
        status: 200,
        ..Expect::default()
    }
}

fn status(code: u16, path: &'static str) -> Expect {
    Expect {
        host: "gw.example",
        path,
        status: code,
        ..Expect::default()
    }
}

impl Expect {
    fn host(mut self, h: &'static str) -> Self {
        self.host = h;
        self
    }
    fn header(mut self, k: &'static str, v: &'static str) -> Self {
        self.headers.push((k, v));
        self
    }
    fn seen(mut self, path: &'static str, headers: &[(&'static str, &'static str)]) -> Self {
        self.seen_path = Some(path);
        self.seen_headers = headers.to_vec();
        self
    }
    fn absent(mut self, names: &[&'static str]) -> Self {
        self.absent = names.to_vec();
        self
    }
    fn location(mut self, l: &'static str) -> Self {
        self.location = Some(l);
        self
    }

    /// Checks one request; `Err` says what differed.
    fn check(
        &self,
        client: &Pod,
        gw: SocketAddr,
        echoes: &[(&str, &EchoServer)],
    ) -> Result<(), String> {
        let o = get(client, gw, self.host, self.path, &self.headers);
        let what = format!("{}{} {:?}", self.host, self.path, self.headers);
        if o.status != Some(self.status) {
            return Err(format!(
                "{what}: want {}, got {:?} {:?} {}",
                self.status, o.status, o.error, o.body
            ));
        }
        if let Some(b) = self.backend {
            if o.body != b {
                return Err(format!("{what}: want backend {b}, got {}", o.body));
            }
            let echo = echoes
                .iter()
                .find(|(n, _)| *n == b)
                .map(|(_, e)| *e)
                .expect("echo");
            let seen = echo
                .requests()
                .last()
                .cloned()
                .ok_or("no recorded request")?;
            if let Some(p) = self.seen_path {
                if seen.path != p {
                    return Err(format!("{what}: backend saw path {}, want {p}", seen.path));
                }
            }
            for (k, v) in &self.seen_headers {
                let k = k.to_ascii_lowercase();
                let got: Vec<&str> = seen
                    .headers
                    .iter()
                    .filter(|(n, _)| *n == k)
                    .map(|(_, v)| v.as_str())
                    .collect();
                if got.join(",") != *v {
                    return Err(format!("{what}: backend saw {k}: {got:?}, want {v}"));
                }
            }
            for k in &self.absent {
                let k = k.to_ascii_lowercase();
                if seen.headers.iter().any(|(n, _)| *n == k) {
                    return Err(format!("{what}: backend saw {k}, want it removed"));
                }
            }
        }
        if let Some(l) = self.location {
            if o.header("location") != Some(l) {
                return Err(format!(
                    "{what}: location {:?}, want {l}",
                    o.header("location")
                ));
            }
        }
        Ok(())
    }
}

fn check_all(
    what: &str,
    client: &Pod,
    gw: SocketAddr,
    echoes: &[(&str, &EchoServer)],
    cases: &[Expect],
) {
    let mut wrong = Vec::new();
    for c in cases {
        // The config is already ACKed; a short retry absorbs a listener
        // drain on the first requests after a change.
        let mut last = Ok(());
        for _ in 0..5 {
            last = c.check(client, gw, echoes);
            if last.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        match last {
            Ok(()) => println!("gateway_api: {what}: {}{} -> ok", c.host, c.path),
            Err(e) => wrong.push(e),
        }
    }
    assert!(wrong.is_empty(), "{what}:\n{}", wrong.join("\n"));
}

#[test]
fn gateway_api_conformance_cases_and_a_weighted_split_at_the_edge() {
    let test = "gateway_api_edge";
    let Some((_proxy_init, pilot_bin)) = prerequisites(test) else {
        return;
    };
    let net = rudder_harness::Net::for_test("gwapi").expect("harness net");
    let client = net.add_pod("client").expect("client pod");
    let gw_same = net.add_pod("gw-same").expect("gateway pod");
    let gw_lhm = net.add_pod("gw-lhm").expect("gateway pod");
    let gw_hi = net.add_pod("gw-hi").expect("gateway pod");
    for gw in [&gw_same, &gw_lhm, &gw_hi] {
        allow_low_ports(gw);
    }
    let names = [
        "infra-backend-v1",
        "infra-backend-v2",
        "infra-backend-v3",
        "web-backend",
    ];
    let mut backend_pods = Vec::new();
    let mut echoes = Vec::new();
    for n in names {
        let pod = net.add_pod(n).expect("backend pod");
        echoes.push(pod.start_echo(EchoConfig::new(8080, n)).expect("echo"));
        backend_pods.push(pod);
    }
    let echo_refs: Vec<(&str, &EchoServer)> = names.iter().copied().zip(echoes.iter()).collect();
    let cidr = net.service_cidr();

    let mut platform = vec![
        format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {INFRA}}}\n"),
        format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {WEB_NS}}}\n"),
        pod_yaml(
            "gw-same-0",
            INFRA,
            gw_same.ip(),
            &format!("{GATEWAY_NAME}: same-namespace, app: edge-gw"),
        ),
        pod_yaml(
            "gw-lhm-0",
            INFRA,
            gw_lhm.ip(),
            &format!("{GATEWAY_NAME}: httproute-listener-hostname-matching"),
        ),
        pod_yaml(
            "gw-hi-0",
            INFRA,
            gw_hi.ip(),
            &format!("{GATEWAY_NAME}: httproute-hostname-intersection"),
        ),
        service_yaml("edge-gw", INFRA, cidr.nth(2).unwrap(), "app: edge-gw", 8081),
    ];
    for (i, (n, pod)) in names.iter().zip(&backend_pods).enumerate() {
        let ns = if *n == "web-backend" { WEB_NS } else { INFRA };
        platform.push(pod_yaml(
            &format!("{n}-0"),
            ns,
            pod.ip(),
            &format!("app: {n}"),
        ));
        platform.push(service_yaml(
            n,
            ns,
            cidr.nth(10 + i as u64).unwrap(),
            &format!("app: {n}"),
            8080,
        ));
    }
    let config = tempfile::tempdir().expect("config dir");
    write_config(config.path(), "platform.yaml", &platform.join("---\n"));
    write_config(
        config.path(),
        "same-namespace.yaml",
        &conformance("same-namespace.yaml"),
    );
    write_config(config.path(), "split.yaml", SPLIT);
    write_config(
        config.path(),
        "lhm.yaml",
        &conformance("httproute-listener-hostname-matching.yaml"),
    );
    write_config(
        config.path(),
        "hi.yaml",
        &conformance("httproute-hostname-intersection.yaml"),
    );
    write_config(
        config.path(),
        "routes.yaml",
        &conformance("httproute-matching.yaml"),
    );

    let (mut pilot, xds) = start_pilot(&net, &pilot_bin, config.path());

    let same = start_router(
        &gw_same,
        xds,
        "gw-same-0",
        INFRA,
        &[(GATEWAY_NAME, "same-namespace"), ("app", "edge-gw")],
    );
    let lhm = start_router(
        &gw_lhm,
        xds,
        "gw-lhm-0",
        INFRA,
        &[(GATEWAY_NAME, "httproute-listener-hostname-matching")],
    );
    let hi = start_router(
        &gw_hi,
        xds,
        "gw-hi-0",
        INFRA,
        &[(GATEWAY_NAME, "httproute-hostname-intersection")],
    );
    let same_node =
        rudder_model::NodeId::router(gw_same.ip().into(), "gw-same-0", INFRA).to_string();
    let at80 = |p: &Pod| SocketAddr::from((p.ip(), 80));

    eventually(
        "the first case on the gateway",
        Duration::from_secs(30),
        || {
            to("infra-backend-v2", "/v2")
                .check(&client, at80(&gw_same), &echo_refs)
                .map_err(|e| {
                    let l = same.process().read_log();
                    format!(
                        "{e}\n{}\n{}",
                        &l[l.len().saturating_sub(2000)..],
                        pilot.log_tail(20)
                    )
                })
        },
    );

    // One conformance case at a time on Gateway same-namespace.
    let cases: Vec<(&str, String, Vec<Expect>)> = vec![
        (
            "HTTPRouteMatching",
            conformance("httproute-matching.yaml"),
            vec![
                to("infra-backend-v1", "/"),
                to("infra-backend-v1", "/example"),
                to("infra-backend-v1", "/").header("Version", "one"),
                to("infra-backend-v2", "/v2"),
                to("infra-backend-v2", "/v2/example"),
                to("infra-backend-v2", "/").header("Version", "two"),
                // Path elements: /v2example is not under /v2.
                to("infra-backend-v1", "/v2example"),
            ],
        ),
        (
            "HTTPRouteHeaderMatching",
            conformance("httproute-header-matching.yaml"),
            vec![
                to("infra-backend-v1", "/").header("Version", "one"),
                to("infra-backend-v2", "/").header("Version", "two"),
                to("infra-backend-v1", "/")
                    .header("Version", "two")
                    .header("Color", "orange"),
                to("infra-backend-v2", "/")
                    .header("Version", "two")
                    .header("Color", "blue"),
                status(404, "/").header("Color", "orange"),
                status(404, "/").header("Some-Other-Header", "one"),
                to("infra-backend-v1", "/").header("Color", "blue"),
                to("infra-backend-v1", "/").header("Color", "green"),
                to("infra-backend-v2", "/").header("Color", "red"),
                to("infra-backend-v2", "/").header("Color", "yellow"),
                status(404, "/").header("Color", "purple"),
            ],
        ),
        (
            "HTTPRouteRequestHeaderModifier",
            conformance("httproute-request-header-modifier.yaml"),
            vec![
                to("infra-backend-v1", "/set")
                    .header("Some-Other-Header", "val")
                    .seen(
                        "/set",
                        &[
                            ("Some-Other-Header", "val"),
                            ("X-Header-Set", "set-overwrites-values"),
                        ],
                    ),
                to("infra-backend-v1", "/set")
                    .header("Some-Other-Header", "val")
                    .header("X-Header-Set", "some-other-value")
                    .seen(
                        "/set",
                        &[
                            ("Some-Other-Header", "val"),
                            ("X-Header-Set", "set-overwrites-values"),
                        ],
                    ),
                to("infra-backend-v1", "/add")
                    .header("Some-Other-Header", "val")
                    .seen(
                        "/add",
                        &[
                            ("Some-Other-Header", "val"),
                            ("X-Header-Add", "add-appends-values"),
                        ],
                    ),
                to("infra-backend-v1", "/add")
                    .header("Some-Other-Header", "val")
                    .header("X-Header-Add", "some-other-value")
                    .seen(
                        "/add",
                        &[
                            ("Some-Other-Header", "val"),
                            ("X-Header-Add", "some-other-value,add-appends-values"),
                        ],
                    ),
                to("infra-backend-v1", "/remove")
                    .header("X-Header-Remove", "val")
                    .seen("/remove", &[])
                    .absent(&["X-Header-Remove"]),
                to("infra-backend-v1", "/multiple")
                    .header("X-Header-Set-2", "set-val-2")
                    .header("X-Header-Add-2", "add-val-2")
                    .header("X-Header-Remove-2", "remove-val-2")
                    .header("Another-Header", "another-header-val")
                    .seen(
                        "/multiple",
                        &[
                            ("X-Header-Set-1", "header-set-1"),
                            ("X-Header-Set-2", "header-set-2"),
                            ("X-Header-Add-1", "header-add-1"),
                            ("X-Header-Add-2", "add-val-2,header-add-2"),
                            ("X-Header-Add-3", "header-add-3"),
                            ("Another-Header", "another-header-val"),
                        ],
                    )
                    .absent(&["X-Header-Remove-1", "X-Header-Remove-2"]),
            ],
        ),
        (
            "HTTPRouteRewritePath",
            conformance("httproute-rewrite-path.yaml"),
            vec![
                to("infra-backend-v1", "/prefix/one/two").seen("/one/two", &[]),
                to("infra-backend-v1", "/strip-prefix/three").seen("/three", &[]),
                to("infra-backend-v1", "/strip-prefix").seen("/", &[]),
                to("infra-backend-v1", "/full/one/two").seen("/one", &[]),
                to(
                    "infra-backend-v1",
                    "/full/rewrite-path-and-modify-headers/test",
                )
                .header("X-Header-Remove", "remove-val")
                .header("X-Header-Add-Append", "append-val-1")
                .seen(
                    "/test",
                    &[
                        ("X-Header-Add", "header-val-1"),
                        ("X-Header-Add-Append", "append-val-1,header-val-2"),
                        ("X-Header-Set", "set-overwrites-values"),
                    ],
                )
                .absent(&["X-Header-Remove"]),
                to(
                    "infra-backend-v1",
                    "/prefix/rewrite-path-and-modify-headers/one",
                )
                .header("X-Header-Remove", "remove-val")
                .header("X-Header-Add-Append", "append-val-1")
                .seen(
                    "/prefix/one",
                    &[
                        ("X-Header-Add", "header-val-1"),
                        ("X-Header-Add-Append", "append-val-1,header-val-2"),
                        ("X-Header-Set", "set-overwrites-values"),
                    ],
                )
                .absent(&["X-Header-Remove"]),
            ],
        ),
        (
            "HTTPRouteRedirectHostAndStatus",
            conformance("httproute-redirect-host-and-status.yaml"),
            vec![
                status(302, "/hostname-redirect").location("http://example.org/hostname-redirect"),
                status(301, "/host-and-status").location("http://example.org/host-and-status"),
            ],
        ),
        (
            "HTTPRouteRedirectScheme",
            conformance("httproute-redirect-scheme.yaml"),
            vec![
                status(302, "/scheme").location("https://gw.example/scheme"),
                status(302, "/scheme-and-host").location("https://example.org/scheme-and-host"),
                status(301, "/scheme-and-status").location("https://gw.example/scheme-and-status"),
                status(302, "/scheme-and-host-and-status")
                    .location("https://example.org/scheme-and-host-and-status"),
            ],
        ),
        // HTTPRouteInvalidReferenceGrant: the route without its grant gets 500.
        (
            "HTTPRouteInvalidReferenceGrant",
            conformance("httproute-reference-grant.yaml")
                .split("---\n")
                .nth(1)
                .unwrap()
                .to_string(),
            vec![status(500, "/")],
        ),
        (
            "HTTPRouteReferenceGrant",
            conformance("httproute-reference-grant.yaml"),
            vec![to("web-backend", "/")],
        ),
    ];
    let mut version = settled_rds_version(&pilot.syncz(), &same_node);
    for (i, (name, routes, expects)) in cases.iter().enumerate() {
        if i > 0 {
            write_config(config.path(), "routes.yaml", routes);
            let old = version.clone();
            let what = format!("{name}: the gateway ACKs new routes");
            version = Some(
                pilot
                    .wait_for(&what, Duration::from_secs(20), |p| {
                        settled_rds_version(&p.syncz(), &same_node)
                            .filter(|v| Some(v) != old.as_ref())
                    })
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        check_all(name, &client, at80(&gw_same), &echo_refs, expects);
    }

    // HTTPRouteListenerHostnameMatching: each listener its own routes.
    eventually(
        "listener hostname matching",
        Duration::from_secs(20),
        || {
            to("infra-backend-v1", "/")
                .host("bar.com")
                .check(&client, at80(&gw_lhm), &echo_refs)
        },
    );
    check_all(
        "HTTPRouteListenerHostnameMatching",
        &client,
        at80(&gw_lhm),
        &echo_refs,
        &[
            to("infra-backend-v1", "/").host("bar.com"),
            to("infra-backend-v2", "/").host("foo.bar.com"),
            to("infra-backend-v3", "/").host("baz.bar.com"),
            to("infra-backend-v3", "/").host("boo.bar.com"),
            to("infra-backend-v3", "/").host("multiple.prefixes.bar.com"),
            status(404, "/").host("foo.com"),
            status(404, "/").host("no.matching.host"),
        ],
    );

    // HTTPRouteHostnameIntersection (the routes that intersect, and the one that does not).
    eventually("hostname intersection", Duration::from_secs(20), || {
        to("infra-backend-v1", "/s1")
            .host("very.specific.com")
            .check(&client, at80(&gw_hi), &echo_refs)
    });
    check_all(
        "HTTPRouteHostnameIntersection",
        &client,
        at80(&gw_hi),
        &echo_refs,
        &[
            to("infra-backend-v1", "/s1").host("very.specific.com"),
            status(404, "/s1").host("non.matching.com"),
            status(404, "/s1").host("foo.nonmatchingwildcard.io"),
            status(404, "/s1").host("foo.wildcard.io"),
            status(404, "/non-matching-prefix").host("very.specific.com"),
            to("infra-backend-v2", "/s2").host("foo.wildcard.io"),
            to("infra-backend-v2", "/s2").host("bar.wildcard.io"),
            to("infra-backend-v2", "/s2").host("foo.bar.wildcard.io"),
            status(404, "/s2").host("non.matching.com"),
            status(404, "/s2").host("wildcard.io"),
            status(404, "/s2").host("very.specific.com"),
            status(404, "/non-matching-prefix").host("foo.wildcard.io"),
            to("infra-backend-v3", "/s3").host("very.specific.com"),
            status(404, "/s3").host("non.matching.com"),
            status(404, "/s3").host("foo.specific.com"),
            status(404, "/s3").host("foo.wildcard.io"),
            to("infra-backend-v1", "/s4").host("foo.anotherwildcard.io"),
            to("infra-backend-v1", "/s4").host("bar.anotherwildcard.io"),
            to("infra-backend-v1", "/s4").host("foo.bar.anotherwildcard.io"),
            status(404, "/s4").host("anotherwildcard.io"),
            status(404, "/s4").host("foo.wildcard.io"),
            status(404, "/s4").host("very.specific.com"),
            status(404, "/s5").host("specific.but.wrong.com"),
            status(404, "/s5").host("wildcard.io"),
        ],
    );

    // The weighted split at the edge, on the Gateway bound by spec.addresses.
    let split_addr = SocketAddr::from((gw_same.ip(), 8081));
    eventually("the split gateway", Duration::from_secs(20), || {
        let o = get(&client, split_addr, "shop.example", "/", &[]);
        o.is_success().then_some(()).ok_or(format!("{o:?}"))
    });
    let n = 1000;
    let report = client
        .http_load(&LoadSpec {
            timeout: Duration::from_secs(60),
            ..LoadSpec::new(HttpRequest::get(split_addr, "/").host("shop.example"), n)
        })
        .expect("load");
    assert_eq!(report.successes(), n, "every request answered");
    let v1 = report
        .outcomes
        .iter()
        .filter(|o| o.body == "infra-backend-v1")
        .count() as u64;
    let v2 = report
        .outcomes
        .iter()
        .filter(|o| o.body == "infra-backend-v2")
        .count() as u64;
    let (lo, hi_) = binomial_bounds(n as u64, 0.9);
    println!("{test}: edge split 90/10 over {n}: v1 {v1}, v2 {v2} (v1 bounds {lo}..={hi_})");
    assert_eq!(v1 + v2, n as u64);
    assert!((lo..=hi_).contains(&v1), "v1 {v1} outside {lo}..={hi_}");
    drop((same, lhm, hi, pilot));
}

/// GAMMA: an HTTPRoute whose parent is Service reviews splits the client
/// sidecar's traffic to reviews 90/10 between two version Services, as a
/// VirtualService for reviews would.
const GAMMA: &str = "apiVersion: v1
kind: Service
metadata: {name: reviews-v1, namespace: default}
spec:
  clusterIP: 198.19.250.1
  selector: {app: reviews, version: v1}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v2, namespace: default}
spec:
  clusterIP: 198.19.250.2
  selector: {app: reviews, version: v2}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: default}
spec:
  parentRefs: [{group: \"\", kind: Service, name: reviews, port: 9080}]
  rules:
  - matches: [{headers: [{name: end-user, value: jason}]}]
    backendRefs: [{name: reviews-v2, port: 9080}]
  - backendRefs:
    - {name: reviews-v1, port: 9080, weight: 90}
    - {name: reviews-v2, port: 9080, weight: 10}
";

#[test]
fn gamma_httroute_splits_sidecar_traffic_to_a_service() {
    let test = "gateway_api_gamma";
    let Some((proxy_init, pilot_bin)) = prerequisites(test) else {
        return;
    };
    let mesh = Mesh::start("gamma", XdsMode::Delta, &proxy_init, &pilot_bin, GAMMA);
    // The header match first, then the split.
    for _ in 0..20 {
        let o = mesh
            .client
            .http_get(
                &mesh.request().header("end-user", "jason"),
                Duration::from_secs(2),
            )
            .expect("request");
        assert_eq!(o.body, "reviews-v2", "{o:?}");
    }
    let n = 1000;
    let report = mesh.load(mesh.request(), n);
    assert_eq!(report.successes(), n, "every request answered");
    let count = |b: &str| report.outcomes.iter().filter(|o| o.body == b).count() as u64;
    let (v1, v2, v3) = (
        count("reviews-v1"),
        count("reviews-v2"),
        count("reviews-v3"),
    );
    let (lo, hi) = binomial_bounds(n as u64, 0.9);
    println!(
        "{test}: mesh split 90/10 over {n}: v1 {v1}, v2 {v2}, v3 {v3} (v1 bounds {lo}..={hi})"
    );
    assert_eq!(v3, 0, "reviews-v3 is in no backendRef");
    assert!((lo..=hi).contains(&v1), "v1 {v1} outside {lo}..={hi}");
}
