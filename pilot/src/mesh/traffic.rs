//! Request rates per edge for the mesh page, from one of two sources:
//!
//! - **sidecars** (the default; the local mesh): pilot scrapes each
//!   connected proxy's Envoy stats through its agent
//!   (`http://<pod IP>:15020/stats/prometheus`) and reads, per outbound
//!   cluster `outbound|<port>|<subset>|<host>`, the counters
//!   `envoy_cluster_upstream_rq_total` and
//!   `envoy_cluster_upstream_rq_xx{envoy_response_code_class="5"}`: a
//!   sidecar's outbound cluster is exactly one edge (this workload → that
//!   service subset). Rates are the counters' increase over the last
//!   [`SIDECAR_WINDOW`].
//! - **Prometheus** (`--prometheus-url`, on a cluster), queried as Kiali
//!   does: `istio_requests_total{reporter="source"}` summed by source
//!   workload namespace, app, version, destination service, version and
//!   response code, `rate(...[1m])`. When that series does not exist (Rudder's
//!   sidecars expose Envoy's own stats), the same two Envoy cluster counters
//!   as Prometheus scraped them from the agents, by the `namespace` and `pod`
//!   labels its Kubernetes pod discovery adds; their rates are computed here
//!   from successive reads, as for sidecars.
//!
//! Scraping runs only while someone has the page open (a `/debug/mesh`
//! read within [`IDLE_AFTER`]), every [`INTERVAL`].

use std::{
    collections::{BTreeMap, VecDeque},
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rudder_model::{names::ClusterName, names::Direction, well_known, NodeId, Snapshot};

use super::view::{app_of, version_of, EdgeRate, MetricsStatus};

/// How often the sources are read while the page is open.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// Sidecar rates: the counters' increase over this long.
pub const SIDECAR_WINDOW: Duration = Duration::from_secs(6);
/// Prometheus rates: `rate(...[1m])`, Kiali's default.
const PROMETHEUS_WINDOW: &str = "1m";
/// Reading stops when nobody asked for the page for this long.
pub const IDLE_AFTER: Duration = Duration::from_secs(30);
/// Bound on one scrape or query.
const READ_TIMEOUT: Duration = Duration::from_millis(1500);

/// Where the rates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Each proxy's stats, through its agent.
    Sidecars,
    /// A Prometheus server's HTTP API at this base URL.
    Prometheus(String),
}

/// The rates shared between the reading loop and the page.
#[derive(Clone)]
pub struct Traffic {
    source: Source,
    client: rudder_http::Client,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    last_viewed: Option<Instant>,
    /// Per (pod `ns/name`, outbound cluster): recent counter readings.
    samples: BTreeMap<(String, String), VecDeque<Sample>>,
    rates: Vec<EdgeRate>,
    error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Sample {
    at: Instant,
    total: f64,
    errors: f64,
}

/// One pod's rate to one outbound cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterRate {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// `outbound|port|subset|host`.
    pub cluster: String,
    /// Requests per second.
    pub rps: f64,
    /// 5xx per second.
    pub error_rps: f64,
}

