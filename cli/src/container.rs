//! A pod spec's containers and volumes, read into what the runner executes.
//!
//! Kubernetes semantics the local mesh keeps (pure functions, no I/O):
//! - a container runs `command` + `args` with `$(VAR)` references expanded
//!   from its environment, in `workingDir`, as `securityContext.runAsUser`
//!   (container, else pod; default root);
//! - environment values are literals or downward-API `fieldRef`s, resolved
//!   once the pod has its IP;
//! - readiness is the `readinessProbe` (or `startupProbe`): `httpGet` or
//!   `tcpSocket`, ports by number or by container port name; a ready
//!   container turns unready after the probe's `failureThreshold`
//!   (Kubernetes' default 3) consecutive failures, as kubelet does;
//! - volumes: `emptyDir`, `secret` (materialised empty), `downwardAPI`
//!   (labels, annotations, name, namespace), a `projected` service-account
//!   token (the runner signs a local token for the pod's account) and the
//!   `configMap` holding the mesh root. Anything else is refused with the
//!   field that asked for it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::manifest::{ManifestError, Origin};

/// A downward-API field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldRef {
    /// `metadata.name`.
    Name,
    /// `metadata.namespace`.
    Namespace,
    /// `metadata.uid` (the runner makes one from namespace and name).
    Uid,
    /// `status.podIP`.
    PodIp,
    /// `status.hostIP` (the bridge's host address).
    HostIp,
    /// `spec.serviceAccountName`.
    ServiceAccount,
    /// `spec.nodeName`.
    NodeName,
    /// `metadata.labels` (whole map, downward-API volume only).
    Labels,
    /// `metadata.annotations` (whole map, downward-API volume only).
    Annotations,
    /// `metadata.labels['key']`.
    Label(String),
    /// `metadata.annotations['key']`.
    Annotation(String),
}

impl FieldRef {
    /// Parses a `fieldPath`.
    pub fn parse(path: &str) -> Option<FieldRef> {
        let key = |prefix: &str| {
            path.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix("['"))
                .and_then(|r| r.strip_suffix("']"))
                .map(String::from)
        };
        Some(match path {
            "metadata.name" => FieldRef::Name,
            "metadata.namespace" => FieldRef::Namespace,
            "metadata.uid" => FieldRef::Uid,
            "status.podIP" => FieldRef::PodIp,
            "status.hostIP" => FieldRef::HostIp,
            "spec.serviceAccountName" => FieldRef::ServiceAccount,
            "spec.nodeName" => FieldRef::NodeName,
            "metadata.labels" => FieldRef::Labels,
            "metadata.annotations" => FieldRef::Annotations,
            _ => {
                if let Some(k) = key("metadata.labels") {
                    FieldRef::Label(k)
                } else {
                    FieldRef::Annotation(key("metadata.annotations")?)
                }
            }
        })
    }
}

/// Where an environment variable's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvSource {
    /// `value`.
    Value(String),
    /// `valueFrom.fieldRef`.
    Field(FieldRef),
}

/// A readiness check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `httpGet`: 200-399 on `127.0.0.1:port` + path inside the pod.
    Http {
        /// Port.
        port: u16,
        /// Path.
        path: String,
    },
    /// `tcpSocket`: a connection to `127.0.0.1:port` inside the pod.
    Tcp {
        /// Port.
        port: u16,
    },
}

/// What kind of container, which decides how the runner waits for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// An init container: runs to completion before the next one starts.
    Init,
    /// A native sidecar (init container with `restartPolicy: Always`): keeps
    /// running; the next container starts once its probe passes.
    NativeSidecar,
    /// A regular container.
    Regular,
}

/// One container, ready to execute.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerPlan {
    /// Name.
    pub name: String,
    /// Init, native sidecar or regular.
    pub role: Role,
    /// `command` + `args` (before `$(VAR)` expansion).
    pub argv: Vec<String>,
    /// `env`, in order.
    pub env: Vec<(String, EnvSource)>,
    /// UID (`None` = root).
    pub uid: Option<u32>,
    /// GID (`None` = the UID's own).
    pub gid: Option<u32>,
    /// `workingDir` as written.
    pub working_dir: Option<PathBuf>,
    /// `volumeMounts` as (volume name, mount path).
    pub mounts: Vec<(String, PathBuf)>,
    /// Declared container ports (name, number).
    pub ports: Vec<(Option<String>, u16)>,
    /// Readiness check.
    pub probe: Option<Probe>,
    /// The probe's `failureThreshold`: consecutive failures that turn a
    /// ready container unready (Kubernetes' default 3).
    pub failure_threshold: u32,
    /// `lifecycle.postStart.exec.command`.
    pub post_start: Option<Vec<String>>,
}

