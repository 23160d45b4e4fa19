//! End to end: a plug-in CA (an operator's root and intermediate, Istio's
//! `cacerts` files given with `rudder mesh up --cacerts DIR`) and a root
//! rotation under live mTLS traffic, with real Envoys in SDS mode.
//!
//! 1. The sidecars of productpage and details present leaf + intermediate,
//!    verifying against root A only (`openssl s_client` from the unmeshed
//!    sleep pod); productpage → details works (auto mTLS).
//! 2. While a bounded request loop runs productpage → details, the operator
//!    rotates: a new intermediate under root B, root-cert.pem = A + B. pilot
//!    signs with the new intermediate, the runner copies the bundle to the
//!    pods, each agent pushes the bundle as ROOTCA and renews; we wait until
//!    both sidecars present certificates verifying against B alone. Then
//!    root-cert.pem = B only; the agents push it.
//! 3. Asserted: 0 failed requests over the whole rotation; at the end both
//!    sidecars' chains verify against B and no longer against A.
//!
//! Needs root, Envoy, iptables and openssl: without them it says why and
//! returns, except under CI=true, where that is a failure.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{prerequisites, Mesh};
use rudder_ca::plugin::{generate_intermediate, CA_CERT_FILE, CA_KEY_FILE, CERT_CHAIN_FILE};

const DETAILS: &str = "http://details.default:9080/details";

/// A root and an intermediate under it: (root cert, intermediate cert, intermediate key).
fn operator_ca(name: &str) -> (String, String, String) {
    let now = rudder_ca::unix_now();
    let (root, root_key) = rudder_ca::root::generate(&format!("{name} corp"), now).unwrap();
    let (ca, ca_key) = generate_intermediate(
        &root,
        &root_key,
        &format!("{name} mesh CA"),
        now - 60,
        now + 86400,
    )
    .unwrap();
    (root, ca, ca_key)
}

