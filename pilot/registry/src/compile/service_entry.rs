//! ServiceEntry → one model [`Service`] per host; WorkloadEntry → an
//! [`EntryEndpoint`] that ServiceEntry `workloadSelector`s (and Kubernetes
//! Service selectors) pick up.
//!
//! As Istio (`serviceentry/conversion.go`): a host with `addresses` gets VIPs
//! (listeners like a Service's), one without is routed by Host header on its
//! port's route table; `resolution` decides the clusters (NONE:
//! ORIGINAL_DST, STATIC: EDS from `endpoints` and the selected workloads,
//! DNS: STRICT_DNS, DNS_ROUND_ROBIN: LOGICAL_DNS); `location:
//! MESH_EXTERNAL` (the default) never gets auto mTLS. Validation follows
//! Istio's `ValidateServiceEntry`, with the field path in every error.

use std::{collections::BTreeSet, net::IpAddr};

use rudder_config::service_entry as se;
use rudder_model::{
    well_known::TLS_MODE_LABEL, EntryEndpoint, Locality, Location, Protocol, Resolution, Service,
    ServiceEntryInfo, ServicePort, TargetPort,
};

use crate::{check::Checker, object::ObjectKey};

/// Istio's port protocols (case-insensitive), as ServiceEntries name them.
const PROTOCOLS: [&str; 7] = ["HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS"];

/// Compiles a ServiceEntry into one service per host (empty when it has errors).
pub fn service_entry(
    spec: &se::ServiceEntrySpec,
    key: &ObjectKey,
    ck: &mut Checker,
) -> Vec<Service> {
    if spec.hosts.is_empty() {
        ck.error("spec.hosts", "at least one host is required");
    }
    for (i, h) in spec.hosts.iter().enumerate() {
        check_host(h, &format!("spec.hosts[{i}]"), ck);
    }
    let (vips, cidrs) = addresses(spec, ck);
    let ports = ports(spec, ck);
    let location = match spec.location.as_deref() {
        None | Some("MESH_EXTERNAL") => Location::MeshExternal,
        Some("MESH_INTERNAL") => Location::MeshInternal,
        Some(l) => {
            ck.error(
                "spec.location",
                format!("unknown location {l:?}: expected MESH_EXTERNAL or MESH_INTERNAL"),
            );
            Location::MeshExternal
        }
    };
    let resolution = match spec.resolution.as_deref() {
        None | Some("NONE") => Resolution::None,
        Some("STATIC") => Resolution::Static,
        Some("DNS") => Resolution::Dns,
        Some("DNS_ROUND_ROBIN") => Resolution::DnsRoundRobin,
        Some(r) => {
            ck.error(
                "spec.resolution",
                format!("unknown resolution {r:?}: expected NONE, STATIC, DNS or DNS_ROUND_ROBIN"),
            );
            Resolution::None
        }
    };
    check_resolution(spec, resolution, ck);
    let endpoints: Vec<EntryEndpoint> = spec
        .endpoints
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let at = format!("spec.endpoints[{i}]");
            if resolution == Resolution::Static && e.address.parse::<IpAddr>().is_err() {
                ck.error(
                    format!("{at}.address"),
                    format!(
                        "{:?} is not an IP address: STATIC endpoints are IP addresses (use resolution DNS for names)",
                        e.address
                    ),
                );
            }
            for name in e.ports.keys() {
                if !spec.ports.iter().any(|p| &p.name == name) {
                    ck.error(
                        format!("{at}.ports.{name}"),
                        format!("the ServiceEntry has no port named {name:?}"),
                    );
                }
            }
            entry_endpoint(e, &at, ck)
        })
        .collect();
    let selector = spec.workload_selector.as_ref().map(|s| {
        if s.labels.is_empty() {
            ck.error(
                "spec.workloadSelector.labels",
                "a workload selector needs at least one label",
            );
        }
        if !spec.endpoints.is_empty() {
            ck.error(
                "spec.workloadSelector",
                "only one of workloadSelector and endpoints may be set",
            );
        }
        if resolution != Resolution::Static {
            ck.error(
                "spec.workloadSelector",
                "selected workloads are endpoints only with resolution STATIC (NONE keeps the client's destination; DNS resolves names)",
            );
        }
        s.labels.clone()
    });
    ck.export_to("spec.exportTo", &spec.export_to);
    for (i, s) in spec.subject_alt_names.iter().enumerate() {
        if s.is_empty() {
            ck.error(
                format!("spec.subjectAltNames[{i}]"),
                "empty subject alt name",
            );
        }
    }
    if ck.has_errors() {
        return Vec::new();
    }
    let info = ServiceEntryInfo {
        location,
        resolution,
        endpoints,
        subject_alt_names: spec.subject_alt_names.clone(),
        cidrs,
    };
    spec.hosts
        .iter()
        .map(|host| Service {
            name: key.name.clone(),
            namespace: key.namespace.clone(),
            hostname: host.clone(),
            cluster_ip: vips.first().copied(),
            other_vips: vips.iter().skip(1).copied().collect(),
            ports: ports.clone(),
            selector: selector.clone().unwrap_or_default(),
            export_to: spec.export_to.clone(),
            external_name: None,
            entry: Some(info.clone()),
        })
        .collect()
}