/// A pod volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumeKind {
    /// `emptyDir` (also a `secret` here: empty until certificates exist).
    EmptyDir,
    /// `downwardAPI`: files of (path, field).
    DownwardApi(Vec<(String, FieldRef)>),
    /// `projected` with one `serviceAccountToken` source: the file name.
    Token(String),
    /// `configMap` named [`ROOT_CERT_CONFIGMAP`]: the mesh root as `root-cert.pem`.
    RootCert,
}

/// The one ConfigMap the local mesh provides: pilot's mesh root, as
/// Istio's `istio-ca-root-cert`.
pub const ROOT_CERT_CONFIGMAP: &str = rudder_injector::sidecar::ROOT_CERT_VOLUME;

/// A pod volume with its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumePlan {
    /// Name.
    pub name: String,
    /// What it holds.
    pub kind: VolumeKind,
}

fn strings(v: Option<&Value>, origin: &Origin, field: &str) -> Result<Vec<String>, ManifestError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, x)| match x {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => {
                    Err(origin.err(format!("{field}[{i}]"), format!("{other} is not a string")))
                }
            })
            .collect(),
        Some(other) => Err(origin.err(field, format!("{other} is not a list of strings"))),
    }
}

fn user(v: Option<&Value>, origin: &Origin, field: &str) -> Result<Option<u32>, ManifestError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| origin.err(field, format!("{v} is not a user or group id"))),
    }
}

/// Reads one container of `list` (`containers` or `initContainers`) at `index`.
/// `pod_security` is the pod's `spec.securityContext`.
pub fn container(
    c: &Value,
    list: &str,
    index: usize,
    pod_security: Option<&Value>,
    origin: &Origin,
) -> Result<ContainerPlan, ManifestError> {
    let at = format!("spec.{list}[{index}]");
    let name = c
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| origin.err(format!("{at}.name"), "required"))?
        .to_string();
    let argv = argv(c, &at, &name, origin)?;
    let env = env(c, &at, origin)?;
    let uid = run_as(c, pod_security, "runAsUser", &at, origin)?;
    let gid = run_as(c, pod_security, "runAsGroup", &at, origin)?;
    let mounts = mounts(c, &at, origin)?;
    let ports = ports(c, &at, origin)?;
    let (probe, failure_threshold) = match c.get("readinessProbe").or(c.get("startupProbe")) {
        None | Some(Value::Null) => (None, DEFAULT_FAILURE_THRESHOLD),
        Some(p) => {
            let field = format!("{at}.readinessProbe");
            (
                Some(probe(p, &ports, origin, &field)?),
                failure_threshold(p, origin, &field)?,
            )
        }
    };
    let post_start = post_start(c, &at, origin)?;
    let role = match (list, c.get("restartPolicy").and_then(Value::as_str)) {
        ("initContainers", Some("Always")) => Role::NativeSidecar,
        ("initContainers", _) => Role::Init,
        _ => Role::Regular,
    };
    let working_dir = c
        .get("workingDir")
        .and_then(Value::as_str)
        .map(PathBuf::from);
    Ok(ContainerPlan {
        name,
        role,
        argv,
        env,
        uid: uid.filter(|u| *u != 0),
        gid,
        working_dir,
        mounts,
        ports,
        probe,
        failure_threshold,
        post_start,
    })
}

/// Kubernetes' default `failureThreshold`.
const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

/// A probe's `failureThreshold`: a positive integer, 3 when absent.
fn failure_threshold(p: &Value, origin: &Origin, field: &str) -> Result<u32, ManifestError> {
    match p.get("failureThreshold") {
        None | Some(Value::Null) => Ok(DEFAULT_FAILURE_THRESHOLD),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                origin.err(
                    format!("{field}.failureThreshold"),
                    format!("{v} is not a positive integer"),
                )
            }),
    }
}

/// `command` + `args`; a container without a command is refused (the local
/// mesh runs commands, not images).
fn argv(c: &Value, at: &str, name: &str, origin: &Origin) -> Result<Vec<String>, ManifestError> {
    let mut argv = strings(c.get("command"), origin, &format!("{at}.command"))?;
    if argv.is_empty() {
        return Err(origin.err(
            format!("{at}.command"),
            format!("container {name} has no command: the local mesh runs commands, not images (add e.g. command: [python3, app.py])"),
        ));
    }
    argv.extend(strings(c.get("args"), origin, &format!("{at}.args"))?);
    Ok(argv)
}

