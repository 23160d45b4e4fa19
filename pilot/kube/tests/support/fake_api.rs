//! An in-process HTTP server that answers like the Kubernetes API server does
//! for list, watch, get, create, replace and status patch, from objects the
//! test puts in (no cluster is reachable here).
//!
//! ```text
//!  test ── put/delete/remove_silently/expire/drop_watches ──► State (objects, history, resourceVersion)
//!  kube::Client ── GET  /api/v1/pods?limit=500              ──► {"kind":"List","metadata":{"resourceVersion":"N"},"items":[…]}
//!               ── GET  …?watch=true&resourceVersion=N&allowWatchBookmarks=true
//!                                                            ──► chunked: {"type":"ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR","object":…}\n …
//!               ── GET/POST/PUT …/leases, PATCH …/status      ──► objects (409 on a stale resourceVersion)
//!               ── POST /apis/authentication.k8s.io/v1/tokenreviews ──► status from the tokens the test added
//! ```
//!
//! Expiry works as after an etcd compaction: watches that resume from before
//! it get an ERROR event with a `Status` of code 410; open watches get the
//! same event and are closed.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::{body::Frame, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// One change, as watches deliver it.
#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    collection: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    rv: u64,
    /// collection (`/api/v1/pods`) → (namespace, name) → object.
    objects: BTreeMap<String, BTreeMap<(String, String), Value>>,
    history: Vec<Change>,
    /// Watches resuming from a resourceVersion below this get 410.
    compacted: u64,
    /// Lists served, per collection.
    lists: BTreeMap<String, usize>,
    /// `METHOD path` of every non-GET request.
    writes: Vec<String>,
    /// Collections answering 404 (a CRD not installed).
    missing: std::collections::BTreeSet<String>,
    /// token → (user name, audiences the token was issued for).
    tokens: BTreeMap<String, (String, Vec<String>)>,
}

/// The fake API server; it stops when dropped.
pub struct FakeApi {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    changes: broadcast::Sender<Change>,
    /// Bumped to end every open watch; carries whether to send 410 first.
    cut: watch::Sender<(u64, bool)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// (collection path without namespace, plural, namespaced) of an apiVersion + kind.
pub fn collection_of(api_version: &str, kind: &str) -> (String, bool) {
    let prefix = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    let (plural, namespaced) = match kind {
        "Namespace" => ("namespaces", false),
        "Service" => ("services", true),
        "Pod" => ("pods", true),
        "Endpoints" => ("endpoints", true),
        "EndpointSlice" => ("endpointslices", true),
        "ConfigMap" => ("configmaps", true),
        "Secret" => ("secrets", true),
        "TokenReview" => ("tokenreviews", false),
        "VirtualService" => ("virtualservices", true),
        "DestinationRule" => ("destinationrules", true),
        "Sidecar" => ("sidecars", true),
        "RouteRule" => ("routerules", true),
        "DestinationPolicy" => ("destinationpolicies", true),
        "Lease" => ("leases", true),
        "Ingress" => ("ingresses", true),
        "IngressClass" => ("ingressclasses", false),
        "PeerAuthentication" => ("peerauthentications", true),
        "AuthorizationPolicy" => ("authorizationpolicies", true),
        "RequestAuthentication" => ("requestauthentications", true),
        "HTTPProxy" => ("httpproxies", true),
        "Mapping" => ("mappings", true),
        other => panic!("fake API server: unknown kind {other}"),
    };
    (format!("{prefix}/{plural}"), namespaced)
}

fn meta_str<'a>(o: &'a Value, field: &str) -> &'a str {
    o.pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": reason, "message": message, "code": code})
}

fn respond(code: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed_unsync())
        .expect("response")
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

impl FakeApi {
    /// Starts on 127.0.0.1 (an ephemeral port).
    pub async fn start() -> FakeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let (changes, _) = broadcast::channel(4096);
        let (cut, _) = watch::channel((0, false));
        let server = Server {
            state: state.clone(),
            changes: changes.clone(),
            cut: cut.subscribe(),
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let server = server.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeApi {
            addr,
            state,
            changes,
            cut,
            task,
        }
    }

