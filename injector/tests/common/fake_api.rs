//! A small in-process Kubernetes API server over HTTPS on loopback: Secrets
//! (get, create, update with resourceVersion checks), one
//! MutatingWebhookConfiguration and one ValidatingWebhookConfiguration (get,
//! JSON patch with `test` ops), answering
//! errors as `Status` objects the way the real one does. It records every
//! request as `METHOD path` so tests can assert what was (not) written.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rudder_injector::{kubeapi::ApiClient, tls};
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub const WEBHOOK_PATH: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/rudder-sidecar-injector";
pub const VALIDATOR_PATH: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/rudder-validator";

#[derive(Default)]
pub struct State {
    /// Secrets by (namespace, name).
    pub secrets: BTreeMap<(String, String), Value>,
    pub webhook: Option<Value>,
    pub validator: Option<Value>,
    /// Requests seen, `METHOD path`.
    pub log: Vec<String>,
    /// Stored just before the next Secret write is handled, as if another
    /// replica had written first (that write then conflicts).
    pub race: Option<Value>,
    /// The `Authorization` header of every request, in order.
    pub auth: Vec<String>,
    /// `METHOD path` answered 403 Forbidden.
    pub forbid: Vec<String>,
    rv: u64,
}

impl State {
    fn store_secret(&mut self, mut s: Value) -> Value {
        self.rv += 1;
        s["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let key = (
            s["metadata"]["namespace"].as_str().unwrap().to_string(),
            s["metadata"]["name"].as_str().unwrap().to_string(),
        );
        self.secrets.insert(key, s.clone());
        s
    }

    pub fn put_secret(&mut self, s: Value) {
        self.store_secret(s);
    }

    fn config_at(&mut self, path: &str) -> Option<&mut Option<Value>> {
        match path {
            WEBHOOK_PATH => Some(&mut self.webhook),
            VALIDATOR_PATH => Some(&mut self.validator),
            _ => None,
        }
    }

    pub fn writes(&self) -> Vec<String> {
        self.log
            .iter()
            .filter(|l| !l.starts_with("GET "))
            .cloned()
            .collect()
    }
}

pub struct FakeApi {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    pub ca_pem: String,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> (StatusCode, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn handle(
    state: &Mutex<State>,
    method: &Method,
    path: &str,
    ctype: &str,
    body: &[u8],
) -> (StatusCode, Value) {
    let mut st = state.lock().unwrap();
    st.log.push(format!("{method} {path}"));
    if st.forbid.contains(&format!("{method} {path}")) {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("{method} {path} is forbidden: RBAC"),
        );
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        (&Method::GET, ["api", "v1", "namespaces", ns, "secrets", name]) => {
            match st.secrets.get(&(ns.to_string(), name.to_string())) {
                Some(s) => (StatusCode::OK, s.clone()),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("secrets \"{name}\" not found"),
                ),
            }
        }
        (&Method::POST, ["api", "v1", "namespaces", ns, "secrets"]) => {
            if let Some(w) = st.race.take() {
                st.store_secret(w);
            }
            let s: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(s["metadata"]["namespace"], *ns);
            let name = s["metadata"]["name"].as_str().unwrap().to_string();
            if st.secrets.contains_key(&(ns.to_string(), name.clone())) {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    format!("secrets \"{name}\" already exists"),
                );
            }
            (StatusCode::CREATED, st.store_secret(s))
        }
        (&Method::PUT, ["api", "v1", "namespaces", ns, "secrets", name]) => {
            if let Some(w) = st.race.take() {
                st.store_secret(w);
            }
            let s: Value = serde_json::from_slice(body).unwrap();
            let key = (ns.to_string(), name.to_string());
            let Some(old) = st.secrets.get(&key) else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("secrets \"{name}\" not found"),
                );
            };
            if old["metadata"]["resourceVersion"] != s["metadata"]["resourceVersion"] {
                return status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "the object has been modified".into(),
                );
            }
            if old["type"] != s["type"] {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "type: field is immutable".into(),
                );
            }
            (StatusCode::OK, st.store_secret(s))
        }
        (&Method::GET, _) if st.config_at(path).is_some() => match st.config_at(path) {
            Some(Some(w)) => (StatusCode::OK, w.clone()),
            _ => status(StatusCode::NOT_FOUND, "NotFound", "not found".into()),
        },
        (&Method::PATCH, _) if st.config_at(path).is_some() => {
            assert_eq!(ctype, "application/json-patch+json");
            let Some(Some(mut w)) = st.config_at(path).cloned() else {
                return status(StatusCode::NOT_FOUND, "NotFound", "not found".into());
            };
            let patch: json_patch::Patch = serde_json::from_slice(body).unwrap();
            if let Err(e) = json_patch::patch(&mut w, &patch) {
                return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e.to_string());
            }
            st.rv += 1;
            w["metadata"]["resourceVersion"] = json!(st.rv.to_string());
            *st.config_at(path).expect("matched above") = Some(w.clone());
            (StatusCode::OK, w)
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no route {method} {path}"),
        ),
    }
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let p = super::pki("apiserver");
        let dir = tempfile::tempdir().unwrap();
        super::install(dir.path(), &p);
        let config =
            tls::server_config(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, mut rx) = oneshot::channel::<()>();
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let tcp = tokio::select! {
                    _ = &mut rx => return,
                    a = listener.accept() => match a { Ok((t, _)) => t, Err(_) => return },
                };
                let Ok(tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let st = st.clone();
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let st = st.clone();
                    async move {
                        let method = req.method().clone();
                        let path = req.uri().path().to_string();
                        let ctype = req
                            .headers()
                            .get(header::CONTENT_TYPE)
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default();
                        let auth = req
                            .headers()
                            .get(header::AUTHORIZATION)
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default();
                        st.lock().unwrap().auth.push(auth);
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let (code, v) = handle(&st, &method, &path, &ctype, &body);
                        let mut resp =
                            Response::new(Full::new(Bytes::from(serde_json::to_vec(&v).unwrap())));
                        *resp.status_mut() = code;
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        FakeApi {
            addr,
            state,
            ca_pem: p.ca_pem,
            _dir: dir,
            stop: Some(tx),
        }
    }

    pub fn client(&self) -> ApiClient {
        ApiClient::new(
            &self.addr.to_string(),
            "localhost",
            self.ca_pem.as_bytes(),
            Some("test-token"),
        )
        .unwrap()
    }

    pub fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}