/// `env`: literal values and downward-API `fieldRef`s.
fn env(c: &Value, at: &str, origin: &Origin) -> Result<Vec<(String, EnvSource)>, ManifestError> {
    let mut env = Vec::new();
    for (i, e) in c
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("{at}.env[{i}]");
        let key = e
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| origin.err(format!("{field}.name"), "required"))?;
        let source = if let Some(from) = e.get("valueFrom") {
            let path = from
                .pointer("/fieldRef/fieldPath")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    origin.err(
                        format!("{field}.valueFrom"),
                        "only fieldRef is supported by the local mesh (no Secrets or ConfigMaps)",
                    )
                })?;
            let f = FieldRef::parse(path)
                .filter(|f| !matches!(f, FieldRef::Labels | FieldRef::Annotations))
                .ok_or_else(|| {
                    origin.err(
                        format!("{field}.valueFrom.fieldRef.fieldPath"),
                        format!("{path:?} is not a field the local mesh provides"),
                    )
                })?;
            EnvSource::Field(f)
        } else {
            EnvSource::Value(
                e.get("value")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )
        };
        env.push((key.to_string(), source));
    }
    Ok(env)
}

/// `securityContext.<key>` (`runAsUser` or `runAsGroup`) of the container,
/// else of the pod (both are checked).
fn run_as(
    c: &Value,
    pod_security: Option<&Value>,
    key: &str,
    at: &str,
    origin: &Origin,
) -> Result<Option<u32>, ManifestError> {
    let own = user(
        c.get("securityContext").and_then(|s| s.get(key)),
        origin,
        &format!("{at}.securityContext.{key}"),
    )?;
    let pod = user(
        pod_security.and_then(|s| s.get(key)),
        origin,
        &format!("spec.securityContext.{key}"),
    )?;
    Ok(own.or(pod))
}

/// `volumeMounts`: (volume name, absolute mount path); no `subPath`.
fn mounts(c: &Value, at: &str, origin: &Origin) -> Result<Vec<(String, PathBuf)>, ManifestError> {
    let mut mounts = Vec::new();
    for (i, m) in c
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("{at}.volumeMounts[{i}]");
        if m.get("subPath").is_some() {
            return Err(origin.err(
                format!("{field}.subPath"),
                "not supported by the local mesh",
            ));
        }
        let vol = m
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| origin.err(format!("{field}.name"), "required"))?;
        let path = m
            .get("mountPath")
            .and_then(Value::as_str)
            .filter(|p| p.starts_with('/'));
        let path = path.ok_or_else(|| {
            origin.err(format!("{field}.mountPath"), "required, an absolute path")
        })?;
        mounts.push((vol.to_string(), PathBuf::from(path)));
    }
    Ok(mounts)
}

/// `ports`: (name, `containerPort`).
fn ports(
    c: &Value,
    at: &str,
    origin: &Origin,
) -> Result<Vec<(Option<String>, u16)>, ManifestError> {
    let mut ports = Vec::new();
    for (i, p) in c
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("{at}.ports[{i}].containerPort");
        let n = p
            .get("containerPort")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0);
        let n = n.ok_or_else(|| origin.err(&field, "required, a port number"))?;
        ports.push((p.get("name").and_then(Value::as_str).map(String::from), n));
    }
    Ok(ports)
}

/// `lifecycle.postStart`: exec hooks with a command only.
fn post_start(c: &Value, at: &str, origin: &Origin) -> Result<Option<Vec<String>>, ManifestError> {
    match c.pointer("/lifecycle/postStart") {
        None | Some(Value::Null) => Ok(None),
        Some(h) => {
            let cmd = strings(
                h.pointer("/exec/command"),
                origin,
                &format!("{at}.lifecycle.postStart.exec.command"),
            )?;
            if cmd.is_empty() {
                return Err(origin.err(
                    format!("{at}.lifecycle.postStart"),
                    "only exec hooks with a command are supported",
                ));
            }
            Ok(Some(cmd))
        }
    }
}

