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
            ("sleep-0", false)
        ]
    );
    assert_eq!(mesh.services.len(), 4);
    assert!(mesh
        .services
        .iter()
        .all(|s| s.def.ports[0].port == 9080 && s.def.ports[0].name.as_deref() == Some("http")));
    // Only destination rules are active by default; the variants wait in rules/.
    assert!(
        mesh.rules.iter().all(|r| r.kind == "DestinationRule"),
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
