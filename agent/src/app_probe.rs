//! The app's own probes, run by the agent for kubelet.
//!
//! The injector points an app container's `httpGet`, `tcpSocket` and `grpc` probes at
//! `GET /app-health/<container>/<livez|readyz|startupz>` on the agent's
//! metrics port and passes the originals in `ISTIO_KUBE_APP_PROBERS` (JSON,
//! path → probe, Istio's format). Kubelet's probe then never meets Envoy, so a
//! STRICT PeerAuthentication does not refuse it. The agent runs the original
//! probe against the pod's IP (`INSTANCE_IP`, as kubelet would) from source
//! address 127.0.0.6, which proxy-init exempts from
//! capture (the proxy user's own traffic to its pod IP is otherwise sent to
//! Envoy's inbound, as Istio's agent does it):
//!
//! - `httpGet`: the app's status is passed on (kubelet counts 200-399 as
//!   success); no answer in `timeoutSeconds` or a refused connection is 503.
//!   `scheme: HTTPS` does TLS without verifying the app's certificate, as
//!   kubelet does.
//! - `tcpSocket`: a connection within `timeoutSeconds` is 200, else 503.
//! - `grpc`: `grpc.health.v1.Health/Check` (h2c, as kubelet) for `service`:
//!   `SERVING` is 200, anything else 503 with the status.
//! - an unknown path is 404.

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rudder_model::well_known::{self, APP_HEALTH_PATH_PREFIX, APP_PROBERS_ENV};
use serde::Deserialize;
use tokio::net::TcpStream;

/// One original probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prober {
    /// An HTTP GET.
    Http {
        /// The app's port.
        port: u16,
        /// Path (with query).
        path: String,
        /// A host to connect to instead of the pod IP (`httpGet.host`).
        host: Option<String>,
        /// Extra request headers.
        headers: Vec<(String, String)>,
        /// TLS (`scheme: HTTPS`), the app's certificate not verified.
        https: bool,
        /// How long to wait.
        timeout: Duration,
    },
    /// A gRPC health check.
    Grpc {
        /// The app's port.
        port: u16,
        /// The service name asked about (empty: the server as a whole).
        service: String,
        /// How long to wait.
        timeout: Duration,
    },
    /// A TCP connect.
    Tcp {
        /// The app's port.
        port: u16,
        /// A host to connect to instead of the pod IP.
        host: Option<String>,
        /// How long to wait.
        timeout: Duration,
    },
}

/// What one probe found: the status to answer kubelet with, and a line for
/// the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// HTTP status for kubelet.
    pub status: u16,
    /// Why (for the body and logs).
    pub detail: String,
}

/// The probes of one pod, by path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppProbers {
    probes: BTreeMap<String, Prober>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawProber {
    http_get: Option<RawHttpGet>,
    tcp_socket: Option<RawTcp>,
    grpc: Option<RawGrpc>,
    timeout_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrpc {
    port: u16,
    service: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawHttpGet {
    path: Option<String>,
    port: u16,
    scheme: Option<String>,
    host: Option<String>,
    #[serde(default)]
    http_headers: Vec<RawHeader>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTcp {
    port: u16,
    host: Option<String>,
}

impl AppProbers {
    /// Parse `ISTIO_KUBE_APP_PROBERS` (empty: no probes). Errors name the path
    /// and field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::default());
        }
        let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| format!("{APP_PROBERS_ENV}: not a JSON object of probes: {e}"))?;
        let mut probes = BTreeMap::new();
        for (path, value) in raw {
            let err = |m: String| format!("{APP_PROBERS_ENV}[{path:?}]: {m}");
            let rest = path
                .strip_prefix(APP_HEALTH_PATH_PREFIX)
                .ok_or_else(|| err(format!("the path must start with {APP_HEALTH_PATH_PREFIX}")))?;
            match rest.split_once('/') {
                Some((c, kind))
                    if !c.is_empty() && ["livez", "readyz", "startupz"].contains(&kind) => {}
                _ => {
                    return Err(err(format!(
                    "the path must be {APP_HEALTH_PATH_PREFIX}<container>/<livez|readyz|startupz>"
                )))
                }
            }
            let raw: RawProber = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
            let prober = prober(raw, &err)?;
            probes.insert(path, prober);
        }
        Ok(AppProbers { probes })
    }

    /// The probe served at `path`.
    pub fn get(&self, path: &str) -> Option<&Prober> {
        self.probes.get(path)
    }

    /// How many probes there are.
    pub fn len(&self) -> usize {
        self.probes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.probes.is_empty()
    }
}

