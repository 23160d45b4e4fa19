//! The one HTTP client of Rudder's binaries, tools and tests, on hyper-util's
//! `client::legacy::Client`: HTTP/1, HTTPS with rustls where a caller brings
//! a TLS config, a timeout on every call, errors that name the method and URL.
//!
//! ```text
//!  agent (Envoy admin, app probes, `agent wait`) ─┐
//!  harness (HTTP load through Envoy)              ├─► rudder-http ─► hyper-util Client ─► TCP (+ rustls)
//!  pilot-load (pilot's /ready), tests             ─┘   ▲ you are here
//! ```
//!
//! By default each request gets its own connection (no idle pool), which is
//! what every caller did before: a wedged peer never holds a pooled
//! connection, and a load test counts connections it asked for.
//! [`Options::keep_alive`] turns pooling on for callers that want it.
//! (The injector's hand-written Kubernetes client is replaced by kube-rs
//! separately and does not use this crate.)
//!
//! Where this sits among the other parts: `docs/architecture.md` at the
//! repository root.
#![forbid(unsafe_code)]

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, OnceLock},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
pub use hyper::Method;
use hyper::{Request, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{
        connect::{capture_connection, HttpConnector, HttpInfo},
        Client as LegacyClient,
    },
    rt::TokioExecutor,
};

/// Why an HTTP call failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not `http(s)://HOST[:PORT]/PATH`.
    #[error("URL {0:?} is not of the form http://HOST[:PORT]/PATH")]
    BadUrl(String),
    /// Connecting, sending or reading failed.
    #[error("{method} {url}: {reason}")]
    Io {
        /// Method.
        method: Method,
        /// URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No answer in time.
    #[error("{method} {url}: no answer within {timeout:?}")]
    Timeout {
        /// Method.
        method: Method,
        /// URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// The peer answered with an unexpected status (for callers that
    /// expect one; [`Client::request`] itself returns any status).
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        /// URL.
        url: String,
        /// Status code.
        status: u16,
        /// Body (trimmed).
        body: String,
    },
}

/// A response: status, headers and body as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, in the order received (values lossily decoded).
    pub headers: Vec<(String, String)>,
    /// Body, lossily decoded.
    pub body: String,
    /// The local end of the connection that carried it (tells connections
    /// apart when they are reused).
    pub local_addr: Option<SocketAddr>,
}

/// How a [`Client`] connects.
#[derive(Clone, Debug)]
pub struct Options {
    /// Bound on each whole call: connect, send, read the body.
    pub timeout: Duration,
    /// Source address of the connections (e.g. the agent's app probes come
    /// from 127.0.0.6, which proxy-init never captures).
    pub local_address: Option<IpAddr>,
    /// For `https://` URLs; without it only `http://` URLs work.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Reuse connections between calls (an idle pool per host).
    pub keep_alive: bool,
}

impl Options {
    /// Plain HTTP, one connection per call, each call bounded by `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Options {
            timeout,
            local_address: None,
            tls: None,
            keep_alive: false,
        }
    }
}

/// An HTTP/1 client; clones share the connector (and the pool, if any).
#[derive(Clone, Debug)]
pub struct Client {
    inner: LegacyClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl Client {
    /// Plain HTTP, one connection per call, each call bounded by `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self::with_options(Options::new(timeout))
    }

    /// A client as `options` say.
    pub fn with_options(options: Options) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(options.timeout));
        http.set_local_address(options.local_address);
        let tls = options.tls.unwrap_or_else(no_tls);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(Arc::unwrap_or_clone(tls))
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let mut builder = LegacyClient::builder(TokioExecutor::new());
        if !options.keep_alive {
            builder.pool_max_idle_per_host(0);
        }
        Client {
            inner: builder.build(connector),
            timeout: options.timeout,
        }
    }

    /// The bound on each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<HttpResponse, HttpError> {
        self.request(Method::GET, url, &[], Bytes::new()).await
    }

    /// One request; any status is a response. A `host` among `headers`
    /// replaces the one taken from the URL.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<HttpResponse, HttpError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| HttpError::BadUrl(url.to_string()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(HttpError::BadUrl(url.to_string()));
        }
        let io_err = |reason: String| HttpError::Io {
            method: method.clone(),
            url: url.to_string(),
            reason,
        };
        let mut req = Request::builder().method(method.clone()).uri(uri);
        for (name, value) in headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let mut req = req
            .body(Full::new(body))
            .map_err(|e| io_err(e.to_string()))?;
        let connection = capture_connection(&mut req);
        let call = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| io_err(error_chain(&e)))?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| io_err(e.to_string()))?
                .to_bytes();
            let local_addr = connection.connection_metadata().as_ref().and_then(|c| {
                let mut extras = hyper::http::Extensions::new();
                c.get_extras(&mut extras);
                extras.get::<HttpInfo>().map(|i| i.local_addr())
            });
            Ok(HttpResponse {
                status,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
                local_addr,
            })
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| HttpError::Timeout {
                method,
                url: url.to_string(),
                timeout: self.timeout,
            })?
    }
}

