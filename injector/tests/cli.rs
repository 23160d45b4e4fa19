//! The `injector` binary: kube-inject from a file and from stdin, and errors
//! that name the document and field.

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
};

fn injector(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_injector"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn testdata(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/inject")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn kube_inject_file_and_stdin_match_the_golden_output() {
    let golden = std::fs::read_to_string(testdata("deployment.yaml.injected")).unwrap();
    let out = injector(&["kube-inject", "-f", &testdata("deployment.yaml")], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), golden);

    let input = std::fs::read_to_string(testdata("deployment.yaml")).unwrap();
    let out = injector(&["kube-inject", "-f", "-"], Some(&input));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), golden);

    let golden = std::fs::read_to_string(testdata("custom-template.yaml.injected")).unwrap();
    let out = injector(
        &[
            "kube-inject",
            "-f",
            &testdata("custom-template.yaml"),
            "--template",
            &testdata("custom-template.template.yaml"),
        ],
        None,
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), golden);
}

#[test]
fn kubernetes_version_turns_auto_into_native_sidecars() {
    let input = std::fs::read_to_string(testdata("plain-pod.yaml")).unwrap();
    let new = injector(
        &["kube-inject", "-f", "-", "--kubernetes-version", "1.30"],
        Some(&input),
    );
    let old = injector(
        &["kube-inject", "-f", "-", "--kubernetes-version", "1.28"],
        Some(&input),
    );
    assert!(String::from_utf8_lossy(&new.stdout).contains("restartPolicy: Always"));
    assert!(!String::from_utf8_lossy(&old.stdout).contains("restartPolicy: Always"));
}

#[test]
fn errors_name_the_document_and_field() {
    let two_docs = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n\
        apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n\
        spec:\n  template:\n    spec:\n      containers: oops\n";
    let list = "apiVersion: v1\nkind: List\nitems:\n- kind: Pod\n  metadata: {name: ok}\n  spec: {containers: []}\n\
        - kind: Pod\n  metadata:\n    name: bad\n    annotations: {traffic.sidecar.istio.io/excludeInboundPorts: \"80,x\"}\n  spec: {containers: []}\n";
    let cases = [
        (two_docs, "document 2 (Deployment shop/web): spec.template.spec.containers: expected a list, got a string"),
        ("kind: CronJob\nmetadata: {name: c}\nspec: {jobTemplate: {}}\n", "document 1 (CronJob c): spec.jobTemplate.spec: missing"),
        (list, "document 1 (List): items[1].metadata.annotations[\"traffic.sidecar.istio.io/excludeInboundPorts\"]: \"x\" is not a port"),
        ("kind: Pod\nmetadata: {labels: {sidecar.istio.io/inject: 1}}\nspec: {containers: []}\n", "document 1 (Pod): metadata.labels[\"sidecar.istio.io/inject\"]: expected a string, got a number"),
        ("- just\n- a list\n", "document 1 (object without kind): (document): expected a Kubernetes object, got a list"),
        ("kind: Pod\nspec: [\n", "input is not valid YAML"),
    ];
    for (input, message) in cases {
        let out = injector(&["kube-inject", "-f", "-"], Some(input));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{message}: should fail");
        assert!(stderr.contains(message), "want {message:?} in:\n{stderr}");
        assert!(out.stdout.is_empty(), "no partial output on error");
    }
    let out = injector(&["kube-inject", "-f", "/nonexistent.yaml"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.yaml"));
}

#[test]
fn serve_reports_bad_certificate_and_template_files() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls.crt");
    std::fs::write(&cert, "not a certificate").unwrap();
    let key = dir.path().join("tls.key");
    std::fs::write(&key, "").unwrap();
    let out = injector(
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tls.crt") && stderr.contains("no CERTIFICATE block"),
        "{stderr}"
    );

    let tpl = dir.path().join("values");
    std::fs::write(&tpl, "proxyPort: -1\n").unwrap();
    let out = injector(
        &[
            "serve",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--template",
            tpl.to_str().unwrap(),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("values.proxyPort"), "{stderr}");
}

#[test]
fn serve_without_certificate_files_outside_a_cluster_says_what_to_pass() {
    let out = Command::new(env!("CARGO_BIN_EXE_injector"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not running in a cluster")
            && stderr.contains("pass --tls-cert FILE --tls-key FILE"),
        "{stderr}"
    );
    // One of the pair alone is a usage error.
    let out = injector(&["serve", "--tls-cert", "/tmp/x.crt"], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tls-key"), "{stderr}");
}
