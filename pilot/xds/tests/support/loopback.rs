//! The loopback mesh of the traffic tests (`mtls_traffic.rs`,
//! `traffic_fidelity.rs`): one real Envoy plays httpbin's inbound side and
//! sleep's outbound side, from generated config.
//!
//! ```text
//!  client ─► 127.0.0.1:A  HCM → outbound|8000||httpbin   (generated for sleep: its VIP listener's HCM and
//!                                                           routes; ISTIO_MUTUAL, SNI, SAN httpbin)
//!  client ─► 127.0.0.1:B  HCM → same cluster, other identity
//!                           │ mTLS
//!                           ▼
//!            127.0.0.1:S  inbound|8000|mtls chain          (generated for httpbin: STRICT, RBAC allow sa/sleep, XFCC)
//!                           ▼
//!            echo on 127.0.0.1:E  (answers with the x-forwarded-client-cert it got,
//!                                  the Host it saw in `x-seen-host`;
//!                                  a WebSocket upgrade gets 101 and its bytes echoed)
//! ```
//!
//! Only what capture would do is rewritten: listener addresses instead of
//! original-destination matching, STATIC clusters instead of EDS/ORIGINAL_DST,
//! and one secret name per identity (one Envoy plays three workloads).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use super::*;
use envoy_types::pb::envoy::{
    config::{
        bootstrap::v3::{bootstrap::StaticResources, Bootstrap},
        cluster::v3::{cluster, Cluster},
        core::v3::{data_source::Specifier, transport_socket, DataSource},
        endpoint::v3::{
            lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
        },
        listener::v3::{FilterChain, Listener},
        route::v3::{
            route, route_action, route_match, Route, RouteAction, RouteConfiguration, RouteMatch,
            VirtualHost,
        },
    },
    extensions::{
        filters::network::http_connection_manager::v3::{
            http_connection_manager::{CodecType, RouteSpecifier},
            http_filter, HttpConnectionManager, HttpFilter,
        },
        transport_sockets::tls::v3::{
            secret, CertificateValidationContext, DownstreamTlsContext, Secret, TlsCertificate,
            UpstreamTlsContext,
        },
    },
};
use prost::{Message, Name};
use rudder_config::{AuthorizationPolicySpec, PeerAuthenticationSpec};
use rudder_model::{well_known::TLS_MODE_LABEL, Workload};
use rudder_registry::{check::Checker, compile::security, Kind, ObjectKey, Origin};
use rudder_xds::{fixtures::*, Generator};

pub const HTTPBIN_CLUSTER: &str = "outbound|8000||httpbin.default.svc.cluster.local";

pub fn meshed(mut w: Workload, sa: &str) -> Workload {
    w.labels.insert(TLS_MODE_LABEL.into(), "istio".into());
    w.service_account = sa.into();
    w
}

pub fn decode<M: Message + Default>(any: &envoy_types::pb::google::protobuf::Any) -> M {
    M::decode(any.value.as_slice()).expect("decodes")
}

pub fn pack<M: Message + Name>(m: &M) -> envoy_types::pb::google::protobuf::Any {
    envoy_types::pb::google::protobuf::Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

/// A CA and three workload certificates with SPIFFE URI SANs (PEM).
pub struct Pki {
    pub root: String,
    /// (secret name, chain, key)
    pub leaves: Vec<(String, String, String)>,
}

pub fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rudder test root");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaves = [
        ("default", "sleep"),
        ("server", "httpbin"),
        ("other", "intruder"),
    ]
    .into_iter()
    .map(|(secret, sa)| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        // SPIFFE certificates carry their identity in the URI SAN only; a
        // subject equal to the issuer's would look self-signed.
        params.distinguished_name = rcgen::DistinguishedName::new();
        let uri = format!("spiffe://cluster.local/ns/default/sa/{sa}");
        params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
        let cert = params.signed_by(&key, &ca).unwrap();
        (secret.to_string(), cert.pem(), key.serialize_pem())
    })
    .collect();
    Pki {
        root: ca.pem(),
        leaves,
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads from `s` until the end of an HTTP head (or EOF, an error, the
/// read timeout); returns every byte read.
pub fn read_head(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf
}

/// The value of header `name` (lower case) in an HTTP head.
pub fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// An HTTP/1.1 server answering 200 with the request's XFCC header as body.
pub fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let buf = read_head(&mut s);
            let mut chunk = [0u8; 4096];
            let req = String::from_utf8_lossy(&buf).to_string();
            if req.to_ascii_lowercase().contains("upgrade: websocket") {
                let _ = s.write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n",
                );
                // Echo what follows the request head, then the tunnel's bytes.
                let head = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
                let _ = s.write_all(&buf[head.min(buf.len())..]);
                while let Ok(n) = s.read(&mut chunk) {
                    if n == 0 || s.write_all(&chunk[..n]).is_err() {
                        break;
                    }
                }
                continue;
            }
            let xfcc = header_value(&req, "x-forwarded-client-cert").unwrap_or_default();
            let host = header_value(&req, "host").unwrap_or_default();
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-seen-host: {host}\r\nconnection: close\r\n\r\n{xfcc}",
                xfcc.len()
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    addr
}

