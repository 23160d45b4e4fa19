//! End to end with real Envoy: pilot (a child process serving a directory)
//! drives a captured sidecar in a network namespace, and real HTTP traffic
//! shows the route rules at work. See `support/mesh.rs` for the layout.
//!
//! One scenario, run once over Delta ADS and once over SotW:
//! 1. a 99/1 v1/v3 split over 2000 requests lands within 5-sigma binomial
//!    bounds, every request succeeding;
//! 2. editing the rule file to 50/50 changes the split, same Envoy process;
//! 3. a rule our validation accepts but Envoy rejects (a header regex whose
//!    RE2 program is larger than Envoy's default limit of 100) is NACKed:
//!    traffic keeps the previous split, `/debug/syncz` shows the NACK for this
//!    proxy and `/metrics` counts the reject;
//! 4. `end-user: jason` goes to v2, everyone else to v1;
//! 5. pilot SIGKILLed and restarted under a load loop loses no request, and
//!    a rule change after the restart still reaches Envoy;
//! 6. a DestinationRule for reviews exported to `.` in another namespace
//!    (other subsets, TLS to plaintext pods) leaves this namespace's
//!    traffic untouched: Istio never merges rules across namespaces.
//!
//! Needs root, iptables and Envoy ($ENVOY_BIN, default /opt/rudder/bin/envoy):
//! skipped with a message without them, failed under CI=true.

mod support;

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use rudder_agent::XdsMode;
use rudder_harness::LoadReport;
use support::{
    mesh::{prerequisites, write_config, Mesh},
    pilot::{metric, settled_rds_version, type_status},
    stats::binomial_bounds,
};

/// A VirtualService splitting reviews by subset weight.
fn split(weights: &[(&str, u32)]) -> String {
    let mut s = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
"
    .to_string();
    for (subset, w) in weights {
        s.push_str(&format!(
            "    - {{destination: {{host: reviews, subset: {subset}}}, weight: {w}}}\n"
        ));
    }
    s
}

const JASON: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
";

/// All to v1, beside a DestinationRule for reviews in another namespace,
/// exported to that namespace only. Were it used here (merged, or looked up
/// first), v1 would name v3's pods and TLS would meet plaintext pods: 503s.
const OTHER_NAMESPACE_RULE: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-private, namespace: other}
spec:
  host: reviews.default.svc.cluster.local
  exportTo: [\".\"]
  trafficPolicy: {tls: {mode: SIMPLE}}
  subsets:
  - {name: v1, labels: {version: v3}}
";

/// Valid Istio (and RE2 syntax), but `[0-9]{200}` compiles to an RE2 program
/// of about 200 instructions, over Envoy's default error threshold of 100
/// (`re2.max_program_size.error_level`): Envoy rejects the route table. Were
/// it applied, everyone would go to v2.
const TOO_BIG_REGEX: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {regex: \"^jason[0-9]{200}$\"}
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v2}}]
";

/// Asserts every request succeeded and each `reviews-<subset>` got a count
/// within the binomial bounds of its weight (others: none); prints the counts.
fn assert_split(label: &str, report: &LoadReport, weights: &[(&str, u32)]) {
    let n = report.outcomes.len() as u64;
    let failures = report.failures();
    assert!(
        failures.is_empty(),
        "{label}: {} of {n} requests failed, first: {:?}",
        failures.len(),
        failures[0]
    );
    let got = report.by_body();
    let total: u32 = weights.iter().map(|w| w.1).sum();
    let mut line = format!(
        "{label}: {n} requests over {} connection(s):",
        report.connections
    );
    for (subset, w) in weights {
        let body = format!("reviews-{subset}");
        let count = got.get(&body).copied().unwrap_or(0) as u64;
        let (lo, hi) = binomial_bounds(n, f64::from(*w) / f64::from(total));
        line.push_str(&format!(" {body}={count} (bounds {lo}..={hi})"));
        assert!(
            (lo..=hi).contains(&count),
            "{label}: {body} got {count} of {n}, outside {lo}..={hi}; all: {got:?}"
        );
    }
    println!("{line}");
    let unexpected: BTreeMap<_, _> = got
        .iter()
        .filter(|(b, _)| !weights.iter().any(|(s, _)| **b == format!("reviews-{s}")))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{label}: responses from outside the rule: {unexpected:?}"
    );
}

