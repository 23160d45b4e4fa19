//! Envoy resource names. Every cluster, listener and route name pilot emits
//! comes from here, so the agent, tests and debug output agree on them.

use std::fmt;

/// Traffic direction of a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Towards another service.
    Outbound,
    /// Into this pod's app.
    Inbound,
}

/// `outbound|9080|v1|reviews.default.svc.cluster.local`, Istio's cluster key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterName {
    /// Direction.
    pub direction: Direction,
    /// Service port (outbound) or target port (inbound).
    pub port: u16,
    /// Subset name, empty for the whole service.
    pub subset: String,
    /// Service FQDN (empty for inbound clusters).
    pub host: String,
}

impl ClusterName {
    /// Outbound cluster for a service port, optionally a subset.
    pub fn outbound(port: u16, subset: Option<&str>, host: &str) -> Self {
        Self {
            direction: Direction::Outbound,
            port,
            subset: subset.unwrap_or_default().to_string(),
            host: host.to_string(),
        }
    }

    /// Inbound cluster delivering to the app's port.
    pub fn inbound(port: u16) -> Self {
        Self {
            direction: Direction::Inbound,
            port,
            subset: String::new(),
            host: String::new(),
        }
    }

    /// The SNI a client sends to this cluster's endpoints under mTLS, as
    /// Istio spells it: `outbound_.9080_.v1_.reviews.default.svc.cluster.local`
    /// (`_` when there is no subset).
    pub fn sni(&self) -> String {
        let subset = if self.subset.is_empty() {
            ""
        } else {
            self.subset.as_str()
        };
        format!("outbound_.{}_.{}_.{}", self.port, subset, self.host)
    }

    /// Parses a name produced by [`fmt::Display`].
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.splitn(4, '|');
        let direction = match it.next()? {
            "outbound" => Direction::Outbound,
            "inbound" => Direction::Inbound,
            _ => return None,
        };
        let port = it.next()?.parse().ok()?;
        let subset = it.next()?.to_string();
        let host = it.next()?.to_string();
        Some(Self {
            direction,
            port,
            subset,
            host,
        })
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = match self.direction {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        };
        write!(f, "{dir}|{}|{}|{}", self.port, self.subset, self.host)
    }
}

/// Cluster that forwards to the original destination (unknown outbound destinations).
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
/// Cluster that forwards inbound traffic for ports no service declares.
pub const INBOUND_PASSTHROUGH_CLUSTER: &str = "InboundPassthroughCluster";
/// Cluster with no endpoints: a connection to it is closed.
pub const BLACKHOLE_CLUSTER: &str = "BlackHoleCluster";
/// The ADS cluster in every bootstrap (the agent writes it, pilot never sends it).
pub const XDS_CLUSTER: &str = "xds-grpc";
/// The bootstrap cluster reaching the agent's SDS socket (SDS cert mode).
pub const SDS_CLUSTER: &str = "sds-grpc";
/// The one listener that receives all captured traffic on the proxy port.
pub const VIRTUAL_LISTENER: &str = "virtual";
/// The listener on the inbound capture port, when it differs from the proxy
/// port (Istio's name).
pub const VIRTUAL_INBOUND_LISTENER: &str = "virtualInbound";
/// Prefix of the inbound HTTP route configuration name (`inbound|<port>`).
pub fn inbound_route_name(port: u16) -> String {
    format!("inbound|{port}")
}
/// Outbound HTTP route configuration for a port: Istio names it by the port number.
pub fn outbound_route_name(port: u16) -> String {
    port.to_string()
}
/// Outbound route configuration of one service port that has a VIP:
/// `<host>:<port>`, served to the listener
/// [`vip_listener_name`] so a change to one service's routes re-sends only it.
pub fn service_route_name(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}
/// Outbound listener of one service VIP and port, `<VIP>_<port>` (Istio's
/// naming for listeners of a VIP): not bound, reached from the `virtual` listener's original-destination
/// hand-off.
pub fn vip_listener_name(vip: std::net::IpAddr, port: u16) -> String {
    format!("{vip}_{port}")
}
/// Secret holding the workload's certificate (file mode: static in the bootstrap).
pub const SECRET_DEFAULT: &str = "default";
/// Secret holding the mesh root certificate.
pub const SECRET_ROOTCA: &str = "ROOTCA";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_round_trip() {
        let c = ClusterName::outbound(9080, Some("v1"), "reviews.default.svc.cluster.local");
        assert_eq!(
            c.to_string(),
            "outbound|9080|v1|reviews.default.svc.cluster.local"
        );
        assert_eq!(ClusterName::parse(&c.to_string()), Some(c.clone()));
        let i = ClusterName::inbound(9080);
        assert_eq!(i.to_string(), "inbound|9080||");
        assert_eq!(ClusterName::parse("inbound|9080||"), Some(i));
        assert_eq!(ClusterName::parse("sideways|1||"), None);
        assert_eq!(
            c.sni(),
            "outbound_.9080_.v1_.reviews.default.svc.cluster.local"
        );
        assert_eq!(
            ClusterName::outbound(80, None, "a.b.svc.cluster.local").sni(),
            "outbound_.80_._.a.b.svc.cluster.local"
        );
    }
}
