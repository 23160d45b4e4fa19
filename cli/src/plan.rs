//! From a [`Manifest`] to the mesh to run (pure): Service VIPs, one pod plan
//! per Deployment replica, injected by the injector library exactly as the
//! webhook would (the namespace label and pod overrides decide), and each
//! pod's containers read into [`ContainerPlan`]s.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use rudder_harness::Cidr;
use rudder_injector::{inject, Decision, InjectContext, NamespacePolicy, Values};
use rudder_model::well_known::{PROXY_UID, XDS_TLS_PORT};
use serde_json::{json, Value};

use crate::container::{self, ContainerPlan, VolumePlan};
use crate::manifest::{Manifest, ManifestError, Origin, RuleObject, ServiceDef, TargetPort};

/// The sidecar container's name in the template (to tell it from apps).
pub use rudder_injector::sidecar::SIDECAR_CONTAINER_NAME;

/// The label that marks a pod as a stand-in for a host outside the mesh
/// (value `"true"`): the runner runs it without a sidecar, does not tell
/// pilot about it (no Pod object, never a Service endpoint, no DNAT rules),
/// so meshed pods reach it only through a ServiceEntry naming its address.
pub const EXTERNAL_LABEL: &str = "rudder.io/external";

/// Gateway pod labels (Istio's): such a pod runs `agent router`, never a sidecar.
const GATEWAY_LABELS: [&str; 2] = ["ingressgateway", "egressgateway"];

/// First VIP index handed out (`.1` is the `kubernetes` Service's on a cluster).
const FIRST_VIP: u64 = 10;

/// A Service with its VIP.
#[derive(Clone, Debug)]
pub struct ServicePlan {
    /// The Service as read.
    pub def: ServiceDef,
    /// Its ClusterIP.
    pub vip: Ipv4Addr,
}

impl ServicePlan {
    /// The object written to pilot's config dir (`spec.clusterIP` set).
    pub fn object(&self) -> Value {
        let mut o = self.def.object.clone();
        if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("clusterIP".into(), json!(self.vip.to_string()));
        }
        if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), json!(self.def.namespace));
        }
        o
    }
}

/// One pod to run.
#[derive(Clone, Debug)]
pub struct PodPlan {
    /// Pod name (`<deployment>-<n>`), also its harness pod name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// The Deployment (or Pod) it comes from.
    pub workload: String,
    /// Labels (with the injector's additions).
    pub labels: BTreeMap<String, String>,
    /// Annotations (with the injector's additions).
    pub annotations: BTreeMap<String, String>,
    /// `spec.serviceAccountName`.
    pub service_account: String,
    /// Whether it got the sidecar; if not, why (the injector's words).
    pub sidecar: Result<(), String>,
    /// The (injected) Pod object, without status.
    pub pod: Value,
    /// Volumes.
    pub volumes: Vec<VolumePlan>,
    /// Init containers, in order.
    pub init: Vec<ContainerPlan>,
    /// Containers, in order (the classic sidecar first).
    pub containers: Vec<ContainerPlan>,
    /// Where it came from.
    pub origin: Origin,
    /// A gateway pod (its agent runs `agent router`, or it carries Istio's
    /// `istio: ingressgateway`/`egressgateway` label): unmeshed, no capture,
    /// its agent pointed at the local pilot.
    pub gateway: bool,
    /// A stand-in for an external host ([`EXTERNAL_LABEL`]).
    pub external: bool,
}

impl PodPlan {
    /// The port a gateway pod serves plain HTTP on, as the host reaches it:
    /// its container port named `http2` or `http` (Istio's gateway names),
    /// else 8080.
    pub fn ingress_port(&self) -> Option<u16> {
        self.gateway.then(|| {
            self.named_port("http2")
                .or_else(|| self.named_port("http"))
                .unwrap_or(8080)
        })
    }

    /// Whether the pod carries a sidecar.
    pub fn meshed(&self) -> bool {
        self.sidecar.is_ok()
    }

    /// The container port called `name`.
    pub fn named_port(&self, name: &str) -> Option<u16> {
        self.containers
            .iter()
            .flat_map(|c| &c.ports)
            .find(|(n, _)| n.as_deref() == Some(name))
            .map(|(_, p)| *p)
    }
}

