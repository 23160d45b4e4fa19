//! The Envoy bootstrap: a pure function of [`BootstrapConfig`].
//!
//! Envoy reads JSON bootstraps, so the builder returns a `serde_json::Value`
//! rather than protobuf: it is what `agent bootstrap` prints, what the agent
//! writes next to Envoy, and what end-to-end tests feed to Envoys they start
//! themselves. No I/O happens here; [`FileSecrets::from_dir`] is the one helper
//! that looks at the disk, and callers run it before building.
//!
//! What the bootstrap holds:
//! - `node`: id and metadata from `rudder_model::node` (never re-encoded here);
//! - `dynamic_resources`: ADS over gRPC (`GRPC` for SotW, `DELTA_GRPC` for
//!   delta) to the [`XDS_CLUSTER`] cluster, with CDS and LDS through ADS;
//! - `static_resources`: the `xds-grpc` cluster (HTTP/2; `STATIC` for an IP,
//!   `STRICT_DNS` for a hostname), the Prometheus listener that routes
//!   `/stats/prometheus` to the admin interface (as Istio does), and in file
//!   certificate mode the static secrets `default` and `ROOTCA`;
//! - an explicit (huge) downstream connection limit, which silences Envoy's
//!   start-up warning about having none, as Istio's bootstrap does;
//! - `admin` on loopback only, and a layered runtime whose admin layer lets
//!   operators flip runtime keys at `/runtime_modify`.

use std::{
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
    str::FromStr,
};

use rudder_model::{
    names::{SDS_CLUSTER, SECRET_DEFAULT, SECRET_ROOTCA, XDS_CLUSTER},
    node::CertMode,
    well_known::{ENVOY_ADMIN_PORT, ENVOY_STATS_PORT, XDS_TLS_PORT},
    NodeId, NodeMetadata,
};
use serde_json::{json, Value};

/// File names inside `--cert-dir` (docs/architecture.md, Contracts → Files).
pub use rudder_model::well_known::{CERT_CHAIN_FILE, KEY_FILE, ROOT_CERT_FILE};

/// The cluster behind the Prometheus listener: Envoy's own admin interface.
pub const PROMETHEUS_CLUSTER: &str = "prometheus_stats";

/// Problems with bootstrap inputs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootstrapError {
    /// `--discovery-address` is not `HOST:PORT`.
    #[error("discovery address {input:?}: {reason} (expected HOST:PORT, e.g. rudder-pilot.rudder-system.svc:15010 or [::1]:15010)")]
    BadDiscoveryAddress {
        /// What the user passed.
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// `--xds` is neither `sotw` nor `delta`.
    #[error("xds mode {0:?}: expected \"sotw\" or \"delta\"")]
    BadXdsMode(String),
}

/// Which ADS flavour Envoy speaks to pilot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum XdsMode {
    /// State of the world (`api_type: GRPC`).
    Sotw,
    /// Incremental (`api_type: DELTA_GRPC`), the default.
    #[default]
    Delta,
}

impl XdsMode {
    fn api_type(self) -> &'static str {
        match self {
            XdsMode::Sotw => "GRPC",
            XdsMode::Delta => "DELTA_GRPC",
        }
    }
}

impl FromStr for XdsMode {
    type Err = BootstrapError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sotw" => Ok(XdsMode::Sotw),
            "delta" => Ok(XdsMode::Delta),
            other => Err(BootstrapError::BadXdsMode(other.to_string())),
        }
    }
}

impl fmt::Display for XdsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdsMode::Sotw => "sotw",
            XdsMode::Delta => "delta",
        })
    }
}

