//! The monitoring port (15014): `/ready`, `/metrics`, `/debug/syncz`,
//! `/debug/config_dump?proxyID=`, `/debug/configz`.

use std::{
    fmt::Write as _,
    sync::{Arc, OnceLock},
};

use axum::{
    extract::Query,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use rudder_ads::AdsServer;
use rudder_model::{Diagnostic, Severity, Snapshot};
use tokio::sync::watch;

use crate::proxies::Proxies;

/// What the endpoints read; empty until pilot serves.
#[derive(Clone, Default)]
pub struct State(Arc<OnceLock<Serving>>, Arc<OnceLock<rudder_ca::CaMetrics>>);

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
        let _ = self.1.set(m);
    }

    /// pilot has its first snapshot and serves xDS.
    pub fn set_serving(
        &self,
        proxies: Arc<Proxies>,
        ads: AdsServer,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        diagnostics: watch::Receiver<Arc<Vec<Diagnostic>>>,
    ) {
        let _ = self.0.set(Serving {
            proxies,
            ads,
            snapshots,
            diagnostics,
        });
    }
}

/// Serves the endpoints until the process exits.
pub async fn serve(listener: tokio::net::TcpListener, state: State) {
    let app = Router::new()
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/debug/syncz", get(syncz))
        .route("/debug/config_dump", get(config_dump))
        .route("/debug/configz", get(configz))
        .with_state(state);
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "monitoring server failed");
    }
}

type S = axum::extract::State<State>;

async fn ready(axum::extract::State(state): S) -> Response {
    match state.0.get() {
        Some(_) => (StatusCode::OK, "ready\n").into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: first read of the config source not finished\n",
        )
            .into_response(),
    }
}

async fn metrics(axum::extract::State(state): S) -> Response {
    let mut out = String::new();
    let Some(s) = state.0.get() else {
        return (StatusCode::OK, "# pilot is not serving yet\n").into_response();
    };
    out.push_str(&s.ads.metrics().render());
    if let Some(ca) = state.1.get() {
        out.push_str(&ca.render());
    }
    let snapshot = s.snapshots.borrow().clone();
    let diagnostics = s.diagnostics.borrow().clone();
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diagnostics.len() - errors;
    let _ = writeln!(
        out,
        "# HELP pilot_services Services in the current snapshot."
    );
    let _ = writeln!(out, "# TYPE pilot_services gauge");
    let _ = writeln!(out, "pilot_services {}", snapshot.services.len());
    let _ = writeln!(out, "# HELP pilot_virt_services Route tables (VirtualServices and RouteRule groups) in the current snapshot.");
    let _ = writeln!(out, "# TYPE pilot_virt_services gauge");
    let _ = writeln!(out, "pilot_virt_services {}", snapshot.route_tables.len());
    let _ = writeln!(out, "# HELP pilot_total_xds_internal_errors Generated resource sets that failed the consistency check and were not published.");
    let _ = writeln!(out, "# TYPE pilot_total_xds_internal_errors counter");
    let _ = writeln!(
        out,
        "pilot_total_xds_internal_errors {}",
        rudder_xds::internal_errors()
    );
    let _ = writeln!(
        out,
        "# HELP rudder_config_diagnostics Validation findings in the current config, by severity."
    );
    let _ = writeln!(out, "# TYPE rudder_config_diagnostics gauge");
    let _ = writeln!(
        out,
        "rudder_config_diagnostics{{severity=\"error\"}} {errors}"
    );
    let _ = writeln!(
        out,
        "rudder_config_diagnostics{{severity=\"warning\"}} {warnings}"
    );
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
}

async fn syncz(axum::extract::State(state): S) -> Response {
    match state.0.get() {
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
    let Some(s) = state.0.get() else {
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
    let Some(s) = state.0.get() else {
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
