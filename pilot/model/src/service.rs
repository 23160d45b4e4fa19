//! Services, their ports and endpoints, and the workloads (pods) behind them.

use std::{collections::BTreeMap, net::IpAddr};

/// Labels as Kubernetes has them.
pub type Labels = BTreeMap<String, String>;

/// A fully qualified service host name, e.g. `reviews.default.svc.cluster.local`.
pub type Hostname = String;

/// Application protocol of a port, chosen as Istio does: `appProtocol` first,
/// else the port name's prefix (`http`, `http-foo`, `http2`, `grpc`, `tcp`...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// HTTP/1.1 (Envoy accepts HTTP/2 too on the downstream side).
    Http,
    /// HTTP/2 upstream.
    Http2,
    /// gRPC (HTTP/2 upstream).
    Grpc,
    /// Opaque TCP.
    Tcp,
    /// TLS the proxy passes on unterminated (`tls`, `https`): TCP, plus the
    /// VirtualService's `tls` routes by SNI.
    Tls,
    /// Not declared (no known `appProtocol` or port-name prefix): sniffed as
    /// Istio does. Outbound to a service VIP, Envoy's HTTP inspector sends
    /// HTTP/1.x and h2c to the port's routes and anything else through as TCP.
    Unknown,
}

impl Protocol {
    /// Protocol from `appProtocol` (if set) and the port name, as Istio does.
    /// Unknown or unnamed ports are [`Protocol::Unknown`] (sniffed).
    pub fn detect(app_protocol: Option<&str>, port_name: Option<&str>) -> Self {
        if let Some(p) = app_protocol.and_then(Self::from_name) {
            return p;
        }
        port_name
            .map(|n| n.split('-').next().unwrap_or(n))
            .and_then(Self::from_name)
            .unwrap_or(Protocol::Unknown)
    }

    fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "http" | "kubernetes.io/http" => Some(Protocol::Http),
            "http2" | "kubernetes.io/h2c" | "h2c" => Some(Protocol::Http2),
            "grpc" | "grpc-web" => Some(Protocol::Grpc),
            "tcp" | "mysql" | "mongo" | "redis" => Some(Protocol::Tcp),
            "tls" | "https" => Some(Protocol::Tls),
            _ => None,
        }
    }

    /// HTTP of any flavour (gets an HTTP connection manager and routes).
    pub fn is_http(self) -> bool {
        !matches!(self, Protocol::Tcp | Protocol::Tls | Protocol::Unknown)
    }

    /// Opaque bytes to the proxy (TCP, or TLS it does not terminate).
    pub fn is_opaque(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Tls)
    }

    /// Whether the protocol is sniffed (HTTP or TCP, decided per connection).
    pub fn is_sniffed(self) -> bool {
        matches!(self, Protocol::Unknown)
    }

    /// Whether some connections get HTTP routes: HTTP, or sniffed.
    pub fn has_routes(self) -> bool {
        self.is_http() || self.is_sniffed()
    }

    /// Whether the upstream speaks HTTP/2.
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }
}

/// A namespace and its labels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Namespace {
    /// Name.
    pub name: String,
    /// Labels (`istio-injection=enabled`).
    pub labels: Labels,
}

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePort {
    /// Port name (may be empty for a single-port Service).
    pub name: String,
    /// The Service port clients dial.
    pub port: u16,
    /// Where the app listens: a number, or a named container port resolved per
    /// endpoint.
    pub target_port: TargetPort,
    /// Protocol.
    pub protocol: Protocol,
}

/// A Service's `targetPort`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetPort {
    /// A number.
    Number(u16),
    /// A container port name.
    Name(String),
}

/// A Kubernetes Service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Service {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// FQDN: `<name>.<namespace>.svc.<domain>`.
    pub hostname: Hostname,
    /// ClusterIP (VIP); `None` for headless Services.
    pub cluster_ip: Option<IpAddr>,
    /// The other VIPs of a dual-stack Service (`clusterIPs` after the first:
    /// the other address family).
    pub other_vips: Vec<IpAddr>,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// Pod selector (empty: endpoints come only from Endpoints/EndpointSlices).
    pub selector: Labels,
    /// Namespaces that see it (annotation `networking.istio.io/exportTo`;
    /// empty = all).
    pub export_to: Vec<String>,
    /// The DNS name of a `type: ExternalName` Service: its clusters resolve
    /// it (STRICT_DNS, each service port on that name), as Istio's do, and
    /// it has no endpoints of its own.
    pub external_name: Option<String>,
    /// Set when the service comes from a ServiceEntry host: how its
    /// endpoints are found and whether it is part of the mesh.
    pub entry: Option<ServiceEntryInfo>,
}

/// ServiceEntry `location`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Location {
    /// Outside the mesh: never auto mTLS (Istio's default).
    #[default]
    MeshExternal,
    /// Part of the mesh: meshed endpoints get mTLS as pods do.
    MeshInternal,
}

/// ServiceEntry `resolution`: what the outbound clusters are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resolution {
    /// ORIGINAL_DST: the connection goes where the app sent it.
    #[default]
    None,
    /// EDS from the entry's endpoints (and selected workloads).
    Static,
    /// STRICT_DNS on the endpoints' addresses (or the hosts).
    Dns,
    /// LOGICAL_DNS on the one endpoint address (or the host).
    DnsRoundRobin,
}

