//! `rudder proxy-config clusters|listeners|routes|endpoints|secret|bootstrap POD`:
//! istioctl's proxy-config, from the pod agent's read-only pass-throughs of
//! Envoy's admin (`/config_dump`, `/clusters`, `/certs` on 15020). The short
//! tables have istioctl's columns; `-o json|yaml` prints Envoy's own objects.

use anyhow::{bail, Result};
use serde_json::Value;

use crate::ctl::{table, Endpoints, PodRef};

/// What to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// Clusters (CDS and static).
    Clusters,
    /// Listeners (LDS and static).
    Listeners,
    /// Route configurations (RDS).
    Routes,
    /// Upstream hosts with health and outlier state.
    Endpoints,
    /// Certificates Envoy holds.
    Secret,
    /// Envoy's bootstrap.
    Bootstrap,
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// istioctl's table.
    Short,
    /// Envoy's objects as JSON.
    Json,
    /// Envoy's objects as YAML.
    Yaml,
}

/// The objects of one kind in a config dump.
fn dump_items(dump: &Value, ty: &str, lists: &[(&str, &[&str])]) -> Vec<Value> {
    let mut out = Vec::new();
    for c in dump["configs"].as_array().into_iter().flatten() {
        if !c["@type"].as_str().unwrap_or("").ends_with(ty) {
            continue;
        }
        for (list, path) in lists {
            for item in c[*list].as_array().into_iter().flatten() {
                let mut v = item;
                for p in *path {
                    v = &v[*p];
                }
                if !v.is_null() {
                    out.push(v.clone());
                }
            }
        }
    }
    out
}

/// Clusters, static then dynamic.
pub fn clusters(dump: &Value) -> Vec<Value> {
    dump_items(
        dump,
        "ClustersConfigDump",
        &[
            ("static_clusters", &["cluster"]),
            ("dynamic_active_clusters", &["cluster"]),
        ],
    )
}

/// Listeners, static then dynamic (active).
pub fn listeners(dump: &Value) -> Vec<Value> {
    dump_items(
        dump,
        "ListenersConfigDump",
        &[
            ("static_listeners", &["listener"]),
            ("dynamic_listeners", &["active_state", "listener"]),
        ],
    )
}

/// Route configurations, static then dynamic.
pub fn routes(dump: &Value) -> Vec<Value> {
    dump_items(
        dump,
        "RoutesConfigDump",
        &[
            ("static_route_configs", &["route_config"]),
            ("dynamic_route_configs", &["route_config"]),
        ],
    )
}

/// `name.namespace` from Istio's config metadata
/// (`/apis/networking.istio.io/v1/namespaces/NS/KIND/NAME`), else empty.
fn istio_config(meta: &Value) -> String {
    let Some(path) = meta["filter_metadata"]["istio"]["config"].as_str() else {
        return String::new();
    };
    let parts: Vec<&str> = path.split('/').collect();
    match parts.iter().position(|p| *p == "namespaces") {
        Some(i) if parts.len() > i + 3 => format!("{}.{}", parts[i + 3], parts[i + 1]),
        _ => path.to_string(),
    }
}

/// istioctl's clusters table.
pub fn clusters_table(items: &[Value]) -> String {
    let mut rows: Vec<Vec<String>> = items
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or("");
            let parts: Vec<&str> = name.split('|').collect();
            let (fqdn, port, subset, dir) = match parts.as_slice() {
                [dir @ ("inbound" | "outbound"), port, subset, fqdn] => (
                    fqdn.to_string(),
                    port.to_string(),
                    if subset.is_empty() { "-" } else { subset }.to_string(),
                    dir.to_string(),
                ),
                _ => (name.to_string(), "-".into(), "-".into(), "-".into()),
            };
            let ty = c["type"]
                .as_str()
                .or_else(|| c["cluster_type"]["name"].as_str())
                .unwrap_or("STATIC")
                .to_string();
            vec![fqdn, port, subset, dir, ty, istio_config(&c["metadata"])]
        })
        .collect();
    rows.sort();
    table(
        &[
            "SERVICE FQDN",
            "PORT",
            "SUBSET",
            "DIRECTION",
            "TYPE",
            "DESTINATION RULE",
        ],
        &rows,
        5,
    )
}

