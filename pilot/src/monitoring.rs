//! The monitoring port (15014): `/ready`, `/metrics`, `/debug/syncz`,
//! `/debug/config_dump?proxyID=`, `/debug/configz`, `/version` (pilot's
//! version, for `rudder version`), and the mesh page (`/`, `/ui`, its JSON
//! `/debug/mesh`: see [`crate::mesh`]).

use std::{
    fmt,
    sync::{Arc, Mutex, OnceLock},
};

use axum::{
    extract::Query,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use rudder_ads::AdsServer;
use rudder_metrics::{
    prometheus_client::{
        collector::Collector,
        encoding::{DescriptorEncoder, EncodeMetric},
        metrics::gauge::ConstGauge,
    },
    Gauge, IstioCounter, Labelled, Registry,
};
use rudder_model::{Diagnostic, Severity, Snapshot};
use tokio::sync::watch;

use crate::mesh::traffic::{self, Traffic};
use crate::proxies::Proxies;

/// What the endpoints read; empty until pilot serves.
#[derive(Clone)]
pub struct State {
    serving: Arc<OnceLock<Serving>>,
    /// pilot's one metrics registry: the ADS server's, the CA's and the
    /// snapshot's metrics ([`SnapshotMetrics`]).
    registry: Arc<Mutex<Registry>>,
    /// Request rates per edge for the mesh page.
    traffic: Arc<Mutex<Traffic>>,
}

impl Default for State {
    fn default() -> Self {
        let serving = Arc::new(OnceLock::new());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotMetrics(serving.clone())));
        State {
            serving,
            registry: Arc::new(Mutex::new(registry)),
            traffic: Arc::new(Mutex::new(Traffic::new(traffic::Source::Sidecars))),
        }
    }
}

struct Serving {
    proxies: Arc<Proxies>,
    ads: AdsServer,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    diagnostics: watch::Receiver<Arc<Vec<Diagnostic>>>,
}

impl State {
    /// Not ready yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The CA's counters (`citadel_server_*`), when pilot runs a CA.
    pub fn set_ca_metrics(&self, m: rudder_ca::CaMetrics) {
        m.register(&mut self.registry());
    }

    /// The JWKS resolver's counters.
    pub fn set_jwks_metrics(&self, m: &crate::jwks::JwksMetrics) {
        m.register(&mut self.registry());
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the mesh page's request rates come from (before [`Self::set_serving`]).
    pub fn set_traffic_source(&self, source: traffic::Source) {
        *self.traffic.lock().unwrap_or_else(|e| e.into_inner()) = Traffic::new(source);
    }

    fn traffic(&self) -> Traffic {
        self.traffic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// pilot has its first snapshot and serves xDS.
    pub fn set_serving(
        &self,
        proxies: Arc<Proxies>,
        ads: AdsServer,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        diagnostics: watch::Receiver<Arc<Vec<Diagnostic>>>,
    ) {
        let metrics = ads.metrics().clone();
        let streams = ads.clone();
        let current = snapshots.clone();
        tokio::spawn(self.traffic().run(
            move || streams.status().into_iter().map(|s| s.node_id).collect(),
            move || current.borrow().clone(),
        ));
        if self
            .serving
            .set(Serving {
                proxies,
                ads,
                snapshots,
                diagnostics,
            })
            .is_ok()
        {
            metrics.register(&mut self.registry());
        }
    }
}

/// Serves the endpoints until the process exits.
pub async fn serve(listener: tokio::net::TcpListener, state: State) {
    let app = Router::new()
        .route("/ready", get(ready))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/debug/syncz", get(syncz))
        .route("/debug/config_dump", get(config_dump))
        .route("/debug/configz", get(configz))
        .route("/debug/mesh", get(mesh))
        .merge(crate::mesh::routes())
        .with_state(state);
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "monitoring server failed");
    }
}

type S = axum::extract::State<State>;

async fn ready(axum::extract::State(state): S) -> Response {
    match state.serving.get() {
        Some(_) => (StatusCode::OK, "ready\n").into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: first read of the config source not finished\n",
        )
            .into_response(),
    }
}

