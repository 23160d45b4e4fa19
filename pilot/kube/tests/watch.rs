//! The Kubernetes source against the fake API server: initial list, watch
//! events, an expired watch (410 Gone) forcing a re-list, a dropped
//! connection, and readiness waiting for every kind.

mod support;

use std::sync::{Arc, Mutex};

use rudder_kube::{scope_of, KubeOptions, KubeSource, WATCHED_KINDS};
use rudder_registry::{Body, Kind, Registry, RegistryOptions};
use support::{fake_api::FakeApi, namespace, pod, pod_key, service, wait, Call, Recorder};

const PODS: &str = "/api/v1/pods";

async fn started(api: &FakeApi, sink: Recorder) -> KubeSource {
    let source = KubeSource::spawn(api.client(), &KubeOptions::default(), sink);
    tokio::time::timeout(std::time::Duration::from_secs(30), source.wait_synced())
        .await
        .expect("initial sync");
    source
}

fn seed(api: &FakeApi) {
    api.put(namespace("default"));
    api.put(service("reviews", "198.19.0.12"));
    api.put(pod("reviews-v1", "reviews", "198.18.0.12"));
    api.put(pod("reviews-v2", "reviews", "198.18.0.13"));
}

fn pod_ip(r: &Recorder, name: &str) -> Option<String> {
    match r.get(&pod_key(name))?.body {
        Body::Pod(p) => p.status.pod_ip,
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_list_is_one_reset_per_kind_with_trimmed_objects() {
    let api = FakeApi::start().await;
    seed(&api);
    let rec = Recorder::default();
    let source = started(&api, rec.clone()).await;
    assert!(source.initial_sync());

    let calls = rec.calls();
    let resets: Vec<&String> = calls
        .iter()
        .filter_map(|c| {
            if let Call::Reset(s, _) = c {
                Some(s)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        resets.len(),
        WATCHED_KINDS.len(),
        "one reset per kind: {calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Apply(_) | Call::Delete(_))),
        "a list is never applied object by object: {calls:?}"
    );
    assert!(calls.contains(&Call::Reset(
        scope_of(Kind::Pod),
        vec![pod_key("reviews-v1"), pod_key("reviews-v2")]
    )));

    let p = rec.get(&pod_key("reviews-v1")).expect("pod stored");
    assert!(
        p.meta.annotations.is_empty(),
        "non-mesh annotations are dropped: {:?}",
        p.meta.annotations
    );
    assert_eq!(
        p.meta.resource_version.as_deref().map(|v| !v.is_empty()),
        Some(true)
    );
    assert_eq!(pod_ip(&rec, "reviews-v2").as_deref(), Some("198.18.0.13"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_add_update_and_delete() {
    let api = FakeApi::start().await;
    seed(&api);
    let rec = Recorder::default();
    let _source = started(&api, rec.clone()).await;

    api.put(pod("reviews-v3", "reviews", "198.18.0.14"));
    rec.wait_for("reviews-v3 added", |_, s| {
        s.get(&pod_key("reviews-v3")).is_some()
    })
    .await;
    api.put(pod("reviews-v3", "reviews", "198.18.0.24"));
    wait("reviews-v3 moved", || {
        pod_ip(&rec, "reviews-v3").as_deref() == Some("198.18.0.24")
    })
    .await;
    api.delete("v1", "Pod", "default", "reviews-v1");
    rec.wait_for("reviews-v1 deleted", |_, s| {
        s.get(&pod_key("reviews-v1")).is_none()
    })
    .await;

    let calls = rec.calls();
    let applies = calls
        .iter()
        .filter(|c| **c == Call::Apply(pod_key("reviews-v3")))
        .count();
    assert_eq!(applies, 2, "ADDED and MODIFIED each apply once: {calls:?}");
    assert!(calls.contains(&Call::Delete(pod_key("reviews-v1"))));
    assert_eq!(api.lists(PODS), 1, "watch events need no re-list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_watch_relists_and_replaces_atomically_with_one_publish() {
    let api = FakeApi::start().await;
    seed(&api);
    let (registry, mut snapshots) = Registry::new(RegistryOptions::default());
    let rec = Recorder::forwarding(registry.handle());
    let _source = started(&api, rec.clone()).await;
    registry.handle().flush().await.expect("first build");
    let before = snapshots.borrow_and_update().clone();
    assert!(before
        .workload_by_ip(&"198.18.0.13".parse().unwrap())
        .is_some());

    // Record every publish from here on.
    let published = Arc::new(Mutex::new(Vec::new()));
    let log = published.clone();
    let mut rx = snapshots.clone();
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let v = rx.borrow_and_update().version.clone();
            log.lock().unwrap().push(v);
        }
    });

    // While the client is not looking: reviews-v2 goes, then history is compacted.
    let calls_before = rec.calls().len();
    api.remove_silently("v1", "Pod", "default", "reviews-v2");
    api.expire();
    rec.wait_for("pods re-listed", |calls, _| {
        calls[calls_before..]
            .iter()
            .any(|c| matches!(c, Call::Reset(s, _) if *s == scope_of(Kind::Pod)))
    })
    .await;
    assert!(api.lists(PODS) >= 2, "410 Gone forces a re-list");
    assert!(
        rec.get(&pod_key("reviews-v2")).is_none(),
        "stale object gone after the re-list"
    );
    assert!(rec.get(&pod_key("reviews-v1")).is_some());

    let after: Vec<Call> = rec.calls()[calls_before..].to_vec();
    let pod_calls: Vec<&Call> = after
        .iter()
        .filter(|c| match c {
            Call::Reset(s, _) => *s == scope_of(Kind::Pod),
            Call::Apply(k) | Call::Delete(k) | Call::Reject(k) => k.kind == Kind::Pod,
            Call::Report(_) => false,
        })
        .collect();
    assert_eq!(
        pod_calls,
        vec![&Call::Reset(
            scope_of(Kind::Pod),
            vec![pod_key("reviews-v1")]
        )],
        "one atomic reset, nothing else"
    );

    // Every kind re-lists (they all saw 410); only the pod change publishes.
    wait("all kinds re-listed", || {
        let calls = rec.calls();
        calls[calls_before..]
            .iter()
            .filter(|c| matches!(c, Call::Reset(..)))
            .count()
            >= WATCHED_KINDS.len()
    })
    .await;
    let last = registry.handle().flush().await.expect("build");
    assert!(last
        .workload_by_ip(&"198.18.0.13".parse().unwrap())
        .is_none());
    let versions = published.lock().unwrap().clone();
    assert_eq!(
        versions,
        vec![last.version.clone()],
        "the re-list published exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_resumes_by_itself() {
    let api = FakeApi::start().await;
    seed(&api);
    let rec = Recorder::default();
    let _source = started(&api, rec.clone()).await;

    api.drop_watches();
    api.put(pod("reviews-v4", "reviews", "198.18.0.15"));
    rec.wait_for("reviews-v4 after reconnect", |_, s| {
        s.get(&pod_key("reviews-v4")).is_some()
    })
    .await;
    api.drop_watches();
    api.delete("v1", "Pod", "default", "reviews-v4");
    rec.wait_for("reviews-v4 deleted after reconnect", |_, s| {
        s.get(&pod_key("reviews-v4")).is_none()
    })
    .await;
    assert_eq!(
        api.lists(PODS),
        1,
        "a clean disconnect resumes from the last resourceVersion without a re-list"
    );
    assert!(rec.calls().contains(&Call::Apply(pod_key("reviews-v4"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_synced_until_every_kind_listed() {
    let api = FakeApi::start().await;
    seed(&api);
    api.set_missing("/apis/config.istio.io/v1alpha2/routerules", true);
    let rec = Recorder::default();
    let source = KubeSource::spawn(api.client(), &KubeOptions::default(), rec.clone());
    rec.wait_for("pods listed", |calls, _| {
        calls
            .iter()
            .any(|c| matches!(c, Call::Reset(s, _) if *s == scope_of(Kind::Pod)))
    })
    .await;
    wait("the other kinds listed", || {
        rec.calls()
            .iter()
            .filter(|c| matches!(c, Call::Reset(..)))
            .count()
            == WATCHED_KINDS.len() - 1
    })
    .await;
    assert!(!source.initial_sync(), "one kind still missing: not ready");

    api.set_missing("/apis/config.istio.io/v1alpha2/routerules", false);
    tokio::time::timeout(std::time::Duration::from_secs(60), source.wait_synced())
        .await
        .expect("synced once the CRD is there");
    assert!(source.initial_sync());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rule_is_rejected_and_others_still_served() {
    let api = FakeApi::start().await;
    seed(&api);
    api.put(serde_json::json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default", "generation": 1},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}, "weight": "lots"}]}]}}));
    let rec = Recorder::default();
    let _source = started(&api, rec.clone()).await;
    let d = rec.diagnostics();
    assert!(
        d.iter()
            .any(|d| d.object == "VirtualService default/reviews"
                && d.field.starts_with("spec.http[0].route[0]")),
        "{d:?}"
    );
    assert!(rec.get(&pod_key("reviews-v1")).is_some());
}
