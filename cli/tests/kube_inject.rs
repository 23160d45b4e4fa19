//! `rudder kube-inject -f FILE`: the injector's offline path, as `injector
//! kube-inject` and `istioctl kube-inject`: every Deployment of bookinfo gets
//! the sidecar and proxy-init, other objects pass through unchanged.

use std::process::Command;

#[test]
fn bookinfo_deployments_get_the_sidecar() {
    let file = rudder_harness::workspace_root().join("samples/bookinfo/bookinfo.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["kube-inject", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let docs: Vec<serde_json::Value> = text
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).expect("output is YAML"))
        .collect();
    let input = std::fs::read_to_string(&file).unwrap();
    let deployments: Vec<&serde_json::Value> =
        docs.iter().filter(|d| d["kind"] == "Deployment").collect();
    assert_eq!(deployments.len(), input.matches("kind: Deployment").count());
    assert_eq!(
        docs.len(),
        input.matches("\nkind: ").count() + usize::from(input.starts_with("kind: "))
    );
    for d in deployments {
        let spec = &d["spec"]["template"]["spec"];
        let names = |k: &str| -> Vec<String> {
            spec[k]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str().map(String::from))
                .collect()
        };
        let all: Vec<String> = names("containers")
            .into_iter()
            .chain(names("initContainers"))
            .collect();
        assert!(
            all.iter().any(|n| n == "rudder-proxy"),
            "{}: {all:?}",
            d["metadata"]["name"]
        );
    }
    let missing = Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["kube-inject", "-f", "/nonexistent.yaml"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.yaml"));
}
