//! Pure renderings of the files the runner writes: a pod's `/etc/hosts`, its
//! downward-API files, and the Namespace/Pod objects pilot reads.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::Ipv4Addr;

use rudder_model::well_known::DEFAULT_DOMAIN_SUFFIX;
use serde_json::{json, Value};

use crate::container::FieldRef;
use crate::plan::{PodPlan, ServicePlan};

/// What a running pod knows about itself (for downward-API values).
#[derive(Clone, Debug)]
pub struct PodFacts<'a> {
    /// The plan.
    pub plan: &'a PodPlan,
    /// Its IP.
    pub ip: Ipv4Addr,
    /// The node's (bridge host) address.
    pub host_ip: Ipv4Addr,
    /// The node name (the runner instance).
    pub node: &'a str,
}

/// Quotes like Go's `strconv.Quote` for the characters that matter in
/// downward-API files (`\`, `"`, newlines, tabs).
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A map in the downward API's file format: sorted `key="value"` lines.
pub fn downward_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}\n", quote(v)))
        .collect()
}

/// A field's value (as an env var or a downward-API file).
pub fn field_value(field: &FieldRef, facts: &PodFacts<'_>) -> String {
    let p = facts.plan;
    match field {
        FieldRef::Name => p.name.clone(),
        FieldRef::Namespace => p.namespace.clone(),
        FieldRef::Uid => pod_uid(p),
        FieldRef::PodIp => facts.ip.to_string(),
        FieldRef::HostIp => facts.host_ip.to_string(),
        FieldRef::ServiceAccount => p.service_account.clone(),
        FieldRef::NodeName => facts.node.to_string(),
        FieldRef::Labels => downward_map(&p.labels),
        FieldRef::Annotations => downward_map(&p.annotations),
        FieldRef::Label(k) => p.labels.get(k).cloned().unwrap_or_default(),
        FieldRef::Annotation(k) => p.annotations.get(k).cloned().unwrap_or_default(),
    }
}

/// A stable, UUID-shaped uid from namespace and name (no API server to mint one).
fn pod_uid(p: &PodPlan) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in p.namespace.bytes().chain([b'/']).chain(p.name.bytes()) {
        h = (h ^ u128::from(b)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    let x = format!("{h:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

/// The pod's `/etc/hosts`: localhost, the pod itself, then every Service VIP
/// under the names a cluster's DNS would answer from this namespace: the
/// short name (Services of the pod's own namespace only), `name.ns`,
/// `name.ns.svc` and the FQDN.
pub fn hosts_file(pod: &str, namespace: &str, ip: Ipv4Addr, services: &[ServicePlan]) -> String {
    let mut out = String::from("# Written by rudder mesh: Service names → ClusterIPs (VIPs).\n");
    out.push_str("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    let _ = writeln!(out, "{ip}\t{pod}");
    for s in services {
        let (name, ns) = (&s.def.name, &s.def.namespace);
        let _ = write!(
            out,
            "{}\t{name}.{ns}.svc.{DEFAULT_DOMAIN_SUFFIX} {name}.{ns}.svc {name}.{ns}",
            s.vip
        );
        if ns == namespace {
            let _ = write!(out, " {name}");
        }
        out.push('\n');
    }
    out
}

/// The Namespace object for pilot.
pub fn namespace_object(name: &str, labels: &BTreeMap<String, String>) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

/// The Pod object for pilot: the (injected) pod with its IP, phase and
/// Ready condition, as the API server would show it.
pub fn pod_object(facts: &PodFacts<'_>, running: bool, ready: bool) -> Value {
    let mut pod = facts.plan.pod.clone();
    pod["metadata"]["uid"] = json!(pod_uid(facts.plan));
    pod["spec"]["nodeName"] = json!(facts.node);
    let status = |b: bool| if b { "True" } else { "False" };
    pod["status"] = json!({
        "phase": if running { "Running" } else { "Pending" },
        "hostIP": facts.host_ip.to_string(),
        "podIP": facts.ip.to_string(),
        "podIPs": [{"ip": facts.ip.to_string()}],
        "conditions": [
            {"type": "Ready", "status": status(ready)},
            {"type": "ContainersReady", "status": status(ready)},
        ],
    });
    pod
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;
    use crate::plan::{local_values, plan};
    use pretty_assertions::assert_eq;

    fn mesh() -> crate::plan::MeshPlan {
        let yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio-injection: enabled}}\n---\n\
            apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n---\n\
            apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: data}\nspec: {selector: {app: db}, ports: [{port: 5432}]}\n---\n\
            apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  template:\n    metadata: {labels: {app: web, note: 'say \"hi\"'}}\n    spec: {containers: [{name: c, command: [x]}]}\n";
        let mut m = Manifest::default();
        m.add_text("t.yaml", yaml).unwrap();
        plan(
            &m,
            "198.19.0.0/16".parse().unwrap(),
            &local_values(Ipv4Addr::new(198, 18, 0, 1)),
        )
        .unwrap()
    }

    #[test]
    fn hosts_file_maps_service_names_to_vips() {
        let mesh = mesh();
        let text = hosts_file(
            "web-0",
            "shop",
            Ipv4Addr::new(198, 18, 0, 2),
            &mesh.services,
        );
        let expected = "# Written by rudder mesh: Service names → ClusterIPs (VIPs).\n\
            127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
            198.18.0.2\tweb-0\n\
            198.19.0.10\tdb.data.svc.cluster.local db.data.svc db.data\n\
            198.19.0.11\tweb.shop.svc.cluster.local web.shop.svc web.shop web\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn downward_api_files_and_pod_status() {
        let mesh = mesh();
        let facts = PodFacts {
            plan: &mesh.pods[0],
            ip: Ipv4Addr::new(198, 18, 0, 2),
            host_ip: Ipv4Addr::new(198, 18, 0, 1),
            node: "demo",
        };
        assert_eq!(
            field_value(&FieldRef::Labels, &facts),
            "app=\"web\"\nnote=\"say \\\"hi\\\"\"\nsecurity.istio.io/tlsMode=\"istio\"\n"
        );
        assert_eq!(field_value(&FieldRef::PodIp, &facts), "198.18.0.2");
        assert_eq!(field_value(&FieldRef::Label("app".into()), &facts), "web");
        let uid = field_value(&FieldRef::Uid, &facts);
        assert_eq!((uid.len(), uid.matches('-').count()), (36, 4));
        let pod = pod_object(&facts, true, false);
        assert_eq!(pod["status"]["podIP"], "198.18.0.2");
        assert_eq!(pod["status"]["phase"], "Running");
        assert_eq!(
            pod["status"]["conditions"][0],
            json!({"type": "Ready", "status": "False"})
        );
        assert_eq!(pod["metadata"]["namespace"], "shop");
        assert_eq!(
            pod_object(&facts, true, true)["status"]["conditions"][0]["status"],
            "True"
        );
    }
}
