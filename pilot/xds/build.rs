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
    "envoy/extensions/filters/http/cors/v3/cors.proto",
    "envoy/extensions/filters/listener/original_dst/v3/original_dst.proto",
    "envoy/extensions/access_loggers/stream/v3/stream.proto",
    "envoy/extensions/access_loggers/file/v3/file.proto",
    "envoy/config/trace/v3/zipkin.proto",
    "envoy/config/trace/v3/opentelemetry.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto",
    "envoy/extensions/transport_sockets/proxy_protocol/v3/upstream_proxy_protocol.proto",
    "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto",
    "envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto",
    "envoy/extensions/filters/http/rbac/v3/rbac.proto",
    "envoy/extensions/filters/http/jwt_authn/v3/config.proto",
    "envoy/extensions/filters/network/rbac/v3/rbac.proto",
    "envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto",
    "envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config.proto",
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

/// The source folders whose code decides the bytes of generated resources:
/// this crate's and the model's (relative to this crate's manifest).
const GENERATOR_SOURCES: &[&str] = &["src", "../model/src"];

/// FNV-1a, 64 bits: a hash that stays the same across Rust releases (unlike
/// `DefaultHasher`), so one source tree always gives one generator hash.
fn fnv1a(h: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Hashes the generator's sources (paths and contents, in path order) and the
/// envoy-types version: any change that can change generated bytes changes
/// this hash, and with it every resource version (issue 12). Exported to the
/// crate as `RUDDER_GENERATOR_HASH`.
fn generator_hash(envoy_types: &str) {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in GENERATOR_SOURCES {
        let dir = manifest.join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        rust_files(&dir, &mut files);
    }
    let mut named: Vec<(String, PathBuf)> = files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&manifest)
                .unwrap_or(&p)
                .to_string_lossy()
                .replace('\\', "/");
            (rel, p)
        })
        .collect();
    named.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    fnv1a(&mut h, envoy_types.as_bytes());
    for (rel, path) in &named {
        let text =
            std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        fnv1a(&mut h, rel.as_bytes());
        fnv1a(&mut h, &[0]);
        fnv1a(&mut h, &(text.len() as u64).to_le_bytes());
        fnv1a(&mut h, &text);
    }
    println!("cargo:rustc-env=RUDDER_GENERATOR_HASH={h:016x}");
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    generator_hash(&envoy_types_version());
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
