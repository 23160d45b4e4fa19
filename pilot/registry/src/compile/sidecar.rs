//! Sidecar → [`Sidecar`]: the hosts a workload's sidecar imports.
//!
//! Served: `workloadSelector.labels`, `egress[].hosts` (`namespace/dnsName`;
//! no `egress` means Istio's default listener, `*/*`) and
//! `outboundTrafficPolicy.mode` (`ALLOW_ANY`, `REGISTRY_ONLY`). Every other
//! field is refused with its path and the reason, so a Sidecar never
//! half-applies: `egress[].port` (a port-specific listener), `bind` and
//! `captureMode`, `ingress`, `inboundConnectionPool`, `inboundTls`,
//! `outboundTrafficPolicy.egressProxy`.

use rudder_config::sidecar as sc;
use rudder_model::{EgressHost, EgressNamespace, OutboundMode, RuleRef, Sidecar};

use crate::{
    check::{is_dns_label, Checker},
    object::ObjectKey,
};

/// Compiles a Sidecar; `None` when it has errors.
pub fn compile(spec: &sc::SidecarSpec, key: &ObjectKey, ck: &mut Checker) -> Option<Sidecar> {
    let refused = [
        ("spec.ingress", spec.ingress.is_some(), "inbound listeners"),
        (
            "spec.inboundConnectionPool",
            spec.inbound_connection_pool.is_some(),
            "inbound connection pool settings",
        ),
        (
            "spec.inboundTls",
            spec.inbound_tls.is_some(),
            "inbound TLS settings",
        ),
    ];
    for (field, set, what) in refused {
        if set {
            ck.error(field, not_served(what));
        }
    }
    let selector = spec.workload_selector.as_ref().map(|s| {
        if s.labels.is_empty() {
            ck.error(
                "spec.workloadSelector.labels",
                "a workload selector needs at least one label (omit it for the namespace default)",
            );
        }
        s.labels.clone()
    });
    let nothing_set = spec.egress.is_empty()
        && spec.ingress.is_none()
        && spec.outbound_traffic_policy.is_none()
        && spec.inbound_connection_pool.is_none()
        && spec.inbound_tls.is_none();
    if nothing_set {
        ck.error(
            "spec",
            "empty configuration: set egress hosts (or outboundTrafficPolicy)",
        );
    }
    let egress = egress(spec, ck);
    let outbound = outbound_mode(spec, ck);
    if ck.has_errors() {
        return None;
    }
    Some(Sidecar {
        source: RuleRef {
            kind: "Sidecar".into(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        },
        selector,
        egress,
        outbound,
    })
}

/// `egress[]`: one host list per listener (Istio's default `*/*` without
/// any); port-specific listeners, binds and capture modes are refused.
fn egress(spec: &sc::SidecarSpec, ck: &mut Checker) -> Vec<Vec<EgressHost>> {
    let mut egress = Vec::new();
    for (i, e) in spec.egress.iter().enumerate() {
        let at = format!("spec.egress[{i}]");
        if e.port.is_some() {
            ck.error(
                format!("{at}.port"),
                not_served(
                    "port-specific egress listeners (every egress listener covers all ports)",
                ),
            );
        }
        if e.bind.is_some() {
            ck.error(format!("{at}.bind"), not_served("egress bind addresses"));
        }
        if e.capture_mode.is_some() {
            ck.error(format!("{at}.captureMode"), not_served("capture modes"));
        }
        if e.hosts.is_empty() {
            ck.error(format!("{at}.hosts"), "at least one host is required");
        }
        let hosts = e
            .hosts
            .iter()
            .enumerate()
            .filter_map(|(j, h)| egress_host(h, &format!("{at}.hosts[{j}]"), ck))
            .collect();
        egress.push(hosts);
    }
    if egress.is_empty() {
        // Istio's default egress listener.
        egress.push(vec![EgressHost {
            namespace: EgressNamespace::Any,
            host: "*".into(),
        }]);
    }
    egress
}

/// `outboundTrafficPolicy`: `ALLOW_ANY` and `REGISTRY_ONLY` are served
/// (unset: the mesh config's mode); egress proxies are refused.
fn outbound_mode(spec: &sc::SidecarSpec, ck: &mut Checker) -> Option<OutboundMode> {
    let p = spec.outbound_traffic_policy.as_ref()?;
    if p.egress_proxy.is_some() {
        ck.error(
            "spec.outboundTrafficPolicy.egressProxy",
            not_served("egress proxies"),
        );
    }
    match p.mode.as_deref() {
        None => None,
        Some("ALLOW_ANY") => Some(OutboundMode::AllowAny),
        Some("REGISTRY_ONLY") => Some(OutboundMode::RegistryOnly),
        Some(m) => {
            ck.error(
                "spec.outboundTrafficPolicy.mode",
                format!("unknown mode {m:?}: expected ALLOW_ANY or REGISTRY_ONLY"),
            );
            None
        }
    }
}

fn not_served(what: &str) -> String {
    format!("Rudder does not serve {what}; remove the field (the Sidecar is not applied while it is set)")
}

/// `namespace/dnsName` → [`EgressHost`].
fn egress_host(s: &str, at: &str, ck: &mut Checker) -> Option<EgressHost> {
    let Some((ns, host)) = s.split_once('/') else {
        ck.error(
            at,
            format!("{s:?} must be namespace/dnsName (`./*`, `ns/*`, `*/host`, `~/*`)"),
        );
        return None;
    };
    let namespace = match ns {
        "*" => EgressNamespace::Any,
        "." => EgressNamespace::Own,
        "~" => EgressNamespace::None,
        n if is_dns_label(n) => EgressNamespace::Named(n.to_string()),
        n => {
            ck.error(
                at,
                format!("{n:?} is not `*`, `.`, `~` or a namespace name"),
            );
            return None;
        }
    };
    let wildcard_ok = host == "*"
        || host
            .strip_prefix("*.")
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('*'));
    if host.is_empty() || (host.contains('*') && !wildcard_ok) || host.contains('/') {
        ck.error(
            at,
            format!(
                "host {host:?} must be `*`, `*.suffix` or a hostname (the wildcard only leftmost)"
            ),
        );
        return None;
    }
    Some(EgressHost {
        namespace,
        host: host.to_string(),
    })
}
