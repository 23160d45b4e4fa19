//! `rudder analyze`: cross-object checks over a set of Kubernetes/Istio
//! objects, with Istio's analyzer codes and message texts
//! (`pkg/config/analysis/msg/messages.yaml`), printed as istioctl prints
//! them: `Error [IST0101] (VirtualService default/reviews rules.yaml:12)
//! Referenced host not found: "reviews2"`.
//!
//! | code | level | what |
//! |---|---|---|
//! | IST0101 ReferencedResourceNotFound | Error | VirtualService destination host, host+subset, gateway; Gateway selector matching no pod |
//! | IST0102 NamespaceNotInjected | Info | a Namespace with neither `istio-injection` nor `istio.io/rev` |
//! | IST0106 SchemaValidationError | Error | the registry's validation errors (as `pilot validate`) |
//! | IST0108 UnknownAnnotation | Warning | an `*.istio.io/` annotation Istio does not define |
//! | IST0109 ConflictingMeshGatewayVirtualServiceHosts | Error | two mesh VirtualServices for one host |
//! | IST0118 PortNameIsNotUnderNamingConvention | Info | a Service port whose name has no protocol prefix (and no appProtocol) |
//! | IST0127 NoMatchingWorkloadsFound | Warning | a DestinationRule subset whose labels match no pod of its host |
//! | IST0133 SchemaWarning | Warning | the registry's validation warnings |
//! | IST0162 GatewayPortNotDefinedOnService | Warning | a Gateway port no Service of its pods exposes |
//!
//! Istio retired IST0104 (GatewayPortNotOnWorkload); its analyzer now
//! reports a selector matching no pod as IST0101 (`Referenced selector not
//! found`) and a port missing from the workload's Services as IST0162: so
//! does Rudder.
//!
//! Exit codes as istioctl's: 79 when a message is at or above
//! `--failure-threshold` (default Error), 65 when a file could not be parsed
//! and nothing reached the threshold, else 0.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use rudder_model::Severity;
use serde_json::Value;

/// A message level, ordered as Istio's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    /// Informational.
    Info,
    /// Probably not what was meant.
    Warning,
    /// Broken.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Info => "Info",
            Level::Warning => "Warning",
            Level::Error => "Error",
        })
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Message {
    /// Level.
    pub level: Level,
    /// `IST0101`.
    pub code: &'static str,
    /// `VirtualService default/reviews`.
    pub resource: String,
    /// Namespace of the resource (for `--namespace` filtering).
    pub namespace: String,
    /// `file:line`, when known.
    pub origin: Option<String>,
    /// The text.
    pub text: String,
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = self
            .origin
            .as_ref()
            .map(|o| format!(" {o}"))
            .unwrap_or_default();
        write!(
            f,
            "{} [{}] ({}{origin}) {}",
            self.level, self.code, self.resource, self.text
        )
    }
}

/// One object read from a file.
#[derive(Clone, Debug)]
pub struct Obj {
    /// Kind.
    pub kind: String,
    /// Namespace (`default` when unset; empty for Namespaces).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The document.
    pub doc: Value,
    /// File.
    pub file: String,
    /// The document's text and its first line in the file.
    pub text: String,
    /// First line of the document.
    pub line: usize,
}

impl Obj {
    fn resource(&self) -> String {
        if self.namespace.is_empty() {
            format!("{} {}", self.kind, self.name)
        } else {
            format!("{} {}/{}", self.kind, self.namespace, self.name)
        }
    }

    /// The line of the first `key: value` (value optionally quoted) in the
    /// document, else the document's first line.
    fn line_of(&self, key: &str, value: &str) -> String {
        let found = self.text.lines().enumerate().find(|(_, l)| {
            let l = l.trim_start().trim_start_matches("- ").trim_start();
            let Some(rest) = l.strip_prefix(key) else {
                return false;
            };
            let Some(v) = rest.trim_start().strip_prefix(':') else {
                return false;
            };
            let v = v
                .trim()
                .trim_end_matches(',')
                .trim_matches(|c| c == '"' || c == '\'');
            v == value
        });
        let n = found.map_or(self.line, |(i, _)| self.line + i);
        format!("{}:{n}", self.file)
    }

