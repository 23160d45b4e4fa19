//! proxy-init's arguments: template values, overridden per pod by Istio's
//! `traffic.sidecar.istio.io/*` annotations.
//!
//! As in Istio: `includeInboundPorts`, `includeOutboundIPRanges`,
//! `excludeOutboundIPRanges` and `excludeOutboundPorts` replace the template's
//! value; `excludeInboundPorts` replaces it too, but the agent's and Envoy's
//! own ports (15020, 15021, 15090) are always excluded, since capturing them
//! would send kubelet's readiness probe and Prometheus into Envoy.

use std::collections::BTreeMap;

use rudder_model::well_known::DEFAULT_EXCLUDED_INBOUND_PORTS;
use serde_json::{Map, Value};

use crate::pod::{self, PodError};
use crate::template::{check_cidrs, parse_port_list, InboundPorts, Values};

/// Annotation: inbound ports to capture (`*` or a list).
pub const INCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeInboundPorts";
/// Annotation: inbound ports never captured.
pub const EXCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeInboundPorts";
/// Annotation: outbound CIDRs to capture (`*` or a list).
pub const INCLUDE_OUTBOUND_IP_RANGES: &str = "traffic.sidecar.istio.io/includeOutboundIPRanges";
/// Annotation: outbound CIDRs never captured.
pub const EXCLUDE_OUTBOUND_IP_RANGES: &str = "traffic.sidecar.istio.io/excludeOutboundIPRanges";
/// Annotation: outbound ports never captured.
pub const EXCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeOutboundPorts";

/// The capture settings for one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    /// `--inbound-ports`: `*` or a list (possibly empty: no inbound capture).
    pub inbound_ports: String,
    /// `--exclude-inbound-ports`.
    pub exclude_inbound_ports: Vec<u16>,
    /// `--exclude-outbound-ports`.
    pub exclude_outbound_ports: Vec<u16>,
    /// `--include-outbound-cidrs`: `*` or a list.
    pub include_outbound_cidrs: String,
    /// `--exclude-outbound-cidrs`.
    pub exclude_outbound_cidrs: Vec<String>,
}

fn annotation_field(key: &str) -> String {
    format!("metadata.annotations[{key:?}]")
}

fn cidr_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

fn join<T: ToString>(items: &[T]) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

impl Capture {
    /// Work out the capture settings of a pod.
    pub fn for_pod(
        values: &Values,
        annotations: &BTreeMap<String, String>,
        spec: &Map<String, Value>,
    ) -> Result<Self, PodError> {
        let ports = |key: &str| -> Result<Option<Vec<u16>>, PodError> {
            annotations
                .get(key)
                .map(|v| parse_port_list(v).map_err(|m| PodError::field(&annotation_field(key), m)))
                .transpose()
        };
        let cidrs = |key: &str, star_ok: bool| -> Result<Option<Vec<String>>, PodError> {
            annotations
                .get(key)
                .map(|v| {
                    let list = cidr_list(v);
                    check_cidrs(&list, star_ok)
                        .map_err(|m| PodError::field(&annotation_field(key), m))?;
                    Ok(list)
                })
                .transpose()
        };

        let inbound = match annotations.get(INCLUDE_INBOUND_PORTS) {
            Some(v) if v.trim() == "*" => InboundPorts::All,
            Some(v) => InboundPorts::List(
                parse_port_list(v)
                    .map_err(|m| PodError::field(&annotation_field(INCLUDE_INBOUND_PORTS), m))?,
            ),
            None => values.include_inbound_ports.clone(),
        };
        let inbound_ports = match inbound {
            InboundPorts::All => "*".to_string(),
            InboundPorts::ContainerPorts => join(&pod::container_ports(spec)?),
            InboundPorts::List(l) => join(&l),
        };

        let mut exclude_inbound_ports =
            ports(EXCLUDE_INBOUND_PORTS)?.unwrap_or_else(|| values.exclude_inbound_ports.clone());
        exclude_inbound_ports.extend(DEFAULT_EXCLUDED_INBOUND_PORTS);
        exclude_inbound_ports.sort_unstable();
        exclude_inbound_ports.dedup();

        let mut exclude_outbound_ports =
            ports(EXCLUDE_OUTBOUND_PORTS)?.unwrap_or_else(|| values.exclude_outbound_ports.clone());
        exclude_outbound_ports.sort_unstable();
        exclude_outbound_ports.dedup();

        let include_outbound_cidrs = join(
            &cidrs(INCLUDE_OUTBOUND_IP_RANGES, true)?
                .unwrap_or_else(|| values.include_outbound_cidrs.clone()),
        );
        let exclude_outbound_cidrs = cidrs(EXCLUDE_OUTBOUND_IP_RANGES, false)?
            .unwrap_or_else(|| values.exclude_outbound_cidrs.clone());

        Ok(Capture {
            inbound_ports,
            exclude_inbound_ports,
            exclude_outbound_ports,
            include_outbound_cidrs,
            exclude_outbound_cidrs,
        })
    }

