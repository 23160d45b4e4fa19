//! The JSON model the mesh page renders (`/debug/mesh`), built by one pure
//! function from what pilot already has: the snapshot (services, versions,
//! route rules), the ADS server's stream table (sync states, NACKs), the
//! validation findings, and the request rates per edge ([`EdgeRate`], from
//! the sidecars' Envoy stats or from Prometheus: see `traffic.rs`).
//!
//! ```text
//!  Snapshot ──────────┐
//!  syncz streams ─────┼─► view::build ─► MeshView ─► JSON ─► mesh.js (SVG graph, tables)
//!  diagnostics ───────┤
//!  EdgeRate (traffic) ┘
//! ```

use std::collections::{BTreeMap, BTreeSet};

use rudder_ads::ConnectionStatus;
use rudder_model::{
    selects, Diagnostic, HttpAction, HttpMatch, NodeId, RouteTable, Severity, Snapshot,
    StringMatch, SyncState, Workload,
};
use serde::Serialize;

/// The label that names a workload's version (Istio's and Kiali's).
const VERSION_LABEL: &str = "version";
/// The label that names a workload's app (Istio's and Kiali's).
const APP_LABEL: &str = "app";

/// The xDS types the page shows, by syncz's short name and display name.
const TYPES: [(&str, &str); 4] = [
    ("cds", "CDS"),
    ("lds", "LDS"),
    ("eds", "EDS"),
    ("rds", "RDS"),
];

/// Requests per second from one source workload version to one
/// destination service subset, over the last window.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeRate {
    /// The source's namespace.
    pub source_namespace: String,
    /// The source's app (or workload name when it has no `app` label).
    pub source_app: String,
    /// The source's `version` label ("" when it has none).
    pub source_version: String,
    /// The destination service's FQDN.
    pub host: String,
    /// The destination subset or version ("" for the whole service).
    pub subset: String,
    /// Requests per second.
    pub rps: f64,
    /// Requests per second answered with a 5xx.
    pub error_rps: f64,
}

/// Where the edge numbers come from, and whether the last read worked.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricsStatus {
    /// `sidecars` (pilot scrapes each proxy's stats) or `prometheus <url>`.
    pub source: String,
    /// Rates are averaged over this many seconds.
    pub window_seconds: f64,
    /// The last read's error, if it failed.
    pub error: Option<String>,
}

/// Everything the page shows.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MeshView {
    /// The snapshot's version.
    pub config_version: String,
    /// Where the traffic numbers come from.
    pub metrics: MetricsStatus,
    /// Services (and source workloads that no service selects), with versions.
    pub nodes: Vec<Node>,
    /// Traffic between them.
    pub edges: Vec<Edge>,
    /// Connected proxies and their sync state.
    pub proxies: Vec<ProxyRow>,
    /// Validation findings.
    pub findings: Vec<Finding>,
    /// Each service's route rules.
    pub services: Vec<ServiceRules>,
}

/// A box in the graph.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// `namespace/name`.
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// Service name (or app, for a workload no service selects).
    pub name: String,
    /// `service` or `workload`.
    pub kind: &'static str,
    /// Versions of its pods (`version` label), sorted.
    pub versions: Vec<String>,
}

/// An arrow: one source version to one destination version.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    /// Source node id.
    pub source: String,
    /// Source version ("" when unversioned).
    pub source_version: String,
    /// Destination node id.
    pub destination: String,
    /// Destination subset ("" for the whole service).
    pub destination_version: String,
    /// Destination FQDN.
    pub host: String,
    /// Requests per second.
    pub rps: f64,
    /// Share of the source version's requests to this host that went to
    /// this subset (0..1); `None` when the source sent nothing there.
    pub share: Option<f64>,
    /// Fraction of these requests answered with a 5xx (0..1), `None` without requests.
    pub error_rate: Option<f64>,
}

