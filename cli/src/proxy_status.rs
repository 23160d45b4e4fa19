//! `rudder proxy-status [POD]`: istioctl's proxy-status.
//!
//! Without a pod: one row per xDS stream pilot serves, each type SYNCED
//! (the last response sent was ACKed), NOT SENT (nothing of that type sent),
//! STALE (sent, not ACKed yet) or STALE (NACK) (the proxy rejected the last
//! response; Envoy's error is printed below the table). From pilot's
//! `/debug/syncz`.
//!
//! With a pod: what pilot would send it (`/debug/config_dump?proxyID=`)
//! against what its Envoy holds (the agent's `/config_dump`), clusters,
//! listeners and routes, as istioctl prints it: "Clusters Match" or
//! "Clusters Don't Match" and a unified diff.

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::Result;
use serde_json::Value;

use crate::ctl::{table, Endpoints, PodRef};

/// The xDS types shown, by syncz's short name, with their column header.
pub const TYPES: [(&str, &str); 4] = [
    ("cds", "CDS"),
    ("lds", "LDS"),
    ("eds", "EDS"),
    ("rds", "RDS"),
];

/// One type's state on one stream (syncz's JSON), by the model's one rule.
pub fn type_state(t: Option<&Value>) -> String {
    let t = t.unwrap_or(&Value::Null);
    let sent = &t["last_sent"];
    let sent = sent["version"].as_str().zip(sent["nonce"].as_str());
    rudder_model::SyncState::of(
        sent,
        t["last_acked_version"].as_str(),
        t["last_nack"]["nonce"].as_str(),
    )
    .to_string()
}

/// The table (and the NACK details below it) from syncz's streams.
pub fn render(endpoints: &Endpoints, streams: &[Value]) -> String {
    let mut rows = Vec::new();
    let mut nacks = Vec::new();
    let mut sorted: Vec<(String, &Value)> = streams
        .iter()
        .map(|s| {
            let node = s["node_id"].as_str().unwrap_or("?");
            let name = endpoints
                .pod_of_node(node)
                .map(|p| p.display())
                .unwrap_or_else(|| node.to_string());
            (name, s)
        })
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, s) in sorted {
        let mut row = vec![name.clone()];
        for (short, upper) in TYPES {
            let t = s["types"].get(short);
            let state = type_state(t);
            if state == "STALE (NACK)" {
                let t = t.unwrap_or(&Value::Null);
                nacks.push(format!(
                    "{name} {upper} rejected (nonce {}, keeps version {}): {}",
                    t["last_nack"]["nonce"].as_str().unwrap_or("?"),
                    t["last_acked_version"].as_str().unwrap_or("none"),
                    t["last_nack"]["error"].as_str().unwrap_or("").trim()
                ));
            }
            row.push(state);
        }
        let ua = s["user_agent"].as_str().unwrap_or("");
        row.push(ua.split_once('/').map_or(ua, |(_, v)| v).to_string());
        rows.push(row);
    }
    let mut out = table(&["NAME", "CDS", "LDS", "EDS", "RDS", "VERSION"], &rows, 5);
    if !nacks.is_empty() {
        out.push('\n');
        for n in nacks {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}

/// What Envoy holds, by syncz type name and resource name.
pub fn envoy_resources(dump: &Value) -> BTreeMap<&'static str, BTreeMap<String, Value>> {
    let mut out: BTreeMap<&'static str, BTreeMap<String, Value>> = BTreeMap::new();
    for c in dump["configs"].as_array().into_iter().flatten() {
        let ty = c["@type"].as_str().unwrap_or("");
        let (short, list, path): (&str, &str, &[&str]) = if ty.ends_with("ClustersConfigDump") {
            ("cds", "dynamic_active_clusters", &["cluster"])
        } else if ty.ends_with("ListenersConfigDump") {
            ("lds", "dynamic_listeners", &["active_state", "listener"])
        } else if ty.ends_with("RoutesConfigDump") {
            ("rds", "dynamic_route_configs", &["route_config"])
        } else {
            continue;
        };
        let entry = out.entry(short).or_default();
        for item in c[list].as_array().into_iter().flatten() {
            let mut v = item;
            for p in path {
                v = &v[*p];
            }
            if let Some(name) = v["name"].as_str() {
                entry.insert(name.to_string(), normalize(v.clone()));
            }
        }
    }
    out
}

/// What pilot would send, by type and name.
pub fn pilot_resources(dump: &Value) -> BTreeMap<&'static str, BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for (short, _) in TYPES {
        if short == "eds" {
            continue;
        }
        let m: BTreeMap<String, Value> = dump["resources"][short]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), normalize(v.clone())))
            .collect();
        out.insert(short, m);
    }
    out
}

