//! The node id and node metadata each sidecar sends, encoded and decoded in this
//! one place (the agent writes them into Envoy's bootstrap, pilot reads them
//! from the first ADS request).
//!
//! Node id: `sidecar~<podIP>~<podName>.<namespace>~<namespace>.svc.cluster.local`.
//! Metadata (all strings, as Istio sends them): `NAMESPACE`, `SERVICE_ACCOUNT`,
//! `WORKLOAD_NAME`; `LABELS` a Struct of strings; `INSTANCE_IPS` comma-separated;
//! `CAPTURE_PORT`, `INBOUND_CAPTURE_PORT` decimal; `CERT_MODE` `file` or `sds`.

use std::{collections::BTreeMap, fmt, net::IpAddr};

use serde_json::{Map, Value};

use crate::well_known::{DEFAULT_DOMAIN_SUFFIX, PROXY_PORT};

/// Problems with a node id or its metadata.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeError {
    /// The id does not have Istio's four `~`-separated parts.
    #[error("node id {0:?} is not of the form sidecar~<podIP>~<pod>.<namespace>~<namespace>.svc.<domain> (or router~...)")]
    BadId(String),
    /// A metadata field has the wrong type or value.
    #[error("node metadata field {field}: {reason}")]
    BadMetadata {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// The first part of a node id: what kind of proxy it is (Istio's
/// `sidecar` and `router`; a router is a gateway: no capture, listeners on
/// the Gateway servers' ports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeType {
    /// A sidecar beside an app.
    #[default]
    Sidecar,
    /// A gateway (Istio's `router`).
    Router,
}

impl NodeType {
    /// The node id spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Sidecar => "sidecar",
            NodeType::Router => "router",
        }
    }
}

/// The node id a proxy sends.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    /// Sidecar or router (gateway).
    pub node_type: NodeType,
    /// The pod's IP.
    pub ip: IpAddr,
    /// Pod name.
    pub pod_name: String,
    /// Pod namespace.
    pub namespace: String,
    /// DNS domain suffix (`cluster.local`).
    pub domain_suffix: String,
}

impl NodeId {
    /// A sidecar node id in the default domain.
    pub fn sidecar(ip: IpAddr, pod_name: &str, namespace: &str) -> Self {
        Self {
            node_type: NodeType::Sidecar,
            ip,
            pod_name: pod_name.to_string(),
            namespace: namespace.to_string(),
            domain_suffix: DEFAULT_DOMAIN_SUFFIX.to_string(),
        }
    }

    /// A gateway (router) node id in the default domain.
    pub fn router(ip: IpAddr, pod_name: &str, namespace: &str) -> Self {
        Self {
            node_type: NodeType::Router,
            ..Self::sidecar(ip, pod_name, namespace)
        }
    }

    /// Whether this is a gateway.
    pub fn is_router(&self) -> bool {
        self.node_type == NodeType::Router
    }

    /// Parses `sidecar~IP~POD.NS~NS.svc.DOMAIN` (or `router~...`).
    pub fn parse(s: &str) -> Result<Self, NodeError> {
        let bad = || NodeError::BadId(s.to_string());
        let parts: Vec<&str> = s.split('~').collect();
        let [kind, ip, pod_dot_ns, domain] = parts.as_slice() else {
            return Err(bad());
        };
        let node_type = match *kind {
            "sidecar" => NodeType::Sidecar,
            "router" => NodeType::Router,
            _ => return Err(bad()),
        };
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let (pod_name, namespace) = pod_dot_ns.rsplit_once('.').ok_or_else(bad)?;
        let suffix = domain
            .strip_prefix(namespace)
            .and_then(|d| d.strip_prefix(".svc."))
            .ok_or_else(bad)?;
        if pod_name.is_empty() || namespace.is_empty() || suffix.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            node_type,
            ip,
            pod_name: pod_name.to_string(),
            namespace: namespace.to_string(),
            domain_suffix: suffix.to_string(),
        })
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}~{}~{}.{}~{}.svc.{}",
            self.node_type.as_str(),
            self.ip,
            self.pod_name,
            self.namespace,
            self.namespace,
            self.domain_suffix
        )
    }
}

/// How the sidecar gets its workload certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CertMode {
    /// Static secrets in the bootstrap, read from files; rotation = hot restart.
    #[default]
    File,
    /// Secrets served by the agent over SDS on a Unix socket.
    Sds,
}

impl CertMode {
    /// The metadata spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CertMode::File => "file",
            CertMode::Sds => "sds",
        }
    }
}

impl std::str::FromStr for CertMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "file" => Ok(CertMode::File),
            "sds" => Ok(CertMode::Sds),
            other => Err(format!("{other:?} is not one of file, sds")),
        }
    }
}

