//! manifests/injector/: valid Kubernetes objects (checked offline with
//! kubernetes-validate), wired together consistently, and carrying the same
//! template values as the built-in default.

use std::{path::PathBuf, process::Command};

use pretty_assertions::assert_eq;
use rudder_injector::Values;
use serde_json::{json, Value};

fn manifests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/injector")
}

fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifests_dir())
        .expect("manifests/injector exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn objects() -> Vec<Value> {
    manifest_files()
        .iter()
        .flat_map(|f| {
            let docs: Vec<Value> =
                serde_saphyr::from_multiple(&std::fs::read_to_string(f).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            docs.into_iter().filter(|d| !d.is_null())
        })
        .collect()
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in manifests/injector"))
}

fn validator(test: &str) -> Option<PathBuf> {
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/kubernetes-validate");
    let found = if tool.exists() {
        Ok(tool)
    } else {
        Err(format!(
            "kubernetes-validate not installed at {} (run scripts/setup.sh)",
            tool.display()
        ))
    };
    rudder_test_support::prerequisite(test, found)
}

#[test]
fn manifests_pass_kubernetes_validate_strict() {
    let Some(tool) = validator("manifests_pass_kubernetes_validate_strict") else {
        return;
    };
    let files = manifest_files();
    assert!(
        files.len() >= 3,
        "expected configmap, injector and webhook manifests"
    );
    let out = Command::new(&tool)
        .arg("--strict")
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubernetes-validate failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches(" passed ").count(),
        objects().len(),
        "every object validated:\n{stdout}"
    );

    // The check can fail: a webhook with a misspelt field is rejected.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(manifests_dir().join("webhook.yaml"))
        .unwrap()
        .replace("sideEffects:", "sideEffect:");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(&tool)
        .arg("--strict")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a misspelt field must fail validation"
    );
}

#[test]
fn configmap_values_equal_the_built_in_default() {
    let path = manifests_dir().join("configmap.yaml");
    let from_configmap = Values::from_file(&path).unwrap();
    assert_eq!(from_configmap, Values::default());
    // What the Deployment mounts is the `values` key alone: same result.
    let objs = objects();
    let values = find(&objs, "ConfigMap", "rudder-sidecar-injector-template")["data"]["values"]
        .as_str()
        .unwrap();
    assert_eq!(
        Values::from_yaml(values, "mounted values").unwrap(),
        Values::default()
    );
}

