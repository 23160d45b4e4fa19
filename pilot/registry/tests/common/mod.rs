//! Fixture builders shared by the integration tests.
#![allow(dead_code)]

use rudder_model::{Diagnostic, Severity};
use rudder_registry::{load::load_str, validate::validate_loaded, Object, ValidationReport};

/// Objects from YAML (panics on any problem: fixtures must be valid).
pub fn objects(yaml: &str) -> Vec<Object> {
    let l = load_str(yaml, "fixture.yaml", "fixture.yaml");
    assert!(
        l.problems.is_empty() && l.rejected.is_empty(),
        "fixture problems: {:?} {:?}",
        l.problems,
        l.rejected
    );
    l.objects
}

/// Validates in-memory files, each `(name, yaml)`.
pub fn validate(files: &[(&str, &str)]) -> ValidationReport {
    validate_loaded(
        files.iter().map(|(n, y)| load_str(y, n, n)).collect(),
        vec![],
    )
}

/// Errors of a report.
pub fn errors(r: &ValidationReport) -> Vec<&Diagnostic> {
    r.diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

/// Warnings of a report.
pub fn warnings(r: &ValidationReport) -> Vec<&Diagnostic> {
    r.diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .collect()
}

/// The unsupported-kind findings of validating one file, as printed.
pub fn unsupported(yaml: &str) -> Vec<String> {
    validate(&[("f.yaml", yaml)])
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Unsupported)
        .map(|d| d.to_string())
        .collect()
}

/// Each case `(yaml, field, word)`: validating the file gives an error at
/// a path starting with `field` whose message names `word`.
pub fn assert_errors_at(cases: &[(String, &str, &str)]) {
    for (yaml, field, word) in cases {
        let r = validate(&[("f.yaml", yaml)]);
        let e = errors(&r);
        assert!(
            e.iter()
                .any(|d| d.field.starts_with(field) && d.to_string().contains(word)),
            "want an error at {field} naming {word}: {e:?}\n{yaml}"
        );
    }
}

pub fn mk_service(name: &str, port_name: &str, port: u16, target: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  clusterIP: 198.19.0.1\n  selector: {{app: {name}}}\n  ports:\n  - {{name: {port_name}, port: {port}, targetPort: {target}}}\n"
    )
}

pub fn mk_pod(name: &str, app: &str, version: &str, ip: &str, ready: bool) -> String {
    let status = if ready { "True" } else { "False" };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, labels: {{app: {app}, version: {version}}}}}\nspec:\n  containers:\n  - name: app\n    ports: [{{name: web, containerPort: 8080}}]\nstatus:\n  phase: Running\n  podIP: {ip}\n  conditions: [{{type: Ready, status: \"{status}\"}}]\n"
    )
}

/// Path of a testdata file.
pub fn testdata(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}