/// The rule is accepted by the same validation `pilot validate` runs.
fn assert_valid_for_pilot(rule: &str) {
    let loaded = rudder_registry::load::load_str(rule, "rule.yaml", "rule.yaml");
    let report = rudder_registry::validate::validate_loaded(vec![loaded], vec![]);
    assert!(
        !report.has_errors(),
        "pilot's validation rejects the rule: {:?}",
        report.lines()
    );
}

fn scenario(test: &str, mode: XdsMode) {
    let Some((proxy_init, pilot_bin)) = prerequisites(test) else {
        return;
    };
    let started = Instant::now();
    let split_99_1 = [("v1", 99), ("v3", 1)];
    let split_50_50 = [("v1", 50), ("v3", 50)];
    let mut mesh = Mesh::start(test, mode, &proxy_init, &pilot_bin, &split(&split_99_1));
    let envoy_pid = mesh.envoy.process().pid();

    // 1. 99/1 over 2000 requests; the echo servers agree with the responses.
    let before: u64 = mesh.echo_counts().iter().sum();
    let report = mesh.load(mesh.request(), 2000);
    assert_split(&format!("{test} 99/1"), &report, &split_99_1);
    assert_eq!(
        mesh.echo_counts().iter().sum::<u64>() - before,
        2000,
        "upstreams served every request once"
    );
    assert!(
        report.outcomes[0]
            .header("x-envoy-upstream-service-time")
            .is_some(),
        "not served through Envoy"
    );

    // 2. Edit the file: 50/50, the same Envoy process, no restart.
    let v_50 = mesh.set_rule(&split(&split_50_50));
    let report = mesh.load(mesh.request(), 2000);
    assert_split(&format!("{test} 50/50 after edit"), &report, &split_50_50);
    assert_eq!(mesh.envoy.process().pid(), envoy_pid, "Envoy was restarted");
    assert!(mesh.envoy.process().try_wait().is_none(), "Envoy exited");

    // 3. A rule Envoy rejects: NACKed, shown in syncz and metrics, traffic unchanged.
    assert_valid_for_pilot(TOO_BIG_REGEX);
    let rejects = |m: &str| metric(m, "pilot_total_xds_rejects{type=\"rds\"}");
    let rejects_before = rejects(&mesh.pilot.metrics());
    write_config(mesh.config_dir.path(), "rules.yaml", TOO_BIG_REGEX);
    let node = mesh.node_id.clone();
    let nack = mesh
        .pilot
        .wait_for(
            "an RDS NACK in /debug/syncz",
            Duration::from_secs(20),
            |p| {
                let rds = type_status(&p.syncz(), &node, "rds")?;
                let nacked = rds["last_nack"]["nonce"].is_string()
                    && rds["last_nack"]["nonce"] == rds["last_sent"]["nonce"];
                nacked.then_some(rds)
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let error = nack["last_nack"]["error"].as_str().unwrap_or_default();
    println!("{test}: Envoy NACKed RDS: {error}");
    assert!(
        error.contains("program size"),
        "unexpected NACK reason: {nack}"
    );
    assert_eq!(
        nack["last_acked_version"].as_str(),
        Some(v_50.as_str()),
        "Envoy keeps the 50/50 routes: {nack}"
    );
    let rejects_after = rejects(&mesh.pilot.metrics());
    assert!(
        rejects_after > rejects_before,
        "pilot_total_xds_rejects{{type=\"rds\"}} {rejects_before} → {rejects_after}"
    );
    let report = mesh.load(mesh.request(), 400);
    assert_split(
        &format!("{test} 50/50 kept after NACK"),
        &report,
        &split_50_50,
    );

    // 4. end-user: jason → v2, others → v1.
    mesh.set_rule(JASON);
    let jason = mesh.load(mesh.request().header("end-user", "jason"), 200);
    assert_split(&format!("{test} jason"), &jason, &[("v2", 1)]);
    assert!(
        jason
            .outcomes
            .iter()
            .all(|o| o.header("x-echo-end-user") == Some("jason")),
        "header not passed on"
    );
    let others = mesh.load(mesh.request().header("end-user", "mike"), 200);
    assert_split(&format!("{test} not jason"), &others, &[("v1", 1)]);

    // 5. SIGKILL pilot under load, restart it: no request lost.
    kill_and_restart_pilot_under_load(test, &mut mesh);
    mesh.set_rule(&split(&[("v3", 1)]));
    let report = mesh.load(mesh.request(), 200);
    assert_split(
        &format!("{test} all-v3 after pilot restart"),
        &report,
        &[("v3", 1)],
    );
    assert_eq!(mesh.envoy.process().pid(), envoy_pid, "Envoy was restarted");

    // 6. Another namespace's private DestinationRule changes nothing here.
    assert_valid_for_pilot(OTHER_NAMESPACE_RULE);
    mesh.set_rule(OTHER_NAMESPACE_RULE);
    let report = mesh.load(mesh.request(), 200);
    assert_split(
        &format!("{test} another namespace's private rule"),
        &report,
        &[("v1", 1)],
    );
    println!(
        "{test}: scenario took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A load loop (batches of 50 keep-alive requests) runs while pilot is
/// killed, stays down for at least 3 batches, and comes back; Envoy must
/// reconnect to the new pilot.
fn kill_and_restart_pilot_under_load(test: &str, mesh: &mut Mesh) {
    const BATCH: usize = 50;
    const MAX_BATCHES: usize = 400;
    let client = mesh.client.clone();
    let request = mesh.request();
    let stop = AtomicBool::new(false);
    let batches = AtomicUsize::new(0);
    let wait_batches = |n: usize, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while batches.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "{test}: load loop stalled waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let old_pid = mesh.pilot.pid();
    let node = mesh.node_id.clone();
    let rds_before =
        settled_rds_version(&mesh.pilot.syncz(), &node).expect("RDS settled before the kill");
    let (reports, down_batches) = std::thread::scope(|s| {
        let looper = s.spawn(|| {
            let mut reports = Vec::new();
            for _ in 0..MAX_BATCHES {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let spec = rudder_harness::LoadSpec {
                    timeout: Duration::from_secs(30),
                    ..rudder_harness::LoadSpec::new(request.clone(), BATCH)
                };
                reports.push(client.http_load(&spec).expect("load loop"));
                batches.fetch_add(1, Ordering::SeqCst);
            }
            reports
        });
        wait_batches(2, "the first batches");
        mesh.pilot.kill();
        let at_kill = batches.load(Ordering::SeqCst);
        wait_batches(at_kill + 3, "batches while pilot is down");
        let down = batches.load(Ordering::SeqCst) - at_kill;
        mesh.pilot.restart().expect("restart pilot");
        mesh.pilot
            .wait_ready(Duration::from_secs(30))
            .expect("pilot ready again");
        // Reconnected means the new pilot sent the whole config again and
        // Envoy ACKed it: the same routes, so the same content version.
        let rds_after = mesh
            .pilot
            .wait_for(
                "Envoy to reconnect and ACK the new pilot's routes",
                Duration::from_secs(30),
                |p| settled_rds_version(&p.syncz(), &node),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            rds_after, rds_before,
            "the restarted pilot serves other routes"
        );
        let at_reconnect = batches.load(Ordering::SeqCst);
        wait_batches(at_reconnect + 2, "batches after the reconnect");
        stop.store(true, Ordering::SeqCst);
        (looper.join().expect("load loop thread"), down)
    });
    assert_ne!(mesh.pilot.pid(), old_pid);
    let n: usize = reports.iter().map(|r| r.outcomes.len()).sum();
    let failed: Vec<_> = reports.iter().flat_map(|r| r.failures()).collect();
    assert!(
        failed.is_empty(),
        "{test}: {} of {n} requests failed across the pilot restart, first: {:?}",
        failed.len(),
        failed[0]
    );
    let mut by_body = BTreeMap::new();
    for r in &reports {
        for (b, c) in r.by_body() {
            *by_body.entry(b).or_insert(0) += c;
        }
    }
    println!("{test}: pilot killed and restarted under load: {n} requests ({} batches of {BATCH}, {down_batches} while pilot was down), 0 failed, {by_body:?}", reports.len());
    // The jason rule was live throughout: no end-user header → v1.
    assert_eq!(
        by_body.keys().collect::<Vec<_>>(),
        vec!["reviews-v1"],
        "routes changed across the restart"
    );
}

#[test]
fn delta_ads_split_edit_nack_jason_and_pilot_restart() {
    scenario("e2e-delta", XdsMode::Delta);
}

#[test]
fn sotw_ads_split_edit_nack_jason_and_pilot_restart() {
    scenario("e2e-sotw", XdsMode::Sotw);
}
