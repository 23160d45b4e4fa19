//! The containers and volumes the template adds to a pod.
//!
//! Every container carries an explicit `command`: the local mesh runner
//! executes `command` + `args` as host processes (no images there), and on a
//! cluster an explicit command does not depend on an image's entrypoint.

use rudder_model::well_known::{AGENT_HEALTH_PORT, ENVOY_STATS_PORT, PROXY_PORT};
use serde_json::{json, Value};

use crate::template::Values;

/// proxy-init's container name.
pub const INIT_CONTAINER_NAME: &str = "rudder-init";
/// The sidecar's container name.
pub const SIDECAR_CONTAINER_NAME: &str = "rudder-proxy";
/// Writable volume the agent keeps the workload certificates in (file mode).
pub const CERTS_VOLUME: &str = "rudder-certs";
/// Projected service-account token (audience `istio-ca`): the agent's credential.
pub const TOKEN_VOLUME: &str = "istio-token";
/// ConfigMap `rudder-ca-root-cert`: the mesh root the agent verifies pilot with.
pub const ROOT_CERT_VOLUME: &str = "rudder-ca-root-cert";
/// Writable directory of the agent's SDS socket (SDS mode).
pub const WORKLOAD_SOCKET_VOLUME: &str = "workload-socket";
/// Every volume the template adds, in order (also recorded in the status annotation).
pub const VOLUME_NAMES: [&str; 5] = [
    CERTS_VOLUME,
    PODINFO_VOLUME,
    TOKEN_VOLUME,
    ROOT_CERT_VOLUME,
    WORKLOAD_SOCKET_VOLUME,
];
/// Where the token, root and certificate volumes are mounted and the file
/// names in them: the agent's defaults, so one home (`model::well_known`).
pub use rudder_model::well_known::{
    CERT_DIR, ROOT_CERT_DIR, ROOT_CERT_FILE, TOKEN_AUDIENCE, TOKEN_DIR, TOKEN_FILE,
    WORKLOAD_SOCKET_DIR,
};
/// How long a projected token lives (kubelet refreshes it before it expires).
pub const TOKEN_EXPIRATION_SECONDS: u32 = 43200;
/// downwardAPI volume holding the pod's labels.
pub const PODINFO_VOLUME: &str = "rudder-podinfo";
/// Where the downwardAPI volume is mounted.
pub const PODINFO_DIR: &str = "/etc/rudder/pod";
/// The labels file inside [`PODINFO_DIR`] (`key="value"` lines).
pub const LABELS_FILE: &str = "/etc/rudder/pod/labels";

/// proxy-init: root with NET_ADMIN/NET_RAW, everything else dropped.
pub fn init_container(values: &Values, args: Vec<String>) -> Value {
    json!({
        "name": INIT_CONTAINER_NAME,
        "image": values.image_ref(&values.proxy_init_image),
        "imagePullPolicy": values.image_pull_policy,
        "command": ["proxy-init"],
        "args": args,
        "resources": values.proxy_init_resources,
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": false,
            "privileged": false,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
        },
    })
}

/// Append a literal environment variable to a container built here.
pub fn add_env(container: &mut Value, name: &str, value: &str) {
    if let Some(env) = container.get_mut("env").and_then(Value::as_array_mut) {
        env.push(json!({"name": name, "value": value}));
    }
}

fn field_env(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}})
}

/// The agent's arguments: the contract line plus capture ports that differ
/// from the default (they go into node metadata, so pilot builds matching
/// listeners).
pub fn agent_args(values: &Values) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "proxy".into(),
        "--discovery-address".into(),
        values.discovery_address.clone(),
        "--cert-dir".into(),
        CERT_DIR.into(),
        "--pod-labels-file".into(),
        LABELS_FILE.into(),
        "--ca-address".into(),
        values.ca_address.clone(),
        "--cert-mode".into(),
        values.cert_mode.as_str().into(),
    ];
    if values.proxy_port != PROXY_PORT {
        args.extend(["--capture-port".into(), values.proxy_port.to_string()]);
    }
    if values.effective_inbound_capture_port() != values.proxy_port {
        args.extend([
            "--inbound-capture-port".into(),
            values.effective_inbound_capture_port().to_string(),
        ]);
    }
    args
}

/// The sidecar container.
///
/// Classic: a regular container that the caller places first, with a
/// postStart hook `agent wait` — kubelet starts containers in order and does
/// not start the next one until postStart returns, so the app starts only once
/// the agent reports Envoy ready (Istio's holdApplicationUntilProxyStarts).
///
/// Native: an init container with `restartPolicy: Always`; kubelet starts the
/// following init containers and the app once its startupProbe passes, stops
/// it after the app, and does not wait for it for a Job to complete.
pub fn sidecar_container(values: &Values, image: &str, native: bool) -> Value {
    let ready_probe = json!({"httpGet": {"path": "/healthz/ready", "port": AGENT_HEALTH_PORT}});
    let mut c = json!({
        "name": SIDECAR_CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": values.image_pull_policy,
        "command": ["agent"],
        "args": agent_args(values),
        "env": [
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("INSTANCE_IP", "status.podIP"),
            field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        ],
        "ports": [{"containerPort": ENVOY_STATS_PORT, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": ready_probe["httpGet"],
            "initialDelaySeconds": 1,
            "periodSeconds": 2,
            "timeoutSeconds": 3,
            "failureThreshold": 30,
        },
        "resources": values.resources,
        "securityContext": {
            "runAsUser": values.proxy_uid,
            "runAsGroup": values.proxy_gid,
            "runAsNonRoot": true,
            "privileged": false,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": CERTS_VOLUME, "mountPath": CERT_DIR},
            {"name": PODINFO_VOLUME, "mountPath": PODINFO_DIR, "readOnly": true},
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": true},
            {"name": ROOT_CERT_VOLUME, "mountPath": ROOT_CERT_DIR, "readOnly": true},
            {"name": WORKLOAD_SOCKET_VOLUME, "mountPath": WORKLOAD_SOCKET_DIR},
        ],
    });
    let obj = c.as_object_mut().expect("literal object");
    if native {
        obj.insert("restartPolicy".into(), json!("Always"));
        obj.insert(
            "startupProbe".into(),
            json!({"httpGet": ready_probe["httpGet"], "periodSeconds": 1, "timeoutSeconds": 3, "failureThreshold": 600}),
        );
    } else {
        obj.insert(
            "lifecycle".into(),
            json!({"postStart": {"exec": {"command": ["agent", "wait"]}}}),
        );
    }
    c
}

/// The volumes: a writable emptyDir for the certificates the agent obtains
/// (file mode), the pod's labels via the downward API, the projected
/// service-account token the agent presents to pilot's CA (audience
/// `istio-ca`, checked by TokenReview), the mesh root from the ConfigMap pilot
/// writes into every namespace, and the SDS socket's directory. Kubelet
/// writes projected tokens owned by the pod's `fsGroup`; the agent reads it
/// as the proxy UID.
pub fn volumes() -> [Value; 5] {
    [
        json!({"name": CERTS_VOLUME, "emptyDir": {"medium": "Memory"}}),
        json!({"name": PODINFO_VOLUME, "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}},
        ]}}),
        json!({"name": TOKEN_VOLUME, "projected": {"sources": [
            {"serviceAccountToken": {
                "audience": TOKEN_AUDIENCE,
                "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                "path": TOKEN_FILE,
            }},
        ]}}),
        json!({"name": ROOT_CERT_VOLUME, "configMap": {"name": ROOT_CERT_VOLUME}}),
        json!({"name": WORKLOAD_SOCKET_VOLUME, "emptyDir": {}}),
    ]
}
