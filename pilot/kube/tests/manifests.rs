//! manifests/: offline schema validation (kubernetes-validate, strict, as
//! `kubectl apply --dry-run=client` would need a server for), the contracts
//! (names, ports, probes, images), RBAC that grants exactly what the source
//! uses, and the mesh ConfigMap as the source reads it from the fake API server.

mod support;

use std::{path::PathBuf, process::Command, time::Duration};

use rudder_kube::{resources::api_resource, KubeOptions, KubeSource, WATCHED_KINDS};
use rudder_registry::{Body, Kind, ObjectKey};
use serde_json::Value;
use support::{fake_api::FakeApi, Recorder};

fn manifests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests")
}

/// Every manifest file, recursively, sorted (the apply order of `kubectl apply -R -f manifests/`).
fn files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![manifests_dir()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn objects() -> Vec<Value> {
    files()
        .iter()
        .flat_map(|f| {
            serde_saphyr::from_str_multiple::<Value, Vec<Value>>(
                &std::fs::read_to_string(f).unwrap(),
            )
            .unwrap()
        })
        .filter(|v| v.is_object())
        .collect()
}

fn find<'a>(all: &'a [Value], kind: &str, name: &str) -> &'a Value {
    all.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} in manifests/"))
}

#[test]
fn manifests_pass_kubernetes_validate_strict() {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/kubernetes-validate");
    let bin = if bin.is_file() {
        bin
    } else {
        PathBuf::from("kubernetes-validate")
    };
    let files = files();
    assert!(files.len() >= 7, "{files:?}");
    let run = Command::new(&bin)
        .args(["-k", "1.33.0", "--strict", "--quiet"])
        .args(&files)
        .output()
        .map_err(|e| {
            format!("kubernetes-validate not runnable ({e}); pip install kubernetes-validate")
        });
    let Some(out) =
        rudder_test_support::prerequisite("manifests_pass_kubernetes_validate_strict", run)
    else {
        return;
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("ERROR"),
        "kubernetes-validate:\n{text}"
    );
}

#[test]
fn names_ports_probes_and_images_follow_the_contract() {
    let all = objects();
    let version = env!("CARGO_PKG_VERSION");
    for o in &all {
        let ns = o["metadata"]["namespace"].as_str();
        assert!(
            ns.is_none() || ns == Some("rudder-system"),
            "{} {} outside rudder-system",
            o["kind"],
            o["metadata"]["name"]
        );
    }
    let svc = find(&all, "Service", "rudder-pilot");
    let mut ports: Vec<i64> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    ports.sort();
    assert_eq!(ports, vec![15010, 15012, 15014]);
    let inj = find(&all, "Service", "rudder-injector");
    assert_eq!(
        (
            inj["spec"]["ports"][0]["port"].as_i64(),
            inj["spec"]["ports"][0]["targetPort"].as_i64()
        ),
        (Some(443), Some(15017))
    );
    find(
        &all,
        "MutatingWebhookConfiguration",
        "rudder-sidecar-injector",
    );

    let pilot = &find(&all, "Deployment", "rudder-pilot")["spec"]["template"]["spec"];
    let c = &pilot["containers"][0];
    assert_eq!(c["args"][0], "serve");
    assert!(
        !c["args"].to_string().contains("--config-dir"),
        "pilot on a cluster watches Kubernetes"
    );
    assert_eq!(
        (
            c["readinessProbe"]["httpGet"]["path"].as_str(),
            c["readinessProbe"]["httpGet"]["port"].as_i64()
        ),
        (Some("/ready"), Some(15014))
    );
    assert_eq!(pilot["serviceAccountName"], "rudder-pilot");
    for d in all.iter().filter(|o| o["kind"] == "Deployment") {
        for c in d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
        {
            let image = c["image"].as_str().unwrap();
            let (repo, tag) = image.split_once(':').unwrap();
            assert!(
                repo.starts_with("rudder/") && tag == version,
                "image {image} is rudder/<binary>:{version}"
            );
        }
    }
    let mesh = find(&all, "ConfigMap", "rudder-mesh");
    let spec: rudder_config::MeshConfigSpec =
        serde_saphyr::from_str(mesh["data"]["mesh"].as_str().unwrap()).unwrap();
    assert_eq!(spec.root_namespace.as_deref(), Some("rudder-system"));
}