/// One proxy's sync state.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProxyRow {
    /// `namespace/pod` (the node id when it does not parse).
    pub name: String,
    /// `sidecar` or `router`.
    pub kind: String,
    /// Envoy's version from its user agent.
    pub version: String,
    /// CDS, LDS, EDS, RDS: `SYNCED`, `NOT SENT`, `STALE`, `STALE (NACK)`.
    pub states: BTreeMap<&'static str, &'static str>,
    /// Envoy's error for each type it rejected.
    pub nacks: Vec<NackRow>,
}

/// A rejected response.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NackRow {
    /// `CDS`, ...
    #[serde(rename = "type")]
    pub type_name: &'static str,
    /// Envoy's message.
    pub error: String,
}

/// A validation finding, with its file and line when the source has them.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// `error`, `warning`, `unsupported`.
    pub severity: &'static str,
    /// File.
    pub file: Option<String>,
    /// Line in the file.
    pub line: Option<u32>,
    /// `Kind namespace/name`.
    pub object: String,
    /// Field path.
    pub field: String,
    /// Why.
    pub message: String,
}

/// The route rules that apply to a service in the mesh.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRules {
    /// Node id (`namespace/name`).
    pub id: String,
    /// FQDN.
    pub host: String,
    /// One entry per rule naming the host.
    pub rules: Vec<RuleView>,
}

/// One rule, its routes in order.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RuleView {
    /// `VirtualService default/reviews`.
    pub source: String,
    /// One line per route: `match … → reviews v1 50%, reviews v3 50%`.
    pub routes: Vec<String>,
}

/// Builds the page's model.
pub fn build(
    snapshot: &Snapshot,
    streams: &[ConnectionStatus],
    diagnostics: &[Diagnostic],
    rates: &[EdgeRate],
    metrics: MetricsStatus,
) -> MeshView {
    let mut nodes = service_nodes(snapshot);
    let edges = edges(snapshot, rates, &mut nodes);
    MeshView {
        config_version: snapshot.version.clone(),
        metrics,
        nodes: nodes.into_values().collect(),
        edges,
        proxies: proxies(streams),
        findings: diagnostics.iter().map(finding).collect(),
        services: rules(snapshot),
    }
}

/// Every service, with the versions of the pods it selects.
fn service_nodes(snapshot: &Snapshot) -> BTreeMap<String, Node> {
    snapshot
        .services
        .values()
        .map(|s| {
            let versions: BTreeSet<String> = if s.selector.is_empty() {
                BTreeSet::new()
            } else {
                snapshot
                    .workloads
                    .values()
                    .filter(|w| w.namespace == s.namespace && selects(&s.selector, &w.labels))
                    .filter_map(|w| w.labels.get(VERSION_LABEL).cloned())
                    .collect()
            };
            let id = format!("{}/{}", s.namespace, s.name);
            let node = Node {
                id: id.clone(),
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                kind: "service",
                versions: versions.into_iter().collect(),
            };
            (id, node)
        })
        .collect()
}

/// The node a source workload belongs to: the first service of its
/// namespace selecting it, else its app.
fn source_node(snapshot: &Snapshot, namespace: &str, app: &str) -> String {
    let selecting = |w: &Workload| {
        snapshot.services.values().find(|s| {
            s.namespace == namespace && !s.selector.is_empty() && selects(&s.selector, &w.labels)
        })
    };
    snapshot
        .workloads
        .values()
        .filter(|w| w.namespace == namespace && app_of(w) == app)
        .find_map(selecting)
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .unwrap_or_else(|| format!("{namespace}/{app}"))
}

/// A workload's app: its `app` label, else its name.
pub fn app_of(w: &Workload) -> &str {
    w.labels.get(APP_LABEL).unwrap_or(&w.name)
}

/// A workload's `version` label, "" without one.
pub fn version_of(w: &Workload) -> &str {
    w.labels
        .get(VERSION_LABEL)
        .map(String::as_str)
        .unwrap_or("")
}

