//! Kubernetes Service and Pod → model [`Service`] and [`Workload`].

use std::net::IpAddr;

use rudder_config::kube;
use rudder_model::{Protocol, Service, ServicePort, TargetPort, Workload};

use super::Ctx;
use crate::{check::Checker, object::ObjectKey};

/// Compiles a Service. Non-TCP ports (UDP, SCTP) are left out: sidecars proxy TCP only.
pub fn service(
    svc: &kube::Service,
    key: &ObjectKey,
    cx: &Ctx<'_>,
    ck: &mut Checker,
) -> Option<Service> {
    let external_name = external_name(svc, ck);
    let cluster_ip = match svc.spec.cluster_ip.as_deref() {
        // Kubernetes gives an ExternalName Service no VIP.
        _ if external_name.is_some() => None,
        None | Some("") | Some("None") => None,
        Some(ip) => match ip.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                ck.error("spec.clusterIP", format!("invalid IP address {ip:?}"));
                None
            }
        },
    };
    let mut other_vips = Vec::new();
    for (i, ip) in svc.spec.cluster_ips.iter().enumerate().skip(1) {
        match ip.parse::<IpAddr>() {
            Ok(ip) if cluster_ip.is_some() && !other_vips.contains(&ip) => other_vips.push(ip),
            Ok(_) => {}
            Err(_) => ck.error(
                format!("spec.clusterIPs[{i}]"),
                format!("invalid IP address {ip:?}"),
            ),
        }
    }
    let mut ports = Vec::new();
    for (i, p) in svc.spec.ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        let Some(port) = ck.port(format!("{at}.port"), p.port.into()) else {
            continue;
        };
        let target_port = match &p.target_port {
            None => TargetPort::Number(port),
            Some(kube::IntOrString::Int(n)) => {
                match ck.port(format!("{at}.targetPort"), (*n).into()) {
                    Some(n) => TargetPort::Number(n),
                    None => continue,
                }
            }
            Some(kube::IntOrString::String(s)) => match s.parse::<i64>() {
                Ok(n) => match ck.port(format!("{at}.targetPort"), n) {
                    Some(n) => TargetPort::Number(n),
                    None => continue,
                },
                Err(_) => TargetPort::Name(s.clone()),
            },
        };
        if p.protocol
            .as_deref()
            .is_some_and(|pr| !pr.eq_ignore_ascii_case("TCP"))
        {
            continue;
        }
        ports.push(ServicePort {
            name: p.name.clone().unwrap_or_default(),
            port,
            target_port,
            protocol: Protocol::detect(p.app_protocol.as_deref(), p.name.as_deref()),
        });
    }
    let export_to: Vec<String> = svc
        .metadata
        .annotations
        .get(kube::EXPORT_TO_ANNOTATION)
        .map(|v| v.split(',').map(|n| n.trim().to_string()).collect())
        .unwrap_or_default();
    ck.export_to(
        &format!("metadata.annotations[{:?}]", kube::EXPORT_TO_ANNOTATION),
        &export_to,
    );
    if ck.has_errors() {
        return None;
    }
    Some(Service {
        name: key.name.clone(),
        namespace: key.namespace.clone(),
        hostname: format!("{}.{}.svc.{}", key.name, key.namespace, cx.domain_suffix),
        cluster_ip,
        other_vips,
        ports,
        selector: svc.spec.selector.clone(),
        export_to,
        external_name,
        entry: None,
    })
}

/// The name a `type: ExternalName` Service points to (Kubernetes requires a
/// DNS name; an IP address is refused as the API server does).
fn external_name(svc: &kube::Service, ck: &mut Checker) -> Option<String> {
    if svc.spec.type_.as_deref() != Some("ExternalName") {
        return None;
    }
    let name = svc
        .spec
        .external_name
        .as_deref()
        .map(|n| n.trim_end_matches('.'))
        .unwrap_or_default();
    let valid = !name.is_empty()
        && name.parse::<IpAddr>().is_err()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !valid {
        ck.error(
            "spec.externalName",
            format!("{name:?} is not a DNS name (required for type ExternalName)"),
        );
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// Compiles a Pod. Ready means phase Running, condition Ready=True, and not terminating.
pub fn workload(pod: &kube::Pod, key: &ObjectKey, ck: &mut Checker) -> Option<Workload> {
    let mut ips = Vec::new();
    let mut add = |ck: &mut Checker, field: String, ip: &str| match ip.parse::<IpAddr>() {
        Ok(ip) if !ips.contains(&ip) => ips.push(ip),
        Ok(_) => {}
        Err(_) => ck.error(field, format!("invalid IP address {ip:?}")),
    };
    if let Some(ip) = pod.status.pod_ip.as_deref().filter(|s| !s.is_empty()) {
        add(ck, "status.podIP".into(), ip);
    }
    for (i, p) in pod.status.pod_ips.iter().enumerate() {
        add(ck, format!("status.podIPs[{i}].ip"), &p.ip);
    }
    let mut named_ports = std::collections::BTreeMap::new();
    for (c, container) in pod.spec.containers.iter().enumerate() {
        for (i, p) in container.ports.iter().enumerate() {
            let Some(port) = ck.port(
                format!("spec.containers[{c}].ports[{i}].containerPort"),
                p.container_port.into(),
            ) else {
                continue;
            };
            if let Some(name) = &p.name {
                named_ports.insert(name.clone(), port);
            }
        }
    }
    let ready = pod.status.phase.as_deref() == Some("Running")
        && pod
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
        && pod.metadata.deletion_timestamp.is_none();
    if ck.has_errors() {
        return None;
    }
    Some(Workload {
        name: key.name.clone(),
        namespace: key.namespace.clone(),
        labels: pod.metadata.labels.clone(),
        ips,
        service_account: pod
            .spec
            .service_account_name
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into()),
        ready,
        named_ports,
    })
}

/// Whether a pod is finished (its IP may already belong to another pod).
pub fn finished(pod: &kube::Pod) -> bool {
    matches!(pod.status.phase.as_deref(), Some("Succeeded" | "Failed"))
}