/// The whole mesh to run.
#[derive(Clone, Debug)]
pub struct MeshPlan {
    /// Namespaces (declared or used), with labels.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Services with VIPs, sorted by namespace and name.
    pub services: Vec<ServicePlan>,
    /// Pods, in the order of the input.
    pub pods: Vec<PodPlan>,
    /// Istio objects.
    pub rules: Vec<RuleObject>,
}

impl MeshPlan {
    /// Pod IP:port endpoints of `service`'s port `port` among `ready` pods.
    pub fn endpoints(
        &self,
        service: &ServicePlan,
        port: u16,
        ready: &BTreeMap<String, Ipv4Addr>,
    ) -> Vec<(Ipv4Addr, u16)> {
        let Some(sp) = service.def.ports.iter().find(|p| p.port == port) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for pod in &self.pods {
            let selected = !service.def.selector.is_empty()
                && !pod.external
                && pod.namespace == service.def.namespace
                && service
                    .def
                    .selector
                    .iter()
                    .all(|(k, v)| pod.labels.get(k) == Some(v));
            let Some(ip) = ready.get(&pod.name).filter(|_| selected) else {
                continue;
            };
            let target = match &sp.target {
                TargetPort::Number(n) => Some(*n),
                TargetPort::Name(name) => pod.named_port(name),
            };
            if let Some(t) = target {
                out.push((*ip, t));
            }
        }
        out
    }
}

/// Planning failed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The input is inconsistent (field-level message).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The service CIDR cannot hold the Services.
    #[error("service CIDR {0} has no free address left for Service {1}")]
    VipsExhausted(Cidr, String),
}

/// The injector values the local mesh uses: the built-in template, with pilot
/// at the bridge's host address and classic (not native) sidecars, as on a
/// cluster whose version is unknown. Sidecars speak xDS over TLS to pilot's
/// secure port, as on a cluster (pilot's serving certificate names the
/// bridge address).
pub fn local_values(pilot_host: Ipv4Addr) -> Values {
    Values {
        discovery_address: format!("{pilot_host}:{XDS_TLS_PORT}"),
        ca_address: format!("{pilot_host}:{XDS_TLS_PORT}"),
        ..Values::default()
    }
}

/// Assigns ClusterIPs: an address the YAML sets is kept (it must lie in the
/// service CIDR and be unique), the others get the next free address from
/// `.10` on, in namespace/name order.
pub fn allocate_vips(services: &[ServiceDef], cidr: Cidr) -> Result<Vec<ServicePlan>, PlanError> {
    let mut sorted: Vec<&ServiceDef> = services.iter().collect();
    sorted.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut used = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for s in &sorted {
        if !seen.insert((&s.namespace, &s.name)) {
            return Err(s
                .origin
                .err(
                    "metadata.name",
                    format!("Service {}/{} is defined twice", s.namespace, s.name),
                )
                .into());
        }
        if let Some(ip) = s.cluster_ip {
            if !cidr.contains(ip)
                || ip == cidr.network()
                || ip == cidr.nth(cidr.size() - 1).unwrap_or(ip)
            {
                return Err(s
                    .origin
                    .err(
                        "spec.clusterIP",
                        format!("{ip} is not a usable address of the service CIDR {cidr}"),
                    )
                    .into());
            }
            if !used.insert(ip) {
                return Err(s
                    .origin
                    .err(
                        "spec.clusterIP",
                        format!("{ip} is already used by another Service"),
                    )
                    .into());
            }
        }
    }
    let mut next = FIRST_VIP;
    let mut out = Vec::new();
    for s in sorted {
        let vip = match s.cluster_ip {
            Some(ip) => ip,
            None => loop {
                let ip = cidr.nth(next).filter(|_| next < cidr.size() - 1);
                let ip = ip.ok_or_else(|| {
                    PlanError::VipsExhausted(cidr, format!("{}/{}", s.namespace, s.name))
                })?;
                next += 1;
                if used.insert(ip) {
                    break ip;
                }
            },
        };
        out.push(ServicePlan {
            def: s.clone(),
            vip,
        });
    }
    Ok(out)
}

