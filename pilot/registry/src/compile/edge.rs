//! What the translations of other projects' edge APIs (Contour's HTTPProxy,
//! Emissary's Mapping) share: the objects they make are Istio Gateways
//! bound to the ingress gateway (Istio's `istio: ingressgateway`, as an
//! Ingress) and VirtualServices, each carrying its source's origin, so the
//! build compiles them like any other Gateway and VirtualService.

use rudder_config::{meta::ObjectMeta, GatewaySpec, VirtualServiceSpec};
use serde_json::{json, Value};

use crate::object::{Body, Object, Origin};

/// An Istio Gateway of the ingress gateway pods (see
/// [`super::ingress::gateway_selector`]) with these servers.
pub fn gateway(
    name: String,
    namespace: &str,
    created: Option<String>,
    servers: Vec<Value>,
    origin: &Origin,
) -> Object {
    let spec: GatewaySpec = serde_json::from_value(json!({
        "selector": super::ingress::gateway_selector(),
        "servers": servers,
    }))
    .expect("a Gateway made for an edge API object parses");
    let meta = ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        creation_timestamp: created,
        ..ObjectMeta::default()
    };
    Object::new(meta, Body::Gateway(spec), origin.clone())
}

/// A VirtualService from its JSON form (made by a translation, so it parses).
pub fn virtual_service(
    name: String,
    namespace: &str,
    created: Option<String>,
    spec: Value,
    origin: &Origin,
) -> Object {
    let spec: VirtualServiceSpec =
        serde_json::from_value(spec).expect("a VirtualService made for an edge API object parses");
    let meta = ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        creation_timestamp: created,
        ..ObjectMeta::default()
    };
    Object::new(meta, Body::VirtualService(spec), origin.clone())
}

/// A Service destination by full host name.
pub fn destination(host: &str, port: i64) -> Value {
    json!({"host": host, "port": {"number": port}})
}

/// `retries` that retry nothing: Contour and Emissary retry only when
/// told to, where a VirtualService without `retries` gets Istio's default.
pub fn no_retries() -> Value {
    json!({"attempts": 0})
}

/// A host as a name part (`*.example.com` → `wildcard-example-com`).
pub fn host_label(host: &str) -> String {
    host.replace('*', "wildcard").replace('.', "-")
}

/// Whether `h` is a DNS name, optionally with a leading `*.` label.
pub fn valid_host(h: &str) -> bool {
    let bare = h.strip_prefix("*.").unwrap_or(h);
    !h.is_empty()
        && bare.parse::<std::net::IpAddr>().is_err()
        && bare
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}
