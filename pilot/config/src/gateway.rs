//! `networking.istio.io` Gateway (v1, v1beta1, v1alpha3): the servers a
//! gateway proxy (a `router` node whose pod labels the `selector` matches)
//! listens on.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Gateway spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GatewaySpec {
    /// The gateway pods this applies to (labels), in any namespace.
    pub selector: BTreeMap<String, String>,
    /// What the gateway listens on.
    pub servers: Vec<Server>,
}

/// One server: a port, the hosts served there, TLS.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Server {
    /// Port.
    pub port: Option<Port>,
    /// Address to bind to (Istio: an IP or a Unix socket).
    pub bind: Option<String>,
    /// Hosts, optionally `namespace/` prefixed (`*/`, `./`).
    pub hosts: Vec<String>,
    /// TLS settings.
    pub tls: Option<ServerTlsSettings>,
    /// Default endpoint (Istio: sidecar ingress only).
    pub default_endpoint: Option<String>,
    /// Name (Istio: used in stats and route names).
    pub name: Option<String>,
}

/// A server port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Port {
    /// Port number.
    pub number: i64,
    /// Protocol: HTTP, HTTPS, HTTP2, GRPC, TLS, TCP (and others Istio knows).
    pub protocol: String,
    /// Name.
    pub name: String,
    /// Target port (deprecated in Istio).
    pub target_port: Option<i64>,
}

/// Server TLS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServerTlsSettings {
    /// Answer plain HTTP with a 301 to HTTPS.
    pub https_redirect: Option<bool>,
    /// PASSTHROUGH, SIMPLE, MUTUAL, AUTO_PASSTHROUGH, ISTIO_MUTUAL, OPTIONAL_MUTUAL.
    pub mode: Option<ServerTlsMode>,
    /// Certificate file on the gateway.
    pub server_certificate: Option<String>,
    /// Key file on the gateway.
    pub private_key: Option<String>,
    /// CA file on the gateway (MUTUAL).
    pub ca_certificates: Option<String>,
    /// CRL file.
    pub ca_crl: Option<String>,
    /// A Secret with the certificate (and CA), served over SDS.
    pub credential_name: Option<String>,
    /// Several Secrets (Istio 1.26+).
    pub credential_names: Vec<String>,
    /// Several certificate/key pairs.
    pub tls_certificates: Vec<TlsCertificate>,
    /// Client SANs accepted (MUTUAL).
    pub subject_alt_names: Vec<String>,
    /// Client certificate SPKI hashes accepted.
    pub verify_certificate_spki: Vec<String>,
    /// Client certificate hashes accepted.
    pub verify_certificate_hash: Vec<String>,
    /// Minimum TLS version.
    pub min_protocol_version: Option<TlsProtocol>,
    /// Maximum TLS version.
    pub max_protocol_version: Option<TlsProtocol>,
    /// Cipher suites (OpenSSL names).
    pub cipher_suites: Vec<String>,
}

/// Server TLS modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTlsMode {
    /// Route by SNI, no termination.
    Passthrough,
    /// Terminate with the server certificate.
    Simple,
    /// Terminate, require a client certificate.
    Mutual,
    /// SNI routing to mesh services without VirtualServices (multi-network).
    AutoPassthrough,
    /// Terminate with the mesh certificate, require mesh clients.
    IstioMutual,
    /// MUTUAL with the client certificate optional.
    OptionalMutual,
}

/// TLS protocol versions.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum TlsProtocol {
    /// Envoy's default.
    #[serde(rename = "TLS_AUTO")]
    Auto,
    /// TLS 1.0.
    #[serde(rename = "TLSV1_0")]
    V1_0,
    /// TLS 1.1.
    #[serde(rename = "TLSV1_1")]
    V1_1,
    /// TLS 1.2.
    #[serde(rename = "TLSV1_2")]
    V1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSV1_3")]
    V1_3,
}

/// One certificate of `tlsCertificates`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TlsCertificate {
    /// Certificate file.
    pub server_certificate: Option<String>,
    /// Key file.
    pub private_key: Option<String>,
    /// CA file.
    pub ca_certificates: Option<String>,
}
