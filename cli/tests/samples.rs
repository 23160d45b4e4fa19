//! Every YAML file under samples/ passes `pilot validate` (no errors), and the
//! bookinfo sample plans into the pods the demo promises.

use std::path::{Path, PathBuf};
use std::process::Command;

use rudder_harness::{workspace_bin, workspace_root};

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[test]
fn every_sample_yaml_passes_pilot_validate() {
    let pilot = workspace_bin("pilot").expect("building pilot");
    let mut files = Vec::new();
    yaml_files(&workspace_root().join("samples"), &mut files);
    files.sort();
    assert!(
        files.len() >= 8,
        "expected the bookinfo platform and rule files, found {files:?}"
    );
    for file in &files {
        let out = Command::new(&pilot)
            .arg("validate")
            .arg("-f")
            .arg(file)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{}: pilot validate failed:\n{text}",
            file.display()
        );
        assert!(
            !text.to_lowercase().contains("error"),
            "{}: {text}",
            file.display()
        );
    }
}

#[test]
fn bookinfo_plans_meshed_services_and_an_unmeshed_client() {
    let dir = workspace_root().join("samples/bookinfo");
    let manifest = rudder_cli::manifest::load_dir(&dir).unwrap();
    let values = rudder_cli::plan::local_values("198.18.0.1".parse().unwrap());
    let mesh =
        rudder_cli::plan::plan(&manifest, "198.19.0.0/16".parse().unwrap(), &values).unwrap();
    let pods: Vec<(&str, bool)> = mesh
        .pods
        .iter()
        .map(|p| (p.name.as_str(), p.meshed()))
        .collect();
    assert_eq!(
        pods,
        [
            ("productpage-v1-0", true),
            ("details-v1-0", true),
            ("reviews-v1-0", true),
            ("reviews-v2-0", true),
            ("reviews-v3-0", true),
            ("ratings-v1-0", true),
            ("sleep-0", false),
            ("rudder-ingressgateway-0", false),
        ]
    );
    let namespaces: Vec<(&str, &str)> = mesh
        .pods
        .iter()
        .map(|p| (p.name.as_str(), p.namespace.as_str()))
        .filter(|(n, _)| ["productpage-v1-0", "sleep-0"].contains(n))
        .collect();
    assert_eq!(
        namespaces,
        [("productpage-v1-0", "default"), ("sleep-0", "sleep")],
        "bookinfo in default (as Istio's), its client in a namespace of its own"
    );
    assert_eq!(mesh.namespaces["default"]["istio-injection"], "enabled");
    assert!(mesh.namespaces["sleep"].is_empty());
    let apps: Vec<_> = mesh
        .services
        .iter()
        .filter(|s| s.def.namespace == "default")
        .collect();
    assert_eq!(apps.len(), 4);
    assert!(apps
        .iter()
        .all(|s| s.def.ports[0].port == 9080 && s.def.ports[0].name.as_deref() == Some("http")));
    // Destination rules and Istio's bookinfo-gateway.yaml are active by
    // default; the variants wait in rules/.
    let mut gateway_rules: Vec<(&str, &str, &str)> = mesh
        .rules
        .iter()
        .filter(|r| r.kind != "DestinationRule")
        .map(|r| (r.kind.as_str(), r.namespace.as_str(), r.name.as_str()))
        .collect();
    gateway_rules.sort();
    assert_eq!(
        gateway_rules,
        [
            ("Gateway", "default", "bookinfo-gateway"),
            ("VirtualService", "default", "bookinfo")
        ]
    );
    assert!(
        mesh.rules.iter().all(
            |r| ["DestinationRule", "Gateway"].contains(&r.kind.as_str())
                || r.object["spec"]["gateways"] == serde_json::json!(["bookinfo-gateway"])
        ),
        "{:?}",
        mesh.rules.iter().map(|r| &r.kind).collect::<Vec<_>>()
    );
    let variants = rudder_cli::manifest::files_in(&dir.join("rules")).unwrap();
    let rules = rudder_cli::manifest::load_rules(&variants).unwrap();
    assert!(
        rules.iter().any(|r| r.kind == "RouteRule"),
        "the 99/1 split also exists as a v1alpha2 RouteRule"
    );
}