/// One probe of `ISTIO_KUBE_APP_PROBERS`: exactly one of `httpGet`,
/// `tcpSocket` and `grpc`. `err` puts the probe's path before a message.
fn prober(raw: RawProber, err: &impl Fn(String) -> String) -> Result<Prober, String> {
    let timeout = match raw.timeout_seconds {
        None => Duration::from_secs(1),
        Some(0) => return Err(err("timeoutSeconds: must be at least 1".into())),
        Some(s) => Duration::from_secs(s),
    };
    let port_ok = |p: u16, at: &str| {
        if p == 0 {
            Err(err(format!("{at}.port: 0 is not a port")))
        } else {
            Ok(p)
        }
    };
    Ok(match (raw.http_get, raw.tcp_socket, raw.grpc) {
        (Some(h), None, None) => {
            let https = match h.scheme.as_deref() {
                None | Some("HTTP") => false,
                Some("HTTPS") => true,
                Some(s) => return Err(err(format!("httpGet.scheme: {s:?} is not HTTP or HTTPS"))),
            };
            let path = h
                .path
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".into());
            if !path.starts_with('/') {
                return Err(err(format!(
                    "httpGet.path: {path:?} is not an absolute path"
                )));
            }
            Prober::Http {
                port: port_ok(h.port, "httpGet")?,
                path,
                host: h.host.filter(|h| !h.is_empty()),
                headers: h
                    .http_headers
                    .into_iter()
                    .map(|h| (h.name, h.value))
                    .collect(),
                https,
                timeout,
            }
        }
        (None, Some(t), None) => Prober::Tcp {
            port: port_ok(t.port, "tcpSocket")?,
            host: t.host.filter(|h| !h.is_empty()),
            timeout,
        },
        (None, None, Some(g)) => Prober::Grpc {
            port: port_ok(g.port, "grpc")?,
            service: g.service.unwrap_or_default(),
            timeout,
        },
        _ => {
            return Err(err(
                "exactly one of httpGet, tcpSocket and grpc is needed".into()
            ))
        }
    })
}

impl Prober {
    /// Run the probe against `pod_ip` (or the probe's own host).
    pub async fn run(&self, pod_ip: IpAddr) -> Outcome {
        match self {
            Prober::Tcp {
                port,
                host,
                timeout,
            } => {
                let target = target(host.as_deref(), pod_ip, *port);
                match tokio::time::timeout(*timeout, connect(&target)).await {
                    Ok(Ok(_)) => Outcome {
                        status: 200,
                        detail: format!("connected to {target}"),
                    },
                    Ok(Err(e)) => Outcome {
                        status: 503,
                        detail: format!("connecting to {target}: {e}"),
                    },
                    Err(_) => Outcome {
                        status: 503,
                        detail: format!("connecting to {target}: no connection within {timeout:?}"),
                    },
                }
            }
            Prober::Grpc {
                port,
                service,
                timeout,
            } => {
                let target = target(None, pod_ip, *port);
                let what = format!("gRPC health of {service:?} at {target}");
                match tokio::time::timeout(*timeout, grpc_health(&target, service)).await {
                    Ok(Ok(1)) => Outcome {
                        status: 200,
                        detail: format!("{what}: SERVING"),
                    },
                    Ok(Ok(status)) => Outcome {
                        status: 503,
                        detail: format!("{what}: {}", serving_status(status)),
                    },
                    Ok(Err(e)) => Outcome {
                        status: 503,
                        detail: format!("{what}: {e}"),
                    },
                    Err(_) => Outcome {
                        status: 503,
                        detail: format!("{what}: no answer within {timeout:?}"),
                    },
                }
            }
            Prober::Http {
                port,
                path,
                host,
                headers,
                https,
                timeout,
            } => {
                http_probe(
                    pod_ip,
                    *port,
                    path,
                    host.as_deref(),
                    headers,
                    *https,
                    *timeout,
                )
                .await
            }
        }
    }
}

