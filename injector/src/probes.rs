//! App probe rewriting, as Istio's `rewriteAppHTTPProbers` does.
//!
//! Kubelet probes an app from the node. With the pod's inbound traffic
//! captured, that probe lands in Envoy, and under a STRICT PeerAuthentication
//! Envoy refuses it: kubelet has no mesh certificate. So the injector points
//! each `httpGet` and `tcpSocket` probe of the app's containers at the agent
//! (`GET /app-health/<container>/<livez|readyz|startupz>` on port 15020, a
//! port proxy-init never captures) and hands the original probes to the agent
//! in the sidecar's `ISTIO_KUBE_APP_PROBERS` environment variable, a JSON map
//! from that path to the probe. The agent then probes the app from inside the
//! pod, as the proxy user that capture exempts.
//!
//! `httpGet` (HTTP or HTTPS), `tcpSocket` and `grpc` probes are rewritten.
//! Left as they are: `exec` probes (they run in the app's container and never
//! meet Envoy), probes that already target the agent, and every probe of a pod annotated
//! `sidecar.istio.io/rewriteAppHTTPProbers: "false"` (or of every pod when the
//! template's `rewriteAppProbers` is false). Named ports are resolved to numbers
//! from the container's `ports`, since the agent does not see the pod spec.

use rudder_model::well_known::{AGENT_HEALTH_PORT, AGENT_METRICS_PORT, APP_HEALTH_PATH_PREFIX};
use serde_json::{json, Map, Value};

use crate::pod::{kind_of, PodError};

/// Pod annotation that turns rewriting on or off for one pod.
pub const REWRITE_ANNOTATION: &str = "sidecar.istio.io/rewriteAppHTTPProbers";

/// The probe fields and the path suffix each one gets.
const KINDS: [(&str, &str); 3] = [
    ("livenessProbe", "livez"),
    ("readinessProbe", "readyz"),
    ("startupProbe", "startupz"),
];

/// Whether to rewrite this pod's probes: the annotation if present, else the
/// template's default.
pub fn enabled(
    annotations: &std::collections::BTreeMap<String, String>,
    default: bool,
) -> Result<bool, PodError> {
    match annotations.get(REWRITE_ANNOTATION).map(|v| v.trim()) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(PodError::field(
            &format!("metadata.annotations[{REWRITE_ANNOTATION:?}]"),
            format!("{other:?} is not \"true\" or \"false\""),
        )),
    }
}

/// Rewrite in place the probes of `containers` (the pod's `spec.containers`)
/// and return the originals by their new path, ready for
/// `ISTIO_KUBE_APP_PROBERS`. Nothing is changed when an error is returned.
pub fn rewrite(containers: &mut [Value]) -> Result<Map<String, Value>, PodError> {
    let mut plan = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let at = format!("spec.containers[{i}]");
        let Some(c) = c.as_object() else { continue };
        for (kind, suffix) in KINDS {
            let Some(probe) = c.get(kind).filter(|p| !p.is_null()) else {
                continue;
            };
            let at = format!("{at}.{kind}");
            let probe = object_at(probe, &at)?;
            let Some(original) = original(c, probe, &at)? else {
                continue;
            };
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    PodError::field(
                        &format!("spec.containers[{i}].name"),
                        "missing; a probed container needs a name",
                    )
                })?;
            plan.push((
                i,
                kind,
                format!("{APP_HEALTH_PATH_PREFIX}{name}/{suffix}"),
                original,
            ));
        }
    }
    let mut probers = Map::new();
    for (i, kind, path, original) in plan {
        let probe = containers[i][kind]
            .as_object_mut()
            .expect("checked to be an object above");
        probe.remove("tcpSocket");
        probe.remove("grpc");
        probe.insert(
            "httpGet".into(),
            json!({"path": path, "port": AGENT_METRICS_PORT, "scheme": "HTTP"}),
        );
        probers.insert(path, original);
    }
    Ok(probers)
}

/// The probe as the agent runs it, or `None` when it stays as it is.
fn original(
    container: &Map<String, Value>,
    probe: &Map<String, Value>,
    at: &str,
) -> Result<Option<Value>, PodError> {
    let timeout = match probe.get("timeoutSeconds") {
        None | Some(Value::Null) => 1,
        Some(t) => t.as_u64().filter(|t| *t > 0).ok_or_else(|| {
            PodError::field(
                &format!("{at}.timeoutSeconds"),
                format!("{t} is not a positive number of seconds"),
            )
        })?,
    };
    if let Some(get) = probe.get("httpGet").filter(|g| !g.is_null()) {
        return http_get(container, get, &format!("{at}.httpGet"), timeout);
    }
    if let Some(tcp) = probe.get("tcpSocket").filter(|t| !t.is_null()) {
        return tcp_socket(container, tcp, &format!("{at}.tcpSocket"), timeout);
    }
    if let Some(grpc) = probe.get("grpc").filter(|g| !g.is_null()) {
        return grpc_probe(container, grpc, &format!("{at}.grpc"), timeout);
    }
    Ok(None)
}