fn probe(
    p: &Value,
    ports: &[(Option<String>, u16)],
    origin: &Origin,
    field: &str,
) -> Result<Probe, ManifestError> {
    let port_of = |v: Option<&Value>, f: &str| -> Result<u16, ManifestError> {
        match v {
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0),
            Some(Value::String(s)) => s.parse().ok().or_else(|| {
                ports
                    .iter()
                    .find(|(n, _)| n.as_deref() == Some(s))
                    .map(|(_, p)| *p)
            }),
            _ => None,
        }
        .ok_or_else(|| {
            origin.err(
                f,
                format!(
                    "{} is not a port number or a declared container port name",
                    v.unwrap_or(&Value::Null)
                ),
            )
        })
    };
    if let Some(h) = p.get("httpGet") {
        let port = port_of(h.get("port"), &format!("{field}.httpGet.port"))?;
        let path = h
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .to_string();
        Ok(Probe::Http { port, path })
    } else if let Some(t) = p.get("tcpSocket") {
        Ok(Probe::Tcp {
            port: port_of(t.get("port"), &format!("{field}.tcpSocket.port"))?,
        })
    } else {
        Err(origin.err(
            field,
            "only httpGet and tcpSocket probes are supported by the local mesh",
        ))
    }
}

/// Reads `spec.volumes`.
pub fn volumes(spec: &Value, origin: &Origin) -> Result<Vec<VolumePlan>, ManifestError> {
    let mut out = Vec::new();
    for (i, v) in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("spec.volumes[{i}]");
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| origin.err(format!("{field}.name"), "required"))?;
        let kind = if v.get("emptyDir").is_some() || v.get("secret").is_some() {
            VolumeKind::EmptyDir
        } else if let Some(d) = v.get("downwardAPI") {
            let mut items = Vec::new();
            for (j, item) in d
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let f = format!("{field}.downwardAPI.items[{j}]");
                let path = item
                    .get("path")
                    .and_then(Value::as_str)
                    .filter(|p| !p.contains("..") && !p.starts_with('/'));
                let path = path
                    .ok_or_else(|| origin.err(format!("{f}.path"), "required, a relative path"))?;
                let fp = item
                    .pointer("/fieldRef/fieldPath")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let r = FieldRef::parse(fp).ok_or_else(|| {
                    origin.err(
                        format!("{f}.fieldRef.fieldPath"),
                        format!("{fp:?} is not supported"),
                    )
                })?;
                items.push((path.to_string(), r));
            }
            VolumeKind::DownwardApi(items)
        } else if let Some(p) = v.get("projected") {
            let sources = p.get("sources").and_then(Value::as_array);
            let token = match sources.map(Vec::as_slice) {
                Some([only]) => only
                    .pointer("/serviceAccountToken/path")
                    .and_then(Value::as_str),
                _ => None,
            };
            let token = token.filter(|t| !t.is_empty() && !t.contains('/'));
            let token = token.ok_or_else(|| {
                origin.err(
                    format!("{field}.projected.sources"),
                    format!("volume {name}: the local mesh projects exactly one serviceAccountToken with a file name as path"),
                )
            })?;
            VolumeKind::Token(token.to_string())
        } else if let Some(c) = v.get("configMap") {
            let cm = c.get("name").and_then(Value::as_str).unwrap_or("");
            if cm != ROOT_CERT_CONFIGMAP {
                return Err(origin.err(
                    format!("{field}.configMap.name"),
                    format!("volume {name}: {cm:?}: the local mesh provides only ConfigMap {ROOT_CERT_CONFIGMAP}"),
                ));
            }
            VolumeKind::RootCert
        } else {
            return Err(origin.err(field, format!("volume {name}: only emptyDir, secret, downwardAPI, projected token and {ROOT_CERT_CONFIGMAP} volumes are supported by the local mesh")));
        };
        out.push(VolumePlan {
            name: name.to_string(),
            kind,
        });
    }
    Ok(out)
}

