//! Golden tests: `testdata/inject/NAME.yaml` → `NAME.yaml.injected`, through
//! the same `kube_inject` the CLI runs. `NAME.template.yaml`, when present, is
//! the template for that case. Refresh with `REFRESH_GOLDEN=1`.
//!
//! Beyond the byte comparison, every case also checks:
//! - idempotency: injecting the `.injected` output again changes nothing;
//! - the YAML writer is faithful: reading the output back gives exactly the
//!   documents that were injected (quoting of "15000", "*", "true" ...);
//! - the cases that must not be injected come out equal to their input.

use std::path::{Path, PathBuf};

use pretty_assertions::assert_eq;
use rudder_injector::{kube_inject, InjectContext, Values};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/inject")
}

/// Cases whose output must equal their input.
const UNCHANGED: &[&str] = &[
    "hostnetwork",
    "opt-out",
    "already-injected",
    "non-workload",
    "system-namespace",
];

/// Cases the issue requires (the test fails if one goes missing).
const REQUIRED: &[&str] = &[
    "plain-pod",
    "deployment",
    "multi-container",
    "init-containers",
    "probes",
    "hostnetwork",
    "opt-out",
    "job",
    "cronjob",
    "statefulset",
    "already-injected",
    "excluded-ports",
    "native-sidecars",
    "list",
    "non-workload",
    "custom-template",
];

fn cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .expect("testdata/inject exists")
        .map(|e| {
            e.expect("readable dir")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".yaml") && !n.ends_with(".template.yaml"))
        .map(|n| n.trim_end_matches(".yaml").to_string())
        .collect();
    names.sort();
    names
}

fn values_for(name: &str) -> Values {
    let t = dir().join(format!("{name}.template.yaml"));
    if t.exists() {
        Values::from_file(&t).unwrap_or_else(|e| panic!("{name}: {e}"))
    } else {
        Values::default()
    }
}

fn docs(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).expect("valid YAML");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn run(name: &str, input: &str) -> String {
    let values = values_for(name);
    let native = values.native_sidecars.resolve(None);
    kube_inject(input, &InjectContext::new(&values, native))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn golden_files() {
    let names = cases();
    for required in REQUIRED {
        assert!(
            names.iter().any(|n| n == required),
            "missing golden case {required}.yaml"
        );
    }
    for name in &names {
        let input = std::fs::read_to_string(dir().join(format!("{name}.yaml"))).unwrap();
        let output = run(name, &input);
        let golden_path = dir().join(format!("{name}.yaml.injected"));
        rudder_test_support::assert_golden(&golden_path, &output);

        // Idempotent: the injected output injects to itself.
        assert_eq!(
            run(name, &output),
            output,
            "{name}: injecting the injected output changed it"
        );

        if UNCHANGED.contains(&name.as_str()) {
            assert_eq!(
                docs(&output),
                docs(&input),
                "{name}: must come out unchanged"
            );
        } else {
            assert_ne!(docs(&output), docs(&input), "{name}: expected an injection");
        }
    }
}

#[test]
fn yaml_writer_round_trips_what_was_injected() {
    for name in cases() {
        let input = std::fs::read_to_string(dir().join(format!("{name}.yaml"))).unwrap();
        let values = values_for(&name);
        let ctx = InjectContext::new(&values, values.native_sidecars.resolve(None));
        let mut injected = docs(&input);
        for d in &mut injected {
            rudder_injector::kube_inject::inject_document(d, &ctx).unwrap();
        }
        assert_eq!(
            docs(&run(&name, &input)),
            injected,
            "{name}: YAML output does not read back as written"
        );
    }
}

#[test]
fn every_injected_pod_has_sidecar_and_init_with_commands() {
    for name in cases().iter().filter(|n| !UNCHANGED.contains(&n.as_str())) {
        let out = std::fs::read_to_string(dir().join(format!("{name}.yaml.injected"))).unwrap();
        let text = out.as_str();
        assert!(text.contains("name: rudder-init"), "{name}: no proxy-init");
        assert!(text.contains("name: rudder-proxy"), "{name}: no sidecar");
        assert!(
            text.contains("security.istio.io/tlsMode: istio"),
            "{name}: no tlsMode label"
        );
        assert!(
            text.contains("sidecar.istio.io/status"),
            "{name}: no status annotation"
        );
    }
}

/// Every `/app-health/` path a rewritten probe points at is one the agent
/// serves: the injector's `ISTIO_KUBE_APP_PROBERS` parses with the agent's own
/// parser and holds exactly the rewritten paths.
#[test]
fn the_agent_reads_the_probes_the_injector_rewrote() {
    let mut checked = 0;
    for name in cases().iter().filter(|n| !UNCHANGED.contains(&n.as_str())) {
        let out = std::fs::read_to_string(dir().join(format!("{name}.yaml.injected"))).unwrap();
        for doc in docs(&out) {
            let Some(spec) = pod_spec(&doc) else { continue };
            let containers = spec["containers"].as_array().cloned().unwrap_or_default();
            let sidecars = spec["initContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let sidecar = containers
                .iter()
                .chain(&sidecars)
                .find(|c| c["name"] == "rudder-proxy")
                .unwrap_or_else(|| panic!("{name}: no sidecar"));
            let env = sidecar["env"].as_array().cloned().unwrap_or_default();
            let value = env
                .iter()
                .find(|e| e["name"] == "ISTIO_KUBE_APP_PROBERS")
                .and_then(|e| e["value"].as_str())
                .unwrap_or("");
            let probers = rudder_agent::app_probe::AppProbers::parse(value)
                .unwrap_or_else(|e| panic!("{name}: the agent refuses the injector's probes: {e}"));
            let mut rewritten = Vec::new();
            for c in &containers {
                for kind in ["livenessProbe", "readinessProbe", "startupProbe"] {
                    let get = &c[kind]["httpGet"];
                    if get["port"] == 15020 {
                        let path = get["path"].as_str().unwrap().to_string();
                        assert!(
                            probers.get(&path).is_some(),
                            "{name}: {path} has no original probe"
                        );
                        rewritten.push(path);
                    }
                }
            }
            assert_eq!(
                probers.len(),
                rewritten.len(),
                "{name}: probes without a rewritten path"
            );
            checked += rewritten.len();
        }
    }
    assert!(
        checked >= 4,
        "the goldens rewrite probes ({checked} checked)"
    );
}

/// A document's pod spec: a Pod's, or a workload's pod template's.
fn pod_spec(doc: &Value) -> Option<&Value> {
    match doc["kind"].as_str()? {
        "Pod" => Some(&doc["spec"]),
        "CronJob" => Some(&doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        _ => doc["spec"]["template"].get("spec"),
    }
}