fn valid_pod_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Plans the mesh: VIPs, then every workload's pods (injected where the
/// injector decides so), then their containers.
pub fn plan(
    manifest: &Manifest,
    service_cidr: Cidr,
    values: &Values,
) -> Result<MeshPlan, PlanError> {
    let services = allocate_vips(&manifest.services, service_cidr)?;
    let mut namespaces = manifest.namespaces.clone();
    let mut pods = Vec::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for w in &manifest.workloads {
        namespaces.entry(w.namespace.clone()).or_default();
        let policy = NamespacePolicy::from_labels(&namespaces[&w.namespace]);
        for i in 0..w.replicas {
            let name = if w.kind == "Pod" {
                w.name.clone()
            } else {
                format!("{}-{i}", w.name)
            };
            if !valid_pod_name(&name) {
                return Err(w.origin.err("metadata.name", format!("pod name {name:?} must be 1-40 characters of a-z, 0-9 and '-' in the local mesh")).into());
            }
            if let Some(other) = names.insert(name.clone(), w.namespace.clone()) {
                return Err(w.origin.err("metadata.name", format!("pod {name} also exists in namespace {other}: pod names must be unique across namespaces in the local mesh")).into());
            }
            pods.push(pod_plan(w, name, policy, manifest, values)?);
        }
    }
    for s in &services {
        namespaces.entry(s.def.namespace.clone()).or_default();
    }
    for r in &manifest.rules {
        namespaces.entry(r.namespace.clone()).or_default();
    }
    Ok(MeshPlan {
        namespaces,
        services,
        pods,
        rules: manifest.rules.clone(),
    })
}

fn pod_plan(
    w: &crate::manifest::Workload,
    name: String,
    policy: NamespacePolicy,
    manifest: &Manifest,
    values: &Values,
) -> Result<PodPlan, PlanError> {
    let origin = &w.origin;
    let (pod, sa) = pod_object(w, &name, manifest)?;
    let ctx = InjectContext {
        namespace: Some(&w.namespace),
        namespace_policy: policy,
        ..InjectContext::new(values, false)
    };
    let bad = |e: rudder_injector::PodError| origin.err(e.field.clone(), e.message);
    let external = pod
        .pointer("/metadata/labels")
        .and_then(|l| l.get(EXTERNAL_LABEL))
        == Some(&json!("true"));
    let (pod, sidecar) = if external {
        let why = format!("an external host stand-in ({EXTERNAL_LABEL}=true): outside the mesh");
        (pod, Err(why))
    } else {
        match inject(&pod, &ctx).map_err(bad)? {
            Decision::Injected(p) => (p, Ok(())),
            Decision::Skipped(reason) => (pod, Err(reason.to_string())),
        }
    };
    let labels =
        crate::manifest::string_map(pod.pointer("/metadata/labels"), origin, "metadata.labels")?;
    let annotations = crate::manifest::string_map(
        pod.pointer("/metadata/annotations"),
        origin,
        "metadata.annotations",
    )?;
    let spec = &pod["spec"];
    let (init, mut containers) = container_plans(spec, origin)?;
    let gateway = !external
        && (labels
            .get("istio")
            .is_some_and(|v| GATEWAY_LABELS.contains(&v.as_str()))
            || containers.iter().any(runs_agent_router));
    if gateway {
        for c in containers.iter_mut().filter(|c| runs_agent_router(c)) {
            point_at_local_pilot(&mut c.argv, values);
        }
    }
    let volumes = container::volumes(spec, origin)?;
    check_mounts(&init, &containers, &volumes, origin)?;
    Ok(PodPlan {
        name,
        namespace: w.namespace.clone(),
        workload: w.name.clone(),
        labels,
        annotations,
        service_account: sa,
        sidecar,
        pod,
        volumes,
        init,
        containers,
        origin: origin.clone(),
        gateway,
        external,
    })
}

/// Whether `c` runs the agent as a gateway (`agent router ...`).
fn runs_agent_router(c: &ContainerPlan) -> bool {
    c.argv
        .first()
        .is_some_and(|a| a == "agent" || a.ends_with("/agent"))
        && c.argv.get(1).is_some_and(|a| a == "router")
}