/// An `httpGet` probe as the agent runs it (`None`: it targets the agent).
fn http_get(
    container: &Map<String, Value>,
    get: &Value,
    at: &str,
    timeout: u64,
) -> Result<Option<Value>, PodError> {
    let get = object_at(get, at)?;
    let scheme = match get.get("scheme").and_then(Value::as_str) {
        None | Some("HTTP") => "HTTP",
        Some("HTTPS") => "HTTPS",
        Some(other) => {
            return Err(PodError::field(
                &format!("{at}.scheme"),
                format!("{other:?} is not HTTP or HTTPS"),
            ))
        }
    };
    let port = resolve_port(container, get.get("port"), &format!("{at}.port"))?;
    if port == AGENT_METRICS_PORT || port == AGENT_HEALTH_PORT {
        return Ok(None);
    }
    let path = match get.get("path") {
        None | Some(Value::Null) => "/",
        Some(Value::String(p)) if p.starts_with('/') => p.as_str(),
        Some(Value::String(p)) if p.is_empty() => "/",
        Some(other) => {
            return Err(PodError::field(
                &format!("{at}.path"),
                format!("{other} is not an absolute path"),
            ))
        }
    };
    let mut out = json!({"path": path, "port": port, "scheme": scheme});
    for key in ["host", "httpHeaders"] {
        if let Some(v) = get.get(key).filter(|v| !v.is_null()) {
            out[key] = v.clone();
        }
    }
    Ok(Some(json!({"httpGet": out, "timeoutSeconds": timeout})))
}

/// A `tcpSocket` probe as the agent runs it (`None`: it targets the agent).
fn tcp_socket(
    container: &Map<String, Value>,
    tcp: &Value,
    at: &str,
    timeout: u64,
) -> Result<Option<Value>, PodError> {
    let tcp = object_at(tcp, at)?;
    let port = resolve_port(container, tcp.get("port"), &format!("{at}.port"))?;
    if port == AGENT_METRICS_PORT || port == AGENT_HEALTH_PORT {
        return Ok(None);
    }
    let mut out = json!({"port": port});
    if let Some(h) = tcp.get("host").filter(|v| !v.is_null()) {
        out["host"] = h.clone();
    }
    Ok(Some(json!({"tcpSocket": out, "timeoutSeconds": timeout})))
}

/// A `grpc` probe as the agent runs it (`None`: it targets the agent).
fn grpc_probe(
    container: &Map<String, Value>,
    grpc: &Value,
    at: &str,
    timeout: u64,
) -> Result<Option<Value>, PodError> {
    let grpc = object_at(grpc, at)?;
    // Kubernetes' GRPCAction takes a number only, no port name.
    let port = match grpc.get("port") {
        Some(Value::Number(_)) => resolve_port(container, grpc.get("port"), &format!("{at}.port"))?,
        None | Some(Value::Null) => return Err(PodError::field(&format!("{at}.port"), "missing")),
        Some(other) => {
            return Err(PodError::field(
                &format!("{at}.port"),
                format!("expected a number, got {}", kind_of(other)),
            ))
        }
    };
    if port == AGENT_METRICS_PORT || port == AGENT_HEALTH_PORT {
        return Ok(None);
    }
    let mut out = json!({"port": port});
    match grpc.get("service") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => out["service"] = json!(s),
        Some(other) => {
            return Err(PodError::field(
                &format!("{at}.service"),
                format!("expected a string, got {}", kind_of(other)),
            ))
        }
    }
    Ok(Some(json!({"grpc": out, "timeoutSeconds": timeout})))
}

/// `v` as an object, or an error naming `at`.
fn object_at<'v>(v: &'v Value, at: &str) -> Result<&'v Map<String, Value>, PodError> {
    v.as_object()
        .ok_or_else(|| PodError::field(at, format!("expected an object, got {}", kind_of(v))))
}