    /// The line of the first line containing `text`.
    fn line_containing(&self, text: &str) -> String {
        let n = self
            .text
            .lines()
            .position(|l| l.contains(text))
            .map_or(self.line, |i| self.line + i);
        format!("{}:{n}", self.file)
    }

    fn msg(&self, level: Level, code: &'static str, at: Option<String>, text: String) -> Message {
        Message {
            level,
            code,
            resource: self.resource(),
            namespace: if self.kind == "Namespace" {
                self.name.clone()
            } else {
                self.namespace.clone()
            },
            origin: Some(at.unwrap_or_else(|| format!("{}:{}", self.file, self.line))),
            text,
        }
    }

    fn labels(&self, path: &[&str]) -> BTreeMap<String, String> {
        let mut v = &self.doc;
        for p in path {
            v = &v[*p];
        }
        v.as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect()
    }
}

/// Splits a YAML stream into documents with their first line (1-based).
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut start = 1;
    let mut cur = String::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") {
            out.push((start, std::mem::take(&mut cur)));
            start = i + 2;
        } else {
            cur.push_str(line);
            cur.push('\n');
        }
    }
    out.push((start, cur));
    out.into_iter()
        .filter(|(_, d)| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

/// The objects of the files, and the files that could not be parsed.
pub fn load(files: &[PathBuf]) -> (Vec<Obj>, Vec<String>) {
    let mut objs = Vec::new();
    let mut bad = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let Ok(text) = std::fs::read_to_string(f) else {
            bad.push(format!("{name}: cannot read"));
            continue;
        };
        for (line, doc_text) in split_documents(&text) {
            let doc: Value = match serde_saphyr::from_str(&doc_text) {
                Ok(v) => v,
                Err(e) => {
                    bad.push(format!("{name}:{line}: {e}"));
                    continue;
                }
            };
            let mut push = |doc: Value| {
                let kind = doc["kind"].as_str().unwrap_or("").to_string();
                let ns = match kind.as_str() {
                    "Namespace" => String::new(),
                    _ => doc["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("default")
                        .to_string(),
                };
                let name_ = doc["metadata"]["name"].as_str().unwrap_or("").to_string();
                // Skip leading comment/blank lines so the line is the object's.
                let skip = doc_text
                    .lines()
                    .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
                    .count();
                objs.push(Obj {
                    kind,
                    namespace: ns,
                    name: name_,
                    doc,
                    file: name.clone(),
                    text: doc_text.lines().skip(skip).collect::<Vec<_>>().join("\n"),
                    line: line + skip,
                });
            };
            if doc["kind"] == "List" {
                for item in doc["items"].as_array().cloned().unwrap_or_default() {
                    push(item);
                }
            } else if doc.is_object() {
                push(doc);
            }
        }
    }
    (objs, bad)
}

/// `host` as an FQDN, resolved in `ns` as Istio does for short names.
fn fqdn(host: &str, ns: &str) -> String {
    if host.contains('*') || host.ends_with(".cluster.local") {
        return host.to_string();
    }
    match host.split('.').count() {
        1 => format!("{host}.{ns}.svc.cluster.local"),
        2 => format!("{host}.svc.cluster.local"),
        3 if host.ends_with(".svc") => format!("{host}.cluster.local"),
        _ => host.to_string(),
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix),
        None => pattern == host,
    }
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn selector_string(s: &BTreeMap<String, String>) -> String {
    s.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Annotations Istio defines (`istio.io/api` annotation package), the
/// ones a user writes on Namespaces, Services, Pods and pod templates.
const KNOWN_ANNOTATIONS: &[&str] = &[
    "sidecar.istio.io/inject",
    "sidecar.istio.io/status",
    "sidecar.istio.io/rewriteAppHTTPProbers",
    "sidecar.istio.io/interceptionMode",
    "sidecar.istio.io/proxyImage",
    "sidecar.istio.io/proxyCPU",
    "sidecar.istio.io/proxyCPULimit",
    "sidecar.istio.io/proxyMemory",
    "sidecar.istio.io/proxyMemoryLimit",
    "sidecar.istio.io/logLevel",
    "sidecar.istio.io/componentLogLevel",
    "sidecar.istio.io/agentLogLevel",
    "sidecar.istio.io/bootstrapOverride",
    "sidecar.istio.io/discoveryAddress",
    "sidecar.istio.io/enableCoreDump",
    "sidecar.istio.io/extraStatTags",
    "sidecar.istio.io/statsInclusionPrefixes",
    "sidecar.istio.io/statsInclusionRegexps",
    "sidecar.istio.io/statsInclusionSuffixes",
    "sidecar.istio.io/statsHistogramBuckets",
    "sidecar.istio.io/userVolume",
    "sidecar.istio.io/userVolumeMount",
    "sidecar.istio.io/nativeSidecar",
    "status.sidecar.istio.io/port",
    "readiness.status.sidecar.istio.io/applicationPorts",
    "readiness.status.sidecar.istio.io/initialDelaySeconds",
    "readiness.status.sidecar.istio.io/periodSeconds",
    "readiness.status.sidecar.istio.io/failureThreshold",
    "traffic.sidecar.istio.io/includeOutboundIPRanges",
    "traffic.sidecar.istio.io/excludeOutboundIPRanges",
    "traffic.sidecar.istio.io/includeInboundPorts",
    "traffic.sidecar.istio.io/excludeInboundPorts",
    "traffic.sidecar.istio.io/includeOutboundPorts",
    "traffic.sidecar.istio.io/excludeOutboundPorts",
    "traffic.sidecar.istio.io/excludeInterfaces",
    "traffic.sidecar.istio.io/kubevirtInterfaces",
    "proxy.istio.io/config",
    "proxy.istio.io/overrides",
    "prometheus.istio.io/merge-metrics",
    "inject.istio.io/templates",
    "networking.istio.io/exportTo",
    "networking.istio.io/traffic-distribution",
    "istio.io/rev",
    "istio.io/dry-run",
    "ambient.istio.io/redirection",
    "install.operator.istio.io/chart-owner",
    "kubectl.kubernetes.io/default-container",
    "kubectl.kubernetes.io/default-logs-container",
];

/// Protocol prefixes of Istio's port naming convention.
const PORT_PROTOCOLS: &[&str] = &[
    "http", "http2", "https", "grpc", "grpc-web", "tcp", "tls", "udp", "mongo", "mysql", "redis",
];

fn port_name_ok(name: &str) -> bool {
    let proto = name.split('-').next().unwrap_or("").to_ascii_lowercase();
    PORT_PROTOCOLS.contains(&proto.as_str())
        || (name.starts_with("grpc-web") && PORT_PROTOCOLS.contains(&"grpc-web"))
}

/// Namespaces Istio's analyzers leave alone.
const SYSTEM_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
    "istio-system",
    "rudder-system",
];

/// Workloads: `(object, pod labels, pod annotations path)`.
fn workloads(objs: &[Obj]) -> Vec<(&Obj, BTreeMap<String, String>, Vec<&'static str>)> {
    objs.iter()
        .filter_map(|o| {
            let path = rudder_injector::kube_inject::pod_template_path(&o.kind)?;
            let mut meta: Vec<&'static str> = path.to_vec();
            meta.push("metadata");
            let mut labels = meta.clone();
            labels.push("labels");
            Some((o, o.labels(&labels), meta))
        })
        .collect()
}

/// Every check over `objs`; `schema` adds the registry's validation.
pub fn analyze(objs: &[Obj], schema: &[rudder_model::Diagnostic]) -> Vec<Message> {
    let mut out = Vec::new();
    fn of_kind<'a>(objs: &'a [Obj], k: &'a str) -> impl Iterator<Item = &'a Obj> + 'a {
        objs.iter().filter(move |o| o.kind == k)
    }
    let of = |k: &'static str| of_kind(objs, k);
    let services: Vec<&Obj> = of("Service").collect();
    let work = workloads(objs);
    let service_fqdns: BTreeSet<String> = services
        .iter()
        .map(|s| format!("{}.{}.svc.cluster.local", s.name, s.namespace))
        .collect();
    let se_hosts: Vec<String> = of("ServiceEntry")
        .flat_map(|o| {
            o.doc["spec"]["hosts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|h| h.as_str().map(str::to_string))
        })
        .collect();
    let host_exists = |h: &str| {
        service_fqdns.contains(h) || se_hosts.iter().any(|p| host_matches(p, h) || p == h)
    };
    let drs: Vec<&Obj> = of("DestinationRule").collect();

    // IST0101: VirtualService destinations and gateways.
    let mut mesh_hosts: BTreeMap<String, Vec<&Obj>> = BTreeMap::new();
    for vs in of("VirtualService") {
        let spec = &vs.doc["spec"];
        for kind in ["http", "tcp", "tls"] {
            for rule in spec[kind].as_array().into_iter().flatten() {
                let mut dests: Vec<&Value> = rule["route"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| &r["destination"])
                    .collect();
                if !rule["mirror"].is_null() {
                    dests.push(&rule["mirror"]);
                }
                for d in dests {
                    let Some(host) = d["host"].as_str() else {
                        continue;
                    };
                    let full = fqdn(host, &vs.namespace);
                    if !host_exists(&full) {
                        out.push(vs.msg(
                            Level::Error,
                            "IST0101",
                            Some(vs.line_of("host", host)),
                            format!("Referenced host not found: {host:?}"),
                        ));
                        continue;
                    }
                    let Some(subset) = d["subset"].as_str() else {
                        continue;
                    };
                    let found = drs.iter().any(|dr| {
                        dr.doc["spec"]["host"]
                            .as_str()
                            .is_some_and(|h| fqdn(h, &dr.namespace) == full)
                            && dr.doc["spec"]["subsets"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|s| s["name"].as_str() == Some(subset))
                    });
                    if !found {
                        out.push(vs.msg(
                            Level::Error,
                            "IST0101",
                            Some(vs.line_of("subset", subset)),
                            format!(
                                "Referenced host+subset in destinationrule not found: \"{host}+{subset}\""
                            ),
                        ));
                    }
                }
            }
        }
        let gateways: Vec<&str> = spec["gateways"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for g in &gateways {
            if *g == "mesh" {
                continue;
            }
            let (ns, name) = g.split_once('/').unwrap_or((&vs.namespace, g));
            if !of("Gateway").any(|gw| gw.namespace == ns && gw.name == name) {
                out.push(vs.msg(
                    Level::Error,
                    "IST0101",
                    Some(vs.line_containing(g)),
                    format!("Referenced gateway not found: {g:?}"),
                ));
            }
        }
        if gateways.is_empty() || gateways.contains(&"mesh") {
            for h in spec["hosts"].as_array().into_iter().flatten() {
                if let Some(h) = h.as_str() {
                    mesh_hosts
                        .entry(fqdn(h, &vs.namespace))
                        .or_default()
                        .push(vs);
                }
            }
        }
    }

    // IST0109: two mesh VirtualServices for one host.
    // The same namespace/name in several files is one object (alternative
    // versions of a rule, as `samples/bookinfo/rules` holds), not a conflict.
    for (host, list) in &mesh_hosts {
        let names: BTreeSet<String> = list
            .iter()
            .map(|v| format!("{}/{}", v.namespace, v.name))
            .collect();
        if names.len() < 2 {
            continue;
        }
        let names: Vec<String> = names.into_iter().collect();
        for vs in list {
            out.push(vs.msg(
                Level::Error,
                "IST0109",
                None,
                format!(
                    "The VirtualServices {} associated with mesh gateway define the same host {host} which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.",
                    names.join(",")
                ),
            ));
        }
    }

    // Gateways: selector matching no pod (IST0101), ports no Service exposes (IST0162).
    for gw in of("Gateway") {
        let selector = gw.labels(&["spec", "selector"]);
        let pods: Vec<&(&Obj, BTreeMap<String, String>, Vec<&str>)> = work
            .iter()
            .filter(|(_, labels, _)| selects(&selector, labels))
            .collect();
        if pods.is_empty() {
            out.push(gw.msg(
                Level::Error,
                "IST0101",
                None,
                format!(
                    "Referenced selector not found: {:?}",
                    selector_string(&selector)
                ),
            ));
            continue;
        }
        let mut ports = BTreeSet::new();
        for s in &services {
            let sel = s.labels(&["spec", "selector"]);
            if sel.is_empty()
                || !pods
                    .iter()
                    .any(|(o, l, _)| o.namespace == s.namespace && selects(&sel, l))
            {
                continue;
            }
            for p in s.doc["spec"]["ports"].as_array().into_iter().flatten() {
                if let Some(n) = p["port"].as_u64() {
                    ports.insert(n);
                }
                if let Some(n) = p["targetPort"].as_u64() {
                    ports.insert(n);
                }
            }
        }
        for server in gw.doc["spec"]["servers"].as_array().into_iter().flatten() {
            let Some(port) = server["port"]["number"].as_u64() else {
                continue;
            };
            if !ports.contains(&port) {
                out.push(gw.msg(
                    Level::Warning,
                    "IST0162",
                    Some(gw.line_of("number", &port.to_string())),
                    format!(
                        "The gateway is listening on a target port (port {port}) that is not defined in the Service associated with its workload instances (Pod selector {}). If you need to access the gateway port through the gateway Service, it will not be available.",
                        selector_string(&selector)
                    ),
                ));
            }
        }
    }

    // IST0127: DestinationRule subsets matching no pod of the host's Service.
    for dr in &drs {
        let Some(host) = dr.doc["spec"]["host"].as_str() else {
            continue;
        };
        let full = fqdn(host, &dr.namespace);
        let Some(svc) = services
            .iter()
            .find(|s| format!("{}.{}.svc.cluster.local", s.name, s.namespace) == full)
        else {
            continue;
        };
        let base = svc.labels(&["spec", "selector"]);
        for subset in dr.doc["spec"]["subsets"].as_array().into_iter().flatten() {
            let labels: BTreeMap<String, String> = subset["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect();
            let any = work.iter().any(|(o, l, _)| {
                o.namespace == svc.namespace && selects(&base, l) && selects(&labels, l)
            });
            if !any {
                let name = subset["name"].as_str().unwrap_or("");
                out.push(dr.msg(
                    Level::Warning,
                    "IST0127",
                    Some(dr.line_of("name", name)),
                    format!(
                        "No matching workloads for this resource with the following labels: {}",
                        selector_string(&labels)
                    ),
                ));
            }
        }
    }

    // IST0108: unknown Istio annotations.
    for o in objs {
        let mut paths: Vec<Vec<&str>> = vec![vec!["metadata", "annotations"]];
        if let Some((_, _, meta)) = work.iter().find(|(w, _, _)| std::ptr::eq(*w, o)) {
            if !meta.is_empty() && meta.len() > 1 {
                let mut p = meta.clone();
                p.push("annotations");
                paths.push(p);
            }
        }
        for p in paths {
            for k in o.labels(&p).keys() {
                let istio = k
                    .split_once('/')
                    .is_some_and(|(d, _)| d == "istio.io" || d.ends_with(".istio.io"));
                if istio && !KNOWN_ANNOTATIONS.contains(&k.as_str()) {
                    out.push(o.msg(
                        Level::Warning,
                        "IST0108",
                        Some(o.line_of(k, o.labels(&p).get(k).map_or("", String::as_str))),
                        format!("Unknown annotation: {k}"),
                    ));
                }
            }
        }
    }

    // IST0102: Namespaces without an injection label.
    for ns in of("Namespace") {
        if SYSTEM_NAMESPACES.contains(&ns.name.as_str()) {
            continue;
        }
        let labels = ns.labels(&["metadata", "labels"]);
        if !labels.contains_key("istio-injection") && !labels.contains_key("istio.io/rev") {
            out.push(ns.msg(
                Level::Info,
                "IST0102",
                None,
                format!(
                    "The namespace is not enabled for Istio injection. Run 'kubectl label namespace {n} istio-injection=enabled' to enable it, or 'kubectl label namespace {n} istio-injection=disabled' to explicitly mark it as not needing injection.",
                    n = ns.name
                ),
            ));
        }
    }

    // IST0118: port names without a protocol.
    for s in &services {
        if SYSTEM_NAMESPACES.contains(&s.namespace.as_str()) {
            continue;
        }
        for p in s.doc["spec"]["ports"].as_array().into_iter().flatten() {
            if p["appProtocol"].is_string() {
                continue;
            }
            let name = p["name"].as_str().unwrap_or("");
            if port_name_ok(name) {
                continue;
            }
            let port = p["port"].as_u64().unwrap_or(0);
            let target = match &p["targetPort"] {
                Value::Null => port.to_string(),
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            out.push(s.msg(
                Level::Info,
                "IST0118",
                Some(s.line_of("name", name)),
                format!(
                    "Port name {name} (port: {port}, targetPort: {target}) doesn't follow the naming convention of Istio port."
                ),
            ));
        }
    }

    // IST0106 / IST0133: the registry's own validation, less the warnings
    // the analyzers above already report with Istio's codes (a missing host,
    // subset or gateway; a host two VirtualServices route).
    let covered = |d: &rudder_model::Diagnostic| {
        d.severity == Severity::Warning
            && (d.field.ends_with(".destination.host")
                || d.field.ends_with(".destination.subset")
                || d.field.ends_with(".mirror.host")
                || d.field.ends_with(".mirror.subset")
                || (d.field.starts_with("spec.gateways[") && d.message.starts_with("no Gateway"))
                || (d.field.starts_with("spec.hosts[") && d.message.contains("already routed by")))
    };
    for d in schema.iter().filter(|d| !covered(d)) {
        let (level, code, what) = match d.severity {
            Severity::Error => (Level::Error, "IST0106", "Schema validation error"),
            Severity::Warning => (Level::Warning, "IST0133", "Schema validation warning"),
            Severity::Unsupported => continue,
        };
        let namespace = d
            .object
            .split_once(' ')
            .and_then(|(_, n)| n.split_once('/'))
            .map_or(String::new(), |(ns, _)| ns.to_string());
        let field = if d.field.is_empty() {
            String::new()
        } else {
            format!("{}: ", d.field)
        };
        out.push(Message {
            level,
            code,
            resource: d.object.clone(),
            namespace,
            origin: d.file.clone(),
            text: format!("{what}: {field}{}", d.message),
        });
    }

    out.sort_by(|a, b| {
        b.level
            .cmp(&a.level)
            .then(a.code.cmp(b.code))
            .then(a.resource.cmp(&b.resource))
            .then(a.origin.cmp(&b.origin))
            .then(a.text.cmp(&b.text))
    });
    out.dedup();
    out
}

/// The files under the given paths (directories recursively), sorted.
pub fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(rudder_registry::load::collect_files(p)?);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            anyhow::bail!("{}: no such file or directory", p.display());
        }
    }
    Ok(out)
}

/// What `rudder analyze` found, filtered and ready to print.
pub struct Report {
    /// Messages at or above the output threshold, in the selected namespaces.
    pub shown: Vec<Message>,
    /// Every message in the selected namespaces (for the exit code).
    pub all: Vec<Message>,
    /// Files (or documents) that could not be parsed.
    pub unparsed: Vec<String>,
}

/// Runs every check on `files`; `namespace` None means all namespaces.
pub fn run(files: &[PathBuf], namespace: Option<&str>, output_threshold: Level) -> Report {
    let (objs, unparsed) = load(files);
    let schema = rudder_registry::validate::validate_paths(files).diagnostics;
    let all: Vec<Message> = analyze(&objs, &schema)
        .into_iter()
        .filter(|m| namespace.is_none_or(|n| m.namespace == n || m.namespace.is_empty()))
        .collect();
    let shown = all
        .iter()
        .filter(|m| m.level >= output_threshold)
        .cloned()
        .collect();
    Report {
        shown,
        all,
        unparsed,
    }
}

/// istioctl's exit code: 79 when a message reaches `failure`, 65 for files
/// that could not be parsed, else 0.
pub fn exit_code(r: &Report, failure: Level) -> u8 {
    if r.all.iter().any(|m| m.level >= failure) {
        79
    } else if !r.unparsed.is_empty() {
        65
    } else {
        0
    }
}

/// Paths relative to `base` when under it (stable output for goldens).
pub fn relative(p: &Path, base: &Path) -> PathBuf {
    p.strip_prefix(base)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_like_istio() {
        assert_eq!(
            fqdn("reviews", "default"),
            "reviews.default.svc.cluster.local"
        );
        assert_eq!(
            fqdn("reviews.other", "default"),
            "reviews.other.svc.cluster.local"
        );
        assert_eq!(fqdn("api.example.com", "default"), "api.example.com");
        assert!(port_name_ok("http-web") && port_name_ok("grpc") && !port_name_ok("web"));
    }

    #[test]
    fn documents_keep_their_lines() {
        let d = split_documents("# c\n---\na: 1\n---\n\nb: 2\n");
        assert_eq!(
            d,
            vec![(3, "a: 1\n".to_string()), (5, "\nb: 2\n".to_string())]
        );
    }
}