async fn version() -> Response {
    Json(serde_json::json!({
        "name": "pilot",
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

async fn metrics(axum::extract::State(state): S) -> Response {
    let text = rudder_metrics::encode(&state.registry());
    ([("content-type", rudder_metrics::CONTENT_TYPE)], text).into_response()
}

/// The metrics read from the current snapshot and its validation findings
/// at each scrape; nothing until pilot serves.
struct SnapshotMetrics(Arc<OnceLock<Serving>>);

impl fmt::Debug for SnapshotMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotMetrics")
            .field("serving", &self.0.get().is_some())
            .finish()
    }
}

impl Collector for SnapshotMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let Some(s) = self.0.get() else {
            return Ok(());
        };
        let snapshot = s.snapshots.borrow().clone();
        let diagnostics = s.diagnostics.borrow().clone();
        let errors = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        let by_severity = Labelled::<Gauge>::new("severity", ["error", "warning"]);
        by_severity.at(0).set(errors as i64);
        by_severity.at(1).set((diagnostics.len() - errors) as i64);
        let internal_errors = IstioCounter::default();
        internal_errors.inc_by(rudder_xds::internal_errors());
        put(
            &mut encoder,
            "pilot_services",
            "Services in the current snapshot.",
            &ConstGauge::new(snapshot.services.len() as i64),
        )?;
        put(
            &mut encoder,
            "pilot_virt_services",
            "Route tables (VirtualServices and RouteRule groups) in the current snapshot.",
            &ConstGauge::new(snapshot.route_tables.len() as i64),
        )?;
        put(
            &mut encoder,
            "pilot_total_xds_internal_errors",
            "Generated resource sets that failed the consistency check and were not published.",
            &internal_errors,
        )?;
        put(
            &mut encoder,
            "rudder_config_diagnostics",
            "Validation findings in the current config, by severity.",
            &by_severity,
        )
    }
}

/// One metric family; `help` as it is shown (a collector's help gets no period added).
fn put(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> fmt::Result {
    let m = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(m)
}

async fn syncz(axum::extract::State(state): S) -> Response {
    match state.serving.get() {
        Some(s) => Json(s.ads.status()).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "not serving yet\n").into_response(),
    }
}

#[derive(serde::Deserialize)]
struct DumpQuery {
    #[serde(rename = "proxyID")]
    proxy_id: Option<String>,
}

async fn config_dump(axum::extract::State(state): S, Query(q): Query<DumpQuery>) -> Response {
    let Some(s) = state.serving.get() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "not serving yet\n").into_response();
    };
    let Some(id) = q.proxy_id else {
        return (
            StatusCode::BAD_REQUEST,
            "missing ?proxyID=<pod>.<namespace> or a full node id\n",
        )
            .into_response();
    };
    match s.proxies.find(&id) {
        Some((proxy, resources)) => Json(serde_json::json!({
            "proxy": proxy.id.to_string(),
            "namespace": proxy.namespace,
            "labels": proxy.labels,
            "resources": rudder_xds::to_json(&resources),
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("no connected proxy or known pod {id:?}\n"),
        )
            .into_response(),
    }
}

async fn configz(axum::extract::State(state): S) -> Response {
    let Some(s) = state.serving.get() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "not serving yet\n").into_response();
    };
    let snapshot = s.snapshots.borrow().clone();
    let diagnostics = s.diagnostics.borrow().clone();
    Json(serde_json::json!({
        "version": snapshot.version,
        "services": snapshot.services.keys().collect::<Vec<_>>(),
        "routeTables": snapshot.route_tables.iter().map(|t| format!("{} {}/{}", t.source.kind, t.source.namespace, t.source.name)).collect::<Vec<_>>(),
        "destinationPolicies": snapshot.destination_rules.all().map(|p| &p.host).collect::<std::collections::BTreeSet<_>>(),
        "sidecars": snapshot.sidecars.iter().map(|s| format!("{}/{}", s.source.namespace, s.source.name)).collect::<Vec<_>>(),
        "diagnostics": diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "connectedProxies": s.proxies.connected(),
    }))
    .into_response()
}

/// The mesh page's model (see [`crate::mesh::view`]).
async fn mesh(axum::extract::State(state): S) -> Response {
    let Some(s) = state.serving.get() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "not serving yet\n").into_response();
    };
    let (rates, metrics) = state.traffic().viewed();
    let snapshot = s.snapshots.borrow().clone();
    let diagnostics = s.diagnostics.borrow().clone();
    Json(crate::mesh::view::build(
        &snapshot,
        &s.ads.status(),
        &diagnostics,
        &rates,
        metrics,
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn version_is_served_before_pilot_is_ready() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve(l, State::new()));
        let v = get(addr, "/version").await;
        assert!(v.starts_with("HTTP/1.0 200"), "{v}");
        let body: serde_json::Value =
            serde_json::from_str(v.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        let r = get(addr, "/debug/syncz").await;
        assert!(r.starts_with("HTTP/1.0 503"), "{r}");
    }
}
