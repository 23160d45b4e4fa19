//! Status conditions on route rules, written by the Lease holder only.

mod support;

use std::time::Duration;

use rudder_kube::{KubeOptions, KubeRuntime, STATUS_LEASE};
use rudder_registry::{Registry, RegistryOptions};
use serde_json::{json, Value};
use support::{fake_api::FakeApi, namespace, pod, service, wait};

fn options(identity: &str) -> KubeOptions {
    KubeOptions {
        identity: identity.into(),
        lease_duration: Duration::from_secs(15),
        lease_renew: Duration::from_millis(200),
        status_resync: Duration::from_millis(200),
        ..KubeOptions::default()
    }
}

fn vs(weight: i64) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": "reviews", "namespace": "default", "generation": 1},
           "spec": {"hosts": ["reviews"], "http": [{"route": [
               {"destination": {"host": "reviews"}, "weight": weight},
               {"destination": {"host": "reviews"}, "weight": 50}]}]}})
}

fn valid(api: &FakeApi, kind: &str, name: &str) -> Option<Value> {
    let o = api.get("networking.istio.io/v1", kind, "default", name)?;
    o["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Valid")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rules_get_a_condition_naming_field_and_why_and_only_the_leader_writes() {
    let api = FakeApi::start().await;
    api.put(namespace("default"));
    api.put(service("reviews", "198.19.0.12"));
    api.put(pod("reviews-v1", "reviews", "198.18.0.12"));
    api.put(vs(-5));
    api.put(json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                   "metadata": {"name": "reviews", "namespace": "default", "generation": 3},
                   "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}}));

    let (registry, _snapshots) = Registry::new(RegistryOptions::default());
    let first = KubeRuntime::with_client(
        api.client(),
        registry.handle(),
        registry.diagnostics(),
        &options("pilot-a"),
    );
    tokio::time::timeout(Duration::from_secs(30), first.wait_synced())
        .await
        .expect("synced");
    registry.handle().flush().await.expect("build");

    wait("Valid=False on the VirtualService", || {
        valid(&api, "VirtualService", "reviews").is_some_and(|c| c["status"] == "False")
    })
    .await;
    let c = valid(&api, "VirtualService", "reviews").unwrap();
    assert_eq!(c["reason"], "Invalid");
    let message = c["message"].as_str().unwrap();
    assert!(
        message.contains("spec.http[0].route[0].weight") && message.contains("negative"),
        "{message}"
    );
    assert_eq!(c["observedGeneration"], 1);
    assert!(c["lastTransitionTime"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    wait("Valid=True on the DestinationRule", || {
        valid(&api, "DestinationRule", "reviews").is_some_and(|c| c["status"] == "True")
    })
    .await;
    assert_eq!(
        valid(&api, "DestinationRule", "reviews").unwrap()["observedGeneration"],
        3
    );

    let lease = api
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "rudder-system",
            STATUS_LEASE,
        )
        .expect("lease created");
    assert_eq!(lease["spec"]["holderIdentity"], "pilot-a");
    assert!(first.is_status_leader());

    // A second replica serves too, but does not write while the lease is held.
    let (registry_b, _s) = Registry::new(RegistryOptions::default());
    let second = KubeRuntime::with_client(
        api.client(),
        registry_b.handle(),
        registry_b.diagnostics(),
        &options("pilot-b"),
    );
    tokio::time::timeout(Duration::from_secs(30), second.wait_synced())
        .await
        .expect("second synced");
    // Several renew periods pass; pilot-a keeps the lease.
    let renewals = |api: &FakeApi| {
        api.writes()
            .iter()
            .filter(|w| w.starts_with("PUT") && w.contains("/leases/"))
            .count()
    };
    let seen = renewals(&api);
    wait("a few renewals", || renewals(&api) >= seen + 3).await;
    assert!(!second.is_status_leader());
    assert_eq!(
        api.get(
            "coordination.k8s.io/v1",
            "Lease",
            "rudder-system",
            STATUS_LEASE
        )
        .unwrap()["spec"]["holderIdentity"],
        "pilot-a"
    );

    // The fix flips the condition; converged status is not rewritten.
    api.put(vs(50));
    wait("Valid=True after the fix", || {
        valid(&api, "VirtualService", "reviews").is_some_and(|c| c["status"] == "True")
    })
    .await;
    let status_writes = |api: &FakeApi| {
        api.writes()
            .iter()
            .filter(|w| w.ends_with("/status"))
            .count()
    };
    let settled = status_writes(&api);
    let seen = renewals(&api);
    wait("more renewals", || renewals(&api) >= seen + 3).await;
    assert_eq!(
        status_writes(&api),
        settled,
        "nothing rewritten once converged: {:?}",
        api.writes()
    );

    // The leader goes away: the other replica takes over once the lease expires.
    drop(first);
    let mut lease = api
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "rudder-system",
            STATUS_LEASE,
        )
        .unwrap();
    lease["spec"]["renewTime"] = json!("2000-01-01T00:00:00.000000Z");
    api.put(lease);
    wait("pilot-b takes the lease", || second.is_status_leader()).await;
}