/// An `httpGet` probe: GET `path` over HTTP or HTTPS, the status as the answer.
async fn http_probe(
    pod_ip: IpAddr,
    port: u16,
    path: &str,
    host: Option<&str>,
    headers: &[(String, String)],
    https: bool,
    timeout: Duration,
) -> Outcome {
    let target = target(host, pod_ip, port);
    let url = format!("{}://{target}{path}", if https { "https" } else { "http" });
    // TLS is spoken to the URL's host: the probe's host, else the pod IP.
    match tokio::time::timeout(timeout, http_get(&url, &target, headers, https, timeout)).await {
        Ok(Ok(status)) => Outcome {
            status,
            detail: format!("GET {url}: HTTP {status}"),
        },
        Ok(Err(e)) => Outcome {
            status: 503,
            detail: format!("GET {url}: {e}"),
        },
        Err(_) => Outcome {
            status: 503,
            detail: format!("GET {url}: no answer within {timeout:?}"),
        },
    }
}

/// `host:port` to connect to: the probe's host if it names one, else the pod IP.
fn target(host: Option<&str>, pod_ip: IpAddr, port: u16) -> String {
    match host {
        Some(h) if h.contains(':') && !h.starts_with('[') => format!("[{h}]:{port}"),
        Some(h) => format!("{h}:{port}"),
        None => std::net::SocketAddr::new(pod_ip, port).to_string(),
    }
}

/// Connects to `target` from the source [`source_for`] picks.
async fn connect(target: &str) -> std::io::Result<TcpStream> {
    let (addr, source) = source_for(target).await?;
    match source {
        Some(source) => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind((source, 0).into())?;
            socket.connect(addr).await
        }
        None => TcpStream::connect(addr).await,
    }
}

/// Resolves `target`, and the source address for connections to it:
/// 127.0.0.6 (which proxy-init never captures) to a non-loopback IPv4
/// address (else the proxy user's connection to its own pod IP would go to
/// Envoy's inbound, and STRICT would refuse it), else the kernel's choice.
async fn source_for(target: &str) -> std::io::Result<(std::net::SocketAddr, Option<IpAddr>)> {
    let addr = tokio::net::lookup_host(target)
        .await?
        .next()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{target} resolves to no address"),
            )
        })?;
    let source = match addr.ip() {
        IpAddr::V4(ip) if !ip.is_loopback() => Some(IpAddr::V4(
            well_known::INBOUND_PASSTHROUGH_SOURCE
                .parse()
                .expect("a constant IPv4 address"),
        )),
        _ => None,
    };
    Ok((addr, source))
}