/// pilot's address: a hostname (resolved by Envoy, `STRICT_DNS`) or an IP
/// (`STATIC`), and a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DiscoveryAddress {
    /// Hostname or IP literal (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl DiscoveryAddress {
    /// The host as an IP, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl FromStr for DiscoveryAddress {
    type Err = BootstrapError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| BootstrapError::BadDiscoveryAddress {
            input: s.to_string(),
            reason,
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, rest) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = rest
                .strip_prefix(':')
                .ok_or_else(|| bad("missing :PORT after ']'"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("the bracketed host is not an IPv6 address"));
            }
            (host, port)
        } else {
            let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("missing :PORT"))?;
            if host.contains(':') {
                return Err(bad("an IPv6 address must be in brackets"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            return Err(bad("the host has characters not allowed in a hostname"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port is not a number in 1..65535"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for DiscoveryAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Certificate files for the static secrets of file mode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileSecrets {
    /// `cert-chain.pem` and `key.pem` → secret `default`.
    pub workload: Option<(PathBuf, PathBuf)>,
    /// `root-cert.pem` → secret `ROOTCA`.
    pub root: Option<PathBuf>,
}

impl FileSecrets {
    /// The secrets whose files exist in `dir` (the workload secret needs both
    /// the chain and the key). A missing directory yields no secrets: a pod
    /// without mTLS still gets a working proxy.
    pub fn from_dir(dir: &Path) -> Self {
        let chain = dir.join(CERT_CHAIN_FILE);
        let key = dir.join(KEY_FILE);
        let root = dir.join(ROOT_CERT_FILE);
        Self {
            workload: (chain.exists() && key.exists()).then_some((chain, key)),
            root: root.exists().then_some(root),
        }
    }
}

/// Where Envoy gets workload certificates from.
///
/// File mode puts static secrets in the bootstrap and rotates by hot restart;
/// SDS mode adds the [`SDS_CLUSTER`] cluster (a pipe to the agent's Unix
/// socket), sets `CERT_MODE=sds` in the metadata so pilot's TLS contexts
/// fetch the same secret names over SDS, and rotates in place.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum CertSource {
    /// No certificates: plaintext only.
    #[default]
    None,
    /// Static secrets read from files when Envoy starts.
    Files(FileSecrets),
    /// Secrets served by the agent over SDS at this Unix socket.
    Sds(PathBuf),
}

/// Everything the bootstrap depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapConfig {
    /// `sidecar~IP~POD.NS~NS.svc.cluster.local`.
    pub node_id: NodeId,
    /// Node metadata pilot reads.
    pub metadata: NodeMetadata,
    /// pilot's ADS address.
    pub discovery_address: DiscoveryAddress,
    /// SotW or delta ADS.
    pub xds: XdsMode,
    /// Envoy admin port, bound on 127.0.0.1 only.
    pub admin_port: u16,
    /// Envoy Prometheus listener port (on 0.0.0.0 so Prometheus can scrape it).
    pub stats_port: u16,
    /// Certificates.
    pub certs: CertSource,
}

impl BootstrapConfig {
    /// Defaults for everything except identity and pilot's address.
    pub fn new(
        node_id: NodeId,
        metadata: NodeMetadata,
        discovery_address: DiscoveryAddress,
    ) -> Self {
        Self {
            node_id,
            metadata,
            discovery_address,
            xds: XdsMode::default(),
            admin_port: ENVOY_ADMIN_PORT,
            stats_port: ENVOY_STATS_PORT,
            certs: CertSource::None,
        }
    }
}

/// Builds the Envoy bootstrap (JSON, accepted by `envoy --mode validate`).
pub fn bootstrap(cfg: &BootstrapConfig) -> Value {
    let mut xds = xds_cluster(&cfg.discovery_address);
    if cfg.discovery_address.port == XDS_TLS_PORT && has_root(&cfg.certs) {
        xds["transport_socket"] = xds_tls(&cfg.discovery_address, &cfg.certs);
    }
    let mut clusters = vec![xds, prometheus_cluster(cfg.admin_port)];
    if let CertSource::Sds(socket) = &cfg.certs {
        clusters.push(sds_cluster(socket));
    }
    clusters.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let mut static_resources = json!({
        "clusters": clusters,
        "listeners": [prometheus_listener(cfg.stats_port)],
    });
    let secrets = secrets(&cfg.certs);
    if !secrets.is_empty() {
        static_resources["secrets"] = Value::Array(secrets);
    }
    json!({
        "node": {
            "id": cfg.node_id.to_string(),
            "cluster": service_cluster(cfg),
            "metadata": metadata(cfg).to_json(),
        },
        "admin": {
            "address": socket_address("127.0.0.1", cfg.admin_port),
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": cfg.xds.api_type(),
                "transport_api_version": "V3",
                "set_node_on_first_message_only": true,
                "grpc_services": [{ "envoy_grpc": { "cluster_name": XDS_CLUSTER } }],
            },
            "cds_config": { "ads": {}, "resource_api_version": "V3" },
            "lds_config": { "ads": {}, "resource_api_version": "V3" },
        },
        "static_resources": static_resources,
        "stats_config": stats_config(cfg),
        "overload_manager": {
            "resource_monitors": [{
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                    "max_active_downstream_connections": 2147483647,
                },
            }],
        },
        "layered_runtime": {
            "layers": [
                { "name": "static", "static_layer": {} },
                { "name": "admin", "admin_layer": {} },
            ],
        },
    })
}

