//! Secrets as TLS credentials (issue 15) and DestinationRule
//! `tls.credentialName` (issue 14): which Secrets are credentials, the
//! errors of bad ones (naming Secret and key), the warnings of a missing or
//! unreadable one, and the namespace a proxy reads them from.

mod common;

use base64::Engine;
use common::*;
use rudder_model::ClientTls;
use rudder_registry::build::build_snapshot;

fn cred(file: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/credentials")
        .join(file);
    std::fs::read_to_string(p).unwrap()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A YAML block scalar of `text` at this indentation.
fn block(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let lines: Vec<String> = text.lines().map(|l| format!("{pad}{l}")).collect();
    format!("|\n{}", lines.join("\n"))
}

fn tls_secret(ns: &str, name: &str, stem: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n  ca.crt: {}\n",
        b64(&cred(&format!("{stem}.crt"))),
        b64(&cred(&format!("{stem}.key"))),
        b64(&cred("ca.crt")),
    )
}

const DR_CREDENTIAL: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: httpbin.example.com
  trafficPolicy:
    tls: {mode: MUTUAL, credentialName: client, sni: httpbin.example.com}
";

#[test]
fn tls_and_generic_secrets_are_read_from_data_and_string_data() {
    let generic = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: istio-keys, namespace: default}}\nstringData:\n  cert: {}\n  key: {}\n  cacert: {}\n",
        block(&cred("httpbin.crt"), 4),
        block(&cred("httpbin.key"), 4),
        block(&cred("ca.crt"), 4)
    );
    let other = "apiVersion: v1\nkind: Secret\nmetadata: {name: db-password, namespace: default}\nstringData: {password: hunter2}\n";
    let yaml = [
        tls_secret("default", "client", "client"),
        generic,
        other.to_string(),
    ]
    .join("---\n");
    let objs = objects(&yaml);
    let snap = build_snapshot(&objs, vec![]);
    let keys: Vec<&String> = snap.secrets.keys().collect();
    assert_eq!(
        keys,
        ["default/client", "default/istio-keys"],
        "db-password is no credential"
    );
    let c = &snap.secrets["default/client"];
    assert_eq!(c.cert_chain, cred("client.crt"));
    assert_eq!(c.ca.as_deref(), Some(cred("ca.crt").as_str()));
    assert_eq!(
        snap.secrets["default/istio-keys"].private_key.trim(),
        cred("httpbin.key").trim()
    );
    assert!(snap.diagnostics.is_empty(), "{:?}", snap.diagnostics);
}

#[test]
fn bad_secrets_are_errors_naming_secret_and_key() {
    let missing_key = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: half, namespace: default}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n",
        b64(&cred("client.crt"))
    );
    let bad_pem = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: garbled, namespace: default}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"),
        b64(&cred("client.key"))
    );
    let r = validate(&[("half.yaml", &missing_key), ("garbled.yaml", &bad_pem)]);
    let errs: Vec<String> = errors(&r).iter().map(|d| d.to_string()).collect();
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.contains("Secret default/half") && e.contains("tls.key")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("Secret default/garbled")
            && e.contains("tls.crt")
            && e.contains("does not parse")),
        "{errs:#?}"
    );
}

#[test]
fn credential_name_compiles_and_a_missing_secret_is_a_warning() {
    let r = validate(&[("dr.yaml", DR_CREDENTIAL)]);
    assert!(errors(&r).is_empty(), "{:?}", r.lines());
    let w: Vec<String> = warnings(&r).iter().map(|d| d.to_string()).collect();
    assert!(
        w.iter()
            .any(|l| l.contains("DestinationRule default/httpbin")
                && l.contains("spec.trafficPolicy.tls.credentialName")
                && l.contains("no TLS Secret default/client")),
        "{w:#?}"
    );
    // With the Secret: no warning, and the policy names the credential.
    let yaml = [
        DR_CREDENTIAL.to_string(),
        tls_secret("default", "client", "client"),
    ]
    .join("---\n");
    let objs = objects(&yaml);
    let snap = build_snapshot(&objs, vec![]);
    assert!(
        !snap
            .diagnostics
            .iter()
            .any(|d| d.field.contains("credentialName")),
        "{:?}",
        snap.diagnostics
    );
    let p = snap
        .destination_policy("default", "httpbin.example.com")
        .expect("policy");
    assert!(matches!(
        &p.traffic_policy.tls,
        Some(ClientTls::Credential { credential_name, mutual: true, .. }) if credential_name == "client"
    ));
}

#[test]
fn another_namespaces_secret_is_a_warning_and_bad_modes_are_errors() {
    let cross = DR_CREDENTIAL.replace("credentialName: client", "credentialName: vault/client");
    let r = validate(&[
        ("dr.yaml", &cross),
        ("s.yaml", &tls_secret("vault", "client", "client")),
    ]);
    let w: Vec<String> = warnings(&r).iter().map(|d| d.to_string()).collect();
    assert!(
        w.iter()
            .any(|l| l.contains("namespace vault") && l.contains("reads only Secrets of its own")),
        "{w:#?}"
    );
    let istio = DR_CREDENTIAL.replace("mode: MUTUAL", "mode: ISTIO_MUTUAL");
    let r = validate(&[("dr.yaml", &istio)]);
    let e: Vec<String> = errors(&r).iter().map(|d| d.to_string()).collect();
    assert!(
        e.iter()
            .any(|l| l.contains("spec.trafficPolicy.tls.credentialName")
                && l.contains("SIMPLE and MUTUAL")),
        "{e:#?}"
    );
}
