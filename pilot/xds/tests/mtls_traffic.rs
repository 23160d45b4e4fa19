//! Real traffic through the generated TLS and RBAC config, on loopback, with
//! one Envoy: goldens prove Envoy accepts the config, this proves it does
//! what it says.
//!
//! The mesh is `support::loopback` (its diagram shows who talks to whom).
//! Needs Envoy ($ENVOY_BIN): skipped with a message without it, failed under CI=true.

mod support;

use rudder_xds::to_json;
use serde_json::Value;
use support::loopback::*;

const ALLOW_SLEEP: &str =
    "rules:\n- from:\n  - source: {principals: [cluster.local/ns/default/sa/sleep]}\n";

#[test]
fn strict_mtls_and_allow_policy_carry_real_traffic() {
    let Some(bin) =
        rudder_test_support::envoy_bin("strict_mtls_and_allow_policy_carry_real_traffic")
    else {
        return;
    };
    let lo = loopback(&bin, "mtls: {mode: STRICT}", Some(ALLOW_SLEEP));
    let (status, body) = get(lo.as_sleep)
        .unwrap_or_else(|e| panic!("no answer through the mesh: {e}\n{}", lo.log()));
    assert_eq!(status, 200, "sleep is allowed: {body}\n{}", lo.log());
    assert!(
        body.contains("URI=spiffe://cluster.local/ns/default/sa/sleep"),
        "XFCC names the caller: {body:?}"
    );
    let (status, _) = get(lo.as_intruder).expect("the intruder gets an answer");
    assert_eq!(status, 403, "another identity is denied by RBAC");
    assert!(
        get(lo.server).is_err(),
        "STRICT: a plaintext client gets no HTTP answer"
    );
    // The config dump names the policy on the chain.
    let dump = to_json(&lo.server_res);
    let chains = dump["lds"]["virtual"]["filterChains"].as_array().unwrap();
    let mtls = chains
        .iter()
        .find(|c| c["name"] == "inbound|8000|mtls")
        .unwrap();
    let rbac: &Value =
        &mtls["filters"][0]["typedConfig"]["httpFilters"][0]["typedConfig"]["rules"]["policies"];
    assert!(
        rbac.get("ns[default]-policy[allow-sleep]-rule[0]")
            .is_some(),
        "{rbac}"
    );
}

#[test]
fn permissive_accepts_mtls_and_plaintext_on_one_port() {
    let Some(bin) =
        rudder_test_support::envoy_bin("permissive_accepts_mtls_and_plaintext_on_one_port")
    else {
        return;
    };
    let lo = loopback(&bin, "mtls: {mode: PERMISSIVE}", None);
    let (status, body) = get(lo.as_sleep)
        .unwrap_or_else(|e| panic!("no answer through the mesh: {e}\n{}", lo.log()));
    assert_eq!(status, 200, "{body}\n{}", lo.log());
    assert!(
        body.contains("URI=spiffe://cluster.local/ns/default/sa/sleep"),
        "mTLS chain taken (ALPN istio): {body:?}"
    );
    let (status, body) = get(lo.server).expect("plaintext answered");
    assert_eq!(
        (status, body.as_str()),
        (200, ""),
        "plaintext chain: no client certificate to forward"
    );
    // With an ALLOW policy by principal, plaintext (no identity) is denied.
    let lo = loopback(&bin, "mtls: {mode: PERMISSIVE}", Some(ALLOW_SLEEP));
    assert_eq!(get(lo.as_sleep).map(|r| r.0), Ok(200), "{}", lo.log());
    assert_eq!(get(lo.server).map(|r| r.0), Ok(403));
}