/// The node metadata Rudder's agent sends and pilot reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeMetadata {
    /// `NAMESPACE`.
    pub namespace: String,
    /// `SERVICE_ACCOUNT`.
    pub service_account: String,
    /// `WORKLOAD_NAME` (e.g. the Deployment's name), may be empty.
    pub workload_name: String,
    /// `LABELS`: the pod's labels.
    pub labels: BTreeMap<String, String>,
    /// `INSTANCE_IPS`: the pod's IPs.
    pub instance_ips: Vec<IpAddr>,
    /// `CAPTURE_PORT`: where outbound (and by default inbound) traffic arrives.
    pub capture_port: u16,
    /// `INBOUND_CAPTURE_PORT`: where inbound traffic arrives.
    pub inbound_capture_port: u16,
    /// `CERT_MODE`.
    pub cert_mode: CertMode,
}

impl Default for NodeMetadata {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            service_account: String::new(),
            workload_name: String::new(),
            labels: BTreeMap::new(),
            instance_ips: Vec::new(),
            capture_port: PROXY_PORT,
            inbound_capture_port: PROXY_PORT,
            cert_mode: CertMode::File,
        }
    }
}

impl NodeMetadata {
    /// Encodes as a JSON object (the agent turns it into the bootstrap's
    /// `node.metadata` Struct).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("NAMESPACE".into(), Value::String(self.namespace.clone()));
        m.insert(
            "SERVICE_ACCOUNT".into(),
            Value::String(self.service_account.clone()),
        );
        m.insert(
            "WORKLOAD_NAME".into(),
            Value::String(self.workload_name.clone()),
        );
        let labels: Map<String, Value> = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        m.insert("LABELS".into(), Value::Object(labels));
        let ips: Vec<String> = self.instance_ips.iter().map(|ip| ip.to_string()).collect();
        m.insert("INSTANCE_IPS".into(), Value::String(ips.join(",")));
        m.insert(
            "CAPTURE_PORT".into(),
            Value::String(self.capture_port.to_string()),
        );
        m.insert(
            "INBOUND_CAPTURE_PORT".into(),
            Value::String(self.inbound_capture_port.to_string()),
        );
        m.insert(
            "CERT_MODE".into(),
            Value::String(self.cert_mode.as_str().into()),
        );
        Value::Object(m)
    }

    /// Decodes from a JSON object (pilot converts the node's Struct to JSON
    /// first). Missing fields take their defaults; wrongly typed ones are errors.
    pub fn from_json(v: &Value) -> Result<Self, NodeError> {
        let mut md = NodeMetadata::default();
        let Some(obj) = v.as_object() else {
            return if v.is_null() {
                Ok(md)
            } else {
                Err(NodeError::BadMetadata {
                    field: "metadata",
                    reason: "not an object".into(),
                })
            };
        };
        let string = |field: &'static str| -> Result<Option<String>, NodeError> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(NodeError::BadMetadata {
                    field,
                    reason: format!("expected a string, got {other}"),
                }),
            }
        };
        let port = |field: &'static str| -> Result<Option<u16>, NodeError> {
            string(field)?
                .map(|s| {
                    s.parse::<u16>().map_err(|_| NodeError::BadMetadata {
                        field,
                        reason: format!("{s:?} is not a port number"),
                    })
                })
                .transpose()
        };
        if let Some(s) = string("NAMESPACE")? {
            md.namespace = s;
        }
        if let Some(s) = string("SERVICE_ACCOUNT")? {
            md.service_account = s;
        }
        if let Some(s) = string("WORKLOAD_NAME")? {
            md.workload_name = s;
        }
        md.labels.extend(labels(obj.get("LABELS"))?);
        if let Some(s) = string("INSTANCE_IPS")? {
            md.instance_ips = instance_ips(&s)?;
        }
        if let Some(p) = port("CAPTURE_PORT")? {
            md.capture_port = p;
            md.inbound_capture_port = p;
        }
        if let Some(p) = port("INBOUND_CAPTURE_PORT")? {
            md.inbound_capture_port = p;
        }
        md.cert_mode = match string("CERT_MODE")?.as_deref() {
            None | Some("file") => CertMode::File,
            Some("sds") => CertMode::Sds,
            Some(other) => {
                return Err(NodeError::BadMetadata {
                    field: "CERT_MODE",
                    reason: format!("{other:?} is neither \"file\" nor \"sds\""),
                })
            }
        };
        Ok(md)
    }
}

/// `LABELS`: an object of strings.
fn labels(v: Option<&Value>) -> Result<BTreeMap<String, String>, NodeError> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(labels)) => {
            for (k, v) in labels {
                let Value::String(v) = v else {
                    return Err(NodeError::BadMetadata {
                        field: "LABELS",
                        reason: format!("label {k:?} is not a string"),
                    });
                };
                out.insert(k.clone(), v.clone());
            }
        }
        Some(_) => {
            return Err(NodeError::BadMetadata {
                field: "LABELS",
                reason: "not an object".into(),
            })
        }
    }
    Ok(out)
}

