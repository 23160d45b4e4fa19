//! The generated CRDs: the checked-in manifests/crds.yaml is the
//! generator's output byte for byte (REFRESH_GOLDEN=1 rewrites it), every
//! schema is structural, and the served versions are declared properly.

use std::path::PathBuf;

use rudder_kube::{crds, crds_yaml, structural::structural_problems};

fn crds_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests/crds.yaml")
}

#[test]
fn checked_in_crds_match_the_generator() {
    let generated = crds_yaml().expect("generate");
    let path = crds_file();
    if std::env::var("REFRESH_GOLDEN").is_ok_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&path, &generated).expect("write manifests/crds.yaml");
    }
    let on_disk = std::fs::read_to_string(&path)
        .expect("manifests/crds.yaml (run with REFRESH_GOLDEN=1 to create it)");
    assert!(
        on_disk == generated,
        "manifests/crds.yaml is stale: run `cargo run -p rudder-kube --bin rudder-crds > manifests/crds.yaml` \
         (or this test with REFRESH_GOLDEN=1)"
    );
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
        }
    }
}
