//! Objects Rudder does not serve but a user may expect it to: other
//! projects' routing and policy APIs (Gateway API, Contour, Emissary) and any
//! kind or version of an Istio group that Rudder does not read. Each is named
//! (one [`Severity::Unsupported`](rudder_model::Severity) diagnostic per
//! object, in `pilot validate`, pilot's log and `/debug/configz`) instead of
//! being dropped without a word; plain Kubernetes kinds Rudder has no use for
//! stay silent.

use rudder_config::{contour, emissary, gateway_api, groups, meta::ObjectMeta};

/// Routing and policy APIs of other projects, whose objects are named as
/// unsupported rather than silently ignored: (API group, matched with its
/// subgroups; what it is; whether Rudder means to serve it). When Rudder
/// comes to serve a kind of one of them (the Gateway API's HTTPRoute), that
/// kind leaves this list: [`unsupported`] is asked before the loader
/// classifies an object. Contour's HTTPProxy and Emissary's Mapping are
/// served ([`served_kind_versions`]); the other kinds of those APIs are not.
const OTHER_ROUTING_APIS: [(&str, &str, bool); 5] = [
    ("gateway.networking.k8s.io", "the Gateway API", true),
    (
        "gateway.networking.x-k8s.io",
        "the Gateway API's experimental kinds",
        false,
    ),
    (
        "networking.x-k8s.io",
        "the Service APIs (the Gateway API's predecessor)",
        false,
    ),
    (contour::GROUP, "Contour's API", false),
    (emissary::GROUP, "Emissary-ingress's API", false),
];

/// The versions Rudder reads of each Istio kind it serves.
fn istio_versions(group: &str, kind: &str) -> Option<&'static [&'static str]> {
    match (group, kind) {
        (
            groups::NETWORKING,
            "VirtualService" | "DestinationRule" | "Sidecar" | "ServiceEntry" | "WorkloadEntry"
            | "Gateway",
        ) => Some(&groups::NETWORKING_VERSIONS),
        (groups::CONFIG, "RouteRule" | "DestinationPolicy") => Some(&[groups::CONFIG_VERSION]),
        (
            groups::SECURITY,
            "PeerAuthentication" | "AuthorizationPolicy" | "RequestAuthentication",
        ) => Some(&groups::SECURITY_VERSIONS),
        (groups::TELEMETRY, "Telemetry") => Some(&groups::TELEMETRY_VERSIONS),
        _ => None,
    }
}

/// The versions Rudder reads of each Gateway API kind it serves (the
/// other kinds of the group, BackendTLSPolicy, UDPRoute, ..., are unsupported).
fn gateway_api_versions(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "GatewayClass" | "Gateway" | "HTTPRoute" | "GRPCRoute" | "ReferenceGrant" => {
            Some(&gateway_api::STANDARD_VERSIONS)
        }
        "TCPRoute" | "TLSRoute" => Some(&gateway_api::EXPERIMENTAL_VERSIONS),
        _ => None,
    }
}

/// The versions Rudder reads of the one kind it serves of Contour's and of
/// Emissary's APIs.
fn served_kind_versions(group: &str, kind: &str) -> Option<&'static [&'static str]> {
    match (group, kind) {
        (contour::GROUP, "HTTPProxy") => Some(&[contour::VERSION]),
        (emissary::GROUP, "Mapping") => Some(&[emissary::VERSION]),
        _ => None,
    }
}

fn in_group(group: &str, api: &str) -> bool {
    group == api
        || group
            .strip_suffix(api)
            .is_some_and(|sub| sub.ends_with('.'))
}

/// Why an object of this group, version and kind is not served, as (field,
/// message); `None` when Rudder serves it or has no use for it (plain
/// Kubernetes kinds stay silent). Any kind or version of an `*.istio.io`
/// group Rudder does not read is unsupported, and so is everything of
/// [`OTHER_ROUTING_APIS`].
pub fn unsupported(group: &str, version: &str, kind: &str) -> Option<(&'static str, String)> {
    const NO_EFFECT: &str = "it has no effect on traffic";
    if in_group(group, "istio.io") {
        return match istio_versions(group, kind) {
            Some(versions) if versions.contains(&version) => None,
            Some(versions) => Some((
                "apiVersion",
                format!(
                    "Rudder does not serve {kind} in {group}/{version} (it reads {}); {NO_EFFECT}",
                    versions.join(", ")
                ),
            )),
            None => Some((
                "",
                format!("Rudder does not serve {kind} ({group}/{version}) yet; {NO_EFFECT}"),
            )),
        };
    }
    let served = match group {
        gateway_api::GROUP => gateway_api_versions(kind),
        _ => served_kind_versions(group, kind),
    };
    if let Some(versions) = served {
        return (!versions.contains(&version)).then(|| {
            (
                "apiVersion",
                format!(
                    "Rudder does not serve {kind} in {group}/{version} (it reads {}); {NO_EFFECT}",
                    versions.join(", ")
                ),
            )
        });
    }
    let (_, api, planned) = OTHER_ROUTING_APIS
        .iter()
        .find(|(g, _, _)| in_group(group, g))?;
    let yet = if *planned { " yet" } else { "" };
    Some((
        "",
        format!(
            "{kind} ({group}/{version}) is part of {api}, which Rudder does not serve{yet}; {NO_EFFECT}"
        ),
    ))
}

/// `HTTPRoute default/web` (namespaced kinds default to `default`, as kubectl
/// does; a GatewayClass is cluster-scoped).
pub fn unsupported_object(kind: &str, meta: &ObjectMeta) -> String {
    let name = meta
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or("?");
    match meta.namespace.as_deref() {
        _ if kind == "GatewayClass" => format!("{kind} {name}"),
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} default/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_match_whole_labels_only() {
        assert!(in_group("getambassador.io", "getambassador.io"));
        assert!(in_group("x.getambassador.io", "getambassador.io"));
        assert!(!in_group("notgetambassador.io", "getambassador.io"));
        assert!(in_group("extensions.istio.io", "istio.io"));
        assert!(!in_group("myistio.io", "istio.io"));
        assert_eq!(unsupported("apps", "v1", "Deployment"), None);
        assert_eq!(unsupported("networking.k8s.io", "v1", "Ingress"), None);
        assert_eq!(
            unsupported(groups::NETWORKING, "v1beta1", "VirtualService"),
            None
        );
        assert!(unsupported("x.getambassador.io", "v3alpha1", "Mapping").is_some());
        assert_eq!(unsupported("getambassador.io", "v3alpha1", "Mapping"), None);
        assert_eq!(unsupported("projectcontour.io", "v1", "HTTPProxy"), None);
        assert_eq!(
            unsupported("getambassador.io", "v2", "Mapping").map(|(f, _)| f),
            Some("apiVersion")
        );
        assert!(unsupported("projectcontour.io", "v1", "TLSCertificateDelegation").is_some());
    }
}
