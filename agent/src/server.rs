//! The agent's HTTP endpoints.
//!
//! - status port (15021): `GET /healthz/ready`: 200 only when Envoy is `LIVE`
//!   and has accepted its first clusters and listeners from pilot
//!   (`cluster_manager.cds.update_success` and
//!   `listener_manager.lds.update_success` ≥ 1), 503 with the reason otherwise.
//!   Envoy turns `LIVE` after its initial fetch timeout even when pilot never
//!   answered, so `LIVE` alone would report an empty proxy as ready.
//! - metrics port (15020): `GET /stats/prometheus` and `/metrics`: Envoy's
//!   stats followed by the agent's; `POST /quitquitquit`: graceful shutdown,
//!   for Jobs whose sidecar must stop when the work is done. Only loopback
//!   clients may call it (the app in the same pod), never another pod.
//!   `GET /config_dump`: Envoy admin's `/config_dump`, read-only, for
//!   `rudder proxy-status POD` and `rudder proxy-config` (Envoy's admin
//!   itself stays on loopback inside the pod); only the `resource`, `mask`,
//!   `name_regex` and `include_eds` parameters pass. `GET /certs`: Envoy's
//!   `/certs` (serials and validity, for `rudder proxy-config secret`);
//!   `GET /clusters`: Envoy's `/clusters?format=json` (host health and
//!   outlier state, for `rudder proxy-config endpoints`).
//!   `GET /app-health/<container>/<livez|readyz|startupz>`: the app's own
//!   probe, run by the agent for kubelet (see [`crate::app_probe`]).

use std::{net::SocketAddr, sync::atomic::Ordering::Relaxed, sync::Arc, time::Duration};

use axum::{
    extract::{ConnectInfo, Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use tokio::{net::TcpListener, sync::mpsc};

use crate::{admin::Admin, app_probe::AppProbers, state::AgentState, supervisor::Command};

/// What the handlers need.
#[derive(Clone)]
pub struct ServerContext {
    /// Shared with the supervisor.
    pub state: Arc<AgentState>,
    /// Envoy's admin interface.
    pub admin: Admin,
    /// To ask the supervisor to shut down.
    pub commands: mpsc::Sender<Command>,
    /// The app's rewritten probes.
    pub app_probers: Arc<AppProbers>,
    /// Where the app's probes go (the pod IP, as kubelet's would).
    pub pod_ip: std::net::IpAddr,
}

/// Readiness: `Ok(())` or the reason it is not ready.
pub async fn readiness(state: &AgentState, admin: &Admin) -> Result<(), String> {
    if state.draining.load(Relaxed) {
        return Err("draining".into());
    }
    if state.envoy_pid.load(Relaxed) == 0 {
        return Err("Envoy is not running".into());
    }
    let s = admin
        .state()
        .await
        .map_err(|e| format!("Envoy admin: {e}"))?;
    if s != "LIVE" {
        return Err(format!("Envoy is {s}"));
    }
    let stats = admin
        .stats(r"^(cluster_manager\.cds|listener_manager\.lds)\.update_success$")
        .await
        .map_err(|e| format!("Envoy admin: {e}"))?;
    let cds = stats
        .get("cluster_manager.cds.update_success")
        .copied()
        .unwrap_or(0);
    let lds = stats
        .get("listener_manager.lds.update_success")
        .copied()
        .unwrap_or(0);
    if cds == 0 || lds == 0 {
        return Err(format!(
            "no configuration accepted from pilot yet (CDS updates {cds}, LDS updates {lds})"
        ));
    }
    Ok(())
}

async fn ready(State(ctx): State<ServerContext>) -> Response {
    match readiness(&ctx.state, &ctx.admin).await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(ctx): State<ServerContext>) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut body = match ctx.admin.prometheus().await {
        Ok(text) => text,
        Err(error) => format!(
            "# Envoy stats unavailable: {}\n",
            error.to_string().replace('\n', " ")
        ),
    };
    if !body.ends_with('\n') && !body.is_empty() {
        body.push('\n');
    }
    body.push_str(&ctx.state.render_metrics(now));
    ([(header::CONTENT_TYPE, rudder_metrics::CONTENT_TYPE)], body).into_response()
}

async fn app_health(
    State(ctx): State<ServerContext>,
    Path((container, kind)): Path<(String, String)>,
) -> Response {
    let path = format!(
        "{}{container}/{kind}",
        rudder_model::well_known::APP_HEALTH_PATH_PREFIX
    );
    let Some(prober) = ctx.app_probers.get(&path) else {
        return (StatusCode::NOT_FOUND, format!("no app probe at {path}\n")).into_response();
    };
    let outcome = prober.run(ctx.pod_ip).await;
    if !(200..400).contains(&outcome.status) {
        tracing::debug!(%path, detail = %outcome.detail, "app probe failed");
    }
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    (status, format!("{}\n", outcome.detail)).into_response()
}

/// The `/config_dump` parameters that pass to Envoy: only reads, no
/// parameter of another admin handler can ride along.
const DUMP_PARAMS: &[&str] = &["resource", "mask", "name_regex", "include_eds"];

/// The query to pass to Envoy, or why it is refused.
pub fn dump_query(query: Option<&str>) -> Result<String, String> {
    let mut out = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if !DUMP_PARAMS.contains(&key) {
            return Err(format!(
                "unknown parameter {key:?} (allowed: {})",
                DUMP_PARAMS.join(", ")
            ));
        }
        if pair.bytes().any(|b| !(b.is_ascii_graphic()) || b == b'#') {
            return Err(format!("parameter {key:?} is not URL-encoded"));
        }
        out.push(pair.to_string());
    }
    Ok(out.join("&"))
}