/// A filter chain's match, istioctl's way.
fn chain_match(m: &Value) -> String {
    let mut parts = Vec::new();
    let list = |v: &Value| {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(",")
    };
    if !m["server_names"].is_null() {
        parts.push(format!("SNI: {}", list(&m["server_names"])));
    }
    if let Some(t) = m["transport_protocol"].as_str() {
        parts.push(format!("Trans: {t}"));
    }
    if !m["application_protocols"].is_null() {
        parts.push(format!("App: {}", list(&m["application_protocols"])));
    }
    if let Some(ranges) = m["prefix_ranges"].as_array() {
        let r: Vec<String> = ranges
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["address_prefix"].as_str().unwrap_or(""),
                    r["prefix_len"].as_u64().unwrap_or(0)
                )
            })
            .collect();
        parts.push(format!("Addr: {}", r.join(",")));
    }
    if let Some(p) = m["destination_port"].as_u64() {
        parts.push(format!("Port: {p}"));
    }
    if parts.is_empty() {
        "ALL".into()
    } else {
        parts.join("; ")
    }
}

/// Where a filter chain sends traffic.
fn chain_destination(chain: &Value) -> String {
    for f in chain["filters"].as_array().into_iter().flatten() {
        let c = &f["typed_config"];
        if let Some(r) = c["rds"]["route_config_name"].as_str() {
            return format!("Route: {r}");
        }
        if !c["route_config"].is_null() {
            return "Inline Route".into();
        }
        if let Some(cl) = c["cluster"].as_str() {
            return format!("Cluster: {cl}");
        }
        if let Some(w) = c["weighted_clusters"]["clusters"].as_array() {
            let names: Vec<&str> = w.iter().filter_map(|x| x["name"].as_str()).collect();
            return format!("Clusters: {}", names.join(","));
        }
    }
    chain["filters"]
        .as_array()
        .and_then(|f| f.last())
        .and_then(|f| f["name"].as_str())
        .unwrap_or("")
        .to_string()
}

/// istioctl's listeners table: one row per filter chain.
pub fn listeners_table(items: &[Value]) -> String {
    let mut rows = Vec::new();
    for l in items {
        let sa = &l["address"]["socket_address"];
        let addr = sa["address"].as_str().unwrap_or("").to_string();
        let port = sa["port_value"].as_u64().unwrap_or(0).to_string();
        let chains = l["filter_chains"].as_array().cloned().unwrap_or_default();
        for c in &chains {
            rows.push(vec![
                addr.clone(),
                port.clone(),
                chain_match(&c["filter_chain_match"]),
                chain_destination(c),
            ]);
        }
        if !l["default_filter_chain"].is_null() {
            rows.push(vec![
                addr.clone(),
                port.clone(),
                "ALL (default)".into(),
                chain_destination(&l["default_filter_chain"]),
            ]);
        }
        if chains.is_empty() && l["default_filter_chain"].is_null() {
            rows.push(vec![addr, port, "ALL".into(), String::new()]);
        }
    }
    table(&["ADDRESSES", "PORT", "MATCH", "DESTINATION"], &rows, 5)
}

/// A route's match, istioctl's way (`/*` for a prefix).
fn route_match(m: &Value) -> String {
    if let Some(p) = m["prefix"].as_str() {
        return format!("{p}*").replace("//*", "/*");
    }
    if let Some(p) = m["path"].as_str() {
        return p.to_string();
    }
    if let Some(p) = m["path_separated_prefix"].as_str() {
        return format!("{p}/*");
    }
    if let Some(r) = m["safe_regex"]["regex"].as_str() {
        return r.to_string();
    }
    String::new()
}