/// A WorkloadEntry; `None` when it has errors.
pub fn workload_entry(spec: &se::WorkloadEntrySpec, ck: &mut Checker) -> Option<EntryEndpoint> {
    if spec.address.parse::<IpAddr>().is_err() {
        ck.error(
            "spec.address",
            format!(
                "{:?} is not an IP address: Rudder serves WorkloadEntries by IP (STATIC endpoints)",
                spec.address
            ),
        );
    }
    let e = entry_endpoint(spec, "spec", ck);
    if ck.has_errors() {
        return None;
    }
    e
}

/// A host as Istio validates a ServiceEntry's: a DNS name, or `*.` and one.
fn check_host(h: &str, at: &str, ck: &mut Checker) {
    let name = h.strip_prefix("*.").unwrap_or(h);
    let valid = !name.is_empty()
        && name.parse::<IpAddr>().is_err()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if h == "*" {
        ck.error(
            at,
            "the host `*` would take every destination; name a domain (`*.example.com`)",
        );
    } else if !valid {
        ck.error(
            at,
            format!("{h:?} is not a DNS name (`api.example.com`, `*.example.com`)"),
        );
    }
}

/// `addresses`: IPs (VIPs; a CIDR of one address is that address) and
/// wider CIDRs (network address and prefix length).
fn addresses(spec: &se::ServiceEntrySpec, ck: &mut Checker) -> (Vec<IpAddr>, Vec<(IpAddr, u8)>) {
    let mut out = Vec::new();
    let mut cidrs = Vec::new();
    for (i, a) in spec.addresses.iter().enumerate() {
        let at = format!("spec.addresses[{i}]");
        let (ip, len) = match a.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (a.as_str(), None),
        };
        let Ok(ip) = ip.parse::<IpAddr>() else {
            ck.error(at, format!("{a:?} is not an IP address or CIDR"));
            continue;
        };
        let full = if ip.is_ipv4() { 32 } else { 128 };
        match len.map(str::parse::<u8>) {
            None => {}
            Some(Ok(n)) if n == full => {}
            Some(Ok(n)) if n < full => {
                if !is_network(ip, n) {
                    ck.error(
                        at,
                        format!("CIDR {a:?} has host bits set: write its network address"),
                    );
                } else if !cidrs.contains(&(ip, n)) {
                    cidrs.push((ip, n));
                }
                continue;
            }
            Some(_) => {
                ck.error(at, format!("{a:?} is not an IP address or CIDR"));
                continue;
            }
        }
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    (out, cidrs)
}

/// Whether `ip` is the network address of a /`len` (no host bits set).
fn is_network(ip: IpAddr, len: u8) -> bool {
    match ip {
        IpAddr::V4(v4) => u32::from(v4).checked_shl(u32::from(len)).unwrap_or(0) == 0,
        IpAddr::V6(v6) => u128::from(v6).checked_shl(u32::from(len)).unwrap_or(0) == 0,
    }
}