/// Edges from the rates, adding a node for any source or destination no
/// service stands for; shares per (source version, host).
fn edges(snapshot: &Snapshot, rates: &[EdgeRate], nodes: &mut BTreeMap<String, Node>) -> Vec<Edge> {
    let mut out: BTreeMap<(String, String, String, String), Edge> = BTreeMap::new();
    for r in rates {
        let source = source_node(snapshot, &r.source_namespace, &r.source_app);
        let destination = match snapshot.services.get(&r.host) {
            Some(s) => format!("{}/{}", s.namespace, s.name),
            None => r.host.clone(),
        };
        for (id, version) in [(&source, &r.source_version), (&destination, &r.subset)] {
            let node = nodes.entry(id.clone()).or_insert_with(|| {
                let (namespace, name) = id.rsplit_once('/').unwrap_or(("", id));
                Node {
                    id: id.clone(),
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    kind: "workload",
                    versions: Vec::new(),
                }
            });
            if !version.is_empty() && !node.versions.contains(version) {
                node.versions.push(version.clone());
                node.versions.sort();
            }
        }
        let key = (
            source.clone(),
            r.source_version.clone(),
            r.host.clone(),
            r.subset.clone(),
        );
        let e = out.entry(key).or_insert_with(|| Edge {
            source,
            source_version: r.source_version.clone(),
            destination,
            destination_version: r.subset.clone(),
            host: r.host.clone(),
            rps: 0.0,
            share: None,
            error_rate: None,
        });
        e.rps += r.rps;
        // Kept as error rps until the shares are known.
        *e.error_rate.get_or_insert(0.0) += r.error_rps;
    }
    let mut totals: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for e in out.values() {
        *totals
            .entry((e.source.clone(), e.source_version.clone(), e.host.clone()))
            .or_default() += e.rps;
    }
    out.into_values()
        .map(|mut e| {
            let total = totals[&(e.source.clone(), e.source_version.clone(), e.host.clone())];
            e.share = (total > 0.0).then(|| e.rps / total);
            let errors = e.error_rate.unwrap_or(0.0);
            e.error_rate = (e.rps > 0.0).then(|| (errors / e.rps).min(1.0));
            e
        })
        .collect()
}

