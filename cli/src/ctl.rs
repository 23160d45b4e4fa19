//! How the istioctl-like commands (`proxy-status`, `proxy-config`,
//! `version`) reach the mesh: pilot's monitoring port (`/debug/syncz`,
//! `/debug/config_dump?proxyID=`, `/version`) and each pod's agent on 15020
//! (`/config_dump`, `/clusters`, `/certs`, read-only pass-throughs of Envoy's
//! admin, which itself stays on loopback inside the pod).
//!
//! The local mesh: pilot's monitoring address and every pod's IP come from the
//! runner's record (the host routes pod addresses over the instance's
//! bridge). Anywhere else: `--pilot-url` (e.g. a `kubectl port-forward` to
//! pilot's 15014, or the API server's service proxy URL) and `--agent-url`
//! (a port-forward to the pod's 15020); without `--agent-url` the agent is
//! reached at `http://<pod IP>:15020`, the pod IP taken from pilot's node id.

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::record::RunnerRecord;

/// The agent's metrics/admin port.
pub const AGENT_PORT: u16 = 15020;

/// A proxy: the pod it runs in, as every command names it (`namespace/name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod IP.
    pub ip: String,
}

impl PodRef {
    /// `namespace/name`, as `rudder mesh status` prints it.
    pub fn display(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The id pilot's `/debug/config_dump?proxyID=` takes (`name.namespace`).
    pub fn proxy_id(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

/// Where pilot and the agents are.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// pilot's monitoring base URL (no trailing slash).
    pub pilot: String,
    /// The local mesh's record, when there is one.
    pub record: Option<RunnerRecord>,
    /// An explicit agent base URL (one pod, e.g. a port-forward).
    pub agent_url: Option<String>,
}

impl Endpoints {
    /// From `--pilot-url`/`--agent-url`, else the local mesh `name`'s record.
    pub fn resolve(
        runner_root: &Path,
        name: &str,
        pilot_url: Option<&str>,
        agent_url: Option<&str>,
    ) -> Result<Endpoints> {
        let record = RunnerRecord::load(runner_root, name).ok();
        let pilot = match (pilot_url, &record) {
            (Some(u), _) => u.trim_end_matches('/').to_string(),
            (None, Some(r)) => format!("http://{}", r.monitoring_addr),
            (None, None) => bail!(
                "no local mesh named {name:?} is running (see `rudder mesh status`); \
                 against a cluster pass --pilot-url, e.g. after \
                 `kubectl -n rudder-system port-forward deploy/pilot 15014`: --pilot-url http://127.0.0.1:15014"
            ),
        };
        Ok(Endpoints {
            pilot,
            record,
            agent_url: agent_url.map(|u| u.trim_end_matches('/').to_string()),
        })
    }

    /// `GET <pilot><path>` as JSON.
    pub fn pilot_json(&self, path: &str) -> Result<Value> {
        get_json(&format!("{}{path}", self.pilot))
    }

    /// `GET <agent of pod><path>`: the body (JSON).
    pub fn agent_json(&self, pod: &PodRef, path: &str) -> Result<Value> {
        get_json(&format!("{}{path}", self.agent_base(pod)))
    }

    /// The agent's base URL for `pod`.
    pub fn agent_base(&self, pod: &PodRef) -> String {
        match &self.agent_url {
            Some(u) => u.clone(),
            None => format!("http://{}:{AGENT_PORT}", pod.ip),
        }
    }

    /// pilot's connected streams (`/debug/syncz`).
    pub fn syncz(&self) -> Result<Vec<Value>> {
        let v = self.pilot_json("/debug/syncz")?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// The pod a user names: `namespace/name`, `name.namespace`, `name`, or
    /// a unique prefix of a pod name (a Deployment's name); from the local
    /// mesh's record, else from the proxies connected to pilot.
    pub fn find_pod(&self, wanted: &str) -> Result<PodRef> {
        let pods = match &self.record {
            Some(r) => r
                .pods
                .iter()
                .map(|p| PodRef {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    ip: p.ip.to_string(),
                })
                .collect(),
            None => self
                .syncz()?
                .iter()
                .filter_map(|c| c["node_id"].as_str().and_then(pod_of_node))
                .collect::<Vec<_>>(),
        };
        let names: Vec<(String, String)> = pods
            .iter()
            .map(|p| (p.namespace.clone(), p.name.clone()))
            .collect();
        let i = find_name(&names, wanted).map_err(|e| anyhow!(e))?;
        Ok(pods[i].clone())
    }

    /// The pod behind a node id: the record's pod with that IP, else the
    /// node id's own `name.namespace`.
    pub fn pod_of_node(&self, node_id: &str) -> Option<PodRef> {
        let from_id = pod_of_node(node_id)?;
        let Some(r) = &self.record else {
            return Some(from_id);
        };
        Some(
            r.pods
                .iter()
                .find(|p| p.ip.to_string() == from_id.ip)
                .map(|p| PodRef {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    ip: from_id.ip.clone(),
                })
                .unwrap_or(from_id),
        )
    }
}

/// `type~ip~name.namespace~domain` → the pod.
pub fn pod_of_node(node_id: &str) -> Option<PodRef> {
    let mut parts = node_id.split('~');
    let (_, ip, id) = (parts.next()?, parts.next()?, parts.next()?);
    let (name, namespace) = id.rsplit_once('.')?;
    Some(PodRef {
        namespace: namespace.into(),
        name: name.into(),
        ip: ip.into(),
    })
}

/// Finds `wanted` among `(namespace, name)` pairs: `namespace/name`,
/// `name.namespace`, `name`, or a unique prefix of a name. The error lists
/// what exists.
pub fn find_name(pods: &[(String, String)], wanted: &str) -> Result<usize, String> {
    let exact: Vec<usize> = pods
        .iter()
        .enumerate()
        .filter(|(_, (ns, n))| {
            wanted == format!("{ns}/{n}") || wanted == format!("{n}.{ns}") || wanted == n
        })
        .map(|(i, _)| i)
        .collect();
    let candidates = if exact.is_empty() {
        let (ns, prefix) = match wanted.split_once('/') {
            Some((ns, p)) => (Some(ns), p),
            None => (None, wanted),
        };
        pods.iter()
            .enumerate()
            .filter(|(_, (pns, n))| ns.is_none_or(|ns| ns == pns) && n.starts_with(prefix))
            .map(|(i, _)| i)
            .collect()
    } else {
        exact
    };
    let all = || {
        pods.iter()
            .map(|(ns, n)| format!("{ns}/{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match candidates.as_slice() {
        [i] => Ok(*i),
        [] => Err(format!("no pod {wanted:?}; pods: {}", all())),
        many => Err(format!(
            "{wanted:?} names {} pods ({}); use namespace/name",
            many.len(),
            many.iter()
                .map(|i| format!("{}/{}", pods[*i].0, pods[*i].1))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// One blocking `GET`, its body as JSON (non-200 is an error with the body).
pub fn get_json(url: &str) -> Result<Value> {
    let body = get_text(url)?;
    serde_json::from_str(&body).with_context(|| format!("{url}: the answer is not JSON"))
}

/// One blocking `GET`, its body (non-200 is an error with the body).
pub fn get_text(url: &str) -> Result<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let r = rt
        .block_on(rudder_http::Client::new(Duration::from_secs(10)).get(url))
        .map_err(|e| anyhow!("{e}"))?;
    if r.status != 200 {
        bail!("{url}: HTTP {}: {}", r.status, r.body.trim());
    }
    Ok(r.body)
}

/// A table as istioctl prints them: columns padded to their widest cell
/// plus `gap` spaces, no trailing spaces.
pub fn table(header: &[&str], rows: &[Vec<String>], gap: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}", w = widths[i] + gap);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> Vec<(String, String)> {
        [
            ("client", "sleep"),
            ("default", "reviews-v1-0"),
            ("default", "reviews-v2-0"),
            ("default", "productpage-v1-0"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn pods_are_found_by_every_name_status_prints() {
        let p = pods();
        assert_eq!(find_name(&p, "client/sleep"), Ok(0));
        assert_eq!(find_name(&p, "sleep.client"), Ok(0));
        assert_eq!(find_name(&p, "sleep"), Ok(0));
        assert_eq!(find_name(&p, "productpage"), Ok(3));
        assert_eq!(find_name(&p, "default/reviews-v2"), Ok(2));
        let e = find_name(&p, "reviews").unwrap_err();
        assert!(e.contains("names 2 pods"), "{e}");
        let e = find_name(&p, "other/sleep").unwrap_err();
        assert!(e.contains("pods: client/sleep"), "{e}");
    }

    #[test]
    fn node_ids_name_pods() {
        let p = pod_of_node("sidecar~198.18.0.3~reviews-v1-0.default~default.svc.cluster.local")
            .unwrap();
        assert_eq!(p.display(), "default/reviews-v1-0");
        assert_eq!(p.proxy_id(), "reviews-v1-0.default");
        assert_eq!(p.ip, "198.18.0.3");
    }

    #[test]
    fn tables_pad_columns() {
        let t = table(
            &["NAME", "CDS"],
            &[
                vec!["a".into(), "SYNCED".into()],
                vec!["long-name".into(), "x".into()],
            ],
            3,
        );
        assert_eq!(t, "NAME        CDS\na           SYNCED\nlong-name   x\n");
    }
}