/// Writes the four plug-in files (each atomically, the key first).
fn write_cacerts(dir: &Path, ca: &str, ca_key: &str, chain: &str, roots: &str) {
    for (name, text) in [
        (CA_KEY_FILE, ca_key),
        (CA_CERT_FILE, ca),
        (CERT_CHAIN_FILE, chain),
        ("root-cert.pem", roots),
    ] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

/// What the sidecar at `addr` presents to a client offering ALPN `istio`,
/// verified against `ca_file`: (certificates presented, verified).
fn presented(netns: &str, addr: &str, ca_file: &Path) -> (usize, bool, String) {
    let out = Command::new("timeout")
        .args(["20", "ip", "netns", "exec", netns, "openssl", "s_client"])
        .args([
            "-connect",
            addr,
            "-alpn",
            "istio",
            "-showcerts",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(ca_file)
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let n = text.matches("-----BEGIN CERTIFICATE-----").count();
    (n, text.contains("Verify return code: 0 (ok)"), text)
}

#[test]
fn plugin_ca_chain_and_root_rotation_without_failed_requests() {
    if !prerequisites("plugin_ca_chain_and_root_rotation_without_failed_requests") {
        return;
    }
    let cacerts = tempfile::tempdir().unwrap();
    let dir = cacerts.path();
    let (root_a, ca_a, key_a) = operator_ca("A");
    write_cacerts(dir, &ca_a, &key_a, &format!("{ca_a}{root_a}"), &root_a);
    let only_a = dir.join("only-a.pem");
    std::fs::write(&only_a, &root_a).unwrap();

    let mesh = Mesh::up(
        7,
        &["--cacerts", dir.to_str().unwrap(), "--cert-mode", "sds"],
    );
    // pilot signs with the operator's CA: no self-signed root was made.
    let state_ca = mesh.record().state_dir.join("ca");
    assert!(!state_ca.join("root-key.pem").exists() && !dir.join("root-key.pem").exists());
    let sleep = mesh.pod("sleep-");
    let productpage = mesh.pod("productpage-v1-");
    let details = mesh.pod("details-v1-");
    let sidecars = [
        ("details", format!("{}:9080", details.ip)),
        ("productpage", format!("{}:9080", productpage.ip)),
    ];
    mesh.until(
        &productpage.name,
        DETAILS,
        "mTLS productpage → details",
        |ok, _| ok == 5,
    );

    // 1. Leaf + intermediate, verifying against the operator's root A.
    for (who, addr) in &sidecars {
        let (n, ok, text) = presented(&sleep.netns, addr, &only_a);
        eprintln!("{who} presents {n} certificates, verify against root A: {ok}");
        assert!(ok, "{who}: chain does not verify against root A:\n{text}");
        assert_eq!(n, 2, "{who}: expected leaf + intermediate:\n{text}");
    }

    // 2. Rotation under load.
    let stop = AtomicBool::new(false);
    let (root_b, ca_b, key_b) = operator_ca("B");
    let only_b = dir.join("only-b.pem");
    std::fs::write(&only_b, &root_b).unwrap();
    let (totals, timeline) = std::thread::scope(|s| {
        let load = s.spawn(|| {
            let (mut sent, mut ok, mut failures) = (0u64, 0u64, Vec::new());
            // Bounded: at most 10 minutes even if the main thread never stops it.
            let deadline = Instant::now() + Duration::from_secs(600);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let split = mesh.load(&productpage.name, DETAILS, 10);
                sent += 10;
                let got = split["succeeded"].as_u64().unwrap_or(0);
                ok += got;
                if got != 10 {
                    failures.push(split.to_string());
                }
            }
            (sent, ok, failures)
        });
        let t0 = Instant::now();
        let mut timeline = Vec::new();
        std::thread::sleep(Duration::from_secs(3));
        write_cacerts(
            dir,
            &ca_b,
            &key_b,
            &format!("{ca_b}{root_b}"),
            &format!("{root_a}{root_b}"),
        );
        timeline.push(format!(
            "{:?}: new intermediate under B, root-cert.pem = A + B",
            t0.elapsed()
        ));
        // Both sidecars move to certificates under B (bounded wait).
        let deadline = Instant::now() + Duration::from_secs(120);
        for (who, addr) in &sidecars {
            loop {
                let (n, ok, text) = presented(&sleep.netns, addr, &only_b);
                if ok && n == 2 {
                    timeline.push(format!(
                        "{:?}: {who} presents a chain to root B",
                        t0.elapsed()
                    ));
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{who} still has no certificate under root B after 120 s:\n{text}"
                );
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        // Let traffic run across old and new certificates, then drop root A.
        std::thread::sleep(Duration::from_secs(5));
        write_cacerts(dir, &ca_b, &key_b, &format!("{ca_b}{root_b}"), &root_b);
        timeline.push(format!("{:?}: root-cert.pem = B only", t0.elapsed()));
        // pilot checks every 10 s, the runner copies within 1 s, agents read
        // every 2 s: traffic keeps running well past that.
        std::thread::sleep(Duration::from_secs(20));
        stop.store(true, Ordering::SeqCst);
        (load.join().unwrap(), timeline)
    });
    let (sent, ok, failures) = totals;
    for t in &timeline {
        eprintln!("rotation {t}");
    }
    eprintln!("requests during the rotation: {sent} sent, {ok} succeeded");
    assert!(sent >= 50, "too few requests during the rotation: {sent}");
    assert!(
        failures.is_empty(),
        "failed requests during the rotation: {failures:?}"
    );
    assert_eq!(ok, sent);

    // 3. Both sidecars chain to root B, not to A.
    for (who, addr) in &sidecars {
        let (n, ok, text) = presented(&sleep.netns, addr, &only_b);
        assert!(
            ok && n == 2,
            "{who}: not leaf + intermediate under B:\n{text}"
        );
        let (_, ok_a, _) = presented(&sleep.netns, addr, &only_a);
        assert!(!ok_a, "{who}: still verifies against the removed root A");
    }
    let after = mesh.load(&productpage.name, DETAILS, 20);
    assert_eq!(
        after["succeeded"].as_u64(),
        Some(20),
        "after the rotation: {after}"
    );

    let out = mesh.cmd(&["mesh", "down"]);
    assert!(out.status.success(), "mesh down failed");
}