/// Statistics tagged for request totals per edge, like Istio's
/// `istio_requests_total` labels as far as upstream Envoy allows: every
/// statistic carries the proxy's own workload (`source_workload`,
/// `source_workload_namespace`, and `source_app` / `source_version` from
/// its labels), and an outbound cluster's statistics carry the destination
/// service, version (subset) and port parsed from the cluster name
/// (`outbound|<port>|<subset>|<host>`). Envoy's default tags stay
/// (`envoy_cluster_name`, `envoy_response_code`, ...), so
/// `envoy_cluster_upstream_rq_total` counts requests per edge.
fn stats_config(cfg: &BootstrapConfig) -> Value {
    let md = &cfg.metadata;
    let workload = if md.workload_name.is_empty() {
        cfg.node_id.pod_name.clone()
    } else {
        md.workload_name.clone()
    };
    let mut tags = vec![
        json!({ "tag_name": "source_workload", "fixed_value": workload }),
        json!({ "tag_name": "source_workload_namespace", "fixed_value": md.namespace }),
    ];
    for (label, tag) in [("app", "source_app"), ("version", "source_version")] {
        if let Some(v) = md.labels.get(label).filter(|v| !v.is_empty()) {
            tags.push(json!({ "tag_name": tag, "fixed_value": v }));
        }
    }
    // The first group is taken out of the name, the second is the value
    // (Envoy's tag extraction); the host part mirrors Envoy's own
    // `envoy.cluster_name` pattern for `*.svc.<domain>` names.
    let outbound = r"^cluster\.outbound\|";
    tags.extend([
        json!({ "tag_name": "destination_port", "regex": format!(r"{outbound}((\d+))\|") }),
        json!({ "tag_name": "destination_version", "regex": format!(r"{outbound}\d+\|(([^|]*))\|") }),
        json!({
            "tag_name": "destination_service",
            "regex": format!(r"{outbound}\d+\|[^|]*\|((.+?(?:\..+?\.svc\.[^.]+\.[^.]+)?)\.)"),
        }),
    ]);
    json!({ "stats_tags": tags })
}

/// The metadata, with `CERT_MODE` following the certificate source.
fn metadata(cfg: &BootstrapConfig) -> NodeMetadata {
    let mut md = cfg.metadata.clone();
    md.cert_mode = if matches!(cfg.certs, CertSource::Sds(_)) {
        CertMode::Sds
    } else {
        CertMode::File
    };
    md
}

fn has_root(certs: &CertSource) -> bool {
    match certs {
        CertSource::None => false,
        CertSource::Files(f) => f.root.is_some(),
        CertSource::Sds(_) => true,
    }
}