#[test]
fn deployment_service_and_webhook_agree() {
    let objs = objects();
    let svc = find(&objs, "Service", "rudder-injector");
    assert_eq!(svc["metadata"]["namespace"], "rudder-system");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 15017);

    let dep = find(&objs, "Deployment", "rudder-injector");
    let pod = &dep["spec"]["template"];
    assert_eq!(
        svc["spec"]["selector"]["app"],
        pod["metadata"]["labels"]["app"]
    );
    assert_eq!(
        pod["metadata"]["labels"]["sidecar.istio.io/inject"],
        "false"
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["image"], "rudder/injector:0.1.0");
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "serve");
    let arg = |flag: &str| {
        args[args
            .iter()
            .position(|a| *a == flag)
            .unwrap_or_else(|| panic!("no {flag}"))
            + 1]
    };
    assert!(arg("--addr").ends_with(":15017"));
    // Every file the args name lives in a mounted volume of the right source.
    let mounts = c["volumeMounts"].as_array().unwrap();
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    for (flag, source) in [(
        "--template",
        json!({"configMap": {"name": "rudder-sidecar-injector-template"}}),
    )] {
        let path = arg(flag);
        let m = mounts
            .iter()
            .find(|m| path.starts_with(&format!("{}/", m["mountPath"].as_str().unwrap())))
            .unwrap_or_else(|| panic!("{flag} {path} is not under a mount"));
        let v = volumes.iter().find(|v| v["name"] == m["name"]).unwrap();
        let (k, want) = source.as_object().unwrap().iter().next().unwrap();
        for (field, value) in want.as_object().unwrap() {
            assert_eq!(&v[k][field], value, "{flag}: volume {}", v["name"]);
        }
    }
    // The certificate is the injector's own (Secret through the API), so no
    // certificate files and no Secret volume; it learns its namespace.
    assert!(!args.contains(&"--tls-cert") && !args.contains(&"--tls-key"));
    assert!(
        !volumes.iter().any(|v| v.get("secret").is_some()),
        "no Secret volume: {volumes:?}"
    );
    let env = c["env"].as_array().unwrap();
    assert!(env.contains(&json!({"name": "POD_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})));

    let hook = find(
        &objs,
        "MutatingWebhookConfiguration",
        "rudder-sidecar-injector",
    );
    let entries = hook["webhooks"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for w in entries {
        assert_eq!(w["admissionReviewVersions"], json!(["v1"]));
        assert_eq!(w["sideEffects"], "None");
        assert_eq!(w["failurePolicy"], "Fail");
        let s = &w["clientConfig"]["service"];
        assert_eq!(
            (
                s["name"].as_str(),
                s["namespace"].as_str(),
                s["path"].as_str(),
                s["port"].as_u64()
            ),
            (
                Some("rudder-injector"),
                Some("rudder-system"),
                Some("/inject"),
                Some(443)
            )
        );
        assert_eq!(w["rules"][0]["resources"], json!(["pods"]));
        assert_eq!(w["rules"][0]["operations"], json!(["CREATE"]));
    }
    let by_ns = &entries[0];
    assert!(by_ns["namespaceSelector"]["matchExpressions"]
        .as_array()
        .unwrap()
        .contains(&json!({"key": "istio-injection", "operator": "In", "values": ["enabled"]})));
    assert_eq!(
        by_ns["objectSelector"]["matchExpressions"][0],
        json!({"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]})
    );
    assert_eq!(
        entries[1]["objectSelector"]["matchLabels"]["sidecar.istio.io/inject"],
        "true"
    );
}

/// The validator reaches the injector's /validate, fails open, and selects
/// exactly the kinds and versions of Rudder's CRDs (manifests/crds.yaml) in
/// the Istio groups: none escapes validation, and each one selected is a kind
/// the registry reads (an object of it is judged, not called unsupported).
#[test]
fn the_validator_selects_every_rule_kind_rudder_reads() {
    let objs = objects();
    let hook = find(&objs, "ValidatingWebhookConfiguration", "rudder-validator");
    let entries = hook["webhooks"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let w = &entries[0];
    assert_eq!(w["failurePolicy"], "Ignore");
    assert_eq!(w["sideEffects"], "None");
    assert_eq!(w["clientConfig"]["service"]["path"], "/validate");
    let svc = find(&objs, "Service", "rudder-injector");
    assert_eq!(
        w["clientConfig"]["service"]["name"],
        svc["metadata"]["name"]
    );
    assert_eq!(
        w["clientConfig"]["service"]["port"],
        svc["spec"]["ports"][0]["port"]
    );

    let mut selected = Vec::new();
    for rule in w["rules"].as_array().unwrap() {
        assert_eq!(rule["operations"], json!(["CREATE", "UPDATE"]));
        for g in rule["apiGroups"].as_array().unwrap() {
            for v in rule["apiVersions"].as_array().unwrap() {
                for r in rule["resources"].as_array().unwrap() {
                    selected.push(format!(
                        "{}/{}/{}",
                        g.as_str().unwrap(),
                        v.as_str().unwrap(),
                        r.as_str().unwrap()
                    ));
                }
            }
        }
    }
    selected.sort();

    let crds_text = std::fs::read_to_string(manifests_dir().join("../crds.yaml")).unwrap();
    let crds: Vec<Value> = serde_saphyr::from_multiple(&crds_text).unwrap();
    let mut installed = Vec::new();
    for crd in crds
        .iter()
        .filter(|c| c["kind"] == "CustomResourceDefinition")
    {
        let group = crd["spec"]["group"].as_str().unwrap();
        if !group.ends_with("istio.io") {
            continue;
        }
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        for v in crd["spec"]["versions"].as_array().unwrap() {
            let version = v["name"].as_str().unwrap();
            installed.push(format!("{group}/{version}/{plural}"));
            // An object of it is judged by the registry, not refused as a
            // kind Rudder does not read.
            let object = json!({
                "apiVersion": format!("{group}/{version}"),
                "kind": kind,
                "metadata": {"name": "x", "namespace": "default"},
                "spec": {},
            });
            let problems = rudder_injector::validation::problems_of(&object);
            assert!(
                !problems.iter().any(|p| p.starts_with("unsupported:")),
                "{group}/{version} {kind}: {problems:?}"
            );
        }
    }
    installed.sort();
    assert_eq!(selected, installed);
}

/// `(apiGroup, resource, verb, resourceNames)` of every rule.
fn rules(role: &Value) -> Vec<(String, String, String, Vec<String>)> {
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for r in role["rules"].as_array().unwrap() {
        for g in strs(&r["apiGroups"]) {
            for res in strs(&r["resources"]) {
                for v in strs(&r["verbs"]) {
                    out.push((g.clone(), res.clone(), v, strs(&r["resourceNames"])));
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn rbac_grants_only_the_certificate_secret_and_the_webhook_configuration() {
    use rudder_injector::serving_cert::{SECRET_NAME, VALIDATOR_CONFIG_NAME, WEBHOOK_CONFIG_NAME};
    let objs = objects();
    let named = |g: &str, r: &str, v: &str, n: &[&str]| {
        (
            g.to_string(),
            r.to_string(),
            v.to_string(),
            n.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    let role = find(&objs, "Role", "rudder-injector");
    assert_eq!(role["metadata"]["namespace"], "rudder-system");
    assert_eq!(
        rules(role),
        [
            // create cannot be limited by name (see injector-rbac.yaml).
            named("", "secrets", "create", &[]),
            named("", "secrets", "get", &[SECRET_NAME]),
            named("", "secrets", "update", &[SECRET_NAME]),
        ]
    );
    assert_eq!(
        rules(find(&objs, "ClusterRole", "rudder-injector")),
        [
            named(
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
                "get",
                &[WEBHOOK_CONFIG_NAME]
            ),
            named(
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
                "patch",
                &[WEBHOOK_CONFIG_NAME]
            ),
            named(
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
                "get",
                &[VALIDATOR_CONFIG_NAME]
            ),
            named(
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
                "patch",
                &[VALIDATOR_CONFIG_NAME]
            ),
        ]
    );
    // The objects patched are the ones in webhook.yaml and validator.yaml.
    find(&objs, "MutatingWebhookConfiguration", WEBHOOK_CONFIG_NAME);
    find(
        &objs,
        "ValidatingWebhookConfiguration",
        VALIDATOR_CONFIG_NAME,
    );
    let sa = find(&objs, "ServiceAccount", "rudder-injector");
    let dep = find(&objs, "Deployment", "rudder-injector");
    assert_eq!(
        dep["spec"]["template"]["spec"]["serviceAccountName"],
        sa["metadata"]["name"]
    );
    for (kind, role_kind) in [
        ("RoleBinding", "Role"),
        ("ClusterRoleBinding", "ClusterRole"),
    ] {
        let b = find(&objs, kind, "rudder-injector");
        assert_eq!(
            b["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": "rudder-injector"})
        );
        assert_eq!(
            b["subjects"],
            json!([{"kind": "ServiceAccount", "name": "rudder-injector", "namespace": "rudder-system"}])
        );
    }
    // Applied before the Deployment (kubectl applies a directory in name order).
    let files: Vec<String> = manifest_files()
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let pos = |n: &str| files.iter().position(|f| f == n).unwrap();
    assert!(
        pos("injector-rbac.yaml") < pos("injector.yaml"),
        "{files:?}"
    );
}