/// `INSTANCE_IPS`: comma-separated IP addresses.
fn instance_ips(s: &str) -> Result<Vec<IpAddr>, NodeError> {
    let mut ips = Vec::new();
    for ip in s.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        ips.push(ip.parse().map_err(|_| NodeError::BadMetadata {
            field: "INSTANCE_IPS",
            reason: format!("{ip:?} is not an IP address"),
        })?);
    }
    Ok(ips)
}

/// A connected sidecar as the generators see it: who it is, where it captures,
/// and which labels select it. Built by pilot from the node id, the metadata
/// and (when known) the pod in the store, which wins over the metadata.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proxy {
    /// Node id.
    pub id: NodeId,
    /// Namespace the proxy lives in.
    pub namespace: String,
    /// Pod labels (route `sourceLabels`, policy selectors).
    pub labels: BTreeMap<String, String>,
    /// The pod's IPs: an original destination among them means inbound.
    pub ips: Vec<IpAddr>,
    /// Service account.
    pub service_account: String,
    /// Outbound (and default inbound) capture port.
    pub capture_port: u16,
    /// Inbound capture port.
    pub inbound_capture_port: u16,
    /// Certificate mode.
    pub cert_mode: CertMode,
    /// Where it runs: its pod's locality labels (see [`crate::locality`]).
    pub locality: crate::locality::Locality,
}

impl Proxy {
    /// A proxy from its node id and metadata alone.
    pub fn from_node(id: NodeId, md: &NodeMetadata) -> Self {
        let mut ips = md.instance_ips.clone();
        if !ips.contains(&id.ip) {
            ips.insert(0, id.ip);
        }
        let namespace = if md.namespace.is_empty() {
            id.namespace.clone()
        } else {
            md.namespace.clone()
        };
        Self {
            namespace,
            labels: md.labels.clone(),
            ips,
            service_account: md.service_account.clone(),
            capture_port: md.capture_port,
            inbound_capture_port: md.inbound_capture_port,
            cert_mode: md.cert_mode,
            locality: crate::locality::Locality::from_labels(&md.labels),
            id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_round_trips() {
        let id = NodeId::sidecar("198.18.0.5".parse().unwrap(), "reviews-v1-0", "default");
        let s = id.to_string();
        assert_eq!(
            s,
            "sidecar~198.18.0.5~reviews-v1-0.default~default.svc.cluster.local"
        );
        assert_eq!(NodeId::parse(&s).unwrap(), id);
    }

    #[test]
    fn router_node_ids_round_trip() {
        let s = "router~198.18.0.30~ingressgateway-0.istio-system~istio-system.svc.cluster.local";
        let id = NodeId::parse(s).unwrap();
        assert!(id.is_router());
        assert_eq!(
            id,
            NodeId::router(
                "198.18.0.30".parse().unwrap(),
                "ingressgateway-0",
                "istio-system"
            )
        );
        assert_eq!(id.to_string(), s);
    }

    #[test]
    fn node_id_with_dotted_pod_name() {
        let id = NodeId::parse("sidecar~10.0.0.1~a.b.ns~ns.svc.cluster.local").unwrap();
        assert_eq!(id.pod_name, "a.b");
        assert_eq!(id.namespace, "ns");
    }

    #[test]
    fn bad_node_ids() {
        for bad in [
            "ingress~10.0.0.1~a.ns~ns.svc.cluster.local",
            "sidecar~notanip~a.ns~ns.svc.cluster.local",
            "sidecar~10.0.0.1~ans~ns.svc.cluster.local",
            "sidecar~10.0.0.1~a.ns~other.svc.cluster.local",
            "sidecar~10.0.0.1",
        ] {
            assert!(NodeId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_round_trips() {
        let md = NodeMetadata {
            namespace: "default".into(),
            service_account: "bookinfo".into(),
            workload_name: "reviews-v1".into(),
            labels: [("app".to_string(), "reviews".to_string())].into(),
            instance_ips: vec!["198.18.0.5".parse().unwrap()],
            capture_port: 15000,
            inbound_capture_port: 15006,
            cert_mode: CertMode::Sds,
        };
        assert_eq!(NodeMetadata::from_json(&md.to_json()).unwrap(), md);
    }

    #[test]
    fn metadata_defaults_and_errors() {
        let md = NodeMetadata::from_json(&serde_json::json!({"CAPTURE_PORT": "16000"})).unwrap();
        assert_eq!((md.capture_port, md.inbound_capture_port), (16000, 16000));
        let err = NodeMetadata::from_json(&serde_json::json!({"CAPTURE_PORT": "x"})).unwrap_err();
        assert!(err.to_string().contains("CAPTURE_PORT"));
        let err = NodeMetadata::from_json(&serde_json::json!({"LABELS": {"a": 1}})).unwrap_err();
        assert!(err.to_string().contains("LABELS"));
    }
}