/// An HTTP/1.1 server that answers `GET /flaky` with 503 the first time
/// and 200 after, and every other path with 200; the count is of `/flaky`
/// requests it saw.
pub fn flaky() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::{atomic::Ordering, Arc};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = seen.clone();
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let req = String::from_utf8_lossy(&read_head(&mut s)).to_string();
            let status =
                if req.starts_with("GET /flaky ") && count.fetch_add(1, Ordering::SeqCst) == 0 {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
            let _ = s.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (addr, seen)
}

/// `GET /` with a 5 s bound: `Ok((status, body))`, or `Err` when the
/// connection fails or closes without a response.
pub fn get(port: u16) -> Result<(u16, String), String> {
    let out = raw_get(port, "/")?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(format!("no response: {out:?}"))?;
    Ok((
        status,
        out.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    ))
}

/// The whole response to `GET path` (Host `httpbin`), with a 5 s bound.
pub fn raw_get(port: u16, path: &str) -> Result<String, String> {
    raw_get_host(port, path, "httpbin")
}

/// The whole response to `GET path` with this Host, with a 5 s bound.
pub fn raw_get_host(port: u16, path: &str, host: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

pub fn static_cluster(name: &str, to: SocketAddr) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
            seconds: 2,
            nanos: 0,
        }),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(socket(to)),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn socket(a: SocketAddr) -> envoy_types::pb::envoy::config::core::v3::Address {
    use envoy_types::pb::envoy::config::core::v3::{
        address, socket_address, Address, SocketAddress,
    };
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: a.ip().to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                a.port(),
            ))),
            ..Default::default()
        })),
    }
}