/// istioctl's routes table: one row per route.
pub fn routes_table(items: &[Value]) -> String {
    let mut rows = Vec::new();
    for rc in items {
        let name = rc["name"].as_str().unwrap_or("").to_string();
        for vh in rc["virtual_hosts"].as_array().into_iter().flatten() {
            let vhost = vh["name"].as_str().unwrap_or("").to_string();
            let domains: Vec<&str> = vh["domains"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let domains = match domains.as_slice() {
                [] => String::new(),
                [one] => one.to_string(),
                [first, rest @ ..] => format!("{first} + {} more...", rest.len()),
            };
            for r in vh["routes"].as_array().into_iter().flatten() {
                rows.push(vec![
                    name.clone(),
                    vhost.clone(),
                    domains.clone(),
                    route_match(&r["match"]),
                    istio_config(&r["metadata"]),
                ]);
            }
        }
    }
    table(
        &["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"],
        &rows,
        5,
    )
}

/// istioctl's endpoints table from Envoy's `/clusters?format=json`.
pub fn endpoints_table(clusters: &Value) -> String {
    let mut rows = Vec::new();
    for c in clusters["cluster_statuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = c["name"].as_str().unwrap_or("");
        for h in c["host_statuses"].as_array().into_iter().flatten() {
            let sa = &h["address"]["socket_address"];
            let endpoint = match (sa["address"].as_str(), sa["port_value"].as_u64()) {
                (Some(a), Some(p)) => format!("{a}:{p}"),
                _ => h["address"]["pipe"]["path"]
                    .as_str()
                    .map(|p| format!("unix://{p}"))
                    .unwrap_or_else(|| "?".into()),
            };
            let hs = &h["health_status"];
            let status = hs["eds_health_status"]
                .as_str()
                .unwrap_or("HEALTHY")
                .to_string();
            let outlier = if hs["failed_outlier_check"].as_bool() == Some(true) {
                "FAILED"
            } else {
                "OK"
            };
            rows.push(vec![endpoint, status, outlier.into(), name.to_string()]);
        }
    }
    rows.sort_by(|a, b| (&a[3], &a[0]).cmp(&(&b[3], &b[0])));
    table(
        &["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"],
        &rows,
        5,
    )
}

/// A hex serial number in decimal, as istioctl prints serials.
pub fn hex_to_decimal(hex: &str) -> String {
    let mut digits: Vec<u8> = vec![0]; // little-endian base 10
    for c in hex.chars() {
        let Some(v) = c.to_digit(16) else {
            return hex.to_string();
        };
        let mut carry = v;
        for d in digits.iter_mut() {
            let x = u32::from(*d) * 16 + carry;
            *d = (x % 10) as u8;
            carry = x / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    digits.iter().rev().map(|d| (b'0' + d) as char).collect()
}

/// istioctl's secret table from Envoy's `/certs`.
pub fn secret_table(certs: &Value) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for c in certs["certificates"].as_array().into_iter().flatten() {
        for (list, ty, inline_name) in [
            ("cert_chain", "Cert Chain", "default"),
            ("ca_cert", "CA", "ROOTCA"),
        ] {
            for cert in c[list].as_array().into_iter().flatten() {
                let path = cert["path"].as_str().unwrap_or("");
                let name = if path.is_empty() || path == "<inline>" {
                    inline_name.to_string()
                } else {
                    path.to_string()
                };
                let days: i64 = cert["days_until_expiration"]
                    .as_str()
                    .and_then(|d| d.parse().ok())
                    .or_else(|| cert["days_until_expiration"].as_i64())
                    .unwrap_or(-1);
                let row = vec![
                    name,
                    ty.to_string(),
                    "ACTIVE".into(),
                    (days >= 0).to_string(),
                    hex_to_decimal(cert["serial_number"].as_str().unwrap_or("")),
                    cert["expiration_time"].as_str().unwrap_or("").to_string(),
                    cert["valid_from"].as_str().unwrap_or("").to_string(),
                ];
                if !rows.contains(&row) {
                    rows.push(row);
                }
            }
        }
    }
    table(
        &[
            "RESOURCE NAME",
            "TYPE",
            "STATUS",
            "VALID CERT",
            "SERIAL NUMBER",
            "NOT AFTER",
            "NOT BEFORE",
        ],
        &rows,
        5,
    )
}

/// A short-table renderer.
type ShortTable = fn(&[Value]) -> String;

fn print_value(v: &Value, output: Output) -> Result<String> {
    Ok(match output {
        Output::Yaml => serde_saphyr::to_string(v)?,
        _ => serde_json::to_string_pretty(v)? + "\n",
    })
}

/// `rudder proxy-config WHAT POD -o OUTPUT`: the output.
pub fn run(endpoints: &Endpoints, what: What, pod: &str, output: Output) -> Result<String> {
    let pod: PodRef = endpoints.find_pod(pod)?;
    match what {
        What::Endpoints => {
            let c = endpoints.agent_json(&pod, "/clusters")?;
            match output {
                Output::Short => Ok(endpoints_table(&c)),
                o => print_value(&c["cluster_statuses"], o),
            }
        }
        What::Secret => {
            let c = endpoints.agent_json(&pod, "/certs")?;
            match output {
                Output::Short => Ok(secret_table(&c)),
                o => print_value(&c, o),
            }
        }
        What::Bootstrap => {
            let dump = endpoints.agent_json(&pod, "/config_dump")?;
            let b = dump["configs"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| {
                    c["@type"]
                        .as_str()
                        .is_some_and(|t| t.ends_with("BootstrapConfigDump"))
                })
                .cloned();
            let Some(b) = b else {
                bail!("{}: Envoy's config dump has no bootstrap", pod.display());
            };
            print_value(
                &b,
                if output == Output::Short {
                    Output::Json
                } else {
                    output
                },
            )
        }
        _ => {
            let dump = endpoints.agent_json(&pod, "/config_dump")?;
            let (items, short): (Vec<Value>, ShortTable) = match what {
                What::Clusters => (clusters(&dump), clusters_table),
                What::Listeners => (listeners(&dump), listeners_table),
                _ => (routes(&dump), routes_table),
            };
            match output {
                Output::Short => Ok(short(&items)),
                o => print_value(&Value::Array(items), o),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cluster_names_split_into_istioctl_columns() {
        let t = clusters_table(&[
            json!({"name": "outbound|9080|v1|reviews.default.svc.cluster.local", "type": "EDS",
                   "metadata": {"filter_metadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews"}}}}),
            json!({"name": "BlackHoleCluster"}),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("SERVICE FQDN "), "{t}");
        assert!(lines[0].ends_with("TYPE       DESTINATION RULE"), "{t}");
        assert!(lines[1].starts_with("BlackHoleCluster "), "{t}");
        assert!(lines[1].ends_with("-             STATIC"), "{t}");
        assert!(
            lines[2].ends_with("9080     v1         outbound      EDS        reviews.default"),
            "{t}"
        );
    }

    #[test]
    fn listeners_routes_endpoints_and_secrets() {
        let l = listeners_table(&[
            json!({"address": {"socket_address": {"address": "0.0.0.0", "port_value": 9080}},
            "filter_chains": [{"filter_chain_match": {"transport_protocol": "raw_buffer", "application_protocols": ["http/1.1", "h2c"]},
                "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {"rds": {"route_config_name": "9080"}}}]}]}),
        ]);
        assert!(
            l.contains(
                "0.0.0.0       9080     Trans: raw_buffer; App: http/1.1,h2c     Route: 9080"
            ),
            "{l}"
        );
        let r = routes_table(&[
            json!({"name": "9080", "virtual_hosts": [{"name": "reviews:9080", "domains": ["reviews", "reviews.default"],
            "routes": [{"match": {"prefix": "/"}, "metadata": {"filter_metadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"}}}}]}]}),
        ]);
        assert!(
            r.contains(
                "9080     reviews:9080     reviews + 1 more...     /*        reviews.default"
            ),
            "{r}"
        );
        let e = endpoints_table(
            &json!({"cluster_statuses": [{"name": "outbound|9080||reviews.default.svc.cluster.local",
            "host_statuses": [{"address": {"socket_address": {"address": "198.18.0.5", "port_value": 9080}},
              "health_status": {"eds_health_status": "HEALTHY", "failed_outlier_check": true}}]}]}),
        );
        assert!(e.contains("198.18.0.5:9080     HEALTHY     FAILED"), "{e}");
        assert_eq!(hex_to_decimal("ff"), "255");
        assert_eq!(
            hex_to_decimal("0100000000000000000000"),
            "1208925819614629174706176"
        );
        let s = secret_table(
            &json!({"certificates": [{"cert_chain": [{"path": "<inline>", "serial_number": "ff",
            "days_until_expiration": "1", "valid_from": "2026-01-01T00:00:00Z", "expiration_time": "2026-01-02T00:00:00Z"}]}]}),
        );
        assert!(
            s.contains("default           Cert Chain     ACTIVE     true           255     "),
            "{s}"
        );
    }
}