fn ports(spec: &se::ServiceEntrySpec, ck: &mut Checker) -> Vec<ServicePort> {
    if spec.ports.is_empty() {
        ck.error("spec.ports", "at least one port is required");
    }
    let mut numbers = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        let number = ck.port(format!("{at}.number"), p.number);
        if !crate::check::is_dns_label(&p.name) {
            ck.error(
                format!("{at}.name"),
                format!(
                    "port name {:?} must be a DNS label (`http`, `tls-api`)",
                    p.name
                ),
            );
        } else if !names.insert(p.name.clone()) {
            ck.error(
                format!("{at}.name"),
                format!("port name {:?} is already defined", p.name),
            );
        }
        let protocol = match p.protocol.as_deref() {
            None => Protocol::detect(None, Some(&p.name)),
            Some(pr) if PROTOCOLS.iter().any(|x| x.eq_ignore_ascii_case(pr)) => {
                Protocol::detect(Some(pr), Some(&p.name))
            }
            Some(pr) => {
                ck.error(
                    format!("{at}.protocol"),
                    format!(
                        "unknown protocol {pr:?}: expected one of {}",
                        PROTOCOLS.join(", ")
                    ),
                );
                Protocol::Unknown
            }
        };
        let target = match p.target_port {
            Some(t) => ck.port(format!("{at}.targetPort"), t),
            None => number,
        };
        let Some(number) = number else { continue };
        if !numbers.insert(number) {
            ck.error(
                format!("{at}.number"),
                format!("port {number} is already defined"),
            );
        }
        out.push(ServicePort {
            name: p.name.clone(),
            port: number,
            target_port: TargetPort::Number(target.unwrap_or(number)),
            protocol,
        });
    }
    out
}

/// What each resolution allows, as Istio's validation says.
fn check_resolution(spec: &se::ServiceEntrySpec, resolution: Resolution, ck: &mut Checker) {
    match resolution {
        Resolution::None => {
            if !spec.endpoints.is_empty() {
                ck.error(
                    "spec.endpoints",
                    "no endpoints may be given with resolution NONE (connections keep their destination); use STATIC or DNS",
                );
            }
        }
        Resolution::Static => {
            if spec.endpoints.is_empty() && spec.workload_selector.is_none() {
                ck.error(
                    "spec.endpoints",
                    "resolution STATIC needs endpoints (or a workloadSelector)",
                );
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            if spec.endpoints.is_empty() {
                for (i, h) in spec.hosts.iter().enumerate() {
                    if h.starts_with('*') {
                        ck.error(
                            format!("spec.hosts[{i}]"),
                            format!("wildcard host {h:?} cannot be resolved by DNS: give endpoints, or use resolution NONE"),
                        );
                    }
                }
            }
            if resolution == Resolution::DnsRoundRobin && spec.endpoints.len() > 1 {
                ck.error(
                    "spec.endpoints",
                    "resolution DNS_ROUND_ROBIN takes at most one endpoint (Envoy's LOGICAL_DNS)",
                );
            }
        }
    }
}

/// An endpoint's (or WorkloadEntry's) fields; `at` is its path.
fn entry_endpoint(e: &se::WorkloadEntrySpec, at: &str, ck: &mut Checker) -> Option<EntryEndpoint> {
    if e.address.is_empty() {
        ck.error(format!("{at}.address"), "address is required");
    }
    if e.address.starts_with("unix://") {
        ck.error(
            format!("{at}.address"),
            "Unix domain socket endpoints are not served (sidecars proxy TCP)",
        );
    }
    let mut ports = std::collections::BTreeMap::new();
    for (name, p) in &e.ports {
        if let Some(p) = ck.port(format!("{at}.ports.{name}"), *p) {
            ports.insert(name.clone(), p);
        }
    }
    let weight = match e.weight {
        None => 0,
        Some(w) => match u32::try_from(w) {
            Ok(w) => w,
            Err(_) => {
                ck.error(
                    format!("{at}.weight"),
                    format!("weight {w} must be between 0 and 4294967295"),
                );
                0
            }
        },
    };
    let locality = match e.locality.as_deref() {
        None | Some("") => Locality::default(),
        Some(l) => {
            let parts: Vec<&str> = l.split('/').collect();
            if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
                ck.error(
                    format!("{at}.locality"),
                    format!("locality {l:?} must be region, region/zone or region/zone/subzone"),
                );
            }
            let get = |i: usize| parts.get(i).copied().unwrap_or_default();
            Locality::new(get(0), get(1), get(2))
        }
    };
    if let Some(n) = e.network.as_deref().filter(|n| !n.is_empty()) {
        ck.warn(
            format!("{at}.network"),
            format!("Rudder serves one network: the endpoint is reached directly, as if network {n:?} were the proxies' own"),
        );
    }
    let mut labels = e.labels.clone();
    let service_account = e.service_account.clone().filter(|s| !s.is_empty());
    if service_account.is_some() {
        // Istio: an entry with a service account is meshed unless its
        // labels say otherwise.
        labels
            .entry(TLS_MODE_LABEL.to_string())
            .or_insert_with(|| "istio".to_string());
    }
    Some(EntryEndpoint {
        address: e.address.clone(),
        ports,
        labels,
        service_account,
        locality,
        weight,
    })
}
