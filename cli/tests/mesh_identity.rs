//! End to end: workload identity and policy in the local mesh, with real
//! Envoys, real iptables in network namespaces, real TLS.
//!
//! One bookinfo mesh (auto mTLS between sidecars) serves three checks:
//! - the certificate details' sidecar presents on its app port (inbound
//!   PERMISSIVE chain, picked by ALPN `istio`) verifies against the mesh root
//!   and carries `spiffe://cluster.local/ns/default/sa/bookinfo-details`,
//!   read with `openssl s_client` from the unmeshed `sleep` pod;
//! - PERMISSIVE (the default) serves both the plaintext `sleep` pod and the
//!   meshed productpage; STRICT refuses `sleep` while productpage still gets
//!   200, and details' readiness probe (rewritten to the agent's
//!   `/app-health/details/readyz` on 15020) still answers `sleep`, as it must
//!   for kubelet; PERMISSIVE again serves `sleep`;
//! - an AuthorizationPolicy allowing only productpage's service account:
//!   productpage gets 200, reviews (another account) gets 403.
//!
//! Needs root, Envoy, iptables and openssl: without them it says why and
//! returns, except under CI=true, where that is a failure.

mod common;

use std::process::{Command, Stdio};

use common::{http_code, prerequisites, Mesh};

const DETAILS: &str = "http://details.default:9080/details";

/// `openssl s_client` from `netns` to `addr` offering ALPN `istio`, verifying
/// against `root`: (its output, the URI SANs of the leaf certificate).
fn peer_certificate(netns: &str, addr: &str, root: &std::path::Path) -> (String, String) {
    let out = Command::new("timeout")
        .args(["20", "ip", "netns", "exec", netns, "openssl", "s_client"])
        .args(["-connect", addr, "-alpn", "istio", "-showcerts", "-CAfile"])
        .arg(root)
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let begin = text.find("-----BEGIN CERTIFICATE-----");
    let end = text.find("-----END CERTIFICATE-----");
    let (Some(b), Some(e)) = (begin, end) else {
        panic!("no certificate from {addr}:\n{text}");
    };
    let leaf = &text[b..e + "-----END CERTIFICATE-----".len()];
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl x509");
    std::io::Write::write_all(
        &mut x509.stdin.take().unwrap(),
        format!("{leaf}\n").as_bytes(),
    )
    .unwrap();
    let sans = x509.wait_with_output().unwrap();
    (text, String::from_utf8_lossy(&sans.stdout).into_owned())
}

/// Answers with status 403 in a split (failures are keyed `HTTP 403: <first body line>`).
fn forbidden(split: &serde_json::Value) -> u64 {
    split["failures"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("HTTP 403"))
        .filter_map(|(_, n)| n.as_u64())
        .sum()
}

#[test]
fn spiffe_certificates_strict_permissive_and_authorization() {
    if !prerequisites("spiffe_certificates_strict_permissive_and_authorization") {
        return;
    }
    let mesh = Mesh::up(1, &[]);
    let sleep = mesh.pod("sleep-");
    let productpage = mesh.pod("productpage-v1-").name;
    let reviews = mesh.pod("reviews-v1-").name;
    let details = mesh.pod("details-v1-");
    let root = mesh.record().state_dir.join("ca/root-cert.pem");

    // 1. The identity details' sidecar presents, as a client outside the mesh sees it.
    let (handshake, sans) = peer_certificate(&sleep.netns, &format!("{}:9080", details.ip), &root);
    eprintln!("details presents: {}", sans.trim());
    assert!(
        sans.contains("URI:spiffe://cluster.local/ns/default/sa/bookinfo-details"),
        "SANs: {sans}\n{handshake}"
    );
    assert!(
        handshake.contains("Verify return code: 0 (ok)"),
        "the chain does not verify against the mesh root:\n{handshake}"
    );

    // 2. PERMISSIVE (default): plaintext from the unmeshed pod and mTLS from productpage.
    let plain = mesh.load(&sleep.name, DETAILS, 20);
    assert_eq!(
        plain["succeeded"].as_u64(),
        Some(20),
        "plaintext, PERMISSIVE: {plain}"
    );
    let meshed = mesh.load(&productpage, DETAILS, 20);
    assert_eq!(
        meshed["succeeded"].as_u64(),
        Some(20),
        "mTLS, PERMISSIVE: {meshed}"
    );

    // STRICT: the plaintext client is refused, the meshed one is not.
    mesh.apply("security/details-strict.yaml");
    mesh.until(&sleep.name, DETAILS, "STRICT refuses plaintext", |ok, _| {
        ok == 0
    });
    let refused = mesh.load(&sleep.name, DETAILS, 20);
    assert_eq!(
        refused["succeeded"].as_u64(),
        Some(0),
        "plaintext, STRICT: {refused}"
    );
    let meshed = mesh.load(&productpage, DETAILS, 20);
    assert_eq!(
        meshed["succeeded"].as_u64(),
        Some(20),
        "mTLS, STRICT: {meshed}"
    );
    // The readiness probe, rewritten by the injector, still passes for a
    // plaintext prober outside the mesh (kubelet's view): the agent runs it.
    let probe = http_code(
        &sleep.netns,
        &format!("http://{}:15020/app-health/details/readyz", details.ip),
        10,
    );
    assert_eq!(probe, "200", "rewritten readiness probe under STRICT");

    // PERMISSIVE again: plaintext is served.
    mesh.apply("security/details-permissive.yaml");
    mesh.until(
        &sleep.name,
        DETAILS,
        "PERMISSIVE accepts plaintext",
        |ok, _| ok == 5,
    );

    // 3. Only productpage's service account may call details: reviews gets 403.
    mesh.apply("security/details-allow-productpage.yaml");
    mesh.until(&reviews, DETAILS, "reviews denied", |_, s| {
        forbidden(s) == 5
    });
    let denied = mesh.load(&reviews, DETAILS, 20);
    assert_eq!(forbidden(&denied), 20, "bookinfo-reviews: {denied}");
    let allowed = mesh.load(&productpage, DETAILS, 20);
    assert_eq!(
        allowed["succeeded"].as_u64(),
        Some(20),
        "bookinfo-productpage: {allowed}"
    );
    // The whole page (productpage → details, reviews → ratings) still works.
    let page = mesh.load(&sleep.name, "http://productpage.default:9080/", 20);
    assert_eq!(page["succeeded"].as_u64(), Some(20), "productpage: {page}");

    let out = mesh.cmd(&["mesh", "down"]);
    assert!(out.status.success(), "mesh down failed");
}