    /// A kube client for this server (plain HTTP).
    pub fn client(&self) -> kube::Client {
        let url = format!("http://{}", self.addr).parse().expect("url");
        kube::Client::try_from(kube::Config::new(url)).expect("client")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates or replaces an object (ADDED or MODIFIED to watchers); returns its resourceVersion.
    pub fn put(&self, object: Value) -> u64 {
        let (collection, namespaced) = collection_of(
            object["apiVersion"].as_str().expect("apiVersion"),
            object["kind"].as_str().expect("kind"),
        );
        let mut s = self.lock();
        store(&mut s, &self.changes, collection, namespaced, object)
    }

    /// Deletes an object (DELETED to watchers).
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let (collection, namespaced) = collection_of(api_version, kind);
        let ns = if namespaced { namespace } else { "" };
        let mut s = self.lock();
        let Some(mut o) = s
            .objects
            .get_mut(&collection)
            .and_then(|c| c.remove(&(ns.into(), name.into())))
        else {
            panic!("fake API server: delete of missing {kind} {namespace}/{name}")
        };
        s.rv += 1;
        o["metadata"]["resourceVersion"] = json!(s.rv.to_string());
        let c = Change {
            rv: s.rv,
            collection,
            kind: "DELETED",
            object: o,
        };
        s.history.push(c.clone());
        let _ = self.changes.send(c);
    }

    /// Deletes an object without telling watchers (what a client misses
    /// while disconnected across a compaction).
    pub fn remove_silently(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let (collection, namespaced) = collection_of(api_version, kind);
        let ns = if namespaced { namespace } else { "" };
        let mut s = self.lock();
        s.objects
            .get_mut(&collection)
            .and_then(|c| c.remove(&(ns.into(), name.into())))
            .expect("object to remove");
        s.rv += 1;
    }

    /// Compacts history: every open watch gets ERROR 410 and is closed, and
    /// any watch resuming from an older resourceVersion gets 410 too.
    pub fn expire(&self) {
        let mut s = self.lock();
        s.rv += 1;
        s.compacted = s.rv;
        s.history.clear();
        drop(s);
        self.cut.send_modify(|(n, gone)| {
            *n += 1;
            *gone = true;
        });
    }

    /// Closes every open watch stream cleanly (a dropped connection, an
    /// API server restart); history is kept, so clients can resume.
    pub fn drop_watches(&self) {
        self.cut.send_modify(|(n, gone)| {
            *n += 1;
            *gone = false;
        });
    }

    /// Makes a collection answer 404 (`true`) as when its CRD is not
    /// installed, or serve again (`false`).
    pub fn set_missing(&self, collection: &str, missing: bool) {
        let mut s = self.lock();
        if missing {
            s.missing.insert(collection.to_string());
        } else {
            s.missing.remove(collection);
        }
    }

    /// Makes `token` valid for `username` (e.g. `system:serviceaccount:default:reviews`)
    /// and `audiences`, as a projected service-account token is.
    pub fn add_token(&self, token: &str, username: &str, audiences: &[&str]) {
        let auds = audiences.iter().map(|a| a.to_string()).collect();
        self.lock()
            .tokens
            .insert(token.to_string(), (username.to_string(), auds));
    }

    /// Lists served for a collection (e.g. `/api/v1/pods`).
    pub fn lists(&self, collection: &str) -> usize {
        self.lock().lists.get(collection).copied().unwrap_or(0)
    }

    /// Non-GET requests so far (`PATCH /apis/…/status`).
    pub fn writes(&self) -> Vec<String> {
        self.lock().writes.clone()
    }

    /// An object as the server holds it.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let (collection, namespaced) = collection_of(api_version, kind);
        let ns = if namespaced { namespace } else { "" };
        self.lock()
            .objects
            .get(&collection)
            .and_then(|c| c.get(&(ns.to_string(), name.to_string())))
            .cloned()
    }
}

/// Stores `object` under a new resourceVersion (ADDED or MODIFIED to watchers).
fn store(
    s: &mut State,
    changes: &broadcast::Sender<Change>,
    collection: String,
    namespaced: bool,
    mut object: Value,
) -> u64 {
    let ns = if namespaced {
        meta_str(&object, "namespace").to_string()
    } else {
        String::new()
    };
    let name = meta_str(&object, "name").to_string();
    let existed = s
        .objects
        .get(&collection)
        .and_then(|c| c.get(&(ns.clone(), name.clone())))
        .is_some();
    s.rv += 1;
    let rv = s.rv;
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    if namespaced && object["metadata"].get("namespace").is_none() {
        object["metadata"]["namespace"] = json!(ns);
    }
    s.objects
        .entry(collection.clone())
        .or_default()
        .insert((ns, name), object.clone());
    let c = Change {
        rv,
        collection,
        kind: if existed { "MODIFIED" } else { "ADDED" },
        object,
    };
    s.history.push(c.clone());
    let _ = changes.send(c);
    rv
}

#[derive(Clone)]
struct Server {
    state: Arc<Mutex<State>>,
    changes: broadcast::Sender<Change>,
    cut: watch::Receiver<(u64, bool)>,
}

