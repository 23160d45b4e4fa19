//! Debounced publishing and the directory source, over real files.

mod common;

use std::{sync::Arc, time::Duration};

use common::{mk_pod, mk_service};
use rudder_model::Snapshot;
use rudder_registry::{
    directory::DirectorySource, load::load_str, Registry, RegistryOptions, Sink,
};
use tokio::sync::watch;

const HOST: &str = "reviews.default.svc.cluster.local";

#[tokio::test(start_paused = true)]
async fn a_burst_of_config_applies_publishes_once() {
    let (registry, mut rx) = Registry::new(RegistryOptions::default());
    let h = registry.handle();
    rx.borrow_and_update();
    for i in 0..50 {
        for o in load_str(&mk_service(&format!("s{i}"), "http", 80, "80"), "f", "f").objects {
            h.apply(o);
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // 50 applies 30 ms apart (1.5 s): never 100 ms quiet, so max_delay (1 s) forces a publish mid-burst, then one after it.
    rx.changed().await.unwrap();
    let first = rx.borrow_and_update().services.len();
    assert!(
        first < 50 && first > 0,
        "the 1 s max delay published mid-burst ({first})"
    );
    rx.changed().await.unwrap();
    assert_eq!(rx.borrow_and_update().services.len(), 50);
    // Nothing else pending: no further publish.
    assert!(tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .is_err());
}

fn pod(i: usize) -> Vec<rudder_registry::Object> {
    load_str(
        &mk_pod(&format!("p{i}"), "a", "v1", &format!("10.0.3.{i}"), true),
        "pods.yaml",
        "pods.yaml",
    )
    .objects
}

fn service(i: usize) -> Vec<rudder_registry::Object> {
    load_str(
        &mk_service(&format!("s{i}"), "http", 80, "80"),
        "svc",
        "svc",
    )
    .objects
}

#[tokio::test(start_paused = true)]
async fn endpoint_changes_publish_on_their_own_clock() {
    let (registry, mut rx) = Registry::new(RegistryOptions::default());
    let h = registry.handle();
    rx.borrow_and_update();
    // A config change alone waits for 100 ms of quiet.
    let t = tokio::time::Instant::now();
    for o in service(0) {
        h.apply(o);
    }
    rx.changed().await.unwrap();
    assert_eq!(t.elapsed(), Duration::from_millis(100));
    rx.borrow_and_update();
    // A pod change alone is built 25 ms after it; pod changes within the
    // window merge into that one publish.
    let t = tokio::time::Instant::now();
    for o in pod(0) {
        h.apply(o);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    for o in pod(1) {
        h.apply(o);
    }
    rx.changed().await.unwrap();
    assert_eq!(t.elapsed(), Duration::from_millis(25));
    assert_eq!(rx.borrow_and_update().workloads.len(), 2);
    // Config changes that never go quiet (one every 35 ms) do not hold pod
    // changes back: each is published 25 ms after it, every time.
    for i in 2..30 {
        for o in service(i) {
            h.apply(o);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let t = tokio::time::Instant::now();
        for o in pod(i) {
            h.apply(o);
        }
        loop {
            rx.changed().await.unwrap();
            if rx.borrow_and_update().workloads.len() == i + 1 {
                break;
            }
        }
        assert_eq!(t.elapsed(), Duration::from_millis(25), "pod {i}");
    }
    // The config changes rode along with the endpoint builds: nothing is left.
    assert_eq!(rx.borrow().services.len(), 29);
    assert!(tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn builds_wait_for_the_consumer_to_take_the_last_snapshot() {
    let (registry, mut rx) = Registry::new(RegistryOptions::default());
    let h = registry.handle();
    let pacer = registry.pacer();
    // Until the consumer reports, nothing waits for it.
    let t = tokio::time::Instant::now();
    for o in pod(0) {
        h.apply(o);
    }
    rx.changed().await.unwrap();
    assert_eq!(t.elapsed(), Duration::from_millis(25));
    let first = rx.borrow_and_update().version.clone();
    // The consumer has taken an older snapshot: the next build waits for
    // it, and changes made meanwhile ride along.
    pacer.taken("older");
    let t = tokio::time::Instant::now();
    for o in pod(1) {
        h.apply(o);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for o in pod(2) {
        h.apply(o);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !rx.has_changed().unwrap(),
        "built before the consumer took {first}"
    );
    pacer.taken(&first);
    rx.changed().await.unwrap();
    assert_eq!(t.elapsed(), Duration::from_millis(200));
    assert_eq!(rx.borrow_and_update().workloads.len(), 3);
    // A consumer that never takes the last one holds a build back for
    // max_delay (1 s) at most.
    let t = tokio::time::Instant::now();
    for o in pod(3) {
        h.apply(o);
    }
    rx.changed().await.unwrap();
    assert_eq!(t.elapsed(), Duration::from_millis(25 + 1000));
    assert_eq!(rx.borrow_and_update().workloads.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_reset_of_a_pods_only_scope_is_an_endpoint_change() {
    let (registry, mut rx) = Registry::new(RegistryOptions::default());
    let h = registry.handle();
    rx.borrow_and_update();
    let batch = |objects| rudder_registry::Batch {
        objects,
        ..Default::default()
    };
    // A file of pods re-read (the directory source's way of saying "changed").
    let t = tokio::time::Instant::now();
    h.reset(
        "pods.yaml",
        batch(pod(0).into_iter().chain(pod(1)).collect()),
    );
    rx.changed().await.unwrap();
    assert_eq!(t.elapsed(), Duration::from_millis(25));
    // The file loses a pod: still endpoints only.
    let t = tokio::time::Instant::now();
    h.reset("pods.yaml", batch(pod(0)));
    rx.changed().await.unwrap();
    assert_eq!(t.elapsed(), Duration::from_millis(25));
    assert_eq!(rx.borrow_and_update().workloads.len(), 1);
    // A file that mixes in a Service is config: the config debounce applies.
    let t = tokio::time::Instant::now();
    h.reset(
        "pods.yaml",
        batch(pod(0).into_iter().chain(service(0)).collect()),
    );
    rx.changed().await.unwrap();
    assert_eq!(t.elapsed(), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn coalesces_quick_changes_into_one_publish_and_skips_unchanged_versions() {
    let (registry, mut rx) = Registry::new(RegistryOptions::default());
    let h = registry.handle();
    rx.borrow_and_update();
    for i in 0..50 {
        for o in load_str(
            &mk_pod(&format!("p{i}"), "a", "v1", &format!("10.0.2.{i}"), true),
            "f",
            "f",
        )
        .objects
        {
            h.apply(o);
        }
    }
    rx.changed().await.unwrap();
    assert_eq!(rx.borrow_and_update().workloads.len(), 50);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .is_err(),
        "one publish for the burst"
    );
    // Re-applying identical content rebuilds but does not publish.
    for o in load_str(&mk_pod("p0", "a", "v1", "10.0.2.0", true), "f", "f").objects {
        h.apply(o);
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .is_err(),
        "same version, no publish"
    );
}

async fn wait_for(
    rx: &mut watch::Receiver<Arc<Snapshot>>,
    what: &str,
    f: impl Fn(&Snapshot) -> bool,
) {
    let res = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if f(&rx.borrow_and_update()) {
                return;
            }
            rx.changed().await.unwrap();
        }
    })
    .await;
    assert!(res.is_ok(), "timed out waiting for: {what}");
}

fn timeout_of(s: &Snapshot) -> Option<Duration> {
    s.route_tables
        .first()
        .and_then(|t| t.http.first())
        .and_then(|r| r.timeout)
}

fn vs(timeout: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{{destination: {{host: reviews}}}}]\n    timeout: {timeout}\n")
}

#[tokio::test]
async fn directory_source_follows_writes_edits_renames_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("platform/pods")).unwrap();
    std::fs::write(
        root.join("platform/svc.yaml"),
        mk_service("reviews", "http", 9080, "9080"),
    )
    .unwrap();
    std::fs::write(
        root.join("platform/pods/reviews.yaml"),
        mk_pod("reviews-v1", "reviews", "v1", "10.0.9.1", true),
    )
    .unwrap();
    let opts = RegistryOptions {
        debounce: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        ..Default::default()
    };
    let (registry, mut rx) = Registry::new(opts);
    let source = DirectorySource::spawn(root.clone(), registry.handle()).unwrap();
    // The initial read is complete when spawn returns: a build right away
    // (no watch event, no debounce) holds every file, nested ones included.
    let s = registry.handle().flush().await.unwrap();
    assert!(
        s.services.contains_key(HOST),
        "platform/svc.yaml read before spawn returned"
    );
    assert!(
        s.workloads.contains_key("default/reviews-v1"),
        "platform/pods/reviews.yaml read before spawn returned: {:?}",
        s.workloads.keys().collect::<Vec<_>>()
    );

    // Write a new file.
    std::fs::write(root.join("vs.yaml"), vs("1s")).unwrap();
    wait_for(&mut rx, "new file", |s| {
        timeout_of(s) == Some(Duration::from_secs(1))
    })
    .await;
    // Edit it in place.
    std::fs::write(root.join("vs.yaml"), vs("2s")).unwrap();
    wait_for(&mut rx, "edit", |s| {
        timeout_of(s) == Some(Duration::from_secs(2))
    })
    .await;
    // Editor-style save: write a hidden temp file, rename over the original.
    std::fs::write(root.join(".vs.yaml.tmp"), vs("3s")).unwrap();
    std::fs::rename(root.join(".vs.yaml.tmp"), root.join("vs.yaml")).unwrap();
    wait_for(&mut rx, "atomic rename", |s| {
        timeout_of(s) == Some(Duration::from_secs(3))
    })
    .await;
    // A broken edit keeps the last good objects and reports the problem.
    std::fs::write(root.join("vs.yaml"), "spec: [\n").unwrap();
    let mut diags = registry.diagnostics();
    let res = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if diags
                .borrow_and_update()
                .iter()
                .any(|d| d.file.as_deref().is_some_and(|f| f.contains("vs.yaml")))
            {
                return;
            }
            diags.changed().await.unwrap();
        }
    })
    .await;
    assert!(res.is_ok(), "parse error reported");
    let d: Vec<String> = registry
        .diagnostics()
        .borrow()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        timeout_of(&rx.borrow()),
        Some(Duration::from_secs(3)),
        "last good objects stay: {d:?}"
    );
    // Delete: its objects go.
    std::fs::remove_file(root.join("vs.yaml")).unwrap();
    wait_for(&mut rx, "delete", |s| s.route_tables.is_empty()).await;
    // Removing a directory removes its files' objects.
    std::fs::remove_dir_all(root.join("platform")).unwrap();
    wait_for(&mut rx, "dir removed", |s| s.services.is_empty()).await;
    drop(source);
}