/// The sample's ingress gateway is manifests/ingressgateway.yaml itself (a
/// link), planned as a gateway pod: not injected, no proxy-init, its agent
/// `agent router` pointed at the local pilot, its node id fields from the
/// downward API, reachable on its `http2` port 8080.
#[test]
fn bookinfo_plans_the_default_ingress_gateway_as_a_router_pod() {
    let root = workspace_root();
    let dir = root.join("samples/bookinfo");
    assert_eq!(
        std::fs::read_to_string(dir.join("ingressgateway.yaml")).unwrap(),
        std::fs::read_to_string(root.join("manifests/ingressgateway.yaml")).unwrap(),
        "the sample reuses the installed default gateway"
    );
    let gateway_yaml = std::fs::read_to_string(dir.join("bookinfo-gateway.yaml")).unwrap();
    assert_eq!(
        gateway_yaml,
        std::fs::read_to_string(root.join("pilot/testdata/gateway/bookinfo-gateway.yaml")).unwrap(),
        "Istio's bookinfo-gateway.yaml, unchanged"
    );
    let manifest = rudder_cli::manifest::load_dir(&dir).unwrap();
    let values = rudder_cli::plan::local_values("198.18.0.1".parse().unwrap());
    let mesh =
        rudder_cli::plan::plan(&manifest, "198.19.0.0/16".parse().unwrap(), &values).unwrap();
    let gw = mesh
        .pods
        .iter()
        .find(|p| p.name == "rudder-ingressgateway-0")
        .expect("the gateway pod");
    assert!(gw.gateway && !gw.external && !gw.meshed());
    assert_eq!(gw.namespace, "rudder-system");
    assert_eq!(gw.labels["istio"], "ingressgateway");
    assert!(
        gw.init.is_empty(),
        "no proxy-init: a gateway is not captured"
    );
    assert_eq!(gw.containers.len(), 1);
    let agent = &gw.containers[0];
    assert_eq!(agent.argv[..2], ["agent", "router"]);
    for flag in ["--discovery-address", "--ca-address"] {
        let i = agent.argv.iter().position(|a| a == flag).unwrap();
        assert_eq!(agent.argv[i + 1], "198.18.0.1:15012", "{flag}");
    }
    assert_eq!(agent.uid, Some(1337));
    // The agent builds router~IP~pod.ns~ns.svc.cluster.local from these.
    let env: Vec<(&str, String)> = agent
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), format!("{v:?}")))
        .collect();
    for (k, field) in [
        ("POD_NAME", "Name"),
        ("POD_NAMESPACE", "Namespace"),
        ("INSTANCE_IP", "PodIp"),
    ] {
        assert!(
            env.iter().any(|(n, v)| *n == k && v.contains(field)),
            "{k}: {env:?}"
        );
    }
    assert_eq!(gw.ingress_port(), Some(8080));
    let svc = mesh
        .services
        .iter()
        .find(|s| s.def.name == "rudder-ingressgateway")
        .unwrap();
    let ready = [(
        "rudder-ingressgateway-0".to_string(),
        "198.18.0.9".parse().unwrap(),
    )]
    .into();
    assert_eq!(
        mesh.endpoints(svc, 80, &ready),
        [("198.18.0.9".parse().unwrap(), 8080)]
    );
    // Pods that are not gateways serve no ingress.
    assert!(mesh
        .pods
        .iter()
        .filter(|p| p.name != gw.name)
        .all(|p| !p.gateway && p.ingress_port().is_none()));
}

/// A pod labelled rudder.io/external=true stands in for a host outside the
/// mesh: never injected (even in an injected namespace), never a Service
/// endpoint; a ServiceEntry naming its address is how meshed pods reach it.
#[test]
fn an_external_stand_in_pod_is_planned_outside_the_mesh() {
    let yaml = r#"
apiVersion: v1
kind: Namespace
metadata: {name: default, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: external-api}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api, rudder.io/external: "true"}}
    spec: {containers: [{name: c, command: [sleep, infinity], ports: [{containerPort: 80}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: c, command: [sleep, infinity], ports: [{containerPort: 80}]}]}
"#;
    let mut m = rudder_cli::manifest::Manifest::default();
    m.add_text("t.yaml", yaml).unwrap();
    let values = rudder_cli::plan::local_values("198.18.0.1".parse().unwrap());
    let mesh = rudder_cli::plan::plan(&m, "198.19.0.0/16".parse().unwrap(), &values).unwrap();
    let (ext, app) = (&mesh.pods[0], &mesh.pods[1]);
    assert!(ext.external && !ext.meshed() && !ext.gateway);
    assert!(ext.init.is_empty() && ext.containers.len() == 1);
    assert!(
        ext.sidecar
            .as_ref()
            .unwrap_err()
            .contains(rudder_cli::plan::EXTERNAL_LABEL),
        "{:?}",
        ext.sidecar
    );
    assert!(app.meshed() && !app.external);
    let ready = [
        ("external-api-0".to_string(), "198.18.0.5".parse().unwrap()),
        ("app-0".to_string(), "198.18.0.6".parse().unwrap()),
    ]
    .into();
    assert_eq!(
        mesh.endpoints(&mesh.services[0], 80, &ready),
        [("198.18.0.6".parse().unwrap(), 80)],
        "the stand-in is never a Service endpoint"
    );
}