/// Each stream's states, sorted by name.
fn proxies(streams: &[ConnectionStatus]) -> Vec<ProxyRow> {
    let mut rows: Vec<ProxyRow> = streams
        .iter()
        .map(|s| {
            let (name, kind) = match NodeId::parse(&s.node_id) {
                Ok(n) => (
                    format!("{}/{}", n.namespace, n.pod_name),
                    n.node_type.as_str().to_string(),
                ),
                Err(_) => (s.node_id.clone(), String::new()),
            };
            let mut states = BTreeMap::new();
            let mut nacks = Vec::new();
            for (short, upper) in TYPES {
                let t = s.types.get(short);
                let state = t.map_or(SyncState::NotSent, |t| {
                    SyncState::of(
                        t.last_sent
                            .as_ref()
                            .map(|x| (x.version.as_str(), x.nonce.as_str())),
                        t.last_acked_version.as_deref(),
                        t.last_nack.as_ref().map(|n| n.nonce.as_str()),
                    )
                });
                if let (SyncState::Nacked, Some(n)) = (state, t.and_then(|t| t.last_nack.as_ref()))
                {
                    nacks.push(NackRow {
                        type_name: upper,
                        error: n.error.trim().to_string(),
                    });
                }
                states.insert(upper, state.as_str());
            }
            let ua = &s.user_agent;
            ProxyRow {
                name,
                kind,
                version: ua
                    .split_once('/')
                    .map_or(ua.as_str(), |(_, v)| v)
                    .to_string(),
                states,
                nacks,
            }
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// A diagnostic with its `file:line` split.
fn finding(d: &Diagnostic) -> Finding {
    let (file, line) = match d.file.as_deref() {
        Some(f) => match f.rsplit_once(':') {
            Some((name, line)) if line.parse::<u32>().is_ok() => {
                (Some(name.to_string()), line.parse().ok())
            }
            _ => (Some(f.to_string()), None),
        },
        None => (None, None),
    };
    Finding {
        severity: match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Unsupported => "unsupported",
        },
        file,
        line,
        object: d.object.clone(),
        field: d.field.clone(),
        message: d.message.clone(),
    }
}

/// The mesh route rules naming each service.
fn rules(snapshot: &Snapshot) -> Vec<ServiceRules> {
    snapshot
        .services
        .values()
        .map(|s| ServiceRules {
            id: format!("{}/{}", s.namespace, s.name),
            host: s.hostname.clone(),
            rules: snapshot
                .route_tables
                .iter()
                .filter(|t| t.applies_to_mesh() && t.hosts.contains(&s.hostname))
                .map(rule_view)
                .collect(),
        })
        .collect()
}

fn rule_view(t: &RouteTable) -> RuleView {
    let mut routes: Vec<String> = t
        .http
        .iter()
        .map(|r| {
            let when = if r.matches.is_empty() {
                "any request".to_string()
            } else {
                r.matches
                    .iter()
                    .map(match_text)
                    .collect::<Vec<_>>()
                    .join(" or ")
            };
            let then = match &r.action {
                HttpAction::Route(ds) => {
                    let total: u64 = ds.iter().map(|d| u64::from(d.weight)).sum();
                    ds.iter()
                        .map(|d| {
                            let pct = if total == 0 {
                                100.0 / ds.len() as f64
                            } else {
                                100.0 * f64::from(d.weight) / total as f64
                            };
                            let subset = d
                                .subset
                                .as_deref()
                                .map(|s| format!(" {s}"))
                                .unwrap_or_default();
                            format!("{}{subset} {}%", short_host(&d.host), round(pct))
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                }
                HttpAction::Redirect(_) => "redirect".to_string(),
                HttpAction::DirectResponse(d) => format!("direct response {}", d.status),
            };
            format!("{when} → {then}")
        })
        .collect();
    routes.extend(t.tcp.iter().map(|_| "TCP route".to_string()));
    routes.extend(t.tls.iter().map(|_| "TLS route".to_string()));
    RuleView {
        source: format!("{} {}/{}", t.source.kind, t.source.namespace, t.source.name),
        routes,
    }
}

fn match_text(m: &HttpMatch) -> String {
    let mut parts = Vec::new();
    if let Some(u) = &m.uri {
        parts.push(format!("uri {}", string_match(u)));
    }
    if let Some(x) = &m.method {
        parts.push(format!("method {}", string_match(x)));
    }
    if let Some(x) = &m.authority {
        parts.push(format!("authority {}", string_match(x)));
    }
    for (k, v) in &m.headers {
        parts.push(format!("header {k} {}", string_match(v)));
    }
    for (k, v) in &m.query_params {
        parts.push(format!("query {k} {}", string_match(v)));
    }
    if let Some(p) = m.port {
        parts.push(format!("port {p}"));
    }
    for (k, v) in &m.source_labels {
        parts.push(format!("source {k}={v}"));
    }
    if parts.is_empty() {
        "any request".to_string()
    } else {
        parts.join(" and ")
    }
}

fn string_match(m: &StringMatch) -> String {
    match m {
        StringMatch::Exact(s) => format!("= {s}"),
        StringMatch::Prefix(s) => format!("starts with {s}"),
        StringMatch::Regex(s) => format!("~ {s}"),
        StringMatch::Present => "present".to_string(),
    }
}

/// `reviews.default.svc.cluster.local` → `reviews.default`.
fn short_host(h: &str) -> &str {
    h.split_once(".svc.").map_or(h, |(s, _)| s)
}

/// At most one decimal.
fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
