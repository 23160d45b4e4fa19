//! Istio `Gateway`s as gateway proxies (`router` nodes) see them: servers
//! by port, their hosts with the namespaces whose VirtualServices may bind,
//! and their TLS.
//!
//! ```text
//!  Gateway ns/name, selector ─► router proxies whose pod labels match (any namespace)
//!   server port P ─► listener 0.0.0.0_P
//!     HTTP/HTTP2/GRPC ─► HCM, RDS http.P (virtual hosts per VirtualService host)
//!     HTTPS (SIMPLE, MUTUAL, ISTIO_MUTUAL) ─► TLS chain per server (SNI = hosts), RDS https.P.<server>
//!     TLS PASSTHROUGH ─► SNI chains from VirtualService tls routes ─► tcp_proxy
//!     TCP ─► tcp_proxy from VirtualService tcp routes
//! ```

use crate::{route::RuleRef, service::Labels};

/// The protocols a server port may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServerProtocol {
    /// HTTP/1.1 (and h2c).
    Http,
    /// HTTP/2.
    Http2,
    /// gRPC.
    Grpc,
    /// HTTP over TLS (terminated at the gateway).
    Https,
    /// TLS (passthrough by SNI, or terminated to TCP).
    Tls,
    /// Opaque TCP.
    Tcp,
}

impl ServerProtocol {
    /// Istio's names (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "HTTP" => Self::Http,
            "HTTP2" => Self::Http2,
            "GRPC" => Self::Grpc,
            "HTTPS" => Self::Https,
            "TLS" => Self::Tls,
            "TCP" => Self::Tcp,
            _ => return None,
        })
    }

    /// Whether the server is routed by HTTP routes.
    pub fn is_http(self) -> bool {
        matches!(self, Self::Http | Self::Http2 | Self::Grpc | Self::Https)
    }
}

/// Server TLS modes Rudder serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServerTlsMode {
    /// Route by SNI, no termination.
    Passthrough,
    /// Terminate with the server certificate.
    Simple,
    /// Terminate and require a client certificate signed by the CA.
    Mutual,
    /// Terminate with the mesh certificate, require mesh clients.
    IstioMutual,
}

/// TLS protocol versions (`minProtocolVersion`, `maxProtocolVersion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// Envoy's default.
    Auto,
    /// 1.0.
    V1_0,
    /// 1.1.
    V1_1,
    /// 1.2.
    V1_2,
    /// 1.3.
    V1_3,
}

/// Where a server's certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServerCredential {
    /// A Secret of the gateway's namespace, over SDS from pilot
    /// (`kubernetes://NAME`, `kubernetes://NAME-cacert`).
    Secret(String),
    /// Files on the gateway.
    Files {
        /// Certificate chain.
        certificate: String,
        /// Private key.
        private_key: String,
        /// CA (MUTUAL).
        ca_certificates: Option<String>,
    },
    /// The mesh certificate (ISTIO_MUTUAL).
    Mesh,
}

/// A server's TLS.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerTls {
    /// Mode.
    pub mode: ServerTlsMode,
    /// Certificate (none for PASSTHROUGH).
    pub credential: Option<ServerCredential>,
    /// Client SANs accepted (MUTUAL).
    pub subject_alt_names: Vec<String>,
    /// Minimum TLS version.
    pub min_version: Option<TlsVersion>,
    /// Maximum TLS version.
    pub max_version: Option<TlsVersion>,
    /// Cipher suites.
    pub cipher_suites: Vec<String>,
}

/// A host of a server: VirtualServices of `namespace` (`None`: any) whose
/// hosts match `host` bind to it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerHost {
    /// Namespace whose VirtualServices may bind (`*/` → `None`, `./` → the
    /// Gateway's namespace).
    pub namespace: Option<String>,
    /// The host (`*`, `*.suffix` or a name).
    pub host: String,
}

/// One server of a Gateway.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GatewayServer {
    /// Port number (the gateway listens on it).
    pub port: u16,
    /// Port name.
    pub port_name: String,
    /// Protocol.
    pub protocol: ServerProtocol,
    /// Hosts.
    pub hosts: Vec<ServerHost>,
    /// TLS (HTTPS and TLS servers).
    pub tls: Option<ServerTls>,
    /// Plain HTTP answered with a 301 to HTTPS.
    pub https_redirect: bool,
    /// Server name (route configuration names of HTTPS servers).
    pub name: Option<String>,
}

/// A compiled Gateway.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gateway {
    /// The Gateway object.
    pub source: RuleRef,
    /// The gateway pods it applies to.
    pub selector: Labels,
    /// Servers in order.
    pub servers: Vec<GatewayServer>,
}

impl Gateway {
    /// `namespace/name`, as VirtualServices name it.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.source.namespace, self.source.name)
    }

    /// Whether it applies to a gateway pod with these labels.
    pub fn selects(&self, labels: &Labels) -> bool {
        crate::service::selects(&self.selector, labels)
    }
}

/// A gateway name as a VirtualService writes it (`name` or `ns/name`,
/// `mesh` kept), qualified with the VirtualService's namespace.
pub fn qualify_gateway(name: &str, namespace: &str) -> String {
    if name == crate::route::MESH_GATEWAY || name.contains('/') {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}
