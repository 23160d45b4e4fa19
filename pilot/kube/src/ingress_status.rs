//! Ingress status: `kubectl get ingress` shows the ingress gateway's
//! address, as Istio's ingress status syncer writes it.
//!
//! ```text
//!  Service rudder-ingressgateway (install namespace) ─► addresses:
//!     status.loadBalancer.ingress (ip | hostname) + spec.externalIPs; none: its clusterIPs
//!  Ingresses Rudder serves (class istio|rudder, IngressClass controller, or none)
//!     ─► PATCH …/ingresses/NAME/status {loadBalancer: {ingress: [...]}}  (only what differs)
//!  Lease rudder-pilot-status (lease.rs): only the holder writes
//! ```
//!
//! Level-based like `status.rs`: every tick (and on a change of
//! leadership) the holder lists the gateway Service, the Ingresses and
//! IngressClasses and writes where the cluster differs; a failure is
//! logged and retried on the next tick.

use std::{collections::BTreeMap, time::Duration};

use kube::{
    api::{ListParams, Patch, PatchParams},
    core::DynamicObject,
    Api, Client,
};
use rudder_config::kube as k;
use rudder_registry::{compile::ingress::served, Kind};
use serde_json::{json, Value};
use tokio::{sync::watch, task::JoinHandle};

use crate::resources::api_resource;

/// The ingress gateway Service whose address Ingresses show (Settled
/// details: `rudder-ingressgateway` in the install namespace).
pub const INGRESS_GATEWAY_SERVICE: &str = "rudder-ingressgateway";

/// The `status.loadBalancer.ingress` entries for the gateway Service `svc`
/// (its JSON as the API server sends it), sorted: the load balancer's IPs
/// and hostnames and the Service's external IPs; when it has none (no load
/// balancer yet, a ClusterIP Service) its cluster IPs, as Istio falls back.
pub fn gateway_addresses(svc: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    if let Some(lb) = svc["status"]["loadBalancer"]["ingress"].as_array() {
        for e in lb {
            if let Some(ip) = e["ip"].as_str() {
                out.push(json!({ "ip": ip }));
            } else if let Some(h) = e["hostname"].as_str() {
                out.push(json!({ "hostname": h }));
            }
        }
    }
    for ip in strings(&svc["spec"]["externalIPs"]) {
        out.push(json!({ "ip": ip }));
    }
    if out.is_empty() {
        let mut ips = strings(&svc["spec"]["clusterIPs"]);
        if ips.is_empty() {
            ips.extend(svc["spec"]["clusterIP"].as_str().map(String::from));
        }
        out.extend(
            ips.into_iter()
                .filter(|ip| ip != "None")
                .map(|ip| json!({ "ip": ip })),
        );
    }
    out.sort_by_key(|v| v.to_string());
    out.dedup();
    out
}

/// Starts the Ingress status writer: it writes while `leader` is true.
pub fn spawn(
    client: Client,
    install_namespace: String,
    resync: Duration,
    leader: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(run(client, install_namespace, resync, leader))
}

async fn run(
    client: Client,
    namespace: String,
    resync: Duration,
    mut leader: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(resync);
    loop {
        tokio::select! {
            r = leader.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        if *leader.borrow_and_update() {
            if let Err(error) = reconcile(&client, &namespace).await {
                tracing::warn!(%error, "cannot write Ingress status; retrying later");
            }
        }
    }
}

async fn reconcile(client: &Client, namespace: &str) -> Result<(), kube::Error> {
    let services: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &api_resource(Kind::Service));
    let by_name = ListParams::default().fields(&format!("metadata.name={INGRESS_GATEWAY_SERVICE}"));
    let Some(svc) = services.list(&by_name).await?.items.into_iter().next() else {
        return Ok(());
    };
    let want = gateway_addresses(&serde_json::to_value(&svc).unwrap_or_default());
    let classes: Api<DynamicObject> =
        Api::all_with(client.clone(), &api_resource(Kind::IngressClass));
    let classes: BTreeMap<String, k::IngressClass> = classes
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|o| {
            serde_json::from_value::<k::IngressClass>(serde_json::to_value(o).ok()?).ok()
        })
        .map(|c| (c.metadata.name.clone().unwrap_or_default(), c))
        .collect();
    let ar = api_resource(Kind::Ingress);
    let ingresses: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    for o in ingresses.list(&ListParams::default()).await?.items {
        let value = serde_json::to_value(&o).unwrap_or_default();
        let Ok(ingress) = serde_json::from_value::<k::Ingress>(value.clone()) else {
            continue;
        };
        if served(&ingress, &classes).is_err() {
            continue;
        }
        let shown = value["status"]["loadBalancer"]["ingress"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if shown == want {
            continue;
        }
        let (Some(name), Some(ns)) = (ingress.metadata.name, ingress.metadata.namespace) else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
        let body = json!({ "status": { "loadBalancer": { "ingress": want } } });
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
        tracing::info!(ingress = %format!("{ns}/{name}"), addresses = %json!(want), "Ingress status written");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_balancer_then_external_ips_else_cluster_ips() {
        let lb = json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.5", "externalIPs": ["192.0.2.9"]},
                        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"}]}}});
        assert_eq!(
            gateway_addresses(&lb),
            vec![
                json!({"hostname": "lb.example.com"}),
                json!({"ip": "192.0.2.9"}),
                json!({"ip": "203.0.113.7"})
            ]
        );
        let pending = json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5", "fd00::5"]}});
        assert_eq!(
            gateway_addresses(&pending),
            vec![json!({"ip": "10.0.0.5"}), json!({"ip": "fd00::5"})]
        );
        assert!(gateway_addresses(&json!({"spec": {"clusterIP": "None"}})).is_empty());
    }
}