/// pilot's secure port (15012) speaks TLS, as istiod's does: the `xds-grpc`
/// cluster verifies pilot's serving certificate with the mesh root, the
/// `ROOTCA` secret (static in file mode, from the agent in SDS mode), and
/// checks that it names the address dialled (a DNS SAN for a host name, sent
/// as SNI too; an IP SAN for an IP): a workload certificate from the same
/// root cannot pass for pilot. Envoy presents its workload certificate (the
/// `default` secret) when it has one: pilot serves a node on 15012 only to
/// the workload whose identity it is.
fn xds_tls(addr: &DiscoveryAddress, certs: &CertSource) -> Value {
    let san = match addr.ip() {
        Some(ip) => json!({ "san_type": "IP_ADDRESS", "matcher": { "exact": ip.to_string() } }),
        None => json!({ "san_type": "DNS", "matcher": { "exact": addr.host } }),
    };
    let mut ctx = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "alpn_protocols": ["h2"],
            "combined_validation_context": {
                "default_validation_context": { "match_typed_subject_alt_names": [san] },
                "validation_context_sds_secret_config": sds_secret_ref(SECRET_ROOTCA, certs),
            },
        },
    });
    if addr.ip().is_none() {
        ctx["sni"] = json!(addr.host);
    }
    if has_workload_cert(certs) {
        ctx["common_tls_context"]["tls_certificate_sds_secret_configs"] =
            json!([sds_secret_ref(SECRET_DEFAULT, certs)]);
    }
    json!({ "name": "envoy.transport_sockets.tls", "typed_config": ctx })
}

fn has_workload_cert(certs: &CertSource) -> bool {
    match certs {
        CertSource::None => false,
        CertSource::Files(f) => f.workload.is_some(),
        CertSource::Sds(_) => true,
    }
}

/// Whether the configuration can work: pilot's TLS port needs the mesh root.
pub fn check(cfg: &BootstrapConfig) -> Result<(), String> {
    if cfg.discovery_address.port == XDS_TLS_PORT && !has_root(&cfg.certs) {
        return Err(format!(
            "--discovery-address {}: port {XDS_TLS_PORT} is pilot's TLS port and needs the mesh root to verify pilot \
             (root-cert.pem in --cert-dir, or --ca-address to get certificates from pilot); \
             use port 15010 for plaintext xDS",
            cfg.discovery_address
        ));
    }
    Ok(())
}

/// A reference to a secret: static (file mode) or from the agent (SDS mode).
fn sds_secret_ref(name: &str, certs: &CertSource) -> Value {
    match certs {
        CertSource::Sds(_) => json!({
            "name": name,
            "sds_config": {
                "api_config_source": {
                    "api_type": "GRPC",
                    "transport_api_version": "V3",
                    "grpc_services": [{ "envoy_grpc": { "cluster_name": SDS_CLUSTER } }],
                },
                "resource_api_version": "V3",
            },
        }),
        _ => json!({ "name": name }),
    }
}

/// The agent's SDS socket as a cluster (HTTP/2 for gRPC, a pipe address).
fn sds_cluster(socket: &Path) -> Value {
    json!({
        "name": SDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": SDS_CLUSTER,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": { "pipe": { "path": socket.display().to_string() } } } }] }],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} },
            },
        },
    })
}

/// Envoy's `node.cluster` (its "service cluster"): `<app>.<namespace>` as Istio
/// spells it, falling back to the workload name and then the pod name.
fn service_cluster(cfg: &BootstrapConfig) -> String {
    let md = &cfg.metadata;
    let app = md
        .labels
        .get("app")
        .filter(|s| !s.is_empty())
        .or(Some(&md.workload_name).filter(|s| !s.is_empty()))
        .unwrap_or(&cfg.node_id.pod_name);
    format!("{app}.{}", cfg.node_id.namespace)
}

fn socket_address(address: &str, port: u16) -> Value {
    json!({ "socket_address": { "address": address, "port_value": port } })
}

fn load_assignment(name: &str, address: &str, port: u16) -> Value {
    json!({
        "cluster_name": name,
        "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": socket_address(address, port) } }] }],
    })
}

