//! Golden bootstraps: the builder's output for each shape of input is
//! reviewed like code (refresh with REFRESH_GOLDEN=1), and each golden file
//! is a bootstrap real Envoy accepts (`envoy --mode validate`).

mod common;

use std::{collections::BTreeMap, path::PathBuf};

use rudder_agent::{bootstrap, BootstrapConfig, CertSource, FileSecrets, XdsMode};
use rudder_model::{node::CertMode, NodeId, NodeMetadata};

fn config(xds: XdsMode, discovery: &str, certs: bool) -> BootstrapConfig {
    let ip = "198.18.0.5".parse().unwrap();
    let md = NodeMetadata {
        namespace: "default".into(),
        service_account: "bookinfo-reviews".into(),
        workload_name: "reviews-v1".into(),
        labels: BTreeMap::from([
            ("app".to_string(), "reviews".to_string()),
            ("version".to_string(), "v1".to_string()),
        ]),
        instance_ips: vec![ip],
        capture_port: 15000,
        inbound_capture_port: 15000,
        cert_mode: CertMode::File,
    };
    let mut cfg = BootstrapConfig::new(
        NodeId::sidecar(ip, "reviews-v1-0", "default"),
        md,
        discovery.parse().unwrap(),
    );
    cfg.xds = xds;
    if certs {
        let dir = PathBuf::from("/etc/certs");
        cfg.certs = CertSource::Files(FileSecrets {
            workload: Some((dir.join("cert-chain.pem"), dir.join("key.pem"))),
            root: Some(dir.join("root-cert.pem")),
        });
    }
    cfg
}

fn cases() -> Vec<(&'static str, BootstrapConfig)> {
    let mut custom = config(XdsMode::Delta, "127.0.0.1:25010", true);
    custom.admin_port = 25009;
    custom.stats_port = 25090;
    custom.metadata.capture_port = 16000;
    custom.metadata.inbound_capture_port = 16006;
    let mut sds = config(XdsMode::Sotw, "198.18.0.1:15012", false);
    sds.certs = CertSource::Sds(PathBuf::from("/var/run/secrets/workload-spiffe-uds/socket"));
    vec![
        (
            "sotw-ip-certs",
            config(XdsMode::Sotw, "198.18.0.1:15010", true),
        ),
        (
            "sotw-hostname",
            config(XdsMode::Sotw, "rudder-pilot.rudder-system.svc:15010", false),
        ),
        (
            "delta-hostname-certs",
            config(XdsMode::Delta, "rudder-pilot.rudder-system.svc:15010", true),
        ),
        (
            "delta-ip",
            config(XdsMode::Delta, "198.18.0.1:15010", false),
        ),
        ("delta-ip-custom-ports", custom),
        (
            "delta-tls-hostname-certs",
            config(XdsMode::Delta, "rudder-pilot.rudder-system.svc:15012", true),
        ),
        ("sotw-tls-ip-sds", sds),
    ]
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(format!("{name}.json"))
}

#[test]
fn bootstraps_match_golden_files() {
    for (name, cfg) in cases() {
        let got = serde_json::to_string_pretty(&bootstrap(&cfg)).unwrap() + "\n";
        rudder_test_support::assert_golden(&golden_path(name), &got);
    }
}

#[test]
fn golden_bootstraps_pass_envoy_validate() {
    let Some(envoy) = rudder_test_support::envoy_bin("golden_bootstraps_pass_envoy_validate")
    else {
        return;
    };
    // Envoy reads the files a static cluster's TLS context names (the xDS
    // cluster on 15012 verifies pilot with root-cert.pem), so the goldens'
    // /etc/certs becomes a directory holding real PEM files.
    let dir = tempfile::tempdir().unwrap();
    let ca = common::TestCa::new();
    let (chain, key, _) = ca.leaf(1);
    for (file, pem) in [
        ("cert-chain.pem", &chain),
        ("key.pem", &key),
        ("root-cert.pem", &ca.root_pem),
    ] {
        std::fs::write(dir.path().join(file), pem).unwrap();
    }
    for (name, _) in cases() {
        let text = std::fs::read_to_string(golden_path(name)).unwrap();
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(
            &path,
            text.replace("\"/etc/certs/", &format!("\"{}/", dir.path().display())),
        )
        .unwrap();
        let out = std::process::Command::new(&envoy)
            .args([
                "--mode",
                "validate",
                "--disable-hot-restart",
                "-l",
                "error",
                "-c",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{name}: envoy --mode validate failed:\n{text}"
        );
        assert!(text.contains("OK"), "{name}: {text}");
        println!("{name}: envoy --mode validate OK");
    }
}