/// A parsed request path.
struct Target {
    collection: String,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (prefix, rest) = match *segs.first()? {
        "api" => (format!("/api/{}", segs.get(1)?), &segs[2..]),
        "apis" => (
            format!("/apis/{}/{}", segs.get(1)?, segs.get(2)?),
            &segs[3..],
        ),
        _ => return None,
    };
    let t = |plural: &str, namespace: Option<&str>, name: Option<&str>, status: bool| Target {
        collection: format!("{prefix}/{plural}"),
        namespace: namespace.map(String::from),
        name: name.map(String::from),
        status,
    };
    Some(match rest {
        [plural] => t(plural, None, None, false),
        ["namespaces", name] => t("namespaces", None, Some(name), false),
        ["namespaces", ns, plural] => t(plural, Some(ns), None, false),
        ["namespaces", ns, plural, name] => t(plural, Some(ns), Some(name), false),
        ["namespaces", ns, plural, name, "status"] => t(plural, Some(ns), Some(name), true),
        _ => return None,
    })
}

fn query(req: &Request<hyper::body::Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3D", "=").replace("%2F", "/")))
        .collect()
}

impl Server {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let q = query(&req);
        let Some(target) = parse_path(&path) else {
            return respond(
                StatusCode::NOT_FOUND,
                &status(404, "NotFound", &format!("no route {path}")),
            );
        };
        if self.lock().missing.contains(&target.collection) {
            return respond(
                StatusCode::NOT_FOUND,
                &status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            );
        }
        let method = req.method().clone();
        if method != Method::GET {
            self.lock().writes.push(format!("{method} {path}"));
        }
        let body: Value = if method == Method::GET {
            Value::Null
        } else {
            let bytes = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        match (method, &target.name) {
            (Method::GET, None) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
                self.watch(&target, &q)
            }
            (Method::GET, None) => self.list(&target, &q),
            (Method::GET, Some(name)) => match self.find(&target, name) {
                Some(o) => respond(StatusCode::OK, &o),
                None => respond(
                    StatusCode::NOT_FOUND,
                    &status(404, "NotFound", &format!("{name} not found")),
                ),
            },
            (Method::POST, None)
                if target.collection == "/apis/authentication.k8s.io/v1/tokenreviews" =>
            {
                self.token_review(body)
            }
            (Method::POST, None) => self.create(&target, body),
            (Method::PUT, Some(name)) => self.replace(&target, name, body),
            (Method::PATCH, Some(name)) if target.status => self.patch_status(&target, name, &body),
            (m, _) => respond(
                StatusCode::METHOD_NOT_ALLOWED,
                &status(405, "MethodNotAllowed", &format!("{m} {path}")),
            ),
        }
    }

    fn key(target: &Target, name: &str) -> (String, String) {
        let ns = if target.collection.ends_with("/namespaces") {
            String::new()
        } else {
            target.namespace.clone().unwrap_or_default()
        };
        (ns, name.to_string())
    }

    fn find(&self, target: &Target, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&target.collection)
            .and_then(|c| c.get(&Self::key(target, name)))
            .cloned()
    }

    fn matches(target: &Target, q: &BTreeMap<String, String>, o: &Value) -> bool {
        let ns_ok = target
            .namespace
            .as_deref()
            .is_none_or(|ns| meta_str(o, "namespace") == ns);
        let field_ok = match q
            .get("fieldSelector")
            .and_then(|f| f.strip_prefix("metadata.name="))
        {
            Some(name) => meta_str(o, "name") == name,
            None => true,
        };
        ns_ok && field_ok
    }

    fn list(&self, target: &Target, q: &BTreeMap<String, String>) -> Response<Body> {
        let mut s = self.lock();
        *s.lists.entry(target.collection.clone()).or_default() += 1;
        let items: Vec<Value> = s
            .objects
            .get(&target.collection)
            .map(|c| {
                c.values()
                    .filter(|o| Self::matches(target, q, o))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let body = json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": s.rv.to_string()}, "items": items});
        respond(StatusCode::OK, &body)
    }

    fn watch(&self, target: &Target, q: &BTreeMap<String, String>) -> Response<Body> {
        let from: u64 = q
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(290u64);
        let (tx, rx) = mpsc::channel::<Bytes>(256);
        let line = |v: Value| Bytes::from(format!("{v}\n"));
        let gone = line(
            json!({"type": "ERROR", "object": status(410, "Expired", "too old resource version")}),
        );
        let mut live = self.changes.subscribe();
        let mut cut = self.cut.clone();
        cut.borrow_and_update();
        let (backlog, now, expired) = {
            let s = self.lock();
            let backlog: Vec<Change> = s
                .history
                .iter()
                .filter(|c| c.rv > from && c.collection == target.collection)
                .cloned()
                .collect();
            (backlog, s.rv, from < s.compacted)
        };
        let target = Target {
            collection: target.collection.clone(),
            namespace: target.namespace.clone(),
            name: None,
            status: false,
        };
        let q = q.clone();
        tokio::spawn(async move {
            if expired {
                let _ = tx.send(gone).await;
                return;
            }
            let mut sent = from;
            for c in backlog
                .into_iter()
                .filter(|c| Self::matches(&target, &q, &c.object))
            {
                sent = c.rv;
                if tx
                    .send(line(json!({"type": c.kind, "object": c.object})))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if bookmarks {
                let bm = json!({"type": "BOOKMARK", "object": {"kind": "Bookmark", "apiVersion": "v1", "metadata": {"resourceVersion": now.max(sent).to_string()}}});
                let _ = tx.send(line(bm)).await;
            }
            let deadline = tokio::time::sleep(Duration::from_secs(timeout));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    c = live.recv() => match c {
                        Ok(c) if c.collection == target.collection && c.rv > sent && Self::matches(&target, &q, &c.object) => {
                            sent = c.rv;
                            if tx.send(line(json!({"type": c.kind, "object": c.object}))).await.is_err() { return }
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    },
                    r = cut.changed() => {
                        if r.is_ok() && cut.borrow().1 {
                            let _ = tx.send(gone.clone()).await;
                        }
                        return;
                    }
                    _ = &mut deadline => return,
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok(Frame::data(b)), rx))
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(StreamBody::new(stream).boxed_unsync())
            .expect("watch response")
    }

    /// Answers a TokenReview as the API server's authenticator does: the
    /// token must be known and, when the review names audiences, issued for
    /// at least one of them; `status.audiences` is the intersection.
    fn token_review(&self, mut body: Value) -> Response<Body> {
        let token = body["spec"]["token"].as_str().unwrap_or("").to_string();
        let wanted: Vec<String> = body["spec"]["audiences"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let known = self.lock().tokens.get(&token).cloned();
        body["status"] = match known {
            None => {
                json!({"authenticated": false, "error": "[invalid bearer token, unknown token]"})
            }
            Some((user, issued)) => {
                let common: Vec<&String> = if wanted.is_empty() {
                    issued.iter().collect()
                } else {
                    issued.iter().filter(|a| wanted.contains(a)).collect()
                };
                if common.is_empty() {
                    json!({"authenticated": false, "error": format!("[invalid bearer token, token audiences {issued:?} is invalid for the target audiences {wanted:?}]")})
                } else {
                    json!({"authenticated": true, "user": {"username": user, "groups": ["system:serviceaccounts"]}, "audiences": common})
                }
            }
        };
        respond(StatusCode::CREATED, &body)
    }

    fn create(&self, target: &Target, body: Value) -> Response<Body> {
        let name = meta_str(&body, "name").to_string();
        if self.find(target, &name).is_some() {
            return respond(
                StatusCode::CONFLICT,
                &status(409, "AlreadyExists", &format!("{name} already exists")),
            );
        }
        let namespaced = !target.collection.ends_with("/namespaces");
        let mut body = body;
        if let Some(ns) = &target.namespace {
            body["metadata"]["namespace"] = json!(ns);
        }
        let mut s = self.lock();
        store(
            &mut s,
            &self.changes,
            target.collection.clone(),
            namespaced,
            body.clone(),
        );
        let stored = s.objects[&target.collection][&Self::key(target, &name)].clone();
        respond(StatusCode::CREATED, &stored)
    }

    fn replace(&self, target: &Target, name: &str, body: Value) -> Response<Body> {
        let Some(current) = self.find(target, name) else {
            return respond(
                StatusCode::NOT_FOUND,
                &status(404, "NotFound", &format!("{name} not found")),
            );
        };
        let want = meta_str(&body, "resourceVersion");
        if !want.is_empty() && want != meta_str(&current, "resourceVersion") {
            return respond(
                StatusCode::CONFLICT,
                &status(409, "Conflict", "the object has been modified"),
            );
        }
        let mut s = self.lock();
        store(&mut s, &self.changes, target.collection.clone(), true, body);
        let stored = s.objects[&target.collection][&Self::key(target, name)].clone();
        respond(StatusCode::OK, &stored)
    }

    fn patch_status(&self, target: &Target, name: &str, patch: &Value) -> Response<Body> {
        let Some(mut current) = self.find(target, name) else {
            return respond(
                StatusCode::NOT_FOUND,
                &status(404, "NotFound", &format!("{name} not found")),
            );
        };
        // The status subresource ignores everything but `status`.
        merge_patch(&mut current["status"], &patch["status"]);
        let mut s = self.lock();
        store(
            &mut s,
            &self.changes,
            target.collection.clone(),
            true,
            current,
        );
        let stored = s.objects[&target.collection][&Self::key(target, name)].clone();
        respond(StatusCode::OK, &stored)
    }
}