/// `pilot serve --config-dir`: an object Rudder does not serve is in the
/// registry's diagnostics (what `/debug/configz` lists and the log prints),
/// once, and goes with its file; the served objects of the file still serve.
#[tokio::test]
async fn directory_source_names_unsupported_objects_in_the_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: UDPRoute\nmetadata: {name: web, namespace: shop}\nspec: {}\n";
    std::fs::write(root.join("mixed.yaml"), format!("{}---\n{route}", vs("1s"))).unwrap();
    std::fs::write(
        root.join("svc.yaml"),
        mk_service("reviews", "http", 9080, "9080"),
    )
    .unwrap();
    let opts = RegistryOptions {
        debounce: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        ..Default::default()
    };
    let (registry, rx) = Registry::new(opts);
    let source = DirectorySource::spawn(root.clone(), registry.handle()).unwrap();
    registry.handle().flush().await.unwrap();
    assert_eq!(timeout_of(&rx.borrow()), Some(Duration::from_secs(1)));
    let lines = |r: &Registry| -> Vec<String> {
        r.diagnostics()
            .borrow()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let file = root.join("mixed.yaml").display().to_string();
    let want = vec![format!(
        "unsupported: {file}:10: UDPRoute shop/web: UDPRoute (gateway.networking.k8s.io/v1) is part of the Gateway API, which Rudder does not serve yet; it has no effect on traffic"
    )];
    assert_eq!(lines(&registry), want);
    // Re-reading the file (a touch, an unrelated edit) names it no second time.
    let before = registry.diagnostics().borrow().clone();
    std::fs::write(root.join("mixed.yaml"), format!("{}---\n{route}", vs("2s"))).unwrap();
    let mut snaps = rx.clone();
    wait_for(&mut snaps, "edit", |s| {
        timeout_of(s) == Some(Duration::from_secs(2))
    })
    .await;
    let after = registry.diagnostics().borrow().clone();
    assert_eq!(lines(&registry), want);
    assert!(
        rudder_registry::registry::newly_found(&before, &after).is_empty(),
        "nothing new to log"
    );
    // Removing the object from the file removes the line.
    std::fs::write(root.join("mixed.yaml"), vs("2s")).unwrap();
    let mut diags = registry.diagnostics();
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        while !diags.borrow_and_update().is_empty() {
            diags.changed().await.unwrap();
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "the line goes with the object: {:?}",
        lines(&registry)
    );
    drop(source);
}