/// Expands `$(VAR)` from `vars` as Kubernetes does: unknown references stay
/// as written, `$$` is a literal `$`.
pub fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some((name, tail)) = after.strip_prefix('(').and_then(|a| a.split_once(')')) {
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn origin() -> Origin {
        Origin {
            file: "f.yaml".into(),
            document: 1,
            object: "Deployment ns/x".into(),
        }
    }

    #[test]
    fn container_reads_command_env_user_mounts_probe_and_hook() {
        let c = json!({
            "name": "app", "command": ["python3", "app.py"], "args": ["--port", 9080],
            "env": [{"name": "A", "value": "1"}, {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "securityContext": {"runAsGroup": 7},
            "ports": [{"name": "http", "containerPort": 9080}],
            "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "lifecycle": {"postStart": {"exec": {"command": ["agent", "wait"]}}},
        });
        let plan = container(
            &c,
            "containers",
            0,
            Some(&json!({"runAsUser": 1000})),
            &origin(),
        )
        .unwrap();
        assert_eq!(plan.argv, ["python3", "app.py", "--port", "9080"]);
        assert_eq!(
            plan.env[1],
            ("IP".into(), EnvSource::Field(FieldRef::PodIp))
        );
        assert_eq!((plan.uid, plan.gid), (Some(1000), Some(7)));
        assert_eq!(
            plan.probe,
            Some(Probe::Http {
                port: 9080,
                path: "/health".into()
            })
        );
        assert_eq!(plan.failure_threshold, 3, "Kubernetes' default");
        assert_eq!(
            plan.post_start.as_deref(),
            Some(&["agent".to_string(), "wait".to_string()][..])
        );
        assert_eq!(plan.role, Role::Regular);
        let native = json!({"name": "p", "command": ["agent"], "restartPolicy": "Always", "securityContext": {"runAsUser": 0}});
        let plan = container(&native, "initContainers", 1, None, &origin()).unwrap();
        assert_eq!((plan.role, plan.uid), (Role::NativeSidecar, None));
    }

    #[test]
    fn unsupported_inputs_name_their_field() {
        let err = container(
            &json!({"name": "a", "image": "nginx"}),
            "containers",
            2,
            None,
            &origin(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("spec.containers[2].command: container a has no command"),
            "{err}"
        );
        let c = json!({"name": "a", "command": ["x"], "env": [{"name": "S", "valueFrom": {"secretKeyRef": {}}}]});
        let err = container(&c, "containers", 0, None, &origin())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("spec.containers[0].env[0].valueFrom: only fieldRef"),
            "{err}"
        );
        let probe = |t: serde_json::Value| json!({"name": "a", "command": ["x"], "readinessProbe": {"tcpSocket": {"port": 1}, "failureThreshold": t}});
        let plan = container(&probe(json!(30)), "containers", 0, None, &origin()).unwrap();
        assert_eq!(plan.failure_threshold, 30);
        for bad in [json!(0), json!(-1), json!("3")] {
            let err = container(&probe(bad.clone()), "containers", 0, None, &origin())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!(
                    "spec.containers[0].readinessProbe.failureThreshold: {bad} is not a positive integer"
                )),
                "{err}"
            );
        }
        for (volume, wanted) in [
            (json!({"name": "c", "hostPath": {}}), "spec.volumes[0]: volume c: only emptyDir"),
            (
                json!({"name": "c", "configMap": {"name": "app-config"}}),
                "spec.volumes[0].configMap.name: volume c: \"app-config\": the local mesh provides only ConfigMap rudder-ca-root-cert",
            ),
            (
                json!({"name": "t", "projected": {"sources": [{"secret": {"name": "s"}}]}}),
                "spec.volumes[0].projected.sources: volume t: the local mesh projects exactly one serviceAccountToken",
            ),
        ] {
            let err = volumes(&json!({ "volumes": [volume] }), &origin())
                .unwrap_err()
                .to_string();
            assert!(err.contains(wanted), "{err}");
        }
    }

    #[test]
    fn volumes_and_field_refs() {
        let spec = json!({"volumes": [
            {"name": "certs", "secret": {"secretName": "istio.default", "optional": true}},
            {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
            {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {"audience": "istio-ca", "path": "istio-token"}}]}},
            {"name": "root", "configMap": {"name": "rudder-ca-root-cert"}},
        ]});
        let v = volumes(&spec, &origin()).unwrap();
        assert_eq!(v[2].kind, VolumeKind::Token("istio-token".into()));
        assert_eq!(v[3].kind, VolumeKind::RootCert);
        assert_eq!(v[0].kind, VolumeKind::EmptyDir);
        assert_eq!(
            v[1].kind,
            VolumeKind::DownwardApi(vec![("labels".into(), FieldRef::Labels)])
        );
        assert_eq!(
            FieldRef::parse("metadata.labels['app']"),
            Some(FieldRef::Label("app".into()))
        );
        assert_eq!(FieldRef::parse("spec.bogus"), None);
    }

    #[test]
    fn expands_references_like_kubernetes() {
        let vars: BTreeMap<String, String> = [("PORT".to_string(), "9080".to_string())].into();
        assert_eq!(
            expand("--port=$(PORT) $(NOPE) $$(PORT) cost $5", &vars),
            "--port=9080 $(NOPE) $(PORT) cost $5"
        );
    }
}