impl Traffic {
    /// Rates from `source`.
    pub fn new(source: Source) -> Self {
        Traffic {
            source,
            client: rudder_http::Client::new(READ_TIMEOUT),
            state: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The page was read: keep reading; the current rates and their status.
    pub fn viewed(&self) -> (Vec<EdgeRate>, MetricsStatus) {
        let mut s = self.lock();
        s.last_viewed = Some(Instant::now());
        let status = MetricsStatus {
            source: match &self.source {
                Source::Sidecars => "sidecars".to_string(),
                Source::Prometheus(url) => format!("prometheus {url}"),
            },
            window_seconds: match self.source {
                Source::Sidecars => SIDECAR_WINDOW.as_secs_f64(),
                Source::Prometheus(_) => 60.0,
            },
            error: s.error.clone(),
        };
        (s.rates.clone(), status)
    }

    /// Reads the source every [`INTERVAL`] while the page is open; the
    /// proxies to scrape and the workloads come from `targets` (connected
    /// node ids) and `snapshot`.
    pub async fn run(
        self,
        targets: impl Fn() -> Vec<String> + Send + 'static,
        snapshot: impl Fn() -> Arc<Snapshot> + Send + 'static,
    ) {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let open = self
                .lock()
                .last_viewed
                .is_some_and(|t| t.elapsed() < IDLE_AFTER);
            if !open {
                let mut s = self.lock();
                s.samples.clear();
                s.rates.clear();
                continue;
            }
            let snapshot = snapshot();
            let result = match &self.source {
                Source::Sidecars => Ok(self.scrape_sidecars(&targets(), &snapshot).await),
                Source::Prometheus(url) => self.query_prometheus(url, &snapshot).await,
            };
            let mut s = self.lock();
            match result {
                Ok(rates) => {
                    s.rates = rates;
                    s.error = None;
                }
                Err(e) => s.error = Some(e),
            }
        }
    }

    /// One round of scrapes; failures of single proxies are skipped (a
    /// proxy may be starting or gone).
    async fn scrape_sidecars(&self, nodes: &[String], snapshot: &Snapshot) -> Vec<EdgeRate> {
        let mut pods: BTreeMap<IpAddr, NodeId> = BTreeMap::new();
        for n in nodes {
            if let Ok(id) = NodeId::parse(n) {
                pods.insert(id.ip, id);
            }
        }
        let mut reads = tokio::task::JoinSet::new();
        for (ip, id) in pods {
            let client = self.client.clone();
            let url = match ip {
                IpAddr::V4(_) => format!(
                    "http://{ip}:{}/stats/prometheus",
                    well_known::AGENT_METRICS_PORT
                ),
                IpAddr::V6(_) => format!(
                    "http://[{ip}]:{}/stats/prometheus",
                    well_known::AGENT_METRICS_PORT
                ),
            };
            reads.spawn(async move {
                let r = client.get(&url).await;
                (id, r)
            });
        }
        let now = Instant::now();
        let mut readings = Vec::new();
        while let Some(done) = reads.join_next().await {
            let Ok((id, result)) = done else { continue };
            match result {
                Ok(r) if r.status == 200 => {
                    let pod = format!("{}/{}", id.namespace, id.pod_name);
                    let hosts = snapshot.services.keys().map(String::as_str);
                    for (cluster, total, errors) in cluster_counters(&text_samples(&r.body), hosts)
                    {
                        readings.push((pod.clone(), cluster, total, errors));
                    }
                }
                Ok(r) => {
                    tracing::debug!(proxy = %id, status = r.status, "mesh page: stats scrape refused")
                }
                Err(error) => {
                    tracing::debug!(proxy = %id, %error, "mesh page: stats scrape failed")
                }
            }
        }
        let rates = {
            let mut s = self.lock();
            record(&mut s.samples, now, readings)
        };
        edge_rates(snapshot, &rates)
    }

    async fn query_prometheus(
        &self,
        url: &str,
        snapshot: &Snapshot,
    ) -> Result<Vec<EdgeRate>, String> {
        let base = url.trim_end_matches('/');
        let istio = format!(
            "sum by (source_workload_namespace, source_app, source_version, destination_service, destination_version, response_code) (rate(istio_requests_total{{reporter=\"source\"}}[{PROMETHEUS_WINDOW}]))"
        );
        let rows = self.query(base, &istio).await?;
        if !rows.is_empty() {
            return Ok(istio_edge_rates(&rows));
        }
        // Envoy's counters as Prometheus scraped them from the agents
        // (`namespace` and `pod` from its Kubernetes pod discovery); the
        // metric name carries part of the host, so raw series, and rates
        // computed here from successive reads, as for sidecars.
        let raw = "{__name__=~\"envoy_cluster_(.+_)?upstream_rq_(total|xx)\",envoy_cluster_name=~\"outbound\\\\|.*\"}";
        let rows = self.query(base, raw).await?;
        let mut by_pod: BTreeMap<(String, String), Vec<StatSample>> = BTreeMap::new();
        for (labels, value) in rows {
            let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
            let name = get("__name__");
            let key = (get("namespace"), get("pod"));
            let rest = labels
                .into_iter()
                .filter(|(k, _)| k != "__name__")
                .collect();
            by_pod.entry(key).or_default().push((name, rest, value));
        }
        let mut readings = Vec::new();
        for ((namespace, pod), samples) in by_pod {
            let hosts = snapshot.services.keys().map(String::as_str);
            for (cluster, total, errors) in cluster_counters(&samples, hosts) {
                readings.push((format!("{namespace}/{pod}"), cluster, total, errors));
            }
        }
        let rates = {
            let mut s = self.lock();
            record(&mut s.samples, Instant::now(), readings)
        };
        Ok(edge_rates(snapshot, &rates))
    }

    /// One instant query: each series' labels and value.
    async fn query(&self, base: &str, promql: &str) -> Result<Vec<Series>, String> {
        let url = format!("{base}/api/v1/query?query={}", percent_encode(promql));
        let r = self.client.get(&url).await.map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("GET {url}: HTTP {}: {}", r.status, r.body.trim()));
        }
        parse_query_response(&r.body).map_err(|e| format!("GET {url}: {e}"))
    }
}

