//! `nativeSidecars: auto` asks the API server's /version over HTTPS, trusting
//! only the given CA and sending the service-account token.

mod common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rudder_injector::{tls, version::fetch_version};

/// A one-route fake API server on loopback; records Authorization headers.
async fn fake_api_server(
    p: &common::Pki,
    body: &'static str,
) -> (
    std::net::SocketAddr,
    Arc<Mutex<Vec<String>>>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    common::install(dir.path(), p);
    let config =
        tls::server_config(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let seen = seen2.clone();
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let auth = req
                    .headers()
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_string());
                seen.lock().unwrap().push(format!(
                    "{} {}",
                    req.uri().path(),
                    auth.unwrap_or_default()
                ));
                async move {
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
                }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, seen, dir)
}

#[tokio::test]
async fn fetches_the_version_with_the_token() {
    let p = common::pki("apiserver");
    let (addr, seen, _dir) =
        fake_api_server(&p, r#"{"major":"1","minor":"30+","gitVersion":"v1.30.1"}"#).await;
    let v = fetch_version(
        &addr.to_string(),
        "localhost",
        p.ca_pem.as_bytes(),
        Some("tok\n"),
    )
    .await
    .unwrap();
    assert_eq!(v, (1, 30));
    assert_eq!(seen.lock().unwrap().as_slice(), ["/version Bearer tok"]);
}

#[tokio::test]
async fn untrusted_server_and_garbage_are_errors() {
    let p = common::pki("apiserver");
    let other = common::pki("other");
    let (addr, _, _dir) = fake_api_server(&p, r#"{"major":"1","minor":"30"}"#).await;
    let err = fetch_version(
        &addr.to_string(),
        "localhost",
        other.ca_pem.as_bytes(),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    let (addr, _, _dir2) = fake_api_server(&p, "<html>").await;
    let err = fetch_version(&addr.to_string(), "localhost", p.ca_pem.as_bytes(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("<html>"), "{err}");
    let err = fetch_version("127.0.0.1:1", "localhost", b"no pem", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CA bundle"), "{err}");
}
