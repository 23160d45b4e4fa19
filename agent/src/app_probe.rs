//! The app's own probes, run by the agent for kubelet.
//!
//! The injector points an app container's `httpGet` and `tcpSocket` probes at
//! `GET /app-health/<container>/<livez|readyz|startupz>` on the agent's
//! metrics port and passes the originals in `ISTIO_KUBE_APP_PROBERS` (JSON,
//! path → probe, Istio's format). Kubelet's probe then never meets Envoy, so a
//! STRICT PeerAuthentication does not refuse it. The agent runs the original
//! probe against the pod's IP (`INSTANCE_IP`, as kubelet would; loopback when
//! unknown) from source address 127.0.0.6, which proxy-init exempts from
//! capture (the proxy user's own traffic to its pod IP is otherwise sent to
//! Envoy's inbound, as Istio's agent does it):
//!
//! - `httpGet`: the app's status is passed on (kubelet counts 200-399 as
//!   success); no answer in `timeoutSeconds` or a refused connection is 503.
//! - `tcpSocket`: a connection within `timeoutSeconds` is 200, else 503.
//! - an unknown path is 404.

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
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
    timeout_seconds: Option<u64>,
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
        let raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| format!("{APP_PROBERS_ENV}: not a JSON object of probes: {e}"))?;
        let mut probes = BTreeMap::new();
        for (path, value) in raw {
            let err = |m: String| format!("{APP_PROBERS_ENV}[{path:?}]: {m}");
            let rest = path.strip_prefix(APP_HEALTH_PATH_PREFIX).ok_or_else(|| err(format!("the path must start with {APP_HEALTH_PATH_PREFIX}")))?;
            match rest.split_once('/') {
                Some((c, kind)) if !c.is_empty() && ["livez", "readyz", "startupz"].contains(&kind) => {}
                _ => return Err(err(format!("the path must be {APP_HEALTH_PATH_PREFIX}<container>/<livez|readyz|startupz>"))),
            }
            let raw: RawProber = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
            let timeout = match raw.timeout_seconds {
                None => Duration::from_secs(1),
                Some(0) => return Err(err("timeoutSeconds: must be at least 1".into())),
                Some(s) => Duration::from_secs(s),
            };
            let port_ok = |p: u16, at: &str| if p == 0 { Err(err(format!("{at}.port: 0 is not a port"))) } else { Ok(p) };
            let prober = match (raw.http_get, raw.tcp_socket) {
                (Some(h), None) => {
                    if let Some(s) = h.scheme.as_deref().filter(|s| *s != "HTTP") {
                        return Err(err(format!("httpGet.scheme: {s:?} is not supported (only HTTP)")));
                    }
                    let path = h.path.filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
                    if !path.starts_with('/') {
                        return Err(err(format!("httpGet.path: {path:?} is not an absolute path")));
                    }
                    Prober::Http {
                        port: port_ok(h.port, "httpGet")?,
                        path,
                        host: h.host.filter(|h| !h.is_empty()),
                        headers: h.http_headers.into_iter().map(|h| (h.name, h.value)).collect(),
                        timeout,
                    }
                }
                (None, Some(t)) => Prober::Tcp { port: port_ok(t.port, "tcpSocket")?, host: t.host.filter(|h| !h.is_empty()), timeout },
                _ => return Err(err("exactly one of httpGet and tcpSocket is needed".into())),
            };
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

impl Prober {
    /// Run the probe against `pod_ip` (or the probe's own host).
    pub async fn run(&self, pod_ip: IpAddr) -> Outcome {
        match self {
            Prober::Tcp { port, host, timeout } => {
                let target = target(host.as_deref(), pod_ip, *port);
                match tokio::time::timeout(*timeout, connect(&target)).await {
                    Ok(Ok(_)) => Outcome { status: 200, detail: format!("connected to {target}") },
                    Ok(Err(e)) => Outcome { status: 503, detail: format!("connecting to {target}: {e}") },
                    Err(_) => Outcome { status: 503, detail: format!("connecting to {target}: no connection within {timeout:?}") },
                }
            }
            Prober::Http { port, path, host, headers, timeout } => {
                let target = target(host.as_deref(), pod_ip, *port);
                let url = format!("http://{target}{path}");
                match tokio::time::timeout(*timeout, http_get(&target, path, headers)).await {
                    Ok(Ok(status)) => Outcome { status, detail: format!("GET {url}: HTTP {status}") },
                    Ok(Err(e)) => Outcome { status: 503, detail: format!("GET {url}: {e}") },
                    Err(_) => Outcome { status: 503, detail: format!("GET {url}: no answer within {timeout:?}") },
                }
            }
        }
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

/// Connects to `target`; to a non-loopback IPv4 address from 127.0.0.6, the
/// source proxy-init never captures (else the proxy user's connection to its
/// own pod IP would go to Envoy's inbound, and STRICT would refuse it).
async fn connect(target: &str) -> std::io::Result<TcpStream> {
    let addr = tokio::net::lookup_host(target)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{target} resolves to no address")))?;
    match addr.ip() {
        IpAddr::V4(ip) if !ip.is_loopback() => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            let source: std::net::Ipv4Addr = well_known::INBOUND_PASSTHROUGH_SOURCE.parse().expect("a constant IPv4 address");
            socket.bind((source, 0).into())?;
            socket.connect(addr).await
        }
        _ => TcpStream::connect(addr).await,
    }
}

async fn http_get(target: &str, path: &str, headers: &[(String, String)]) -> Result<u16, String> {
    let stream = connect(target).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let mut req = Request::builder().method(Method::GET).uri(path).header(hyper::header::USER_AGENT, "kube-probe/rudder-agent");
    let mut has_host = false;
    for (name, value) in headers {
        has_host |= name.eq_ignore_ascii_case("host");
        req = req.header(name.as_str(), value.as_str());
    }
    if !has_host {
        req = req.header(hyper::header::HOST, target);
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    // Drain a little of the body so the app sees a complete exchange.
    let _ = resp.into_body().collect().await;
    conn.abort();
    Ok(status)
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
        assert_eq!(p.get("/app-health/app/livez"), Some(&Prober::Tcp { port: 8080, host: None, timeout: Duration::from_secs(3) }));
        assert_eq!(
            p.get("/app-health/app/readyz"),
            Some(&Prober::Http {
                port: 8080,
                path: "/ready".into(),
                host: None,
                headers: vec![("x".into(), "y".into())],
                timeout: Duration::from_secs(1)
            })
        );
        assert!(AppProbers::parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_probers_say_which_and_why() {
        for (text, want) in [
            ("[1]", "ISTIO_KUBE_APP_PROBERS: not a JSON object of probes"),
            (r#"{"/health":{"tcpSocket":{"port":1}}}"#, "ISTIO_KUBE_APP_PROBERS[\"/health\"]: the path must start with /app-health/"),
            (r#"{"/app-health/app/ready":{"tcpSocket":{"port":1}}}"#, "the path must be /app-health/<container>/<livez|readyz|startupz>"),
            (r#"{"/app-health/app/readyz":{"grpc":{"port":1}}}"#, "ISTIO_KUBE_APP_PROBERS[\"/app-health/app/readyz\"]: unknown field `grpc`"),
            (r#"{"/app-health/app/readyz":{}}"#, "exactly one of httpGet and tcpSocket is needed"),
            (r#"{"/app-health/app/readyz":{"httpGet":{"port":443,"scheme":"HTTPS"}}}"#, "httpGet.scheme: \"HTTPS\" is not supported (only HTTP)"),
            (r#"{"/app-health/app/readyz":{"httpGet":{"port":70000}}}"#, "invalid value: integer `70000`"),
            (r#"{"/app-health/app/readyz":{"tcpSocket":{"port":0}}}"#, "tcpSocket.port: 0 is not a port"),
            (r#"{"/app-health/app/readyz":{"tcpSocket":{"port":1},"timeoutSeconds":0}}"#, "timeoutSeconds: must be at least 1"),
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
                let Ok((mut s, _)) = listener.accept().await else { return };
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let status = if req.starts_with("GET /ok ") { "200 OK" } else { "500 Internal Server Error" };
                seen2.lock().unwrap().push(req);
                let _ = s.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes()).await;
            }
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let http = |path: &str| Prober::Http {
            port,
            path: path.into(),
            host: None,
            headers: vec![("x-probe".into(), "yes".into())],
            timeout: Duration::from_secs(2),
        };
        assert_eq!(http("/ok").run(ip).await.status, 200);
        assert_eq!(http("/broken").run(ip).await.status, 500);
        let req = seen.lock().unwrap()[0].to_lowercase();
        assert!(req.contains("x-probe: yes") && req.contains("user-agent: kube-probe"), "{req}");
        assert_eq!(Prober::Tcp { port, host: None, timeout: Duration::from_secs(2) }.run(ip).await.status, 200);

        // Nothing listens on a freshly closed port: 503 with the reason.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out = Prober::Tcp { port: closed, host: None, timeout: Duration::from_secs(2) }.run(ip).await;
        assert_eq!(out.status, 503, "{out:?}");
        assert!(out.detail.contains(&format!("127.0.0.1:{closed}")), "{out:?}");
        let mut h = http("/ok");
        if let Prober::Http { port: p, .. } = &mut h {
            *p = closed;
        }
        assert_eq!(h.run(ip).await.status, 503);
    }
}
