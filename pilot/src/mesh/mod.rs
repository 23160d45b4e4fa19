//! The live mesh page on the monitoring port: `/` and `/ui` serve one HTML
//! page (with `/ui/mesh.js` and `/ui/mesh.css`, embedded in the binary: no
//! CDN, no build step), which polls `/debug/mesh` (the model in [`view`],
//! traffic from [`traffic`]) and redraws itself.

pub mod traffic;
pub mod view;

use axum::{
    http::header,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

const INDEX_HTML: &str = include_str!("ui/index.html");
const MESH_JS: &str = include_str!("ui/mesh.js");
const MESH_CSS: &str = include_str!("ui/mesh.css");

/// The page's routes (no state: the assets are constants).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/mesh.js", get(js))
        .route("/ui/mesh.css", get(css))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", MESH_JS)
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", MESH_CSS)
}

#[cfg(test)]
mod tests;