/// A VirtualService for reviews sending `v1` percent to v1, the rest to v2.
fn reviews_split(v1: u32) -> Vec<rudder_registry::Object> {
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - {{destination: {{host: reviews, subset: v1}}, weight: {v1}}}\n    - {{destination: {{host: reviews, subset: v2}}, weight: {}}}\n",
        100 - v1
    );
    load_str(&yaml, "vs.yaml", "vs.yaml").objects
}

fn reviews_rule(subsets: &[&str]) -> Vec<rudder_registry::Object> {
    let subsets: String = subsets
        .iter()
        .map(|s| format!("  - {{name: {s}, labels: {{version: {s}}}}}\n"))
        .collect();
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  host: reviews\n  subsets:\n{subsets}"
    );
    load_str(&yaml, "dr.yaml", "dr.yaml").objects
}

#[tokio::test(start_paused = true)]
async fn a_route_edit_keeps_the_destination_rules_of_the_last_build() {
    let (registry, mut rx) = Registry::new(RegistryOptions::default());
    let h = registry.handle();
    let apply =
        |objects: Vec<rudder_registry::Object>| objects.into_iter().for_each(|o| h.apply(o));
    apply(load_str(&mk_service("reviews", "http", 9080, "9080"), "svc", "svc").objects);
    apply(reviews_rule(&["v1", "v2"]));
    apply(reviews_split(90));
    let first = h.flush().await.unwrap();
    // Another weight: the generators may keep what they built for each
    // policy (by address) and tell a change of routes alone.
    apply(reviews_split(80));
    let second = h.flush().await.unwrap();
    assert_ne!(second.config_version, first.config_version);
    assert_eq!(second.base_version, first.base_version);
    assert!(Arc::ptr_eq(
        &first.destination_rules,
        &second.destination_rules
    ));
    // A DestinationRule edit: new policies, a new base.
    apply(reviews_rule(&["v1", "v2", "v3"]));
    let third = h.flush().await.unwrap();
    assert!(!Arc::ptr_eq(
        &second.destination_rules,
        &third.destination_rules
    ));
    assert_ne!(third.base_version, second.base_version);
    rx.borrow_and_update();
}