async fn config_dump(State(ctx): State<ServerContext>, uri: axum::http::Uri) -> Response {
    let query = match dump_query(uri.query()) {
        Ok(q) => q,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    match ctx.admin.config_dump(&query).await {
        Ok(r) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let kind = if r.status == 200 {
                "application/json"
            } else {
                "text/plain"
            };
            (status, [(header::CONTENT_TYPE, kind)], r.body).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("Envoy admin: {e}\n")).into_response(),
    }
}

async fn certs(State(ctx): State<ServerContext>) -> Response {
    match ctx.admin.certs().await {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("Envoy admin: {e}\n")).into_response(),
    }
}

async fn clusters(State(ctx): State<ServerContext>) -> Response {
    match ctx.admin.clusters().await {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("Envoy admin: {e}\n")).into_response(),
    }
}

async fn quit(
    State(ctx): State<ServerContext>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if !is_loopback(peer.ip()) {
        tracing::warn!(%peer, "refused /quitquitquit from a non-loopback client");
        return (
            StatusCode::FORBIDDEN,
            "only loopback clients may call /quitquitquit\n",
        )
            .into_response();
    }
    tracing::info!(%peer, "/quitquitquit");
    let _ = ctx
        .commands
        .send(Command::Shutdown("/quitquitquit".into()))
        .await;
    (StatusCode::OK, "OK\n").into_response()
}

/// Loopback, including IPv4 loopback seen through a dual-stack socket.
pub fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The status port's router.
pub fn status_router(ctx: ServerContext) -> Router {
    Router::new()
        .route("/healthz/ready", get(ready))
        .with_state(ctx)
}

/// The metrics port's router.
pub fn metrics_router(ctx: ServerContext) -> Router {
    Router::new()
        .route("/stats/prometheus", get(metrics))
        .route("/metrics", get(metrics))
        .route("/quitquitquit", post(quit))
        .route("/config_dump", get(config_dump))
        .route("/certs", get(certs))
        .route("/clusters", get(clusters))
        .route("/app-health/{container}/{kind}", get(app_health))
        .with_state(ctx)
}

/// Serves `router` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

/// Admin calls from handlers are bounded so a wedged Envoy cannot pile up
/// probe requests.
pub const HANDLER_ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quitquitquit_peers() {
        for (ip, ok) in [
            ("127.0.0.1", true),
            ("127.0.0.6", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("198.18.0.5", false),
            ("::ffff:10.0.0.1", false),
        ] {
            assert_eq!(is_loopback(ip.parse().unwrap()), ok, "{ip}");
        }
    }

    #[test]
    fn only_read_parameters_pass_to_envoy() {
        assert_eq!(dump_query(None).unwrap(), "");
        assert_eq!(
            dump_query(Some("resource=dynamic_active_clusters&include_eds")).unwrap(),
            "resource=dynamic_active_clusters&include_eds"
        );
        assert_eq!(
            dump_query(Some("mask=bootstrap.node")).unwrap(),
            "mask=bootstrap.node"
        );
        for bad in ["filter=x", "resource=a&format=prometheus", "resource=a b"] {
            assert!(dump_query(Some(bad)).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn readiness_without_envoy_says_why() {
        let state = AgentState::default();
        let admin = Admin::new(1, Duration::from_millis(200));
        assert_eq!(
            readiness(&state, &admin).await.unwrap_err(),
            "Envoy is not running"
        );
        state.envoy_pid.store(42, Relaxed);
        assert!(readiness(&state, &admin)
            .await
            .unwrap_err()
            .starts_with("Envoy admin:"));
        state.draining.store(true, Relaxed);
        assert_eq!(readiness(&state, &admin).await.unwrap_err(), "draining");
    }
}
