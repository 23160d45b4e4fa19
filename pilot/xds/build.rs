//! Compiles the `.proto` files that envoy-types ships into a descriptor set, so
//! generated resources can be rendered as canonical proto3 JSON (goldens,
//! `/debug/config_dump`, "identical xDS" comparisons) with prost-reflect.
//!
//! The proto folder is the one of the envoy-types version in Cargo.lock, in
//! Cargo's registry source cache (`cargo metadata` cannot be used here: it
//! resolves every platform's dependencies and would need the network).
//! `RUDDER_ENVOY_PROTO_DIR` overrides it.

use std::{env, path::PathBuf};

/// The messages we pack into `Any` or render; their imports come along.
const ROOTS: &[&str] = &[
    "envoy/config/bootstrap/v3/bootstrap.proto",
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/filters/http/fault/v3/fault.proto",
    "envoy/extensions/filters/listener/original_dst/v3/original_dst.proto",
    "envoy/extensions/access_loggers/stream/v3/stream.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto",
    "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto",
    "envoy/extensions/filters/http/rbac/v3/rbac.proto",
    "envoy/extensions/filters/network/rbac/v3/rbac.proto",
    "envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto",
];

fn proto_dir() -> PathBuf {
    if let Ok(dir) = env::var("RUDDER_ENVOY_PROTO_DIR") {
        return PathBuf::from(dir);
    }
    let version = envoy_types_version();
    let cargo_home = env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env::var("HOME").expect("HOME or CARGO_HOME")).join(".cargo")
        });
    let registry = cargo_home.join("registry").join("src");
    let wanted = format!("envoy-types-{version}");
    for index in std::fs::read_dir(&registry)
        .unwrap_or_else(|e| panic!("reading {}: {e}", registry.display()))
    {
        let dir = index
            .expect("registry entry")
            .path()
            .join(&wanted)
            .join("proto");
        if dir.is_dir() {
            return dir;
        }
    }
    panic!(
        "{wanted}/proto not found under {}; set RUDDER_ENVOY_PROTO_DIR",
        registry.display()
    )
}

/// The envoy-types version Cargo resolved, read from the workspace's Cargo.lock
/// (so the descriptors match the generated Rust types exactly).
fn envoy_types_version() -> String {
    let mut dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    loop {
        let lock = dir.join("Cargo.lock");
        if let Ok(text) = std::fs::read_to_string(&lock) {
            println!("cargo:rerun-if-changed={}", lock.display());
            let mut lines = text.lines();
            while let Some(line) = lines.next() {
                if line == "name = \"envoy-types\"" {
                    if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                        return v.trim_end_matches('"').to_string();
                    }
                }
            }
        }
        if !dir.pop() {
            panic!("no Cargo.lock naming envoy-types above CARGO_MANIFEST_DIR; set RUDDER_ENVOY_PROTO_DIR");
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUDDER_ENVOY_PROTO_DIR");
    let base = proto_dir();
    let includes: Vec<PathBuf> = [
        "data-plane-api",
        "xds",
        "googleapis",
        "protoc-gen-validate",
        "cel-spec/proto",
        "opentelemetry-proto",
        "client_model",
        "ratelimit",
    ]
    .iter()
    .map(|d| base.join(d))
    .filter(|p| p.is_dir())
    .collect();
    let fds = protox::Compiler::new(&includes)
        .expect("protox include paths")
        .include_imports(true)
        .open_files(ROOTS)
        .unwrap_or_else(|e| panic!("compiling envoy protos from {}: {e}", base.display()))
        .encode_file_descriptor_set();
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("envoy_descriptors.bin");
    std::fs::write(&out, fds).expect("writing descriptor set");
}