/// A gateway's agent finds pilot through the cluster's Service name
/// (`rudder-pilot.rudder-system.svc:15012`); the local mesh has no such
/// Service, so its `--discovery-address` and `--ca-address` become the
/// local pilot's, the addresses the injector gives sidecars.
fn point_at_local_pilot(argv: &mut [String], values: &Values) {
    for i in 1..argv.len() {
        let (flag, rest) = argv.split_at_mut(i);
        let value = match flag[i - 1].as_str() {
            "--discovery-address" => &values.discovery_address,
            "--ca-address" => &values.ca_address,
            _ => continue,
        };
        rest[0].clone_from(value);
    }
    for a in argv.iter_mut() {
        for (flag, value) in [
            ("--discovery-address=", &values.discovery_address),
            ("--ca-address=", &values.ca_address),
        ] {
            if a.starts_with(flag) {
                *a = format!("{flag}{value}");
            }
        }
    }
}

/// The Pod a workload's template makes (named `name`, in the workload's
/// namespace) and its service account, which must be defined unless it is
/// `default`.
fn pod_object(
    w: &crate::manifest::Workload,
    name: &str,
    manifest: &Manifest,
) -> Result<(Value, String), PlanError> {
    let origin = &w.origin;
    let mut meta = w
        .template
        .get("metadata")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    meta["name"] = json!(name);
    meta["namespace"] = json!(w.namespace);
    let mut spec = w
        .template
        .get("spec")
        .cloned()
        .filter(Value::is_object)
        .ok_or_else(|| origin.err("spec.template.spec", "required"))?;
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    if sa != "default"
        && !manifest
            .service_accounts
            .contains(&(w.namespace.clone(), sa.clone()))
    {
        return Err(origin
            .err(
                "spec.template.spec.serviceAccountName",
                format!(
                    "ServiceAccount {}/{sa} is not defined (add it to the YAML)",
                    w.namespace
                ),
            )
            .into());
    }
    spec["serviceAccountName"] = json!(sa);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec});
    Ok((pod, sa))
}

/// The (injected) pod spec's init containers and containers; no app may run
/// as the proxy's UID, and there must be a container.
fn container_plans(
    spec: &Value,
    origin: &Origin,
) -> Result<(Vec<ContainerPlan>, Vec<ContainerPlan>), PlanError> {
    let security = spec.get("securityContext");
    let mut lists = [Vec::new(), Vec::new()];
    for (out, list) in lists.iter_mut().zip(["initContainers", "containers"]) {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let plan = container::container(c, list, i, security, origin)?;
            if plan.name != SIDECAR_CONTAINER_NAME && plan.uid == Some(PROXY_UID) {
                return Err(origin.err(
                    format!("spec.{list}[{i}].securityContext.runAsUser"),
                    format!("{PROXY_UID} is the proxy's UID: an app running as it would bypass traffic capture"),
                )
                .into());
            }
            out.push(plan);
        }
    }
    let [init, containers] = lists;
    if containers.is_empty() {
        return Err(origin
            .err(
                "spec.template.spec.containers",
                "at least one container is required",
            )
            .into());
    }
    Ok((init, containers))
}