/// (apiGroup, resource, verb) triples a role grants.
fn grants(role: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for r in role["rules"].as_array().unwrap() {
        for g in r["apiGroups"].as_array().unwrap() {
            for res in r["resources"].as_array().unwrap() {
                for v in r["verbs"].as_array().unwrap() {
                    out.push((
                        g.as_str().unwrap().into(),
                        res.as_str().unwrap().into(),
                        v.as_str().unwrap().into(),
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn pilot_rbac_grants_exactly_what_the_source_and_status_writer_use() {
    let all = objects();
    let cluster = grants(find(&all, "ClusterRole", "rudder-pilot"));
    let local = grants(find(&all, "Role", "rudder-pilot"));
    let mut expected_cluster = Vec::new();
    for kind in WATCHED_KINDS {
        let ar = api_resource(kind);
        let t = |res: &str, verb: &str| (ar.group.clone(), res.to_string(), verb.to_string());
        match kind {
            Kind::MeshConfig => {
                assert!(
                    local.contains(&t("configmaps", "list"))
                        && local.contains(&t("configmaps", "watch"))
                );
                continue;
            }
            Kind::Namespace
            | Kind::Service
            | Kind::Pod
            | Kind::EndpointSlice
            | Kind::Endpoints
            | Kind::Secret
            | Kind::IngressClass
            | Kind::GatewayClass
            | Kind::KubeGateway
            | Kind::HttpRoute
            | Kind::GrpcRoute
            | Kind::TcpRoute
            | Kind::TlsRoute
            | Kind::ReferenceGrant
            | Kind::HttpProxy
            | Kind::Mapping => {}
            _ => expected_cluster.push(t(&format!("{}/status", ar.plural), "patch")),
        }
        expected_cluster.push(t(&ar.plural, "list"));
        expected_cluster.push(t(&ar.plural, "watch"));
    }
    let (mut got, mut want) = (cluster.clone(), expected_cluster);
    got.sort();
    want.sort();
    assert_eq!(got, want, "ClusterRole rudder-pilot: no more, no less");
    let role = find(&all, "Role", "rudder-pilot");
    let rules = role["rules"].as_array().unwrap();
    assert!(rules
        .iter()
        .any(|r| r["resources"][0] == "configmaps" && r["resourceNames"][0] == "rudder-mesh"));
    assert!(rules.iter().any(
        |r| r["resources"][0] == "leases" && r["resourceNames"][0] == rudder_kube::STATUS_LEASE
    ));
    for (_, _, v) in cluster.iter().chain(&local) {
        assert!(
            ["list", "watch", "patch", "create", "get", "update"].contains(&v.as_str()),
            "verb {v}"
        );
    }
    assert!(
        !cluster
            .iter()
            .chain(&local)
            .any(|(g, r, v)| g == "*" || r == "*" || v == "*"),
        "no wildcards"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mesh_configmap_manifest_is_what_the_source_reads() {
    let all = objects();
    let api = FakeApi::start().await;
    api.put(find(&all, "Namespace", "rudder-system").clone());
    api.put(find(&all, "ConfigMap", "rudder-mesh").clone());
    // Another ConfigMap in the namespace is not watched.
    api.put(find(&all, "ConfigMap", "rudder-sidecar-injector-template").clone());
    let rec = Recorder::default();
    let source = KubeSource::spawn(api.client(), &KubeOptions::default(), rec.clone());
    tokio::time::timeout(Duration::from_secs(30), source.wait_synced())
        .await
        .expect("synced");
    let mesh = rec
        .get(&ObjectKey::new(
            Kind::MeshConfig,
            "rudder-system",
            "rudder-mesh",
        ))
        .expect("mesh config read");
    let Body::MeshConfig(m) = mesh.body else {
        panic!("not mesh config")
    };
    assert_eq!(m.trust_domain.as_deref(), Some("cluster.local"));
    assert_eq!(
        rec.keys()
            .iter()
            .filter(|k| k.kind == Kind::MeshConfig)
            .count(),
        1
    );
    assert!(
        rec.diagnostics().is_empty(),
        "only rudder-mesh is listed (field selector): {:?}",
        rec.diagnostics()
    );
}

/// (apiGroup, resource, verb, resourceNames) rows a role grants.
fn grants_named(role: &Value) -> Vec<(String, String, String, Vec<String>)> {
    let mut out = Vec::new();
    for r in role["rules"].as_array().unwrap() {
        let names: Vec<String> = r["resourceNames"]
            .as_array()
            .map(|a| a.iter().map(|n| n.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        for (g, res, v) in grants(&serde_json::json!({"rules": [r]})) {
            out.push((g, res, v, names.clone()));
        }
    }
    out.sort();
    out
}

fn bound_to_pilot(binding: &Value, role_kind: &str, role: &str) {
    assert_eq!(
        (
            binding["roleRef"]["kind"].as_str(),
            binding["roleRef"]["name"].as_str()
        ),
        (Some(role_kind), Some(role))
    );
    let subjects = binding["subjects"].as_array().unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (
            subjects[0]["kind"].as_str(),
            subjects[0]["name"].as_str(),
            subjects[0]["namespace"].as_str()
        ),
        (
            Some("ServiceAccount"),
            Some("rudder-pilot"),
            Some("rudder-system")
        )
    );
}

#[test]
fn pilot_ca_rbac_grants_exactly_token_review_the_root_secret_and_the_root_configmap() {
    use rudder_kube::{CA_ROOT_SECRET, INSTALL_NAMESPACE, ROOT_CERT_CONFIGMAP};
    let all = objects();
    // TokenReview: the built-in role, nothing broader.
    bound_to_pilot(
        find(&all, "ClusterRoleBinding", "rudder-pilot-auth-delegator"),
        "ClusterRole",
        "system:auth-delegator",
    );

    let row = |res: &str, verb: &str, names: &[&str]| {
        (
            String::new(),
            res.to_string(),
            verb.to_string(),
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
    };
    let mut want_cluster = vec![
        row("configmaps", "create", &[]),
        row("configmaps", "list", &[ROOT_CERT_CONFIGMAP]),
        row("configmaps", "watch", &[ROOT_CERT_CONFIGMAP]),
        row("configmaps", "update", &[ROOT_CERT_CONFIGMAP]),
    ];
    want_cluster.sort();
    assert_eq!(
        grants_named(find(&all, "ClusterRole", "rudder-pilot-ca-root-cert")),
        want_cluster,
        "no more, no less"
    );
    bound_to_pilot(
        find(&all, "ClusterRoleBinding", "rudder-pilot-ca-root-cert"),
        "ClusterRole",
        "rudder-pilot-ca-root-cert",
    );

    let role = find(&all, "Role", "rudder-pilot-ca");
    assert_eq!(role["metadata"]["namespace"], INSTALL_NAMESPACE);
    let mut want_local = vec![
        row("secrets", "create", &[]),
        row("secrets", "get", &[CA_ROOT_SECRET]),
    ];
    want_local.sort();
    assert_eq!(grants_named(role), want_local, "no more, no less");
    let binding = find(&all, "RoleBinding", "rudder-pilot-ca");
    assert_eq!(binding["metadata"]["namespace"], INSTALL_NAMESPACE);
    bound_to_pilot(binding, "Role", "rudder-pilot-ca");

    // Secrets appear in no other pilot role (the root key is the mesh's most
    // sensitive object), but for the credential watch of ClusterRole
    // rudder-pilot: list and watch, nothing else (no get, no writes).
    let credentials = grants(find(&all, "ClusterRole", "rudder-pilot"));
    let secret_verbs: Vec<&str> = credentials
        .iter()
        .filter(|(_, r, _)| r == "secrets")
        .map(|(_, _, v)| v.as_str())
        .collect();
    assert_eq!(secret_verbs, ["list", "watch"]);
    for o in all.iter().filter(|o| {
        (o["kind"] == "Role" || o["kind"] == "ClusterRole")
            && o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("rudder-pilot"))
    }) {
        if o["metadata"]["name"] != "rudder-pilot-ca" && o["metadata"]["name"] != "rudder-pilot" {
            assert!(
                !o["rules"].to_string().contains("secrets"),
                "{} grants secrets",
                o["metadata"]["name"]
            );
        }
    }
}