/// What a ServiceEntry adds to the [`Service`] of one of its hosts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceEntryInfo {
    /// `location`.
    pub location: Location,
    /// `resolution`.
    pub resolution: Resolution,
    /// `endpoints`, as written (STATIC: IPs, which become the host's
    /// endpoints; DNS: names resolved by Envoy).
    pub endpoints: Vec<EntryEndpoint>,
    /// `subjectAltNames`: identities an ISTIO_MUTUAL client accepts.
    pub subject_alt_names: Vec<String>,
    /// `addresses` that are CIDRs of more than one address, as (network,
    /// prefix length): the TCP and TLS ports' chains match them (Istio's);
    /// HTTP ports route by Host header, as for hosts without addresses.
    pub cidrs: Vec<(IpAddr, u8)>,
}

impl ServiceEntryInfo {
    /// Whether the clusters resolve by DNS (STRICT_DNS or LOGICAL_DNS).
    pub fn is_dns(&self) -> bool {
        matches!(self.resolution, Resolution::Dns | Resolution::DnsRoundRobin)
    }
}

/// One endpoint of a ServiceEntry (or a WorkloadEntry).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryEndpoint {
    /// IP address, or a DNS name (DNS resolution).
    pub address: String,
    /// Port by service port name.
    pub ports: BTreeMap<String, u16>,
    /// Labels (with `security.istio.io/tlsMode: istio` when meshed).
    pub labels: Labels,
    /// Service account, when meshed.
    pub service_account: Option<String>,
    /// Locality.
    pub locality: crate::locality::Locality,
    /// Load-balancing weight (0: unset).
    pub weight: u32,
}

impl EntryEndpoint {
    /// The port this endpoint serves `port` on: its `ports` entry for the
    /// port's name, else the port's target port.
    pub fn port_for(&self, port: &ServicePort) -> u16 {
        match (self.ports.get(&port.name), &port.target_port) {
            (Some(p), _) => *p,
            (None, TargetPort::Number(n)) => *n,
            (None, TargetPort::Name(_)) => port.port,
        }
    }
}

impl Service {
    /// A headless Service (`clusterIP: None`, not ExternalName): clients
    /// resolve its pods by DNS and connect to one of them; its clusters keep
    /// that destination (ORIGINAL_DST), as Istio's do.
    pub fn is_headless(&self) -> bool {
        self.cluster_ip.is_none() && self.external_name.is_none() && self.entry.is_none()
    }

    /// Whether a ServiceEntry placed it outside the mesh (no auto mTLS).
    pub fn is_mesh_external(&self) -> bool {
        self.entry
            .as_ref()
            .is_some_and(|e| e.location == Location::MeshExternal)
    }

    /// Every VIP: `cluster_ip`, then the other family's.
    pub fn vips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.cluster_ip.iter().chain(&self.other_vips).copied()
    }

    /// The port with this number.
    pub fn port(&self, port: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.port == port)
    }
}

/// An endpoint of one Service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The pod's IP.
    pub address: IpAddr,
    /// The port the app listens on.
    pub port: u16,
    /// The pod's labels (subset selection, `tlsMode`).
    pub labels: Labels,
    /// Pod name, when known.
    pub pod_name: Option<String>,
    /// Pod namespace.
    pub namespace: String,
    /// Service account (identity), when known.
    pub service_account: Option<String>,
    /// Ready endpoints get traffic; not-ready ones are kept out of EDS.
    pub ready: bool,
    /// Where it runs (its pod's locality labels, else its EndpointSlice's
    /// zone; empty when unknown).
    pub locality: crate::locality::Locality,
    /// Load-balancing weight (WorkloadEntry, ServiceEntry endpoint; 0: unset).
    pub weight: u32,
}

/// A pod, as far as the mesh cares.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Workload {
    /// Pod name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Labels.
    pub labels: Labels,
    /// `status.podIP` (and `podIPs`).
    pub ips: Vec<IpAddr>,
    /// `spec.serviceAccountName` (`default` when unset).
    pub service_account: String,
    /// Ready (all containers ready, not terminating).
    pub ready: bool,
    /// Named container ports (for named `targetPort`s).
    pub named_ports: BTreeMap<String, u16>,
}

/// Whether `labels` carries every key/value of `selector` (an empty selector
/// selects everything, as in Kubernetes).
pub fn selects(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_detection_follows_istio() {
        assert_eq!(Protocol::detect(None, Some("http")), Protocol::Http);
        assert_eq!(Protocol::detect(None, Some("http-web")), Protocol::Http);
        assert_eq!(Protocol::detect(None, Some("grpc-api")), Protocol::Grpc);
        assert_eq!(Protocol::detect(None, Some("http2")), Protocol::Http2);
        assert_eq!(Protocol::detect(None, Some("tcp-db")), Protocol::Tcp);
        assert_eq!(Protocol::detect(None, Some("mysql")), Protocol::Tcp);
        assert_eq!(Protocol::detect(None, Some("https-web")), Protocol::Tls);
        assert_eq!(Protocol::detect(None, Some("web")), Protocol::Unknown);
        assert_eq!(Protocol::detect(None, None), Protocol::Unknown);
        assert_eq!(Protocol::detect(Some("foo"), None), Protocol::Unknown);
        assert_eq!(Protocol::detect(Some("http"), Some("tcp")), Protocol::Http);
        assert_eq!(
            Protocol::detect(Some("kubernetes.io/h2c"), None),
            Protocol::Http2
        );
    }

    #[test]
    fn selector_semantics() {
        let labels: Labels = [
            ("app".into(), "reviews".into()),
            ("version".into(), "v1".into()),
        ]
        .into();
        assert!(selects(&Labels::new(), &labels));
        assert!(selects(&[("app".into(), "reviews".into())].into(), &labels));
        assert!(!selects(&[("version".into(), "v2".into())].into(), &labels));
    }
}