/// One plain-HTTP request on its own connection, bounded by `timeout`.
pub async fn request(
    method: Method,
    url: &str,
    timeout: Duration,
) -> Result<HttpResponse, HttpError> {
    Client::new(timeout)
        .request(method, url, &[], Bytes::new())
        .await
}

/// The legacy client's errors say "client error (Connect)" and keep the
/// cause in their source chain: the whole chain says what happened.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The TLS config of a client that speaks only plain HTTP: no roots, so an
/// `https://` URL fails its handshake with an error that says why.
fn no_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
            )
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers every connection with `response` after reading one request;
    /// returns its port and the requests it saw.
    async fn server(response: &'static str) -> (u16, tokio::sync::mpsc::Receiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0; 4096];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let _ = tx
                        .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                        .await;
                    let _ = s.write_all(response.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        (port, rx)
    }

    #[tokio::test]
    async fn gets_status_headers_and_body_with_the_host_asked_for() {
        let (port, mut seen) =
            server("HTTP/1.1 503 Service Unavailable\r\nx-a: b\r\ncontent-length: 5\r\n\r\nnope\n")
                .await;
        let client = Client::new(Duration::from_secs(5));
        let r = client
            .request(
                Method::GET,
                &format!("http://127.0.0.1:{port}/ready?x=1"),
                &[("host".into(), "pilot".into())],
                Bytes::new(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.body, "nope\n");
        assert!(r.headers.contains(&("x-a".into(), "b".into())));
        let req = seen.recv().await.unwrap();
        assert!(req.starts_with("GET /ready?x=1 HTTP/1.1\r\n"), "{req}");
        assert!(
            req.to_ascii_lowercase().contains("\r\nhost: pilot\r\n"),
            "{req}"
        );
    }

    #[tokio::test]
    async fn connections_are_reused_only_with_keep_alive() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (r, mut w) = s.into_split();
                    let mut r = tokio::io::BufReader::new(r);
                    let mut line = String::new();
                    use tokio::io::AsyncBufReadExt;
                    while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                        if line == "\r\n" {
                            let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                            if w.write_all(ok.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        line.clear();
                    }
                });
            }
        });
        let local = |c: Client| {
            let url = url.clone();
            async move {
                let a = c.get(&url).await.unwrap().local_addr.unwrap();
                let b = c.get(&url).await.unwrap().local_addr.unwrap();
                (a, b)
            }
        };
        let (a, b) = local(Client::new(Duration::from_secs(5))).await;
        assert_ne!(a, b, "one connection per call by default");
        let (a, b) = local(Client::with_options(Options {
            keep_alive: true,
            ..Options::new(Duration::from_secs(5))
        }))
        .await;
        assert_eq!(a, b, "keep-alive reuses the connection");
    }

    #[tokio::test]
    async fn errors_name_the_url() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}/x");
        let e = request(Method::POST, &url, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("POST {url}: ")), "{e}");
        assert!(e.to_lowercase().contains("refused"), "{e}");
        let e = request(Method::GET, "ftp://x/", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::BadUrl(_)), "{e}");
    }

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let e = request(Method::GET, &url, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains(&url), "{e}");
        drop(listener);
    }

    #[tokio::test]
    async fn https_with_the_callers_tls_config() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(s).await else {
                        return;
                    };
                    let mut buf = vec![0; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n")
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        let url = format!("https://127.0.0.1:{port}/");
        // Without a TLS config an https URL fails, naming it.
        let e = Client::new(Duration::from_secs(5))
            .get(&url)
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with(&format!("GET {url}: ")), "{e}");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = Client::with_options(Options {
            tls: Some(Arc::new(tls)),
            ..Options::new(Duration::from_secs(5))
        });
        let r = client.get(&url).await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    }
}