/// The ADS cluster. HTTP/2 is required for gRPC; generous circuit breakers
/// (as Istio sets them) so a busy control-plane stream is never throttled by
/// Envoy's defaults of 1024 requests.
fn xds_cluster(addr: &DiscoveryAddress) -> Value {
    let mut c = json!({
        "name": XDS_CLUSTER,
        "type": if addr.ip().is_some() { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": load_assignment(XDS_CLUSTER, &addr.host, addr.port),
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": { "interval": "30s", "timeout": "10s" },
                    },
                },
            },
        },
        "circuit_breakers": {
            "thresholds": [{
                "priority": "DEFAULT",
                "max_connections": 100000,
                "max_pending_requests": 100000,
                "max_requests": 100000,
            }],
        },
        "upstream_connection_options": {
            "tcp_keepalive": { "keepalive_time": 300 },
        },
    });
    if addr.ip().is_none() {
        c["dns_lookup_family"] = json!("V4_PREFERRED");
        c["respect_dns_ttl"] = json!(true);
    }
    c
}

fn prometheus_cluster(admin_port: u16) -> Value {
    json!({
        "name": PROMETHEUS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "0.250s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": load_assignment(PROMETHEUS_CLUSTER, "127.0.0.1", admin_port),
    })
}

/// Only `/stats/prometheus` is exposed: the rest of the admin interface stays
/// on loopback, out of reach of other pods.
fn prometheus_listener(port: u16) -> Value {
    json!({
        "name": format!("prometheus_{port}"),
        "address": socket_address("0.0.0.0", port),
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "codec_type": "AUTO",
                    "stat_prefix": "stats",
                    "route_config": {
                        "virtual_hosts": [{
                            "name": "backend",
                            "domains": ["*"],
                            "routes": [{
                                "match": { "prefix": "/stats/prometheus" },
                                "route": { "cluster": PROMETHEUS_CLUSTER },
                            }],
                        }],
                    },
                    "http_filters": [{
                        "name": "envoy.filters.http.router",
                        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
                    }],
                },
            }],
        }],
    })
}