/// Drops the top-level `@type` (Envoy's dump has it, pilot's bodies do not),
/// writes every number as a float (`1` and `1.0` compare equal) and every
/// key in snake_case (Envoy's dump uses proto field names, pilot's JSON the
/// camelCase JSON names; map keys go through the same change on both sides).
fn normalize(v: Value) -> Value {
    fn snake(k: String) -> String {
        if !k.bytes().any(|b| b.is_ascii_uppercase()) {
            return k;
        }
        let mut out = String::with_capacity(k.len() + 4);
        for c in k.chars() {
            if c.is_ascii_uppercase() {
                out.push('_');
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }
    fn num(v: Value) -> Value {
        match v {
            Value::Number(n) => n
                .as_f64()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or(Value::Number(n)),
            Value::Array(a) => Value::Array(a.into_iter().map(num).collect()),
            Value::Object(m) => {
                Value::Object(m.into_iter().map(|(k, v)| (snake(k), num(v))).collect())
            }
            v => v,
        }
    }
    let mut v = num(v);
    if let Some(m) = v.as_object_mut() {
        m.remove("@type");
    }
    v
}

/// The comparison, istioctl's way.
pub fn diff(pod: &PodRef, pilot: &Value, envoy: &Value) -> (String, bool) {
    let p = pilot_resources(pilot);
    let e = envoy_resources(envoy);
    let mut out = String::new();
    let mut all_match = true;
    for (short, title) in [("cds", "Clusters"), ("lds", "Listeners"), ("rds", "Routes")] {
        let empty = BTreeMap::new();
        let want = p.get(short).unwrap_or(&empty);
        let have = e.get(short).unwrap_or(&empty);
        if want == have {
            let _ = writeln!(out, "{title} Match");
        } else {
            all_match = false;
            let _ = writeln!(out, "{title} Don't Match");
            let a = serde_json::to_string_pretty(want).unwrap_or_default();
            let b = serde_json::to_string_pretty(have).unwrap_or_default();
            out.push_str(&unified(
                &a,
                &b,
                &format!("Pilot {title}"),
                &format!("Envoy {title} ({})", pod.display()),
            ));
        }
    }
    (out, all_match)
}

/// A unified diff of two texts with 3 lines of context.
pub fn unified(a: &str, b: &str, from: &str, to: &str) -> String {
    let lines = diff::lines(a, b);
    let mut out = format!("--- {from}\n+++ {to}\n");
    // Positions of changes; print hunks with context.
    let changed: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !matches!(l, diff::Result::Both(..)))
        .map(|(i, _)| i)
        .collect();
    let mut i = 0;
    while i < changed.len() {
        let start = changed[i].saturating_sub(3);
        let mut end = changed[i] + 3;
        while i + 1 < changed.len() && changed[i + 1] <= end + 3 {
            i += 1;
            end = changed[i] + 3;
        }
        let end = end.min(lines.len() - 1);
        let (mut a_line, mut b_line) = (1, 1);
        for l in &lines[..start] {
            match l {
                diff::Result::Left(_) => a_line += 1,
                diff::Result::Right(_) => b_line += 1,
                diff::Result::Both(..) => {
                    a_line += 1;
                    b_line += 1;
                }
            }
        }
        let hunk = &lines[start..=end];
        let a_len = hunk
            .iter()
            .filter(|l| !matches!(l, diff::Result::Right(_)))
            .count();
        let b_len = hunk
            .iter()
            .filter(|l| !matches!(l, diff::Result::Left(_)))
            .count();
        let _ = writeln!(out, "@@ -{a_line},{a_len} +{b_line},{b_len} @@");
        for l in hunk {
            match l {
                diff::Result::Left(x) => {
                    let _ = writeln!(out, "-{x}");
                }
                diff::Result::Right(x) => {
                    let _ = writeln!(out, "+{x}");
                }
                diff::Result::Both(x, _) => {
                    let _ = writeln!(out, " {x}");
                }
            }
        }
        i += 1;
    }
    out
}

/// `rudder proxy-status [POD]`: the output.
pub fn run(endpoints: &Endpoints, pod: Option<&str>) -> Result<String> {
    match pod {
        None => Ok(render(endpoints, &endpoints.syncz()?)),
        Some(p) => {
            let pod = endpoints.find_pod(p)?;
            let pilot =
                endpoints.pilot_json(&format!("/debug/config_dump?proxyID={}", pod.proxy_id()))?;
            let envoy = endpoints.agent_json(&pod, "/config_dump")?;
            Ok(diff(&pod, &pilot, &envoy).0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_follow_istioctl() {
        assert_eq!(type_state(None), "NOT SENT");
        assert_eq!(type_state(Some(&json!({"last_sent": null}))), "NOT SENT");
        let sent = json!({"version": "v2", "nonce": "n2"});
        assert_eq!(
            type_state(Some(
                &json!({"last_sent": sent, "last_acked_version": "v2"})
            )),
            "SYNCED"
        );
        assert_eq!(
            type_state(Some(
                &json!({"last_sent": sent, "last_acked_version": "v1"})
            )),
            "STALE"
        );
        assert_eq!(
            type_state(Some(&json!({"last_sent": sent, "last_acked_version": "v1",
                "last_nack": {"nonce": "n2", "error": "bad"}}))),
            "STALE (NACK)"
        );
        // An old NACK, then a good push ACKed.
        assert_eq!(
            type_state(Some(&json!({"last_sent": sent, "last_acked_version": "v2",
                "last_nack": {"nonce": "n1", "error": "bad"}}))),
            "SYNCED"
        );
    }

    #[test]
    fn diff_compares_what_pilot_sends_with_what_envoy_holds() {
        let pod = crate::ctl::pod_of_node("sidecar~1.2.3.4~a.ns~x").unwrap();
        let pilot = json!({"resources": {
            "cds": {"c1": {"name": "c1", "connectTimeout": "1s", "weight": 1}},
            "lds": {"l1": {"name": "l1"}},
            "rds": {}}});
        let envoy = json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
             "dynamic_active_clusters": [{"cluster": {"@type": "x", "name": "c1", "connect_timeout": "1s", "weight": 1.0}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
             "dynamic_listeners": [{"active_state": {"listener": {"name": "l1", "extra": true}}}]},
        ]});
        let (text, ok) = diff(&pod, &pilot, &envoy);
        assert!(!ok);
        assert!(text.starts_with("Clusters Match\nListeners Don't Match\n--- Pilot Listeners\n+++ Envoy Listeners (ns/a)\n@@"), "{text}");
        assert!(text.contains("+    \"extra\": true,"), "{text}");
        assert!(text.ends_with("Routes Match\n"), "{text}");
    }
}