/// A plaintext HTTP listener routing everything to `cluster`.
pub fn client_listener(name: &str, port: u16, cluster: &str) -> Listener {
    let router = envoy_types::pb::envoy::extensions::filters::http::router::v3::Router::default();
    let hcm = HttpConnectionManager {
        stat_prefix: name.into(),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            virtual_hosts: vec![VirtualHost {
                name: "all".into(),
                domains: vec!["*".into()],
                routes: vec![Route {
                    r#match: Some(RouteMatch {
                        path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                        ..Default::default()
                    }),
                    action: Some(route::Action::Route(RouteAction {
                        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                            cluster.into(),
                        )),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack(&router))),
            ..Default::default()
        }],
        ..Default::default()
    };
    Listener {
        name: name.into(),
        address: Some(socket(SocketAddr::from(([127, 0, 0, 1], port)))),
        filter_chains: vec![FilterChain {
            filters: vec![envoy_types::pb::envoy::config::listener::v3::Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(
                    envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(
                        pack(&hcm),
                    ),
                ),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// sleep's generated listener for httpbin's VIP, bound on `port`, with the
/// generated route configuration it names inlined (no RDS here).
pub fn generated_client_listener(res: &rudder_xds::ProxyResources, port: u16) -> Listener {
    let mut l: Listener =
        decode(&res.by_type[&rudder_xds::TypeUrl::Listener]["198.19.1.1_8000"].body);
    l.name = "as-sleep".into();
    l.address = Some(socket(SocketAddr::from(([127, 0, 0, 1], port))));
    l.bind_to_port = None;
    inline_routes(&mut l.filter_chains[0], res);
    l
}

/// Replaces the RDS of a chain's HTTP connection manager with the
/// generated route configuration it names.
pub fn inline_routes(chain: &mut FilterChain, res: &rudder_xds::ProxyResources) {
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    let filter = &mut chain.filters[0];
    let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
        panic!("typed HCM")
    };
    let mut hcm: HttpConnectionManager = decode(any);
    let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier else {
        panic!("the HCM uses RDS")
    };
    let rc: RouteConfiguration =
        decode(&res.by_type[&rudder_xds::TypeUrl::Route][&rds.route_config_name].body);
    hcm.route_specifier = Some(RouteSpecifier::RouteConfig(rc));
    filter.config_type = Some(ConfigType::TypedConfig(pack(&hcm)));
}

/// Renames the workload secret a TLS transport socket names.
pub fn rename_secret<T: Message + Name + Default>(
    ts: &mut envoy_types::pb::envoy::config::core::v3::TransportSocket,
    name: &str,
    common: impl Fn(&mut T) -> &mut envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::CommonTlsContext,
) {
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
        panic!("typed TLS config")
    };
    let mut ctx: T = decode(any);
    common(&mut ctx).tls_certificate_sds_secret_configs[0].name = name.into();
    ts.config_type = Some(transport_socket::ConfigType::TypedConfig(pack(&ctx)));
}

pub struct KillOnDrop(Child);

/// Starts Envoy on `bootstrap` (log in the returned directory's
/// `envoy.log`) and waits, at most 20 s, until `GET /` with Host
/// `ready_host` on `ready_port` answers 200.
pub fn run_envoy(
    bin: &std::path::Path,
    bootstrap: &Bootstrap,
    ready_port: u16,
    ready_host: &str,
) -> (tempfile::TempDir, KillOnDrop) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bootstrap.pb");
    std::fs::write(&file, bootstrap.encode_to_vec()).unwrap();
    let log = std::fs::File::create(dir.path().join("envoy.log")).unwrap();
    let child = Command::new(bin)
        .args([
            "--disable-hot-restart",
            "--log-level",
            "warn",
            "--concurrency",
            "1",
            "-c",
        ])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("envoy starts");
    let envoy = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match raw_get_host(ready_port, "/", ready_host).map(|r| r.starts_with("HTTP/1.1 200")) {
            // Static listeners come up together, but give the upstream pool a
            // chance: only a 200 or the deadline ends the wait.
            Ok(true) => break,
            _ if Instant::now() > deadline => break,
            _ => thread::sleep(Duration::from_millis(100)),
        }
    }
    (dir, envoy)
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One Envoy playing httpbin's inbound side (the generated chains of port
/// 8000 under `peer_yaml`, and `allow_yaml` if any) and two sleep-side
/// clients (the generated outbound cluster, with sleep's and an intruder's
/// certificate).
pub struct Loopback {
    /// Plain HTTP in, through the cluster as sleep.
    pub as_sleep: u16,
    /// Plain HTTP in, through the cluster as the intruder.
    pub as_intruder: u16,
    /// httpbin's inbound side, directly.
    pub server: u16,
    pub server_res: rudder_xds::ProxyResources,
    pub dir: tempfile::TempDir,
    pub _envoy: KillOnDrop,
}

impl Loopback {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }
}

pub fn loopback(bin: &std::path::Path, peer_yaml: &str, allow_yaml: Option<&str>) -> Loopback {
    loopback_with(bin, peer_yaml, allow_yaml, vec![])
}

/// [`loopback`] with sleep's routes for httpbin from `tables`.
pub fn loopback_with(
    bin: &std::path::Path,
    peer_yaml: &str,
    allow_yaml: Option<&str>,
    tables: Vec<rudder_model::RouteTable>,
) -> Loopback {
    loopback_to(bin, peer_yaml, allow_yaml, tables, echo())
}

