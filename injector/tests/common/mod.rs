//! Test helpers: a throwaway CA and serving certificates (rcgen), a webhook on
//! loopback, and a small HTTPS client that also reports which certificate
//! the server presented.
#![allow(dead_code)]

pub mod fake_api;

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{header, Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rudder_injector::{server, tls, Values};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::sync::oneshot;

/// A CA and one serving pair it signed for `localhost` / 127.0.0.1.
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
}

pub fn pki(name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, format!("{name} webhook"));
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().clone(),
    }
}

/// Write a pair the way kubelet updates a Secret volume: new files, then rename.
pub fn install(dir: &Path, p: &Pki) {
    for (name, content) in [("tls.crt", &p.cert_pem), ("tls.key", &p.key_pem)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

/// A webhook serving on loopback; shut down on drop.
pub struct Webhook {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn start(p: &Pki, values: Values, native: bool) -> Webhook {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), p);
    let config =
        tls::server_config(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let state = Arc::new(server::WebhookState {
        values,
        native_sidecars: native,
    });
    tokio::spawn(server::serve(listener, Arc::new(config), state, async {
        let _ = rx.await;
    }));
    Webhook {
        addr,
        dir,
        stop: Some(tx),
    }
}

/// One HTTPS request on a fresh connection (HTTP/1.1, or HTTP/2 via ALPN).
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
    pub peer_cert: CertificateDer<'static>,
    pub alpn: Option<Vec<u8>>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

pub async fn request(
    addr: SocketAddr,
    ca_pems: &[&str],
    method: Method,
    path: &str,
    body: Vec<u8>,
    h2: bool,
) -> Reply {
    request_to("localhost", addr, ca_pems, method, path, body, h2).await
}

/// [`request`] checking the server's certificate for `server_name` (SNI too).
pub async fn request_to(
    server_name: &str,
    addr: SocketAddr,
    ca_pems: &[&str],
    method: Method,
    path: &str,
    body: Vec<u8>,
    h2: bool,
) -> Reply {
    let mut roots = rustls::RootCertStore::empty();
    for pem in ca_pems {
        for c in rustls_pemfile::certs(&mut pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = if h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let fut = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from(server_name.to_string()).unwrap(), tcp)
            .await
            .expect("TLS handshake with the webhook");
        let (_, conn) = tls.get_ref();
        let peer_cert = conn.peer_certificates().expect("server certificate")[0]
            .clone()
            .into_owned();
        let alpn = conn.alpn_protocol().map(|p| p.to_vec());
        let req = Request::builder()
            .method(method)
            .uri(format!("https://{server_name}:{}{path}", addr.port()))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = if h2 {
            let (mut s, c) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .unwrap();
            tokio::spawn(c);
            s.send_request(req).await.unwrap()
        } else {
            let (mut s, c) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(c);
            s.send_request(req).await.unwrap()
        };
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            body,
            peer_cert,
            alpn,
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("request finished within 20 s")
}
