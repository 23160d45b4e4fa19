//! The live mesh page in a real browser (Debian's Chromium, headless,
//! driven over WebDriver) against a running local mesh (bookinfo, real
//! Envoys): the page loads with no console errors, shows the bookinfo
//! services with their versions and every proxy SYNCED, is reachable by
//! keyboard, and while load runs the split on productpage → reviews edges
//! follows a rule change (50/50 v1/v3 → all v1) within seconds.
//!
//! The screenshot it takes at 50/50 is `docs/mesh-page.png`
//! (`REFRESH_GOLDEN=1` rewrites it; otherwise it goes to the target dir).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Mesh;
use rudder_harness::workspace_root;
use rudder_test_support::prerequisite;
use rudder_test_support::webdriver::{check_browser, Browser, TAB};
use serde_json::{json, Value};

/// The reviews edges from productpage as the page's table shows them:
/// version → (share, rps).
const REVIEWS_EDGES: &str = r#"
const out = {};
for (const r of document.querySelectorAll('#edges tbody tr[data-destination="default/reviews"]')) {
  if (r.dataset.source !== 'default/productpage') continue;
  out[r.dataset.version] = [r.dataset.share === '' ? null : Number(r.dataset.share), Number(r.dataset.rps)];
}
return out;"#;

fn share(edges: &Value, version: &str) -> f64 {
    edges[version][0].as_f64().unwrap_or(0.0)
}

/// Polls the page until `ok` holds for the reviews edges, for at most `max`;
/// returns them and how long it took.
fn until(
    browser: &Browser,
    what: &str,
    max: Duration,
    ok: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let start = Instant::now();
    loop {
        let edges = browser.execute(REVIEWS_EDGES, json!([]));
        if ok(&edges) {
            return (edges, start.elapsed());
        }
        assert!(
            start.elapsed() < max,
            "{what}: the page still shows {edges} after {max:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_mesh_page_follows_a_rule_change_in_a_real_browser() {
    let test = "the_mesh_page_follows_a_rule_change_in_a_real_browser";
    if !common::prerequisites(test) {
        return;
    }
    let Some((chromium, chromedriver)) = prerequisite(test, check_browser()) else {
        return;
    };
    let mesh = Mesh::up(17, &[]);
    mesh.apply("rules/reviews-50-50.yaml");
    let page = format!("http://{}/", mesh.record().monitoring_addr);
    let browser = Browser::start(&chromium, &chromedriver, 1440, 1000);
    browser.goto(&page);

    // The bookinfo services, with reviews' three versions, and every proxy in sync.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (nodes, proxies) = loop {
        let v = browser.execute(
            r#"return [
                Array.from(document.querySelectorAll('#graph .node')).map(n => [n.dataset.node, n.getAttribute('aria-label')]),
                Array.from(document.querySelectorAll('#proxies tbody tr[data-proxy]')).map(r => Array.from(r.cells).map(c => c.textContent))];"#,
            json!([]),
        );
        let synced = v[1]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r.to_string().matches("\"SYNCED\"").count() == 4)
            .count();
        if v[0].as_array().unwrap().len() >= 4 && synced == 7 {
            break (v[0].clone(), v[1].clone());
        }
        assert!(
            Instant::now() < deadline,
            "page not complete after 30 s: {v}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    for svc in ["productpage", "details", "reviews", "ratings"] {
        let id = format!("default/{svc}");
        assert!(
            nodes
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n[0] == id.as_str()),
            "{id} not in the graph: {nodes}"
        );
    }
    let reviews = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n[0] == "default/reviews")
        .unwrap();
    assert_eq!(reviews[1], "reviews in default: v1, v2, v3", "{reviews}");
    assert_eq!(proxies.as_array().unwrap().len(), 7, "{proxies}");

    // Keyboard: Tab reaches the skip link first, then the sections, then the graph's nodes.
    browser.keys(&[TAB]);
    let focused = browser.execute("return document.activeElement.textContent", json!([]));
    assert_eq!(focused, "Skip to content");
    browser.keys(&[TAB; 5]);
    let focused = browser.execute(
        "const a = document.activeElement; return [a.getAttribute('class'), a.getAttribute('aria-label')];",
        json!([]),
    );
    assert_eq!(
        focused[0], "node",
        "the 6th Tab focuses a graph node: {focused}"
    );

    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Load while the page watches: productpage calls reviews once per request.
        let load = s.spawn(|| {
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) && rounds < 2000 {
                let split = mesh.load("sleep", "http://productpage.default:9080/", 20);
                assert!(split["succeeded"].as_u64().unwrap_or(0) > 0, "{split}");
                rounds += 1;
            }
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // 50/50 between v1 and v3, nothing to v2.
            let (edges, took) = until(&browser, "50/50", Duration::from_secs(60), |e| {
                let (v1, v3) = (share(e, "v1"), share(e, "v3"));
                (0.25..=0.75).contains(&v1) && (0.25..=0.75).contains(&v3) && share(e, "v2") == 0.0
            });
            println!("50/50 on the page after {took:?}: {edges}");
            let png = browser.screenshot();
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
            let target = if std::env::var_os("REFRESH_GOLDEN").is_some() {
                workspace_root().join("docs/mesh-page.png")
            } else {
                std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("mesh-page.png")
            };
            std::fs::write(&target, &png).unwrap();
            println!("screenshot: {}", target.display());

            // The rule changes: all of reviews to v1. The page follows within seconds.
            mesh.apply("rules/virtual-service-all-v1.yaml");
            let (edges, took) = until(&browser, "all v1", Duration::from_secs(30), |e| {
                share(e, "v1") >= 0.95 && share(e, "v3") <= 0.05
            });
            println!("all v1 on the page {took:?} after the rule change: {edges}");
            let rules = browser.execute(
                "return document.querySelector('[data-service=\"default/reviews\"]').textContent",
                json!([]),
            );
            assert!(
                rules
                    .as_str()
                    .unwrap()
                    .contains("any request → reviews.default v1 100%"),
                "{rules}"
            );
        }));
        stop.store(true, Ordering::Relaxed);
        load.join().unwrap();
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    });

    // Nothing went wrong in the browser's console all along.
    let log = browser.console_log();
    let errors: Vec<&Value> = log
        .iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}