/// [`loopback_with`] with httpbin's app at `app` (instead of [`echo`]).
pub fn loopback_to(
    bin: &std::path::Path,
    peer_yaml: &str,
    allow_yaml: Option<&str>,
    tables: Vec<rudder_model::RouteTable>,
    app: SocketAddr,
) -> Loopback {
    let key = ObjectKey::new(Kind::AuthorizationPolicy, NS, "allow-sleep");
    let mut ck = Checker::new(&key, &Origin::default());
    let pkey = ObjectKey::new(Kind::PeerAuthentication, NS, "default");
    let peer = security::peer_authentication(
        &serde_saphyr::from_str::<PeerAuthenticationSpec>(peer_yaml).unwrap(),
        &pkey,
        None,
        &mut ck,
    )
    .unwrap();
    let mut b = SnapshotBuilder::new()
        .service(mk_service(
            "httpbin",
            NS,
            "198.19.1.1",
            vec![mk_port("http", 8000, 8000)],
            &[("app", "httpbin")],
        ))
        .pod(meshed(
            mk_pod("httpbin-v1", NS, "198.18.1.1", &[("app", "httpbin")]),
            "httpbin",
        ))
        .pod(meshed(
            mk_pod("sleep", NS, "198.18.1.9", &[("app", "sleep")]),
            "sleep",
        ))
        .peer_authentication(peer);
    if let Some(y) = allow_yaml {
        let spec = serde_saphyr::from_str::<AuthorizationPolicySpec>(y).unwrap();
        b = b.authorization_policy(security::authorization_policy(&spec, &key, &mut ck).unwrap());
    }
    for t in tables {
        b = b.route_table(t);
    }
    assert!(!ck.has_errors(), "{:?}", ck.diagnostics);
    let s = b.build();
    let g = Generator::new(s.clone());
    let server_res = g.generate(&proxy(&s, "httpbin-v1"));
    let client_res = g.generate(&proxy(&s, "sleep"));

    // The server side: the generated chains of port 8000 (and listener
    // filters but original_dst) behind a plain listener.
    let virt: Listener =
        decode(&server_res.by_type[&rudder_xds::TypeUrl::Listener]["virtual"].body);
    let chains: Vec<FilterChain> = virt
        .filter_chains
        .into_iter()
        .filter(|c| c.name == "inbound|8000" || c.name.starts_with("inbound|8000|"))
        .map(|mut c| {
            if let Some(m) = c.filter_chain_match.as_mut() {
                m.destination_port = None;
                m.prefix_ranges.clear();
            }
            if let Some(ts) = c.transport_socket.as_mut() {
                rename_secret::<DownstreamTlsContext>(ts, "server", |c| {
                    c.common_tls_context.as_mut().unwrap()
                });
            }
            c
        })
        .collect();
    let listener_filters = virt
        .listener_filters
        .into_iter()
        .filter(|f| f.name != "envoy.filters.listener.original_dst")
        .map(|mut f| {
            f.filter_disabled = None; // it names port 8000; the test listener has its own port
            f
        })
        .collect();
    let (server_port, a_port, b_port) = (free_port(), free_port(), free_port());
    let server = Listener {
        name: "server".into(),
        address: Some(socket(SocketAddr::from(([127, 0, 0, 1], server_port)))),
        filter_chains: chains,
        listener_filters,
        ..Default::default()
    };
    // The client side: the generated outbound cluster, pointed at the server.
    let mut out: Cluster =
        decode(&client_res.by_type[&rudder_xds::TypeUrl::Cluster][HTTPBIN_CLUSTER].body);
    let server_addr = SocketAddr::from(([127, 0, 0, 1], server_port));
    let as_static = static_cluster(HTTPBIN_CLUSTER, server_addr);
    out.eds_cluster_config = None;
    out.cluster_discovery_type = as_static.cluster_discovery_type.clone();
    out.load_assignment = as_static.load_assignment.clone();
    let mut other = out.clone();
    other.name = "as-intruder".into();
    other.load_assignment.as_mut().unwrap().cluster_name = other.name.clone();
    rename_secret::<UpstreamTlsContext>(other.transport_socket.as_mut().unwrap(), "other", |c| {
        c.common_tls_context.as_mut().unwrap()
    });

    let pki = pki();
    let inline = |s: &str| {
        Some(DataSource {
            specifier: Some(Specifier::InlineString(s.to_string())),
            ..Default::default()
        })
    };
    let mut secrets: Vec<Secret> = pki
        .leaves
        .iter()
        .map(|(name, chain, key)| Secret {
            name: name.clone(),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: inline(chain),
                private_key: inline(key),
                ..Default::default()
            })),
        })
        .collect();
    secrets.push(Secret {
        name: "ROOTCA".into(),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: inline(&pki.root),
                ..Default::default()
            },
        )),
    });
    let bootstrap = Bootstrap {
        static_resources: Some(StaticResources {
            listeners: vec![
                server,
                generated_client_listener(&client_res, a_port),
                client_listener("as-intruder", b_port, "as-intruder"),
            ],
            clusters: vec![out, other, static_cluster("inbound|8000||", app)],
            secrets,
        }),
        ..Default::default()
    };
    let (dir, envoy) = run_envoy(bin, &bootstrap, a_port, "httpbin");
    Loopback {
        as_sleep: a_port,
        as_intruder: b_port,
        server: server_port,
        server_res,
        dir,
        _envoy: envoy,
    }
}