/// `GET url` on the shared client (HTTPS without verifying the app's
/// certificate, as kubelet does): the status, or why there is none.
async fn http_get(
    url: &str,
    target: &str,
    headers: &[(String, String)],
    https: bool,
    timeout: Duration,
) -> Result<u16, String> {
    let client = rudder_http::Client::with_options(rudder_http::Options {
        timeout,
        local_address: source_for(target).await.map_err(|e| e.to_string())?.1,
        tls: https.then(insecure_tls),
        keep_alive: false,
    });
    let mut all = vec![(
        hyper::header::USER_AGENT.to_string(),
        "kube-probe/rudder-agent".to_string(),
    )];
    all.extend(headers.iter().cloned());
    match client.request(Method::GET, url, &all, Bytes::new()).await {
        Ok(r) => Ok(r.status),
        Err(rudder_http::HttpError::Io { reason, .. }) => Err(reason),
        Err(rudder_http::HttpError::Timeout { timeout, .. }) => {
            Err(format!("no answer within {timeout:?}"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `grpc.health.v1.Health/Check` for `service` over h2c: the status number
/// of the answer (1 = SERVING).
async fn grpc_health(target: &str, service: &str) -> Result<u64, String> {
    let stream = connect(target).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    // HealthCheckRequest { service = 1 }, in one gRPC frame.
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a);
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{target}/grpc.health.v1.Health/Check"))
        .header(hyper::header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .header(hyper::header::USER_AGENT, "kube-probe/rudder-agent")
        .body(http_body_util::Full::new(Bytes::from(frame)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        conn.abort();
        return Err(format!("HTTP {}", resp.status().as_u16()));
    }
    let head_status = resp.headers().get("grpc-status").cloned();
    let collected = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    conn.abort();
    let grpc_status = head_status.or_else(|| {
        collected
            .trailers()
            .and_then(|t| t.get("grpc-status").cloned())
    });
    match grpc_status.as_ref().and_then(|v| v.to_str().ok()) {
        Some("0") => {}
        Some(code) => return Err(format!("grpc-status {code}")),
        None => return Err("no grpc-status in the answer".into()),
    }
    let body = collected.to_bytes();
    let msg = body
        .get(5..)
        .ok_or("no HealthCheckResponse in the answer")?;
    // HealthCheckResponse { status = 1 (enum) }; absent means UNKNOWN (0).
    let mut i = 0;
    while i < msg.len() {
        let (key, n) = varint(&msg[i..]).ok_or("malformed HealthCheckResponse")?;
        i += n;
        match key & 7 {
            0 => {
                let (v, n) = varint(&msg[i..]).ok_or("malformed HealthCheckResponse")?;
                i += n;
                if key >> 3 == 1 {
                    return Ok(v);
                }
            }
            2 => {
                let (len, n) = varint(&msg[i..]).ok_or("malformed HealthCheckResponse")?;
                i += n + len as usize;
            }
            _ => return Err("malformed HealthCheckResponse".into()),
        }
    }
    Ok(0)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn serving_status(status: u64) -> String {
    match status {
        0 => "UNKNOWN".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => format!("status {other}"),
    }
}

/// TLS that accepts any server certificate: kubelet does not verify the
/// certificate of an HTTPS probe either.
fn insecure_tls() -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    #[derive(Debug)]
    struct AnyCert(std::sync::Arc<rustls::crypto::CryptoProvider>);
    impl ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    static CONFIG: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(std::sync::Arc::new(AnyCert(provider)))
                .with_no_client_auth();
            std::sync::Arc::new(config)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_injector_writes() {
        let p = AppProbers::parse(
            r#"{"/app-health/app/livez":{"tcpSocket":{"port":8080},"timeoutSeconds":3},
                "/app-health/app/readyz":{"httpGet":{"path":"/ready","port":8080,"scheme":"HTTP","httpHeaders":[{"name":"x","value":"y"}]},"timeoutSeconds":1}}"#,
        )
        .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            p.get("/app-health/app/livez"),
            Some(&Prober::Tcp {
                port: 8080,
                host: None,
                timeout: Duration::from_secs(3)
            })
        );
        assert_eq!(
            p.get("/app-health/app/readyz"),
            Some(&Prober::Http {
                port: 8080,
                path: "/ready".into(),
                host: None,
                headers: vec![("x".into(), "y".into())],
                https: false,
                timeout: Duration::from_secs(1)
            })
        );
        assert!(AppProbers::parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_probers_say_which_and_why() {
        for (text, want) in [
            ("[1]", "ISTIO_KUBE_APP_PROBERS: not a JSON object of probes"),
            (
                r#"{"/health":{"tcpSocket":{"port":1}}}"#,
                "ISTIO_KUBE_APP_PROBERS[\"/health\"]: the path must start with /app-health/",
            ),
            (
                r#"{"/app-health/app/ready":{"tcpSocket":{"port":1}}}"#,
                "the path must be /app-health/<container>/<livez|readyz|startupz>",
            ),
            (
                r#"{"/app-health/app/readyz":{"exec":{"command":["true"]}}}"#,
                "ISTIO_KUBE_APP_PROBERS[\"/app-health/app/readyz\"]: unknown field `exec`",
            ),
            (
                r#"{"/app-health/app/readyz":{}}"#,
                "exactly one of httpGet, tcpSocket and grpc is needed",
            ),
            (
                r#"{"/app-health/app/readyz":{"tcpSocket":{"port":1},"grpc":{"port":2}}}"#,
                "exactly one of httpGet, tcpSocket and grpc is needed",
            ),
            (
                r#"{"/app-health/app/readyz":{"httpGet":{"port":443,"scheme":"FTP"}}}"#,
                "httpGet.scheme: \"FTP\" is not HTTP or HTTPS",
            ),
            (
                r#"{"/app-health/app/readyz":{"grpc":{"port":0}}}"#,
                "grpc.port: 0 is not a port",
            ),
            (
                r#"{"/app-health/app/readyz":{"httpGet":{"port":70000}}}"#,
                "invalid value: integer `70000`",
            ),
            (
                r#"{"/app-health/app/readyz":{"tcpSocket":{"port":0}}}"#,
                "tcpSocket.port: 0 is not a port",
            ),
            (
                r#"{"/app-health/app/readyz":{"tcpSocket":{"port":1},"timeoutSeconds":0}}"#,
                "timeoutSeconds: must be at least 1",
            ),
        ] {
            let err = AppProbers::parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[tokio::test]
    async fn probes_report_the_apps_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let status = if req.starts_with("GET /ok ") {
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                seen2.lock().unwrap().push(req);
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let http = |path: &str| Prober::Http {
            port,
            path: path.into(),
            host: None,
            headers: vec![("x-probe".into(), "yes".into())],
            https: false,
            timeout: Duration::from_secs(2),
        };
        assert_eq!(http("/ok").run(ip).await.status, 200);
        assert_eq!(http("/broken").run(ip).await.status, 500);
        let req = seen.lock().unwrap()[0].to_lowercase();
        assert!(
            req.contains("x-probe: yes") && req.contains("user-agent: kube-probe"),
            "{req}"
        );
        assert_eq!(
            Prober::Tcp {
                port,
                host: None,
                timeout: Duration::from_secs(2)
            }
            .run(ip)
            .await
            .status,
            200
        );

        // Nothing listens on a freshly closed port: 503 with the reason.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = Prober::Tcp {
            port: closed,
            host: None,
            timeout: Duration::from_secs(2),
        }
        .run(ip)
        .await;
        assert_eq!(out.status, 503, "{out:?}");
        assert!(
            out.detail.contains(&format!("127.0.0.1:{closed}")),
            "{out:?}"
        );
        let mut h = http("/ok");
        if let Prober::Http { port: p, .. } = &mut h {
            *p = closed;
        }
        assert_eq!(h.run(ip).await.status, 503);
    }

    #[test]
    fn https_and_grpc_probers_parse() {
        let p = AppProbers::parse(
            r#"{"/app-health/app/readyz":{"httpGet":{"path":"/","port":8443,"scheme":"HTTPS"}},
                "/app-health/app/startupz":{"grpc":{"port":9090,"service":"ready"},"timeoutSeconds":2}}"#,
        )
        .unwrap();
        assert!(matches!(
            p.get("/app-health/app/readyz"),
            Some(Prober::Http {
                https: true,
                port: 8443,
                ..
            })
        ));
        assert_eq!(
            p.get("/app-health/app/startupz"),
            Some(&Prober::Grpc {
                port: 9090,
                service: "ready".into(),
                timeout: Duration::from_secs(2)
            })
        );
    }

    #[tokio::test]
    async fn https_probes_skip_certificate_verification_like_kubelet() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["app.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                let Ok(mut tls) = acceptor.accept(s).await else {
                    continue;
                };
                let mut buf = vec![0u8; 4096];
                let n = tls.read(&mut buf).await.unwrap_or(0);
                let ok = String::from_utf8_lossy(&buf[..n]).starts_with("GET /healthz ");
                let status = if ok {
                    "204 No Content"
                } else {
                    "404 Not Found"
                };
                let _ = tls
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
                let _ = tls.shutdown().await;
            }
        });
        let probe = |path: &str| Prober::Http {
            port,
            path: path.into(),
            host: None,
            headers: vec![],
            https: true,
            timeout: Duration::from_secs(2),
        };
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let out = probe("/healthz").run(ip).await;
        assert_eq!(out.status, 204, "{out:?}");
        assert!(
            out.detail
                .starts_with(&format!("GET https://127.0.0.1:{port}/healthz")),
            "{out:?}"
        );
        assert_eq!(probe("/other").run(ip).await.status, 404);
        // Plain HTTP to a TLS port fails rather than hanging.
        let mut plain = probe("/healthz");
        if let Prober::Http { https, .. } = &mut plain {
            *https = false;
        }
        assert_eq!(plain.run(ip).await.status, 503);
    }

    /// A gRPC health server (h2c): `ready` is SERVING, `draining` NOT_SERVING,
    /// anything else answers grpc-status 5 (NOT_FOUND), as grpc-go's does.
    async fn grpc_health_server() -> u16 {
        use http_body_util::{BodyExt, StreamBody};
        use hyper::body::Frame;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        |req: Request<hyper::body::Incoming>| async move {
                            assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let service =
                                String::from_utf8_lossy(body.get(7..).unwrap_or_default())
                                    .to_string();
                            let mut trailers = hyper::HeaderMap::new();
                            let data = match service.as_str() {
                                "ready" => Some(vec![0, 0, 0, 0, 2, 0x08, 1]),
                                "draining" => Some(vec![0, 0, 0, 0, 2, 0x08, 2]),
                                _ => None,
                            };
                            trailers.insert(
                                "grpc-status",
                                if data.is_some() { "0" } else { "5" }.parse().unwrap(),
                            );
                            let mut frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
                                Vec::new();
                            if let Some(d) = data {
                                frames.push(Ok(Frame::data(Bytes::from(d))));
                            }
                            frames.push(Ok(Frame::trailers(trailers)));
                            let resp = hyper::Response::builder()
                                .header("content-type", "application/grpc")
                                .body(StreamBody::new(futures::stream::iter(frames)))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        },
                    );
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn grpc_probes_ask_the_health_service() {
        let port = grpc_health_server().await;
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let probe = |service: &str| Prober::Grpc {
            port,
            service: service.into(),
            timeout: Duration::from_secs(2),
        };
        let ready = probe("ready").run(ip).await;
        assert_eq!(ready.status, 200, "{ready:?}");
        let draining = probe("draining").run(ip).await;
        assert_eq!(draining.status, 503, "{draining:?}");
        assert!(draining.detail.ends_with("NOT_SERVING"), "{draining:?}");
        let unknown = probe("nope").run(ip).await;
        assert_eq!(unknown.status, 503);
        assert!(unknown.detail.ends_with("grpc-status 5"), "{unknown:?}");
    }
}
