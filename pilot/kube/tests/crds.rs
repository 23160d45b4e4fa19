//! The generated CRDs: the checked-in manifests/crds.yaml is the
//! generator's output byte for byte (REFRESH_GOLDEN=1 rewrites it), every
//! schema is structural and uses only formats the API server knows, and the
//! served versions are declared properly.

use std::path::{Path, PathBuf};

use rudder_kube::{crds, crds_yaml, formats::unknown_formats, structural::structural_problems};

fn crds_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests/crds.yaml")
}

#[test]
fn checked_in_crds_match_the_generator() {
    let generated = crds_yaml().expect("generate");
    let path = crds_file();
    // Stale: this test with REFRESH_GOLDEN=1, or
    // `cargo run -p rudder-kube --bin rudder-crds > manifests/crds.yaml`.
    rudder_test_support::assert_golden(&path, &generated);
}

#[test]
fn versions_are_declared_properly() {
    let expected = [
        (
            "virtualservices.networking.istio.io",
            "v1",
            vec!["v1", "v1alpha3", "v1beta1"],
        ),
        (
            "destinationrules.networking.istio.io",
            "v1",
            vec!["v1", "v1alpha3", "v1beta1"],
        ),
        (
            "sidecars.networking.istio.io",
            "v1",
            vec!["v1", "v1alpha3", "v1beta1"],
        ),
        (
            "serviceentries.networking.istio.io",
            "v1",
            vec!["v1", "v1alpha3", "v1beta1"],
        ),
        (
            "workloadentries.networking.istio.io",
            "v1",
            vec!["v1", "v1alpha3", "v1beta1"],
        ),
        (
            "gateways.networking.istio.io",
            "v1",
            vec!["v1", "v1alpha3", "v1beta1"],
        ),
        ("routerules.config.istio.io", "v1alpha2", vec!["v1alpha2"]),
        (
            "destinationpolicies.config.istio.io",
            "v1alpha2",
            vec!["v1alpha2"],
        ),
        (
            "peerauthentications.security.istio.io",
            "v1",
            vec!["v1", "v1beta1"],
        ),
        (
            "authorizationpolicies.security.istio.io",
            "v1",
            vec!["v1", "v1beta1"],
        ),
        (
            "requestauthentications.security.istio.io",
            "v1",
            vec!["v1", "v1beta1"],
        ),
        (
            "telemetries.telemetry.istio.io",
            "v1",
            vec!["v1", "v1alpha1"],
        ),
        ("httpproxies.projectcontour.io", "v1", vec!["v1"]),
        ("mappings.getambassador.io", "v3alpha1", vec!["v3alpha1"]),
    ];
    let all = crds().expect("generate");
    assert_eq!(all.len(), expected.len());
    for (crd, (name, storage, versions)) in all.iter().zip(expected) {
        assert_eq!(crd.metadata.name.as_deref(), Some(name));
        assert_eq!(crd.spec.scope, "Namespaced");
        let mut names: Vec<&str> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
        names.sort();
        assert_eq!(names, versions, "{name}: served versions");
        let stored: Vec<&str> = crd
            .spec
            .versions
            .iter()
            .filter(|v| v.storage)
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(stored, vec![storage], "{name}: exactly one storage version");
        assert!(
            crd.spec.versions.iter().all(|v| v.served),
            "{name}: every version served"
        );
        assert!(
            crd.spec
                .conversion
                .as_ref()
                .is_none_or(|c| c.strategy == "None"),
            "{name}: conversion None"
        );
        let schemas: Vec<serde_json::Value> = crd
            .spec
            .versions
            .iter()
            .map(|v| serde_json::to_value(v.schema.as_ref().expect("schema")).unwrap())
            .collect();
        assert!(
            schemas.windows(2).all(|w| w[0] == w[1]),
            "{name}: one schema for every version (conversion None needs it)"
        );
        for v in &crd.spec.versions {
            assert!(
                v.subresources.as_ref().is_some_and(|s| s.status.is_some()),
                "{name}/{}: status subresource",
                v.name
            );
        }
    }
}

#[test]
fn every_schema_is_structural() {
    for crd in crds().expect("generate") {
        let name = crd.metadata.name.clone().unwrap_or_default();
        for v in &crd.spec.versions {
            let schema = serde_json::to_value(
                v.schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .expect("schema"),
            )
            .unwrap();
            let problems = structural_problems(&schema);
            assert!(
                problems.is_empty(),
                "{name} {}: not structural:\n{}",
                v.name,
                problems.join("\n")
            );
            assert_eq!(schema["properties"]["spec"]["type"], "object", "{name}");
            assert_eq!(
                schema["properties"]["status"]["properties"]["conditions"]["type"], "array",
                "{name}"
            );
            // As Istio's CRDs: unknown fields are kept, not pruned, so the
            // registry refuses an unknown spec field by name.
            for field in ["spec", "status"] {
                assert_eq!(
                    schema["properties"][field]["x-kubernetes-preserve-unknown-fields"], true,
                    "{name} {field}"
                );
            }
        }
    }
}

/// YAML files under `dir`, recursively.
fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read manifests/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// `kubectl apply -f manifests/` prints "unrecognized format" for every
/// format the API server does not know; every CRD schema in manifests/ (not
/// only the generated ones) must use known formats only.
#[test]
fn every_schema_in_manifests_uses_known_formats() {
    let dir = crds_file().parent().expect("manifests/").to_path_buf();
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    files.sort();
    let mut schemas = 0;
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read manifest");
        let docs: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for doc in docs
            .iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
        {
            let name = doc["metadata"]["name"].as_str().unwrap_or("?");
            let versions = doc["spec"]["versions"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for v in versions {
                let schema = &v["schema"]["openAPIV3Schema"];
                if schema.is_null() {
                    continue;
                }
                schemas += 1;
                problems.extend(unknown_formats(schema).into_iter().map(|p| {
                    let rel = file.strip_prefix(&dir).unwrap_or(file);
                    format!(
                        "manifests/{} {name} {}: {p}",
                        rel.display(),
                        v["name"].as_str().unwrap_or("?")
                    )
                }));
            }
        }
    }
    assert!(
        schemas >= 12,
        "expected the generated CRDs' 12 version schemas, found {schemas}"
    );
    assert!(
        problems.is_empty(),
        "formats the API server does not know (it warns on every apply):\n{}",
        problems.join("\n")
    );
}