/// A probe's `port`: a number, or the name of one of the container's ports.
fn resolve_port(
    container: &Map<String, Value>,
    port: Option<&Value>,
    at: &str,
) -> Result<u16, PodError> {
    match port {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| PodError::field(at, format!("{n} is not a port (1-65535)"))),
        Some(Value::String(name)) => {
            let ports = container
                .get("ports")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            ports
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))
                .and_then(|p| p.get("containerPort"))
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    PodError::field(
                        at,
                        format!("no port named {name:?} in this container's ports"),
                    )
                })
        }
        None | Some(Value::Null) => Err(PodError::field(at, "missing")),
        Some(other) => Err(PodError::field(
            at,
            format!("expected a number or a port name, got {}", kind_of(other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn app() -> Value {
        json!({
            "name": "web",
            "ports": [{"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 9000}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http", "httpHeaders": [{"name": "x", "value": "y"}]}, "periodSeconds": 2},
            "livenessProbe": {"tcpSocket": {"port": 9000}, "timeoutSeconds": 3, "failureThreshold": 5},
            "startupProbe": {"exec": {"command": ["true"]}},
        })
    }

    #[test]
    fn http_and_tcp_probes_point_at_the_agent_and_the_originals_are_kept() {
        let mut cs = vec![app()];
        let probers = rewrite(&mut cs).unwrap();
        assert_eq!(
            cs[0]["readinessProbe"],
            json!({"httpGet": {"path": "/app-health/web/readyz", "port": 15020, "scheme": "HTTP"}, "periodSeconds": 2})
        );
        assert_eq!(
            cs[0]["livenessProbe"],
            json!({"httpGet": {"path": "/app-health/web/livez", "port": 15020, "scheme": "HTTP"}, "timeoutSeconds": 3, "failureThreshold": 5})
        );
        assert_eq!(
            cs[0]["startupProbe"],
            json!({"exec": {"command": ["true"]}}),
            "exec probes stay"
        );
        assert_eq!(
            Value::Object(probers),
            json!({
                "/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP", "httpHeaders": [{"name": "x", "value": "y"}]}, "timeoutSeconds": 1},
                "/app-health/web/livez": {"tcpSocket": {"port": 9000}, "timeoutSeconds": 3},
            })
        );
    }

    #[test]
    fn https_and_grpc_probes_are_rewritten_probes_of_the_agent_stay() {
        let https = json!({"httpGet": {"path": "/", "port": 8443, "scheme": "HTTPS"}});
        let grpc = json!({"grpc": {"port": 9090, "service": "ready"}, "timeoutSeconds": 2});
        let agent = json!({"httpGet": {"path": "/app-health/web/readyz", "port": 15020}});
        let mut cs = vec![
            json!({"name": "web", "readinessProbe": https, "startupProbe": grpc, "livenessProbe": agent.clone()}),
        ];
        let probers = rewrite(&mut cs).unwrap();
        assert_eq!(
            Value::Object(probers),
            json!({
                "/app-health/web/readyz": {"httpGet": {"path": "/", "port": 8443, "scheme": "HTTPS"}, "timeoutSeconds": 1},
                "/app-health/web/startupz": {"grpc": {"port": 9090, "service": "ready"}, "timeoutSeconds": 2},
            })
        );
        assert_eq!(
            cs[0]["startupProbe"],
            json!({"httpGet": {"path": "/app-health/web/startupz", "port": 15020, "scheme": "HTTP"}, "timeoutSeconds": 2})
        );
        assert_eq!(cs[0]["livenessProbe"], agent);
    }

    #[test]
    fn bad_probes_name_the_field_and_change_nothing() {
        let cases = [
            (json!({"httpGet": {"port": "web"}}), "spec.containers[1].readinessProbe.httpGet.port: no port named \"web\" in this container's ports"),
            (json!({"httpGet": {"port": 70000}}), "spec.containers[1].readinessProbe.httpGet.port: 70000 is not a port (1-65535)"),
            (json!({"httpGet": {"path": "/"}}), "spec.containers[1].readinessProbe.httpGet.port: missing"),
            (json!({"httpGet": {"port": 80, "scheme": "FTP"}}), "spec.containers[1].readinessProbe.httpGet.scheme: \"FTP\" is not HTTP or HTTPS"),
            (json!({"tcpSocket": {"port": true}}), "spec.containers[1].readinessProbe.tcpSocket.port: expected a number or a port name, got a boolean"),
            (json!({"tcpSocket": {"port": 80}, "timeoutSeconds": 0}), "spec.containers[1].readinessProbe.timeoutSeconds: 0 is not a positive number of seconds"),
            (json!("GET /"), "spec.containers[1].readinessProbe: expected an object, got a string"),
            (json!({"grpc": {"port": "grpc"}}), "spec.containers[1].readinessProbe.grpc.port: expected a number, got a string"),
            (json!({"grpc": {"port": 9090, "service": 1}}), "spec.containers[1].readinessProbe.grpc.service: expected a string, got a number"),
        ];
        for (probe, want) in cases {
            let mut cs = vec![app(), json!({"name": "other", "readinessProbe": probe})];
            let before = cs.clone();
            let err = rewrite(&mut cs).unwrap_err();
            assert_eq!(err.to_string(), want);
            assert_eq!(cs, before, "nothing changed on error");
        }
    }

    #[test]
    fn the_annotation_overrides_the_template() {
        let mut a = BTreeMap::new();
        assert!(enabled(&a, true).unwrap());
        assert!(!enabled(&a, false).unwrap());
        a.insert(REWRITE_ANNOTATION.to_string(), "false".to_string());
        assert!(!enabled(&a, true).unwrap());
        a.insert(REWRITE_ANNOTATION.to_string(), "true".to_string());
        assert!(enabled(&a, false).unwrap());
        a.insert(REWRITE_ANNOTATION.to_string(), "no".to_string());
        assert_eq!(
            enabled(&a, true).unwrap_err().to_string(),
            "metadata.annotations[\"sidecar.istio.io/rewriteAppHTTPProbers\"]: \"no\" is not \"true\" or \"false\""
        );
    }
}