/// One series of a Prometheus instant query.
pub type Series = (BTreeMap<String, String>, f64);

/// Parses `/api/v1/query`'s answer (a vector).
pub fn parse_query_response(body: &str) -> Result<Vec<Series>, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["status"] != "success" {
        return Err(format!(
            "query failed: {}",
            v["error"].as_str().unwrap_or("no error text")
        ));
    }
    let mut out = Vec::new();
    for r in v["data"]["result"].as_array().into_iter().flatten() {
        let labels = r["metric"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        let value = r["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("series without a numeric value: {r}"))?;
        out.push((labels, value));
    }
    Ok(out)
}

/// `istio_requests_total` rows (Kiali's query) as edges.
pub fn istio_edge_rates(rows: &[Series]) -> Vec<EdgeRate> {
    let get = |l: &BTreeMap<String, String>, k: &str| l.get(k).cloned().unwrap_or_default();
    // (source namespace, app, version, host, subset) → (rps, 5xx rps)
    type Key = (String, String, String, String, String);
    let mut edges: BTreeMap<Key, (f64, f64)> = BTreeMap::new();
    for (l, v) in rows {
        let key = (
            get(l, "source_workload_namespace"),
            get(l, "source_app"),
            get(l, "source_version"),
            get(l, "destination_service"),
            get(l, "destination_version"),
        );
        let e = edges.entry(key).or_default();
        e.0 += v;
        if get(l, "response_code").starts_with('5') {
            e.1 += v;
        }
    }
    edges
        .into_iter()
        .map(
            |((ns, app, version, host, subset), (rps, error_rps))| EdgeRate {
                source_namespace: ns,
                source_app: app,
                source_version: if version == "unknown" {
                    String::new()
                } else {
                    version
                },
                host,
                subset: if subset == "unknown" {
                    String::new()
                } else {
                    subset
                },
                rps,
                error_rps,
            },
        )
        .collect()
}

/// Per-pod cluster rates as edges: the pod's workload (app, version) to the
/// cluster's host and subset. Pods the snapshot does not know are skipped.
pub fn edge_rates(snapshot: &Snapshot, rates: &[ClusterRate]) -> Vec<EdgeRate> {
    rates
        .iter()
        .filter_map(|r| {
            let c = ClusterName::parse(&r.cluster)?;
            if c.direction != Direction::Outbound || c.host.is_empty() {
                return None;
            }
            let w = snapshot
                .workloads
                .get(&format!("{}/{}", r.namespace, r.pod))?;
            Some(EdgeRate {
                source_namespace: r.namespace.clone(),
                source_app: app_of(w).to_string(),
                source_version: version_of(w).to_string(),
                host: c.host,
                subset: c.subset,
                rps: r.rps,
                error_rps: r.error_rps,
            })
        })
        .collect()
}

/// Adds this round's readings (pod, cluster, total, 5xx) and returns each
/// counter's rate over [`SIDECAR_WINDOW`]. A counter that went down (the
/// proxy restarted) counts from zero; one seen for the first time has rate
/// 0 until the next reading. Counters not read this round are forgotten.
fn record(
    samples: &mut BTreeMap<(String, String), VecDeque<Sample>>,
    now: Instant,
    readings: Vec<(String, String, f64, f64)>,
) -> Vec<ClusterRate> {
    let mut fresh = BTreeMap::new();
    let mut out = Vec::new();
    for (pod, cluster, total, errors) in readings {
        let key = (pod, cluster);
        let mut history = samples.remove(&key).unwrap_or_default();
        if history.back().is_some_and(|b| total < b.total) {
            history.clear();
            history.push_back(Sample {
                at: now,
                total: 0.0,
                errors: 0.0,
            });
        }
        history.push_back(Sample {
            at: now,
            total,
            errors,
        });
        while history.len() > 2 && now.duration_since(history[1].at) >= SIDECAR_WINDOW {
            history.pop_front();
        }
        let first = history[0];
        let dt = now.duration_since(first.at).as_secs_f64();
        let (rps, error_rps) = if dt > 0.0 {
            (
                (total - first.total) / dt,
                (errors - first.errors).max(0.0) / dt,
            )
        } else {
            (0.0, 0.0)
        };
        let (namespace, name) = key.0.split_once('/').unwrap_or(("", &key.0));
        out.push(ClusterRate {
            namespace: namespace.to_string(),
            pod: name.to_string(),
            cluster: key.1.clone(),
            rps,
            error_rps,
        });
        fresh.insert(key, history);
    }
    *samples = fresh;
    out
}

/// A sample's labels, in order.
pub type StatLabels = Vec<(String, String)>;

/// One sample: metric name, labels, value.
pub type StatSample = (String, StatLabels, f64);

/// The samples of Envoy's Prometheus text.
pub fn text_samples(text: &str) -> Vec<StatSample> {
    text.lines()
        .filter_map(parse_sample)
        .map(|(n, l, v)| (n.to_string(), l, v))
        .collect()
}

/// Per outbound cluster that has seen requests: (cluster, requests, 5xx
/// responses), from Envoy's `cluster.<name>.upstream_rq_total` and
/// `upstream_rq_xx` counters.
///
/// Envoy's default tag extraction takes the cluster name only up to its
/// first dot: `cluster.outbound|9080|v1|reviews.default.svc.cluster.local.upstream_rq_total`
/// is exposed as `envoy_cluster_default_svc_cluster_local_upstream_rq_total
/// {envoy_cluster_name="outbound|9080|v1|reviews"}`. The rest of the host is
/// found again among `hosts` (the snapshot's services) by its sanitized
/// form; with the destination tags of Rudder's sidecar bootstrap
/// (`destination_service`, `destination_port`, `destination_version`) the
/// name is rebuilt from those and there is no rest. Internal/external/canary variants of `upstream_rq_xx` match no host
/// and are not counted twice.
pub fn cluster_counters<'a>(
    samples: &[StatSample],
    hosts: impl IntoIterator<Item = &'a str>,
) -> Vec<(String, f64, f64)> {
    let mut by_sanitized: BTreeMap<(String, String), String> = BTreeMap::new();
    for h in hosts {
        // Every split at a dot: the label holds the part before it.
        for (i, _) in h.match_indices('.') {
            by_sanitized.insert((h[..i].to_string(), sanitize(&h[i + 1..])), h.to_string());
        }
    }
    let mut by: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (name, labels, value) in samples {
        let label = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Some(short) = label("envoy_cluster_name").filter(|c| c.starts_with("outbound|")) else {
            continue;
        };
        let Some(rest) = name.strip_prefix("envoy_cluster_") else {
            continue;
        };
        let (middle, stat) = if let Some(m) = rest.strip_suffix("upstream_rq_total") {
            (m, "total")
        } else if let Some(m) = rest.strip_suffix("upstream_rq_xx") {
            (m, "xx")
        } else {
            continue;
        };
        // The sidecars' bootstrap tags outbound statistics with the
        // destination (see the agent's `stats_config`): the whole cluster
        // name is in those labels.
        let tagged = match (
            label("destination_port"),
            label("destination_version"),
            label("destination_service"),
        ) {
            (Some(port), Some(subset), Some(host)) if middle.is_empty() => {
                Some(format!("outbound|{port}|{subset}|{host}"))
            }
            _ => None,
        };
        let cluster = match middle.strip_suffix('_') {
            None if middle.is_empty() => tagged.unwrap_or_else(|| short.to_string()),
            Some(middle) => {
                let Some(c) = ClusterName::parse(short) else {
                    continue;
                };
                let Some(host) = by_sanitized.get(&(c.host.clone(), middle.to_string())) else {
                    continue;
                };
                ClusterName {
                    host: host.clone(),
                    ..c
                }
                .to_string()
            }
            None => continue,
        };
        match stat {
            "total" => by.entry(cluster).or_default().0 += value,
            _ if label("envoy_response_code_class") == Some("5") => {
                by.entry(cluster).or_default().1 += value
            }
            _ => {}
        }
    }
    by.into_iter()
        .filter(|(_, (total, _))| *total > 0.0)
        .map(|(c, (t, e))| (c, t, e))
        .collect()
}

/// Envoy's Prometheus name sanitizing: anything but `[a-zA-Z0-9_]` becomes `_`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// One sample line of the text format: name, labels, value.
fn parse_sample(line: &str) -> Option<(&str, StatLabels, f64)> {
    if line.starts_with('#') {
        return None;
    }
    let (head, value) = line.trim_end().rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let Some((name, rest)) = head.split_once('{') else {
        return Some((head, Vec::new(), value));
    };
    let body = rest.strip_suffix('}')?;
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut v = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => v.push('\n'),
                    c => v.push(c),
                },
                '"' => break,
                c => v.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').to_string(), v));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some((name, labels, value))
}

/// Percent-encodes a query parameter value (everything but RFC 3986's unreserved).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// [`record`] for the unit tests.
#[cfg(test)]
pub(super) fn record_for_test(
    samples: &mut BTreeMap<(String, String), VecDeque<Sample>>,
    now: Instant,
    readings: Vec<(String, String, f64, f64)>,
) -> Vec<ClusterRate> {
    record(samples, now, readings)
}