/// Every volume mount names a volume of `spec.volumes`.
fn check_mounts(
    init: &[ContainerPlan],
    containers: &[ContainerPlan],
    volumes: &[VolumePlan],
    origin: &Origin,
) -> Result<(), PlanError> {
    for c in init.iter().chain(containers) {
        if let Some((v, _)) = c
            .mounts
            .iter()
            .find(|(v, _)| !volumes.iter().any(|x| &x.name == v))
        {
            return Err(origin
                .err(
                    format!("container {}: volumeMounts", c.name),
                    format!("volume {v} is not defined in spec.volumes"),
                )
                .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::Role;

    const YAML: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: fixed, namespace: shop}
spec: {clusterIP: 198.19.0.10, selector: {app: none}, ports: [{port: 81}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-v1, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, version: v1}}
    spec:
      serviceAccountName: web
      containers: [{name: web, command: [python3, app.py], ports: [{name: http, containerPort: 9080}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: opted-out, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web, sidecar.istio.io/inject: "false"}}
    spec: {containers: [{name: c, command: [sleep, infinity]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: default}
spec:
  template:
    metadata: {labels: {app: client}}
    spec: {containers: [{name: c, command: [sleep, infinity]}]}
"#;

    fn mesh() -> MeshPlan {
        let mut m = Manifest::default();
        m.add_text("t.yaml", YAML).unwrap();
        plan(
            &m,
            "198.19.0.0/16".parse().unwrap(),
            &local_values(Ipv4Addr::new(198, 18, 0, 1)),
        )
        .unwrap()
    }

    #[test]
    fn deployments_become_injected_pods_as_the_injector_decides() {
        let mesh = mesh();
        let names: Vec<&str> = mesh.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["web-v1-0", "web-v1-1", "opted-out-0", "client-0"]);
        let web = &mesh.pods[0];
        assert!(web.meshed());
        assert_eq!(web.labels["security.istio.io/tlsMode"], "istio");
        assert_eq!(web.init[0].argv[0], "proxy-init");
        assert_eq!(web.init[0].role, Role::Init);
        let sidecar = &web.containers[0];
        assert_eq!(sidecar.name, SIDECAR_CONTAINER_NAME);
        assert_eq!(sidecar.uid, Some(PROXY_UID));
        assert!(
            sidecar
                .argv
                .windows(2)
                .any(|w| w == ["--discovery-address", "198.18.0.1:15012"]),
            "{:?}",
            sidecar.argv
        );
        assert_eq!(
            sidecar.post_start.as_deref().map(|c| c.join(" ")),
            Some("agent wait".into())
        );
        assert_eq!(web.containers[1].argv, ["python3", "app.py"]);
        assert_eq!(web.pod["metadata"]["name"], "web-v1-0");
        assert!(mesh.pods[2]
            .sidecar
            .as_ref()
            .unwrap_err()
            .contains("sidecar.istio.io/inject is false"));
        assert!(mesh.pods[3]
            .sidecar
            .as_ref()
            .unwrap_err()
            .contains("not labelled istio-injection=enabled"));
        assert_eq!(
            mesh.namespaces.keys().collect::<Vec<_>>(),
            ["default", "shop"]
        );
    }

    #[test]
    fn vips_keep_explicit_addresses_and_fill_the_rest() {
        let mesh = mesh();
        let vips: Vec<(String, Ipv4Addr)> = mesh
            .services
            .iter()
            .map(|s| (s.def.name.clone(), s.vip))
            .collect();
        assert_eq!(
            vips,
            [
                ("fixed".into(), Ipv4Addr::new(198, 19, 0, 10)),
                ("web".into(), Ipv4Addr::new(198, 19, 0, 11))
            ]
        );
        assert_eq!(
            mesh.services[1].object()["spec"]["clusterIP"],
            "198.19.0.11"
        );
        let mut m = Manifest::default();
        m.add_text("t.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.0.0.1, ports: [{port: 1}]}\n").unwrap();
        let err = allocate_vips(&m.services, "198.19.0.0/16".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("spec.clusterIP: 10.0.0.1 is not a usable address of the service CIDR 198.19.0.0/16"), "{err}");
        let mut many = Manifest::default();
        for i in 0..6 {
            many.add_text("t.yaml", &format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec: {{ports: [{{port: 1}}]}}\n")).unwrap();
        }
        let err = allocate_vips(&many.services, "198.19.0.0/28".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "service CIDR 198.19.0.0/28 has no free address left for Service default/s5"
        );
    }

    #[test]
    fn endpoints_follow_selector_readiness_and_named_ports() {
        let mesh = mesh();
        let web = &mesh.services[1];
        let ready: BTreeMap<String, Ipv4Addr> = [
            ("web-v1-1".to_string(), Ipv4Addr::new(198, 18, 0, 3)),
            ("client-0".to_string(), Ipv4Addr::new(198, 18, 0, 5)),
        ]
        .into();
        assert_eq!(
            mesh.endpoints(web, 80, &ready),
            [(Ipv4Addr::new(198, 18, 0, 3), 9080)]
        );
        assert!(mesh.endpoints(web, 99, &ready).is_empty());
    }

    #[test]
    fn inconsistent_input_is_refused_with_the_field() {
        let mut m = Manifest::default();
        m.add_text("t.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    spec: {serviceAccountName: ghost, containers: [{name: c, command: [x]}]}\n").unwrap();
        let err = plan(&m, "198.19.0.0/16".parse().unwrap(), &Values::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("serviceAccountName: ServiceAccount default/ghost is not defined"),
            "{err}"
        );
        let mut m = Manifest::default();
        m.add_text("t.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, command: [x], securityContext: {runAsUser: 1337}}]}\n").unwrap();
        let err = plan(&m, "198.19.0.0/16".parse().unwrap(), &Values::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("runAsUser: 1337 is the proxy's UID"), "{err}");
    }
}