    /// proxy-init's argument list (flags: docs/architecture.md, "Command lines"). Empty
    /// exclusion lists are left out rather than passed as `""`.
    pub fn proxy_init_args(&self, values: &Values) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--proxy-port".into(),
            values.proxy_port.to_string(),
            "--inbound-capture-port".into(),
            values.effective_inbound_capture_port().to_string(),
            "--proxy-uid".into(),
            values.proxy_uid.to_string(),
            "--proxy-gid".into(),
            values.proxy_gid.to_string(),
            "--inbound-ports".into(),
            self.inbound_ports.clone(),
            "--exclude-inbound-ports".into(),
            join(&self.exclude_inbound_ports),
        ];
        if !self.exclude_outbound_ports.is_empty() {
            args.extend([
                "--exclude-outbound-ports".into(),
                join(&self.exclude_outbound_ports),
            ]);
        }
        args.extend([
            "--include-outbound-cidrs".into(),
            self.include_outbound_cidrs.clone(),
        ]);
        if !self.exclude_outbound_cidrs.is_empty() {
            args.extend([
                "--exclude-outbound-cidrs".into(),
                join(&self.exclude_outbound_cidrs),
            ]);
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Map<String, Value> {
        json!({"containers": [
            {"name": "a", "ports": [{"containerPort": 9080}, {"containerPort": 53, "protocol": "UDP"}]},
            {"name": "b", "ports": [{"containerPort": 8080}, {"containerPort": 9080}]},
        ]})
        .as_object()
        .unwrap()
        .clone()
    }

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_capture_everything_but_the_agent_ports() {
        let c = Capture::for_pod(&Values::default(), &ann(&[]), &spec()).unwrap();
        assert_eq!(c.inbound_ports, "*");
        assert_eq!(c.exclude_inbound_ports, vec![15020, 15021, 15090]);
        assert_eq!(c.include_outbound_cidrs, "*");
        assert!(c.exclude_outbound_ports.is_empty());
    }

    #[test]
    fn container_ports_mode_lists_tcp_ports_once() {
        let values = Values {
            include_inbound_ports: InboundPorts::ContainerPorts,
            ..Values::default()
        };
        let c = Capture::for_pod(&values, &ann(&[]), &spec()).unwrap();
        assert_eq!(c.inbound_ports, "8080,9080");
    }

    #[test]
    fn annotations_override_and_agent_ports_stay_excluded() {
        let a = ann(&[
            (INCLUDE_INBOUND_PORTS, "9080"),
            (EXCLUDE_INBOUND_PORTS, "8080, 15021"),
            (EXCLUDE_OUTBOUND_PORTS, "3306,5432"),
            (INCLUDE_OUTBOUND_IP_RANGES, "10.0.0.0/8,172.16.0.0/12"),
            (EXCLUDE_OUTBOUND_IP_RANGES, "10.96.0.1/32"),
        ]);
        let c = Capture::for_pod(&Values::default(), &a, &spec()).unwrap();
        assert_eq!(c.inbound_ports, "9080");
        assert_eq!(c.exclude_inbound_ports, vec![8080, 15020, 15021, 15090]);
        assert_eq!(c.exclude_outbound_ports, vec![3306, 5432]);
        assert_eq!(c.include_outbound_cidrs, "10.0.0.0/8,172.16.0.0/12");
        assert_eq!(c.exclude_outbound_cidrs, vec!["10.96.0.1/32".to_string()]);
    }

    #[test]
    fn bad_annotations_name_the_annotation() {
        for (key, value, needle) in [
            (EXCLUDE_INBOUND_PORTS, "80,http", "\"http\" is not a port"),
            (EXCLUDE_OUTBOUND_PORTS, "70000", "\"70000\" is not a port"),
            (INCLUDE_OUTBOUND_IP_RANGES, "10.0.0.0/33", "longer than 32"),
            (EXCLUDE_OUTBOUND_IP_RANGES, "*", "must be the only entry"),
            (INCLUDE_INBOUND_PORTS, "all", "\"all\" is not a port"),
        ] {
            let err =
                Capture::for_pod(&Values::default(), &ann(&[(key, value)]), &spec()).unwrap_err();
            assert_eq!(err.field, format!("metadata.annotations[{key:?}]"));
            assert!(err.message.contains(needle), "{key}: {}", err.message);
        }
    }

    #[test]
    fn args_leave_out_empty_lists() {
        let c = Capture::for_pod(&Values::default(), &ann(&[]), &spec()).unwrap();
        let args = c.proxy_init_args(&Values::default());
        assert!(!args.contains(&"--exclude-outbound-ports".to_string()));
        assert!(!args.contains(&"--exclude-outbound-cidrs".to_string()));
        assert_eq!(
            args[..4],
            ["--proxy-port", "15000", "--inbound-capture-port", "15000"]
        );
    }
}