fn secrets(certs: &CertSource) -> Vec<Value> {
    let CertSource::Files(files) = certs else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some((chain, key)) = &files.workload {
        out.push(json!({
            "name": SECRET_DEFAULT,
            "tls_certificate": {
                "certificate_chain": { "filename": chain.display().to_string() },
                "private_key": { "filename": key.display().to_string() },
            },
        }));
    }
    if let Some(root) = &files.root {
        out.push(json!({
            "name": SECRET_ROOTCA,
            "validation_context": { "trusted_ca": { "filename": root.display().to_string() } },
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_addresses() {
        let a: DiscoveryAddress = "rudder-pilot.rudder-system.svc:15010".parse().unwrap();
        assert_eq!(
            (a.host.as_str(), a.port, a.ip()),
            ("rudder-pilot.rudder-system.svc", 15010, None)
        );
        let a: DiscoveryAddress = "198.18.0.1:15010".parse().unwrap();
        assert_eq!(a.ip(), Some("198.18.0.1".parse().unwrap()));
        let a: DiscoveryAddress = "[::1]:15010".parse().unwrap();
        assert_eq!(
            (a.host.as_str(), a.to_string().as_str()),
            ("::1", "[::1]:15010")
        );
        for bad in [
            "pilot",
            "pilot:",
            ":15010",
            "pilot:0",
            "pilot:99999",
            "::1:15010",
            "[pilot]:1",
            "a b:1",
        ] {
            let err = bad.parse::<DiscoveryAddress>().unwrap_err();
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn xds_modes() {
        assert_eq!("sotw".parse::<XdsMode>().unwrap().api_type(), "GRPC");
        assert_eq!("delta".parse::<XdsMode>().unwrap().api_type(), "DELTA_GRPC");
        assert!("SotW".parse::<XdsMode>().is_err());
    }

    #[test]
    fn cluster_type_follows_address_kind() {
        let md = NodeMetadata::default();
        let id = NodeId::sidecar("10.0.0.1".parse().unwrap(), "p", "ns");
        let mut cfg = BootstrapConfig::new(id, md, "pilot:15010".parse().unwrap());
        let find = |b: &Value| {
            b["static_resources"]["clusters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == XDS_CLUSTER)
                .unwrap()["type"]
                .clone()
        };
        assert_eq!(find(&bootstrap(&cfg)), "STRICT_DNS");
        cfg.discovery_address = "10.0.0.2:15010".parse().unwrap();
        assert_eq!(find(&bootstrap(&cfg)), "STATIC");
        assert_eq!(bootstrap(&cfg)["node"]["cluster"], "p.ns");
        assert!(bootstrap(&cfg)["static_resources"].get("secrets").is_none());
    }

    #[test]
    fn sds_mode_adds_the_socket_cluster_and_cert_mode() {
        let id = NodeId::sidecar("10.0.0.1".parse().unwrap(), "p", "ns");
        let mut cfg = BootstrapConfig::new(
            id,
            NodeMetadata::default(),
            "10.0.0.2:15010".parse().unwrap(),
        );
        assert_eq!(bootstrap(&cfg)["node"]["metadata"]["CERT_MODE"], "file");
        cfg.certs = CertSource::Sds(PathBuf::from("/var/run/secrets/workload-spiffe-uds/socket"));
        let b = bootstrap(&cfg);
        assert_eq!(b["node"]["metadata"]["CERT_MODE"], "sds");
        let clusters = b["static_resources"]["clusters"].as_array().unwrap();
        let sds = clusters
            .iter()
            .find(|c| c["name"] == SDS_CLUSTER)
            .expect("sds-grpc cluster");
        assert_eq!(
            sds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["pipe"]["path"],
            "/var/run/secrets/workload-spiffe-uds/socket"
        );
        assert!(b["static_resources"].get("secrets").is_none());
        // Plaintext port: no TLS to pilot.
        assert!(clusters
            .iter()
            .find(|c| c["name"] == XDS_CLUSTER)
            .unwrap()
            .get("transport_socket")
            .is_none());
    }

    #[test]
    fn the_secure_port_gets_tls_verified_with_the_mesh_root() {
        let id = NodeId::sidecar("10.0.0.1".parse().unwrap(), "p", "ns");
        let mut cfg = BootstrapConfig::new(
            id,
            NodeMetadata::default(),
            "rudder-pilot.rudder-system.svc:15012".parse().unwrap(),
        );
        cfg.certs = CertSource::Sds(PathBuf::from("/s"));
        let b = bootstrap(&cfg);
        let xds = b["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == XDS_CLUSTER)
            .unwrap()
            .clone();
        let ctx = &xds["transport_socket"]["typed_config"];
        assert_eq!(ctx["sni"], "rudder-pilot.rudder-system.svc");
        let combined = &ctx["common_tls_context"]["combined_validation_context"];
        let v = &combined["validation_context_sds_secret_config"];
        assert_eq!(
            (
                v["name"].as_str(),
                v["sds_config"]["api_config_source"]["grpc_services"][0]["envoy_grpc"]
                    ["cluster_name"]
                    .as_str()
            ),
            (Some(SECRET_ROOTCA), Some(SDS_CLUSTER))
        );
        assert_eq!(
            combined["default_validation_context"]["match_typed_subject_alt_names"],
            json!([{"san_type": "DNS", "matcher": {"exact": "rudder-pilot.rudder-system.svc"}}])
        );
        assert_eq!(check(&cfg), Ok(()));

        // An IP: no SNI, an IP SAN.
        let mut cfg = BootstrapConfig::new(
            NodeId::sidecar("10.0.0.1".parse().unwrap(), "p", "ns"),
            NodeMetadata::default(),
            "198.18.0.1:15012".parse().unwrap(),
        );
        cfg.certs = CertSource::Sds(PathBuf::from("/s"));
        let b = bootstrap(&cfg);
        let xds = b["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == XDS_CLUSTER)
            .unwrap()
            .clone();
        let ctx = &xds["transport_socket"]["typed_config"];
        assert!(ctx.get("sni").is_none());
        assert_eq!(
            ctx["common_tls_context"]["combined_validation_context"]["default_validation_context"]
                ["match_typed_subject_alt_names"],
            json!([{"san_type": "IP_ADDRESS", "matcher": {"exact": "198.18.0.1"}}])
        );

        // No root: refused with the way out named.
        cfg.certs = CertSource::None;
        let err = check(&cfg).unwrap_err();
        assert!(
            err.contains("port 15012 is pilot's TLS port") && err.contains("15010"),
            "{err}"
        );
    }
}
