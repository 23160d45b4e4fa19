//! `agent router` and `--type router`: a gateway's bootstrap carries Istio's
//! `router~...` node id; everything else is the sidecar's (same supervisor,
//! hot restart and drain).

use std::process::Command;

fn agent(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(args)
        .env("POD_NAME", "istio-ingressgateway-0")
        .env("POD_NAMESPACE", "istio-system")
        .env("INSTANCE_IP", "198.18.3.2")
        .env("SERVICE_ACCOUNT", "istio-ingressgateway")
        .output()
        .expect("run agent")
}

fn node_id(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bootstrap JSON");
    v["node"]["id"].as_str().expect("node id").to_string()
}

#[test]
fn router_bootstrap_has_a_router_node_id() {
    assert_eq!(
        node_id(&agent(&["bootstrap", "--type", "router"])),
        "router~198.18.3.2~istio-ingressgateway-0.istio-system~istio-system.svc.cluster.local"
    );
    assert_eq!(
        node_id(&agent(&["bootstrap"])),
        "sidecar~198.18.3.2~istio-ingressgateway-0.istio-system~istio-system.svc.cluster.local"
    );
    let bad = agent(&["bootstrap", "--type", "ingress"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not one of sidecar, router"));
}

#[test]
fn agent_router_takes_the_proxy_flags() {
    let help = agent(&["router", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--discovery-address",
        "--cert-dir",
        "--drain-duration",
        "--cert-mode",
    ] {
        assert!(
            text.contains(flag),
            "agent router --help lacks {flag}:\n{text}"
        );
    }
}
